"""Generated parts of the delivery files, and their drift checks.

- the table of chart values in charts/mlpipeline-operator/README.md and docs/configuration.md,
  from the `# --` comments of values.yaml (between the `values-table` markers);
- manifests/argocd/argocd-cm-health.yaml, the argocd-cm snippet that carries health.lua;
- with `--manifests`, manifests/install.yaml: the chart rendered by helm with its default values.

`python -m hack.delivery_files [--manifests]` (`make chart-docs`, `make manifests`) rewrites
them; tests fail when they are stale (tests/chart/test_generated.py, and tests/chart/test_chart.py
for install.yaml).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
CHART_DIR = REPO_ROOT / "charts" / "mlpipeline-operator"
VALUES_FILE = CHART_DIR / "values.yaml"
CHART_README = CHART_DIR / "README.md"
CONFIGURATION_DOC = REPO_ROOT / "docs" / "configuration.md"
HEALTH_DIR = REPO_ROOT / "manifests/argocd/resource_customizations/mlops.gitops.dev/MLPipeline"
HEALTH_LUA = HEALTH_DIR / "health.lua"
ARGOCD_CM = REPO_ROOT / "manifests" / "argocd" / "argocd-cm-health.yaml"
INSTALL_YAML = REPO_ROOT / "manifests" / "install.yaml"
HEALTH_KEY = "resource.customizations.health.mlops.gitops.dev_MLPipeline"

START = "<!-- values-table:start (generated from values.yaml by `make chart-docs`) -->"
END = "<!-- values-table:end -->"
_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_]+):(?P<rest>.*)$")
_DOC = re.compile(r"^(?P<indent> *)# -- ?(?P<text>.*)$")
_CONTINUATION = re.compile(r"^(?P<indent> *)#(?: (?P<text>.*))?$")


@dataclass(frozen=True)
class Value:
    """One documented value of the chart."""

    path: str
    default: Any
    description: str


def value_comments(text: str) -> dict[str, str]:
    """The `# --` description of each key of values.yaml, by dotted path."""
    docs: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    pending: list[str] | None = None
    for line in text.splitlines():
        doc = _DOC.match(line)
        if doc:
            pending = [doc["text"].strip()]
            continue
        continuation = _CONTINUATION.match(line)
        if continuation:
            if pending is not None:
                pending.append((continuation["text"] or "").strip())
            continue
        key = _KEY.match(line)
        if key:
            indent = len(key["indent"])
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, key["key"]))
            if pending is not None:
                docs[".".join(k for _, k in stack)] = " ".join(p for p in pending if p)
        pending = None
    return docs


def documented_values(text: str) -> list[Value]:
    """Every value of values.yaml with its description; a value without one is an error."""
    docs = value_comments(text)
    values: list[Value] = []
    missing: list[str] = []

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for key, default in node.items():
            path = f"{prefix}{key}"
            if path in docs:
                values.append(Value(path, default, docs[path]))
            elif isinstance(default, Mapping) and default:
                walk(default, f"{path}.")
            else:
                missing.append(path)

    walk(yaml.safe_load(text), "")
    if missing:
        raise ValueError(f"values without a `# --` description: {', '.join(missing)}")
    return values


def _default(value: Any) -> str:
    return "`" + json.dumps(value, separators=(",", ":")).replace("|", "\\|") + "`"


def values_table(text: str) -> str:
    rows = ["| value | default | description |", "|---|---|---|"]
    for value in documented_values(text):
        description = value.description.replace("|", "\\|")
        rows.append(f"| `{value.path}` | {_default(value.default)} | {description} |")
    return "\n".join(rows)


def with_table(document: str, table: str) -> str:
    """The document with the text between the markers replaced by the table."""
    start, end = document.find(START), document.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the markers {START!r} and {END!r} are missing")
    return document[: start + len(START)] + "\n" + table + "\n" + document[end:]


def argocd_cm(lua: str) -> str:
    """The argocd-cm merge patch that adds the MLPipeline health check."""
    body = "\n".join(f"    {line}" if line else "" for line in lua.rstrip("\n").splitlines())
    return (
        "# Generated from resource_customizations/mlops.gitops.dev/MLPipeline/health.lua by\n"
        "# `make manifests`; do not edit by hand. Merge it into Argo CD's argocd-cm:\n"
        "#\n"
        "#   kubectl -n argocd patch configmap argocd-cm --type merge \\\n"
        "#     --patch-file manifests/argocd/argocd-cm-health.yaml\n"
        "#\n"
        "# (or add the key to the configs.cm values of Argo CD's Helm chart).\n"
        "apiVersion: v1\n"
        "kind: ConfigMap\n"
        "metadata:\n"
        "  name: argocd-cm\n"
        "  namespace: argocd\n"
        "  labels:\n"
        "    app.kubernetes.io/name: argocd-cm\n"
        "    app.kubernetes.io/part-of: argocd\n"
        "data:\n"
        f"  {HEALTH_KEY}: |\n"
        f"{body}\n"
    )


def install_yaml() -> str:
    """manifests/install.yaml: a Namespace, then the chart rendered with its default values."""
    # The tests' helm runner (the binary of `make binaries`): needed for this file only.
    from tests.chart.helm import NAMESPACE, template_text

    header = f"""\
# Generated by `make manifests` from charts/mlpipeline-operator with its default values; do not
# edit by hand. Installs everything, CRDs included, in the namespace {NAMESPACE}:
#
#   kubectl apply --server-side -f manifests/install.yaml
#
# One pass installs everything: the operator creates its peering object (leader election).
---
apiVersion: v1
kind: Namespace
metadata:
  name: {NAMESPACE}
  labels:
    app.kubernetes.io/part-of: mlpipeline-operator
    pod-security.kubernetes.io/enforce: restricted
"""
    return header + template_text()


def expected_files() -> dict[Path, str]:
    """Every generated file with the content it should have."""
    table = values_table(VALUES_FILE.read_text(encoding="utf-8"))
    return {
        CHART_README: with_table(CHART_README.read_text(encoding="utf-8"), table),
        CONFIGURATION_DOC: with_table(CONFIGURATION_DOC.read_text(encoding="utf-8"), table),
        ARGOCD_CM: argocd_cm(HEALTH_LUA.read_text(encoding="utf-8")),
    }


def main(argv: list[str]) -> int:
    files = expected_files()
    if "--manifests" in argv:
        files[INSTALL_YAML] = install_yaml()
    for path, content in files.items():
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            path.write_text(content, encoding="utf-8")
            print(f"wrote {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
