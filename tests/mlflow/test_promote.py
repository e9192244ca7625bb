"""`mlpipeline promote` against a real `mlflow server`: registration, gates, aliases, tags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from mlpipeline_operator.api.models import Gate, MustBeat
from mlpipeline_operator.promotion.errors import ExitCode
from mlpipeline_operator.promotion.outputs import status_from_outputs
from mlpipeline_operator.promotion.registry import Registry
from tests.mlflow.helpers import LINEAGE, LogRun, make_request, run_promote
from tests.mlflow.server import MlflowServer

pytestmark = pytest.mark.mlflow

AUC_GATE = Gate(metric="auc", op=">=", value=0.95)
ACCURACY_GATE = Gate(metric="accuracy", op=">=", value=0.9)
BEAT_AUC = MustBeat(alias="champion", metric="auc", higher_is_better=True)
BEAT_LOSS = MustBeat(alias="champion", metric="loss", higher_is_better=False)


@pytest.fixture
def client(mlflow_server: MlflowServer) -> MlflowClient:
    return MlflowClient(mlflow_server.url)


def alias_holder(client: MlflowClient, model: str, alias: str = "champion") -> str | None:
    aliases: dict[str, Any] = client.get_registered_model(model).aliases
    holder = aliases.get(alias)
    return None if holder is None else str(holder)


def versions(client: MlflowClient, model: str) -> list[str]:
    return sorted(str(v.version) for v in client.search_model_versions(f"name = '{model}'"))


def test_gates_pass(
    mlflow_server: MlflowServer,
    client: MlflowClient,
    runs: dict[str, str],
    model_name: str,
    tmp_path: Path,
) -> None:
    request = make_request(
        mlflow_server.url, model_name, runs["good"], tmp_path, gates=(AUC_GATE, ACCURACY_GATE)
    )
    outcome = run_promote(request)
    assert outcome.code == ExitCode.DECIDED, outcome.stderr
    reason = "all gates passed: auc 0.97 >= 0.95, accuracy 0.93 >= 0.9"
    assert outcome.stdout == f"Promoted: {model_name} version 1 holds alias champion: {reason}\n"
    assert outcome.outputs == {
        "decision": "Promoted",
        "version": "1",
        "alias": "champion",
        "reason": reason,
        "metrics": '{"accuracy": 0.93, "auc": 0.97}',
        "lineage": "Unknown",
    }
    assert alias_holder(client, model_name) == "1"
    version = client.get_model_version(model_name, "1")
    assert version.run_id == runs["good"]
    assert version.tags == {
        "mlpipeline.artifact-path": "model",
        "mlpipeline.decision": "Promoted",
        "mlpipeline.reason": reason,
        **{f"mlpipeline.{key}": value for key, value in LINEAGE.items()},
    }
    # The registered version is the run's model: it loads and predicts.
    import mlflow.sklearn

    loaded = mlflow.sklearn.load_model(f"models:/{model_name}@champion")
    assert list(loaded.predict([[0.0], [3.0]])) == [0, 1]
    status = status_from_outputs(outcome.outputs, model=model_name)
    assert status is not None
    assert (status.decision, status.version, status.alias) == ("Promoted", "1", "champion")
    assert status.metrics == {"auc": 0.97, "accuracy": 0.93}


def test_failing_gate_rejects_and_leaves_the_alias(
    mlflow_server: MlflowServer,
    client: MlflowClient,
    runs: dict[str, str],
    model_name: str,
    tmp_path: Path,
) -> None:
    first = run_promote(
        make_request(mlflow_server.url, model_name, runs["good"], tmp_path / "1", gates=(AUC_GATE,))
    )
    assert first.outputs["decision"] == "Promoted"
    outcome = run_promote(
        make_request(mlflow_server.url, model_name, runs["weak"], tmp_path / "2", gates=(AUC_GATE,))
    )
    assert outcome.code == ExitCode.DECIDED
    assert outcome.outputs["decision"] == "Rejected"
    assert outcome.outputs["reason"] == "auc 0.91 < 0.95 (gate auc >= 0.95)"
    assert outcome.outputs["version"] == "2"
    assert outcome.outputs["alias"] == ""
    assert outcome.stdout.startswith(f"Rejected: {model_name} version 2 (alias champion not moved)")
    assert alias_holder(client, model_name) == "1"
    tags = client.get_model_version(model_name, "2").tags
    assert tags["mlpipeline.decision"] == "Rejected"
    assert tags["mlpipeline.reason"] == "auc 0.91 < 0.95 (gate auc >= 0.95)"


def test_fail_on_reject_exits_non_zero_and_still_writes(
    mlflow_server: MlflowServer, runs: dict[str, str], model_name: str, tmp_path: Path
) -> None:
    request = make_request(
        mlflow_server.url,
        model_name,
        runs["weak"],
        tmp_path,
        gates=(AUC_GATE,),
        fail_on_reject=True,
    )
    outcome = run_promote(request)
    assert outcome.code == ExitCode.REJECTED
    assert outcome.outputs["decision"] == "Rejected"
    assert outcome.outputs["reason"] == "auc 0.91 < 0.95 (gate auc >= 0.95)"


def test_missing_metric_is_a_rejection_naming_it(
    mlflow_server: MlflowServer,
    client: MlflowClient,
    runs: dict[str, str],
    model_name: str,
    tmp_path: Path,
) -> None:
    request = make_request(
        mlflow_server.url,
        model_name,
        runs["no-accuracy"],
        tmp_path,
        gates=(AUC_GATE, ACCURACY_GATE),
    )
    outcome = run_promote(request)
    assert outcome.code == ExitCode.DECIDED
    assert outcome.outputs["decision"] == "Rejected"
    assert outcome.outputs["reason"] == (
        "metric accuracy is missing from the run (gate accuracy >= 0.9)"
    )
    assert alias_holder(client, model_name) is None


def test_champion_challenger(
    mlflow_server: MlflowServer,
    client: MlflowClient,
    runs: dict[str, str],
    model_name: str,
    tmp_path: Path,
) -> None:
    def challenge(run: str, step: str) -> dict[str, str]:
        request = make_request(
            mlflow_server.url,
            model_name,
            runs[run],
            tmp_path / step,
            gates=(AUC_GATE,),
            must_beat=BEAT_AUC,
        )
        outcome = run_promote(request)
        assert outcome.code == ExitCode.DECIDED, outcome.stderr
        return outcome.outputs

    # No holder: the first passing version takes the alias.
    first = challenge("good", "first")
    assert first["decision"] == "Promoted"
    assert "no version holds alias champion yet" in first["reason"]
    assert alias_holder(client, model_name) == "1"
    # A worse challenger (passing the gates) does not take it.
    worse = challenge("worse", "worse")
    assert worse["decision"] == "Rejected"
    assert worse["reason"] == (
        "auc 0.96 does not beat champion (version 1) 0.97 (higher is better)"
    )
    assert worse["metrics"] == '{"auc": 0.96, "auc@champion": 0.97}'
    assert alias_holder(client, model_name) == "1"
    # A better one does.
    better = challenge("better", "better")
    assert better["decision"] == "Promoted"
    assert better["version"] == "3"
    assert "auc 0.99 beats champion (version 1) 0.97 (higher is better)" in better["reason"]
    assert alias_holder(client, model_name) == "3"


def test_lower_is_better(
    mlflow_server: MlflowServer,
    client: MlflowClient,
    runs: dict[str, str],
    model_name: str,
    tmp_path: Path,
) -> None:
    def challenge(run: str) -> dict[str, str]:
        request = make_request(
            mlflow_server.url, model_name, runs[run], tmp_path / run, must_beat=BEAT_LOSS
        )
        return run_promote(request).outputs

    assert challenge("good")["decision"] == "Promoted"  # loss 0.2, no holder
    assert challenge("worse")["decision"] == "Rejected"  # loss 0.3 > 0.2
    better = challenge("better")  # loss 0.1 < 0.2
    assert better["decision"] == "Promoted"
    assert "loss 0.1 beats champion (version 1) 0.2 (lower is better)" in better["reason"]
    assert alias_holder(client, model_name) == "3"


def test_running_twice_converges(
    mlflow_server: MlflowServer,
    client: MlflowClient,
    runs: dict[str, str],
    model_name: str,
    tmp_path: Path,
) -> None:
    request = make_request(
        mlflow_server.url, model_name, runs["good"], tmp_path, gates=(AUC_GATE,), must_beat=BEAT_AUC
    )
    first = run_promote(request)
    again = run_promote(request)
    assert (first.code, again.code) == (0, 0)
    assert versions(client, model_name) == ["1"]
    assert first.outputs["decision"] == again.outputs["decision"] == "Promoted"
    assert first.outputs["version"] == again.outputs["version"] == "1"
    assert "this version already holds alias champion" in again.outputs["reason"]
    assert alias_holder(client, model_name) == "1"
    # A rejection repeats the same way.
    weak = make_request(
        mlflow_server.url, model_name, runs["weak"], tmp_path / "weak", gates=(AUC_GATE,)
    )
    outcomes = [run_promote(weak).outputs for _ in range(2)]
    assert outcomes[0] == outcomes[1]
    assert versions(client, model_name) == ["1", "2"]


def test_crash_before_the_alias_moves_is_repaired_by_a_rerun(
    mlflow_server: MlflowServer,
    client: MlflowClient,
    runs: dict[str, str],
    model_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A crash between the decision tag and the alias move. A real server cannot be made to
    crash the client at that point, so `Registry.set_alias` is replaced for the first run."""
    request = make_request(mlflow_server.url, model_name, runs["good"], tmp_path, gates=(AUC_GATE,))

    class Crash(BaseException):
        pass

    def crash(*_args: Any) -> None:
        raise Crash

    with monkeypatch.context() as patch:
        patch.setattr(Registry, "set_alias", crash)
        with pytest.raises(Crash):
            run_promote(request)
    # Consistent: the version says what was decided, and no alias points at anything yet.
    assert client.get_model_version(model_name, "1").tags["mlpipeline.decision"] == "Promoted"
    assert alias_holder(client, model_name) is None
    outcome = run_promote(request)
    assert outcome.outputs["decision"] == "Promoted"
    assert alias_holder(client, model_name) == "1"
    assert versions(client, model_name) == ["1"]


