"""Helpers of the MLflow tier: run the promotion in-process, log runs with real models."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpipeline_operator.promotion.outputs import read_outputs
from mlpipeline_operator.promotion.promote import promote
from mlpipeline_operator.promotion.request import PromotionRequest
from mlpipeline_operator.promotion.retry import RetryPolicy

# log_run(metrics, artifact_path="model") -> run id
LogRun = Callable[..., str]

# Quick to give up in tests that expect to reach the server; the outage tests set their own.
FAST = RetryPolicy(attempts=2, backoff=0.1, request_timeout=30)
LINEAGE = {
    "namespace": "ml",
    "pipeline": "fraud-detection",
    "generation": "7",
    "workflow": "fraud-detection-g7-1a2b3c",
    "git-revision": "4f2c9e1",
}


def sklearn_model() -> Any:
    """A real (tiny) scikit-learn model."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    y = np.array([0, 0, 1, 1])
    return LogisticRegression().fit(x, y)


def log_run_to(
    tracking_uri: str,
    model: Any,
    metrics: dict[str, float],
    *,
    artifact_path: str | None = "model",
    tags: dict[str, str] | None = None,
) -> str:
    """A run with `metrics`, `tags` and, unless `artifact_path` is None, `model` logged at that
    path."""
    import mlflow.sklearn

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("promotion-tests")
    with mlflow.start_run(tags=tags) as run:
        mlflow.log_metrics(metrics)
        if artifact_path is not None:
            mlflow.sklearn.log_model(model, name=artifact_path, pip_requirements=["scikit-learn"])
    run_id: str = run.info.run_id
    return run_id


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]


def run_promote(request: PromotionRequest, policy: RetryPolicy = FAST) -> Outcome:
    """`mlpipeline promote` in this process (the subprocess tests run the real command)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    code = promote(request, policy, stdout=stdout, stderr=stderr)
    outputs = read_outputs(request.output_dir) if request.output_dir else {}
    return Outcome(code, stdout.getvalue(), stderr.getvalue(), outputs)


def make_request(
    tracking_uri: str, model: str, run_id: str, out: Path, **kwargs: Any
) -> PromotionRequest:
    return PromotionRequest(
        tracking_uri=tracking_uri,
        model=model,
        run_id=run_id,
        lineage=dict(LINEAGE),
        output_dir=str(out),
        **kwargs,
    )
