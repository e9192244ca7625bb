"""The fraud-detection example, end to end on this machine, against a temporary MLflow store.

Two runs share one store, as `make demo` does: the first trains a model that passes the gates
and becomes the champion; the second (`-p n_estimators=1`, a worse model) passes the gates too
but is rejected because it does not beat the champion. Both run `mlpipeline promote` as the
Workflow's promotion task does, so these tests need it and MLflow (marker `example`).
"""

from __future__ import annotations

import json
from typing import Any

import mlflow
import pytest

from tests.local.helpers import Run, example_env, run_process
from tests.paths import REPO

EXAMPLE = REPO / "examples" / "fraud-detection" / "pipeline.yaml"
MODEL = "fraud-detection"

pytestmark = pytest.mark.example


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory, store: str) -> Run:
    run_dir = tmp_path_factory.mktemp("champion") / "run"
    return run_process(EXAMPLE, run_dir, "--mlflow-uri", store, env=example_env())


@pytest.fixture(scope="module")
def challenger(champion: Run, tmp_path_factory: pytest.TempPathFactory, store: str) -> Run:
    run_dir = tmp_path_factory.mktemp("challenger") / "run"
    flags = ["--mlflow-uri", store, "-p", "n_estimators=1"]
    return run_process(EXAMPLE, run_dir, *flags, env=example_env())


def report(run: Run) -> dict[str, Any]:
    path = run.run_dir / "steps" / "evaluate" / "root" / "data" / "report.json"
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def test_every_step_succeeds_and_artifacts_arrive(champion: Run) -> None:
    assert champion.code == 0, champion.out + champion.err
    phases = {s["name"]: s["phase"] for s in champion.summary["steps"]}
    assert phases == dict.fromkeys(
        ["ingest", "preprocess", "train", "evaluate", "promote-model"], "Succeeded"
    )
    steps = champion.run_dir / "steps"
    # Each consumer gets its own copy, at the path it declared.
    assert (steps / "preprocess" / "root" / "data" / "transactions.csv").is_file()
    for consumer in ("train", "evaluate"):
        features = steps / consumer / "root" / "data" / "features"
        assert sorted(p.name for p in features.iterdir()) == [
            "scaler.json",
            "test.csv",
            "train.csv",
        ]


def test_the_model_and_its_metrics_are_in_mlflow(champion: Run, store: str) -> None:
    run_id = champion.step("train")["outputs"]["run_id"]
    assert report(champion)["run_id"] == run_id
    run = mlflow.MlflowClient(tracking_uri=store).get_run(run_id)
    assert run.data.params["n_estimators"] == "100"
    assert run.data.metrics["auc"] == pytest.approx(report(champion)["metrics"]["auc"])
    assert run.data.metrics["auc"] > 0.85
    # The lineage the runner gave the step, as the train module tags its run.
    assert {k: v for k, v in run.data.tags.items() if k.startswith("mlpipeline.")} == {
        "mlpipeline.namespace": "ml",
        "mlpipeline.pipeline": "fraud-detection",
        "mlpipeline.generation": "1",
        "mlpipeline.workflow": "run",
    }


def test_the_first_model_is_promoted_to_champion(champion: Run, store: str) -> None:
    promotion = champion.summary["promotion"]
    assert promotion["decision"] == "Promoted", champion.out
    assert promotion["lineage"] == "Matched"
    assert promotion["aliasVersion"] == promotion["version"]
    client = mlflow.MlflowClient(tracking_uri=store, registry_uri=store)
    version = client.get_model_version_by_alias(MODEL, "champion")
    assert str(version.version) == promotion["version"]
    assert version.run_id == champion.step("train")["outputs"]["run_id"]
    assert version.tags["mlpipeline.pipeline"] == "fraud-detection"
    assert version.tags["mlpipeline.workflow"] == "run"  # the local run's name
    assert f'alias "champion": {MODEL} version {promotion["version"]} (this run)' in champion.out


def test_a_worse_model_is_rejected_by_must_beat(champion: Run, challenger: Run) -> None:
    assert challenger.code == 0, challenger.out + challenger.err  # a rejection is not a failure
    metrics = report(challenger)["metrics"]
    assert metrics["auc"] >= 0.7 and metrics["accuracy"] >= 0.85  # the gates pass...
    assert metrics["auc"] < report(champion)["metrics"]["auc"]  # ...but it is worse
    promotion = challenger.summary["promotion"]
    assert promotion["decision"] == "Rejected"
    assert "does not beat champion" in promotion["reason"]
    assert promotion["aliasVersion"] == champion.summary["promotion"]["version"]
    last_lines = challenger.out.strip().splitlines()[-3:]
    assert last_lines[0].startswith(f"promotion: Rejected version {promotion['version']}")
    assert last_lines[1] == f'alias "champion": {MODEL} version {promotion["aliasVersion"]}'
