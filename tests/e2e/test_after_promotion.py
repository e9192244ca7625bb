"""Steps after the promotion and the exit step on the real cluster: a `deploy` step that reads
`{{promotion.*}}` runs once promote-model has decided and sees its decision, and a condition
on the decision (`when: "{{promotion.decision}} == Promoted"`) runs or skips its step;
`spec.onExit` runs when the run ends and sees how it ended (`{{pipeline.status}}`,
`{{pipeline.failures}}`) and the decision, "" when there was none. The steps record what they
see as tags of an MLflow run, which the test reads back from the cluster's MLflow server."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
import uuid
from typing import Any

import pytest

from tests.e2e.cluster import NodeCluster
from tests.e2e.pipelines import apply_pipeline, pipeline, wait_status

RUN_TIMEOUT = 600.0

# argv: experiment, step, then KEY=VALUE pairs recorded as the tags of one MLflow run.
RECORD = """
import sys, mlflow
mlflow.set_experiment(sys.argv[1])
with mlflow.start_run(run_name=sys.argv[2]):
    mlflow.set_tags(dict(pair.partition("=")[::2] for pair in sys.argv[3:]))
"""


def _record(cluster: NodeCluster, experiment: str, step: str, *pairs: str) -> dict[str, Any]:
    """A step's command and env that record `pairs` in MLflow."""
    return {
        "command": ["python", "-c", RECORD, experiment, step, *pairs],
        "env": [{"name": "MLFLOW_TRACKING_URI", "value": cluster.mlflow_uri}],
    }


def _mlflow(cluster: NodeCluster, path: str, body: dict[str, Any] | None = None) -> Any:
    url = f"{cluster.mlflow_uri}/api/2.0/mlflow/{path}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def recorded(cluster: NodeCluster, experiment: str) -> dict[str, dict[str, str]]:
    """The tags each step recorded in `experiment`, by step (MLflow's own tags left out)."""
    query = urllib.parse.urlencode({"experiment_name": experiment})
    found = _mlflow(cluster, f"experiments/get-by-name?{query}")
    runs = _mlflow(
        cluster, "runs/search", {"experiment_ids": [found["experiment"]["experiment_id"]]}
    )
    return {
        run["info"]["run_name"]: {
            tag["key"]: tag.get("value", "")
            for tag in run["data"].get("tags", [])
            if not tag["key"].startswith("mlflow.")
        }
        for run in runs.get("runs", [])
    }


def _train_steps(cluster: NodeCluster) -> list[dict[str, Any]]:
    """The fraud-detection example's first three steps, small: a model logged to MLflow."""
    mlflow_env = [{"name": "MLFLOW_TRACKING_URI", "value": cluster.mlflow_uri}]
    return [
        {
            "name": "ingest",
            "command": ["python", "-m", "fraud_detection.ingest"],
            "args": ["--rows", "600", "--seed", "3", "--out", "{{outputs.artifacts.data.path}}"],
            "outputs": {"artifacts": [{"name": "data", "path": "/data/transactions.csv"}]},
        },
        {
            "name": "preprocess",
            "command": ["python", "-m", "fraud_detection.preprocess"],
            "args": [
                "--data",
                "{{inputs.artifacts.data.path}}",
                "--seed",
                "3",
                "--out",
                "{{outputs.artifacts.features.path}}",
            ],
            "inputs": {
                "artifacts": [
                    {"name": "data", "from": "ingest.data", "path": "/data/transactions.csv"}
                ]
            },
            "outputs": {"artifacts": [{"name": "features", "path": "/data/features"}]},
        },
        {
            "name": "train",
            "command": ["python", "-m", "fraud_detection.train"],
            "args": [
                "--data",
                "{{inputs.artifacts.features.path}}",
                "--n-estimators",
                "5",
                "--max-depth",
                "4",
                "--seed",
                "3",
                "--run-id-file",
                "{{outputs.parameters.run_id.path}}",
            ],
            "env": mlflow_env,
            "inputs": {
                "artifacts": [
                    {"name": "features", "from": "preprocess.features", "path": "/data/features"}
                ]
            },
            "outputs": {"parameters": [{"name": "run_id", "path": "/tmp/run_id"}]},
        },
    ]


def _exit_step(cluster: NodeCluster, experiment: str) -> dict[str, Any]:
    return _record(
        cluster,
        experiment,
        "on-exit",
        "status={{pipeline.status}}",
        "failures={{pipeline.failures}}",
        "decision={{promotion.decision}}",
        "version={{promotion.version}}",
        "alias={{promotion.alias}}",
    )


@pytest.fixture(scope="module")
def experiments(cluster: NodeCluster) -> dict[str, str]:
    """The experiments the steps record in, created before any step runs: steps that start at
    once would race to create one, and MLflow's `set_experiment` leaves the loser of that race
    on the Default experiment."""
    names = {name: f"e2e-{name}-{uuid.uuid4().hex[:8]}" for name in ("deploy", "failing")}
    for name in names.values():
        _mlflow(cluster, "experiments/create", {"name": name})
    return names