def test_the_alias_never_points_to_a_failing_version(
    mlflow_server: MlflowServer,
    client: MlflowClient,
    runs: dict[str, str],
    model_name: str,
    tmp_path: Path,
) -> None:
    for index, run in enumerate(["weak", "good", "weak", "worse", "no-accuracy"]):
        request = make_request(
            mlflow_server.url,
            model_name,
            runs[run],
            tmp_path / str(index),
            gates=(AUC_GATE, ACCURACY_GATE),
            must_beat=BEAT_AUC,
        )
        run_promote(request)
        holder = alias_holder(client, model_name)
        if holder is not None:
            tags = client.get_model_version(model_name, holder).tags
            assert tags["mlpipeline.decision"] == "Promoted"
            assert client.get_model_version(model_name, holder).run_id == runs["good"]


def test_unknown_run_fails_clearly(
    mlflow_server: MlflowServer, model_name: str, tmp_path: Path
) -> None:
    run_id = "0" * 32
    outcome = run_promote(make_request(mlflow_server.url, model_name, run_id, tmp_path))
    assert outcome.code == ExitCode.NOT_FOUND
    message = f"MLflow at {mlflow_server.url} has no run {run_id}"
    assert message in outcome.stderr
    assert "Traceback" not in outcome.stderr
    assert outcome.outputs["decision"] == "Failed"
    assert outcome.outputs["reason"] == message


