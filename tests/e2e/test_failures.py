"""Failures as Argo really produces them, reported by the operator: a step retried with a
backoff until it succeeds, a step killed at its timeout; Argo CD's health all along; and the
deletion of a pipeline, which takes its Workflows and pods with it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from mlpipeline_operator.api.constants import LABEL_PIPELINE
from tests.e2e.cluster import PIPELINE_NAMESPACE, NodeCluster
from tests.e2e.pipelines import (
    MLPIPELINE,
    apply_pipeline,
    eventually,
    health_log,
    healths_until,
    labelled,
    pipeline,
    wait_status,
)

RUN_TIMEOUT = 300.0

# Counts its attempts in MLflow (a run per attempt, in an experiment of its own): the first two
# fail, the third succeeds. A pod knows nothing of earlier attempts otherwise.
FLAKY = """
import sys, mlflow
mlflow.set_experiment("e2e-flaky-" + sys.argv[1])
with mlflow.start_run():
    pass
attempts = len(mlflow.search_runs(output_format="list"))
print("attempt", attempts)
sys.exit(0 if attempts >= 3 else 1)
"""


@pytest.fixture(scope="module")
def started(cluster: NodeCluster) -> Iterator[dict[str, list[str]]]:
    """Both pipelines applied at once (they run side by side); Argo CD's health seen of each."""
    flaky = pipeline(
        cluster,
        "flaky",
        [
            {
                "name": "flaky",
                "command": ["python", "-c", FLAKY, uuid.uuid4().hex],
                "env": [{"name": "MLFLOW_TRACKING_URI", "value": cluster.mlflow_uri}],
                "retry": {"limit": 3, "policy": "Always", "backoff": {"duration": "2s"}},
            }
        ],
    )
    slow = pipeline(
        cluster,
        "slow",
        [
            {"name": "prepare", "command": ["python", "-c", "print('ready')"]},
            {
                "name": "sleepy",
                "dependsOn": ["prepare"],
                "command": ["python", "-c", "import time; time.sleep(300)"],
                "timeout": "10s",
            },
        ],
    )
    # Only here to be deleted (a CronWorkflow that never fires during the tests).
    yearly = pipeline(
        cluster,
        "yearly",
        [{"name": "once", "command": ["python", "-c", "print(1)"]}],
        schedule={"cron": "0 0 1 1 *"},
    )
    with health_log(cluster, ["flaky", "slow"]) as healths:
        apply_pipeline(cluster, flaky)
        apply_pipeline(cluster, slow)
        apply_pipeline(cluster, yearly)
        yield healths


def test_a_step_retried_with_backoff_until_it_succeeds(
    cluster: NodeCluster, started: dict[str, list[str]]
) -> None:
    done = wait_status(cluster, "flaky", generation=1, timeout=RUN_TIMEOUT)

    status = done["status"]
    assert status["phase"] == "Succeeded", status
    (step,) = status["lastRun"]["steps"]
    assert (step["name"], step["phase"], step["retries"]) == ("flaky", "Succeeded", 2)
    assert healths_until(started["flaky"], done) == ["Progressing", "Healthy"]


def test_a_step_past_its_timeout_fails_the_run(
    cluster: NodeCluster, started: dict[str, list[str]]
) -> None:
    done = wait_status(cluster, "slow", generation=1, timeout=RUN_TIMEOUT)

    status = done["status"]
    assert status["phase"] == "Failed", status
    assert 'step "sleepy" failed' in status["message"]
    assert "deadline" in status["message"], status["message"]
    phases = {step["name"]: step["phase"] for step in status["lastRun"]["steps"]}
    assert phases == {"prepare": "Succeeded", "sleepy": "Failed"}
    assert healths_until(started["slow"], done) == ["Progressing", "Degraded"]
    events = cluster.kubectl(
        "get",
        "events",
        "-n",
        PIPELINE_NAMESPACE,
        "-o",
        "jsonpath={range .items[*]}"
        "{.involvedObject.kind}/{.involvedObject.name} {.type} {.reason}: {.message}{'\\n'}{end}",
    )
    assert any(
        line.startswith("MLPipeline/slow Warning RunFailed") and "sleepy" in line
        for line in events.splitlines()
    ), events


def test_deleting_a_pipeline_removes_its_workflows_cron_workflow_and_pods(
    cluster: NodeCluster, started: dict[str, list[str]]
) -> None:
    wait_status(cluster, "slow", generation=1, timeout=RUN_TIMEOUT)
    slow, yearly = f"{LABEL_PIPELINE}=slow", f"{LABEL_PIPELINE}=yearly"
    assert labelled(cluster, "Workflow", slow)
    assert labelled(cluster, "Pod", slow)  # a failed run's pods are kept (podGC)
    eventually(lambda: bool(labelled(cluster, "CronWorkflow", yearly)), "a CronWorkflow", 60)

    cluster.kubectl("delete", "mlpipeline", "slow", "yearly", "-n", PIPELINE_NAMESPACE)

    assert cluster.control_plane is not None
    kube = cluster.control_plane.kube
    for name in ("slow", "yearly"):
        kube.wait_for(*MLPIPELINE, name, PIPELINE_NAMESPACE, lambda obj: obj is None, timeout=60)

    def collected() -> bool:
        left = labelled(cluster, "Workflow", slow) + labelled(cluster, "Pod", slow)
        return not left + labelled(cluster, "CronWorkflow", yearly)

    eventually(collected, "Workflows, CronWorkflow and pods garbage-collected", timeout=120)