def test_a_step_after_the_promotion_sees_the_decision_and_the_exit_step_the_outcome(
    cluster: NodeCluster, experiments: dict[str, str]
) -> None:
    experiment = experiments["deploy"]
    deploy = {
        "name": "deploy",
        **_record(
            cluster,
            experiment,
            "deploy",
            "decision={{promotion.decision}}",
            "version={{promotion.version}}",
        ),
    }
    deploy["env"].append({"name": "ALIAS", "value": "{{promotion.alias}}"})
    deploy["command"].append("alias-seen=$(ALIAS)")
    # Conditions on the decision: one holds, the other does not.
    if_promoted = {
        "name": "if-promoted",
        "when": "{{promotion.decision}} == Promoted",
        **_record(cluster, experiment, "if-promoted", "ran=yes"),
    }
    if_rejected = {
        "name": "if-rejected",
        "when": "{{promotion.decision}} == Rejected",
        **_record(cluster, experiment, "if-rejected", "ran=yes"),
    }
    doc = pipeline(
        cluster,
        "deploy-after",
        [*_train_steps(cluster), deploy, if_promoted, if_rejected],
        promotion={
            "model": f"after-{experiment}",
            "from": {"step": "train", "parameter": "run_id"},
        },
        mlflow={"trackingUri": cluster.mlflow_uri},
        onExit=_exit_step(cluster, experiment),
    )
    apply_pipeline(cluster, doc)

    done = wait_status(cluster, "deploy-after", generation=1, timeout=RUN_TIMEOUT)

    status = done["status"]
    assert status["phase"] == "Succeeded", status
    steps = {step["name"]: step for step in status["lastRun"]["steps"]}
    assert list(steps) == [
        *("ingest", "preprocess", "train", "deploy", "if-promoted", "if-rejected"),
        *("promote-model", "on-exit"),
    ], status["lastRun"]
    phases = {name: step["phase"] for name, step in steps.items()}
    assert phases.pop("if-rejected") == "Skipped", phases
    assert set(phases.values()) == {"Succeeded"}, phases
    for after in ("deploy", "if-promoted"):
        assert steps[after]["startedAt"] >= steps["promote-model"]["finishedAt"], steps
    version = status["promotion"]["version"]
    assert status["promotion"]["decision"] == "Promoted"
    seen = recorded(cluster, experiment)
    assert seen.pop("if-promoted") == {"ran": "yes"}
    assert "if-rejected" not in seen, seen
    # Kubernetes expands $(ALIAS) from the step's environment.
    assert seen["deploy"] == {"decision": "Promoted", "version": version, "alias-seen": "champion"}
    assert seen["on-exit"] == {
        "status": "Succeeded",
        "failures": "[]",
        "decision": "Promoted",
        "version": version,
        "alias": "champion",
    }


def test_the_exit_step_sees_a_failed_run_and_no_decision(
    cluster: NodeCluster, experiments: dict[str, str]
) -> None:
    experiment = experiments["failing"]
    train = {
        "name": "train",
        "command": ["python", "-c", "import sys; print('no model'); sys.exit(3)"],
        "outputs": {"parameters": [{"name": "run_id", "path": "/tmp/run_id"}]},
    }
    doc = pipeline(
        cluster,
        "exit-after-failure",
        [train],
        promotion={
            "model": f"failing-{experiment}",
            "from": {"step": "train", "parameter": "run_id"},
        },
        mlflow={"trackingUri": cluster.mlflow_uri},
        onExit=_exit_step(cluster, experiment),
    )
    apply_pipeline(cluster, doc)

    done = wait_status(cluster, "exit-after-failure", generation=1, timeout=RUN_TIMEOUT)

    status = done["status"]
    assert status["phase"] == "Failed", status
    phases = {step["name"]: step["phase"] for step in status["lastRun"]["steps"]}
    assert phases["train"] == "Failed" and phases["on-exit"] == "Succeeded", phases
    seen = recorded(cluster, experiment)["on-exit"]
    failures = json.loads(seen.pop("failures"))
    assert seen == {"status": "Failed", "decision": "", "version": "", "alias": ""}
    # Argo lists every failed node, in no fixed order: the step's pod, and the DAG of the run.
    shown = sorted(
        (f["displayName"], f["templateName"], f["phase"], f["message"]) for f in failures
    )
    assert shown == [
        (status["lastRun"]["name"], "mlpipeline", "Failed", ""),
        ("train", "train", "Failed", "main: Error (exit code 3)"),
    ], failures
    assert all(
        set(f) == {"displayName", "message", "templateName", "phase", "podName", "finishedAt"}
        for f in failures
    ), failures


def test_a_failing_exit_step_fails_a_run_that_succeeded(cluster: NodeCluster) -> None:
    doc = pipeline(
        cluster,
        "failing-exit",
        [{"name": "work", "command": ["python", "-c", "print('done')"]}],
        onExit={"command": ["python", "-c", "import sys; sys.exit(1)"]},
    )
    apply_pipeline(cluster, doc)

    done = wait_status(cluster, "failing-exit", generation=1, timeout=RUN_TIMEOUT)

    status = done["status"]
    assert status["phase"] == "Failed", status
    phases = {step["name"]: step["phase"] for step in status["lastRun"]["steps"]}
    assert phases == {"work": "Succeeded", "on-exit": "Failed"}
    assert status["message"] == 'step "on-exit" failed: main: Error (exit code 1)', status