def test_empty_run_id_fails_clearly(
    mlflow_server: MlflowServer, model_name: str, tmp_path: Path
) -> None:
    outcome = run_promote(make_request(mlflow_server.url, model_name, "\n", tmp_path))
    assert outcome.code == ExitCode.NOT_FOUND
    assert "the run id is empty" in outcome.stderr


def test_run_without_a_model_fails_clearly(
    mlflow_server: MlflowServer, log_run: LogRun, model_name: str, tmp_path: Path
) -> None:
    run_id = log_run({"auc": 0.99}, artifact_path=None)
    outcome = run_promote(make_request(mlflow_server.url, model_name, run_id, tmp_path))
    assert outcome.code == ExitCode.NOT_FOUND
    assert f'run {run_id} has no model at artifact path "model"' in outcome.stderr


def test_model_logged_as_run_artifacts(
    mlflow_server: MlflowServer,
    client: MlflowClient,
    model: Any,
    model_name: str,
    tmp_path: Path,
) -> None:
    """The MLflow 2 layout: the model's files (MLmodel...) under the run's own artifacts."""
    import mlflow.sklearn

    mlflow.sklearn.save_model(model, tmp_path / "saved", pip_requirements=["scikit-learn"])
    mlflow.set_tracking_uri(mlflow_server.url)
    mlflow.set_experiment("promotion-tests")
    with mlflow.start_run() as run:
        mlflow.log_metric("auc", 0.97)
        mlflow.log_artifacts(str(tmp_path / "saved"), artifact_path="classifier")
    request = make_request(
        mlflow_server.url,
        model_name,
        run.info.run_id,
        tmp_path / "out",
        artifact_path="classifier",
        gates=(AUC_GATE,),
    )
    for _ in range(2):
        outcome = run_promote(request)
        assert outcome.outputs["decision"] == "Promoted", outcome.stderr
    assert versions(client, model_name) == ["1"]
    version = client.get_model_version(model_name, "1")
    assert version.source == f"{run.info.artifact_uri}/classifier"
    loaded = mlflow.sklearn.load_model(f"models:/{model_name}@champion")
    assert list(loaded.predict([[0.0], [3.0]])) == [0, 1]


