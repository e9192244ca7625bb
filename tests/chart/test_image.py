"""What the image holds, without a Docker engine: the wheel built from the Dockerfile's build
context and installed the Dockerfile's way (a venv without pip, only the `operator` and
`promote` extras), from which `mlpipeline operator` and `mlpipeline promote` must run.

It installs from the package index (as `docker build` does): marked integration, one test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.paths import REPO

pytestmark = pytest.mark.integration


def _run(argv: list[str | Path], env: dict[str, str] | None = None, timeout: float = 600) -> str:
    done = subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_wheel_installs_the_runtime_and_runs_both_commands(tmp_path: Path) -> None:
    # The build context of .dockerignore: pyproject.toml, README.md, operator/.
    context = tmp_path / "context"
    context.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, context / name)
    shutil.copytree(
        REPO / "operator",
        context / "operator",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
    )
    wheels = tmp_path / "wheels"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--wheel-dir",
            wheels,
            context,
        ]
    )
    (wheel,) = wheels.glob("mlpipeline_operator-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "mlpipeline = mlpipeline_operator.cli:main" in archive.read(entry_points).decode()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
        assert {"Provides-Extra: operator", "Provides-Extra: promote"} <= set(
            metadata.decode().splitlines()
        )
        assert "mlpipeline_operator/py.typed" in names
        assert not [n for n in names if n.startswith("tests/")]

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    requirement = f"mlpipeline-operator[operator,promote] @ {wheel.as_uri()}"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            python,
            "install",
            "--quiet",
            "--compile",
            requirement,
        ]
    )

    # As in the container: HOME and TMPDIR in a scratch directory, no byte code written.
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(home),
        "TMPDIR": str(home),
        "PYTHONDONTWRITEBYTECODE": "1",
        "USER": "mlpipeline",
        "LOGNAME": "mlpipeline",
    }
    mlpipeline = venv / "bin" / "mlpipeline"
    assert mlpipeline.is_file() and os.access(mlpipeline, os.X_OK)
    assert "mlpipeline 0." in _run([mlpipeline, "--version"], env)
    assert "--peering" in _run([mlpipeline, "operator", "--help"], env)
    assert "usage: mlpipeline promote" in _run([mlpipeline, "promote", "--help"], env)
    # What the operator and the promotion step import at run time (not just --help).
    _run(
        [
            python,
            "-c",
            "import mlpipeline_operator.reconcile.handlers, mlflow, kopf, kubernetes_asyncio",
        ],
        env,
    )
    listing = _run(
        [
            python,
            "-c",
            "import importlib.metadata as m, json;"
            "print(json.dumps(sorted({d.metadata['Name'].lower().replace('_', '-')"
            " for d in m.distributions()})))",
        ],
        env,
    )
    installed = set(json.loads(listing))
    assert {"mlpipeline-operator", "kopf", "kubernetes-asyncio", "mlflow-skinny"} <= installed
    # Not the development tools, nor full mlflow (server, UI), nor pip itself.
    for absent in ("mlflow", "kubernetes", "pytest", "scikit-learn", "pip", "mypy", "ruff"):
        assert absent not in installed, f"{absent} is installed in the runtime"
