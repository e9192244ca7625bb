"""Fixtures of the MLflow tier: one real `mlflow server` per session, runs with real models."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.mlflow.helpers import LogRun, log_run_to, sklearn_model
from tests.mlflow.server import QUIET_ENV, MlflowServer, start_server


@pytest.fixture(scope="session")
def quiet_env() -> Iterator[None]:
    """No telemetry, and no MLflow credentials from the developer's shell."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in QUIET_ENV.items():
            patch.setenv(name, value)
        for name in (
            "MLFLOW_TRACKING_USERNAME",
            "MLFLOW_TRACKING_PASSWORD",
            "MLFLOW_TRACKING_TOKEN",
        ):
            patch.delenv(name, raising=False)
        yield


@pytest.fixture(scope="session")
def mlflow_server(
    tmp_path_factory: pytest.TempPathFactory, quiet_env: None
) -> Iterator[MlflowServer]:
    server = start_server(tmp_path_factory.mktemp("mlflow-server"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def model() -> Any:
    return sklearn_model()


@pytest.fixture(scope="session")
def log_run(mlflow_server: MlflowServer, model: Any) -> LogRun:
    def log(
        metrics: dict[str, float],
        *,
        artifact_path: str | None = "model",
        tags: dict[str, str] | None = None,
    ) -> str:
        return log_run_to(mlflow_server.url, model, metrics, artifact_path=artifact_path, tags=tags)

    return log


@pytest.fixture(scope="session")
def runs(log_run: LogRun) -> dict[str, str]:
    """Runs shared by the tests (each test registers them under its own model name)."""
    return {
        "good": log_run({"auc": 0.97, "accuracy": 0.93, "loss": 0.20}),
        "better": log_run({"auc": 0.99, "accuracy": 0.95, "loss": 0.10}),
        "worse": log_run({"auc": 0.96, "accuracy": 0.92, "loss": 0.30}),
        "weak": log_run({"auc": 0.91, "accuracy": 0.93, "loss": 0.40}),
        "no-accuracy": log_run({"auc": 0.98}),
    }


@pytest.fixture
def model_name() -> str:
    """A registered model name of the test's own."""
    return f"fraud-{uuid.uuid4().hex[:8]}"