def test_the_runs_lineage_tags_are_checked_against_the_pipelines(
    mlflow_server: MlflowServer,
    client: MlflowClient,
    log_run: LogRun,
    model_name: str,
    tmp_path: Path,
) -> None:
    # As the example's train step tags its run from MLPIPELINE_* (lineage.RUN_TAGS).
    ours = {f"mlpipeline.{key}": value for key, value in LINEAGE.items()}
    earlier = log_run({"auc": 0.96}, tags={**ours, "mlpipeline.generation": "6"})
    other = log_run({"auc": 0.99}, tags={**ours, "mlpipeline.pipeline": "churn"})

    matched = run_promote(make_request(mlflow_server.url, model_name, earlier, tmp_path / "1"))
    assert matched.code == ExitCode.DECIDED, matched.stderr
    assert matched.outputs["decision"] == "Promoted"
    assert matched.outputs["reason"] == "no gates; the run was logged by generation 6"
    assert matched.outputs["lineage"] == "Matched"

    mismatched = run_promote(make_request(mlflow_server.url, model_name, other, tmp_path / "2"))
    assert mismatched.code == ExitCode.DECIDED, mismatched.stderr
    reason = (
        "the run was logged by pipeline ml/churn, not ml/fraud-detection (its tags "
        "mlpipeline.namespace and mlpipeline.pipeline): promote a run of this pipeline"
    )
    assert {k: mismatched.outputs[k] for k in ("decision", "version", "reason", "lineage")} == {
        "decision": "Rejected",
        "version": "2",
        "reason": reason,
        "lineage": "Mismatched",
    }
    assert alias_holder(client, model_name) == "1"
    assert client.get_model_version(model_name, "2").tags["mlpipeline.reason"] == reason
    status = status_from_outputs(mismatched.outputs, model=model_name)
    assert status is not None
    assert (status.decision, status.lineage) == ("Rejected", "Mismatched")
