"""The real `helm` binary (built by `make binaries`) on the chart, and what it renders."""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, cast

import yaml

from hack.delivery_files import CHART_DIR
from tests.controlplane.harness import find_binary

RELEASE = "mlpipeline-operator"
NAMESPACE = "mlpipeline-system"
CI_VALUES = sorted(CHART_DIR.glob("ci/*-values.yaml"))


@functools.cache
def _helm_home() -> Path:
    """HELM_{CACHE,CONFIG,DATA}_HOME for the tests: a fresh directory, not ~/.config."""
    return Path(tempfile.mkdtemp(prefix="mlpipeline-helm-"))


class HelmError(RuntimeError):
    """helm exited with an error; the message has its stderr."""


def helm(*args: str) -> str:
    """Run helm; its stdout, or HelmError with its stderr."""
    home = _helm_home()
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    done = subprocess.run(
        [str(find_binary("helm")), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise HelmError(f"helm {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return done.stdout


def template_text(
    values: Iterable[Path] = (),
    sets: Sequence[str] = (),
    *,
    namespace: str = NAMESPACE,
    include_crds: bool = True,
) -> str:
    """`helm template` of the chart, as text."""
    args = ["template", RELEASE, str(CHART_DIR), "--namespace", namespace]
    if include_crds:
        args.append("--include-crds")
    for path in values:
        args += ["--values", str(path)]
    for item in sets:
        args += ["--set", item]
    return helm(*args)


def render(
    values: Iterable[Path] = (),
    sets: Sequence[str] = (),
    *,
    namespace: str = NAMESPACE,
    include_crds: bool = True,
) -> list[dict[str, Any]]:
    """`helm template` of the chart: every object it renders."""
    text = template_text(values, sets, namespace=namespace, include_crds=include_crds)
    return [cast(dict[str, Any], d) for d in yaml.safe_load_all(text) if d]


def find(objects: Iterable[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The only object of that kind (and name)."""
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def of_kind(objects: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]
