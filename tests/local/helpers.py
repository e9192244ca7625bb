"""Small pipelines for the local runner's tests, and ways to run them and look at the result."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpipeline_operator import cli
from mlpipeline_operator.yamlio import dump
from tests.paths import REPO


def pipeline(steps: list[dict[str, Any]], name: str = "tiny", **spec: Any) -> dict[str, Any]:
    """An MLPipeline document with these steps (image set, so that steps need none)."""
    return {
        "apiVersion": "mlops.gitops.dev/v1alpha1",
        "kind": "MLPipeline",
        "metadata": {"name": name},
        "spec": {"image": "registry.example.com/unused:1", "steps": steps, **spec},
    }


def step(name: str, script: str, **fields: Any) -> dict[str, Any]:
    """A step running a short Python program (`python` is the runner's interpreter)."""
    return {"name": name, "command": ["python", "-c", script], **fields}


def write(tmp_path: Path, doc: dict[str, Any], name: str = "pipeline.yaml") -> Path:
    path = tmp_path / name
    path.write_text(dump(doc), encoding="utf-8")
    return path


@dataclass(frozen=True)
class Run:
    """The outcome of `mlpipeline run`: exit code, output, and run.json when it was written."""

    code: int
    out: str
    err: str
    run_dir: Path

    @property
    def summary(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads((self.run_dir / "run.json").read_text())
        return loaded

    def step(self, name: str) -> dict[str, Any]:
        return next(s for s in self.summary["steps"] if s["name"] == name)


def run_local(file: Path, run_dir: Path, *flags: str) -> Run:
    """`mlpipeline run` in this process (fast: no interpreter start-up)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = cli.main(["run", str(file), "--run-dir", str(run_dir), *flags])
        except SystemExit as exit_:  # argparse's usage errors
            code = exit_.code if isinstance(exit_.code, int) else 1
    return Run(code, out.getvalue(), err.getvalue(), run_dir)


def runner_command(file: Path, run_dir: Path, *flags: str) -> list[str]:
    """`mlpipeline run` as its own process, as a user starts it."""
    return [
        sys.executable,
        "-m",
        "mlpipeline_operator",
        "run",
        str(file),
        "--run-dir",
        str(run_dir),
        *flags,
    ]


def example_env() -> dict[str, str]:
    """The environment of a run of the example: its package on PYTHONPATH."""
    env = dict(os.environ)
    example = str(REPO / "examples" / "fraud-detection")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (example, env.get("PYTHONPATH")) if p)
    return env


def run_process(file: Path, run_dir: Path, *flags: str, env: dict[str, str] | None = None) -> Run:
    result = subprocess.run(
        runner_command(file, run_dir, *flags),
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    return Run(result.returncode, result.stdout, result.stderr, run_dir)


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie (a zombie has ended; only its entry is left)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def wait_until_gone(pids: list[int], seconds: float = 10.0) -> list[int]:
    """The processes still alive after waiting up to `seconds` for them to go."""
    deadline = time.monotonic() + seconds
    while True:
        left = [p for p in pids if alive(p)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def wait_for_files(paths: list[Path], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if all(p.is_file() and p.read_text().strip() for p in paths):
            return True
        time.sleep(0.05)
    return False
