"""The real command, as the Workflow runs it: `python -m mlpipeline_operator promote ARGS`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlpipeline_operator.api.models import Gate, MustBeat
from mlpipeline_operator.promotion.errors import ExitCode
from mlpipeline_operator.promotion.outputs import read_outputs
from mlpipeline_operator.promotion.request import PromotionRequest
from mlpipeline_operator.promotion.retry import ENV_ATTEMPTS, ENV_BACKOFF
from tests.mlflow.helpers import make_request
from tests.mlflow.server import MlflowServer, free_port
from tests.paths import REPO

pytestmark = pytest.mark.mlflow


def promote_command(
    request: PromotionRequest, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlpipeline_operator", "promote", *request.to_args()],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=REPO,
        timeout=300,
    )


def test_promote_then_reject_with_fail_on_reject(
    mlflow_server: MlflowServer, runs: dict[str, str], model_name: str, tmp_path: Path
) -> None:
    gates = (Gate(metric="auc", op=">=", value=0.95),)
    must_beat = MustBeat(alias="champion", metric="auc")
    promoted = promote_command(
        make_request(
            mlflow_server.url,
            model_name,
            runs["good"],
            tmp_path / "a",
            gates=gates,
            must_beat=must_beat,
            fail_on_reject=True,
        )
    )
    assert promoted.returncode == ExitCode.DECIDED, promoted.stderr
    assert promoted.stdout.startswith(f"Promoted: {model_name} version 1 holds alias champion")
    assert read_outputs(tmp_path / "a")["decision"] == "Promoted"

    rejected = promote_command(
        make_request(
            mlflow_server.url,
            model_name,
            runs["weak"],
            tmp_path / "b",
            gates=gates,
            must_beat=must_beat,
            fail_on_reject=True,
        )
    )
    assert rejected.returncode == ExitCode.REJECTED, rejected.stderr
    assert "Traceback" not in rejected.stderr
    outputs = read_outputs(tmp_path / "b")
    assert outputs["decision"] == "Rejected"
    assert outputs["version"] == "2"
    assert outputs["reason"] == (
        "auc 0.91 < 0.95 (gate auc >= 0.95); "
        "auc 0.91 does not beat champion (version 1) 0.97 (higher is better)"
    )


def test_unreachable_server_exit_code_and_retries_from_the_environment(tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    result = promote_command(
        make_request(uri, "fraud", "e" * 32, tmp_path),
        env={ENV_ATTEMPTS: "2", ENV_BACKOFF: "0.5"},
    )
    assert result.returncode == ExitCode.UNAVAILABLE
    # The environment's two attempts and 0.5 s backoff, not the defaults (5 attempts, 1 s).
    retry, last = result.stderr.strip().splitlines()
    assert retry == (
        f"mlpipeline promote: MLflow at {uri}: read run {'e' * 32} failed (connection failed: "
        "Connection refused); attempt 2 of 2 in 0.5s"
    )
    assert f"MLflow at {uri} is unavailable: read run {'e' * 32} failed 2 times" in last
    assert read_outputs(tmp_path)["decision"] == "Failed"


def test_bad_flag_is_a_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mlpipeline_operator", "promote", "--model", "m"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == ExitCode.USAGE
    assert "required: --tracking-uri, --run-id" in result.stderr
