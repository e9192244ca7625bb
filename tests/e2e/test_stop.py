"""Stopping a run and suspending a pipeline on the real cluster: `kubectl annotate ...
mlops.gitops.dev/stop=current` makes Argo stop a running run (its long step's pod ends, the step
after it never starts, the exit step still runs and sees the run Failed) and the status says who
stopped it and when; `spec.suspend: true`
submits no Workflow, and setting it back to false submits one that runs."""

from __future__ import annotations

from typing import Any

from mlpipeline_operator.api.constants import LABEL_PIPELINE
from mlpipeline_operator.core import run_name
from tests.e2e.cluster import PIPELINE_NAMESPACE, NodeCluster
from tests.e2e.pipelines import (
    MLPIPELINE,
    apply_pipeline,
    condition,
    eventually,
    labelled,
    pipeline,
    wait_status,
)
from tests.e2e.workflows import wait_finished

RUN_TIMEOUT = 300.0
ARGO_WORKFLOW_LABEL = "workflows.argoproj.io/workflow"


def step_phase(cluster: NodeCluster, name: str, step: str) -> str | None:
    assert cluster.control_plane is not None
    found = cluster.control_plane.kube.get(*MLPIPELINE, name, PIPELINE_NAMESPACE)
    steps = ((found.get("status") or {}).get("lastRun") or {}).get("steps") or []
    return next((s["phase"] for s in steps if s["name"] == step), None)


def test_the_stop_annotation_stops_the_running_run(cluster: NodeCluster) -> None:
    assert cluster.control_plane is not None
    kube = cluster.control_plane.kube
    doc = pipeline(
        cluster,
        "stoppable",
        [
            {"name": "long", "command": ["python", "-c", "import time; time.sleep(600)"]},
            {"name": "after", "dependsOn": ["long"], "command": ["python", "-c", "print(1)"]},
        ],
        # Succeeds only when it sees the run Failed, as a stopped run ends.
        onExit={
            "command": ["python", "-c", "import sys; sys.exit(sys.argv[1] != 'Failed')"],
            "args": ["{{pipeline.status}}"],
        },
    )
    apply_pipeline(cluster, doc)
    run = run_name(PIPELINE_NAMESPACE, "stoppable", 1)
    eventually(
        lambda: step_phase(cluster, "stoppable", "long") == "Running",
        "the long step running",
        RUN_TIMEOUT,
    )

    cluster.kubectl(
        "annotate", "mlpipeline", "stoppable", "-n", PIPELINE_NAMESPACE,
        "mlops.gitops.dev/stop=current",
    )  # fmt: skip

    workflow = wait_finished(kube, PIPELINE_NAMESPACE, run, RUN_TIMEOUT)
    assert workflow["spec"]["shutdown"] == "Stop"
    assert workflow["status"]["phase"] == "Failed", workflow["status"]
    # The long step's pod has ended (Argo stopped it); the step after it never started.
    pods: list[dict[str, Any]] = []

    def pods_ended() -> bool:
        pods[:] = kube.list_objects(
            "v1", "Pod", PIPELINE_NAMESPACE, label_selector=f"{ARGO_WORKFLOW_LABEL}={run}"
        )
        return all(p["status"].get("phase") in ("Succeeded", "Failed") for p in pods)

    eventually(pods_ended, "the run's pods ended", RUN_TIMEOUT)
    nodes = workflow["status"]["nodes"].values()
    assert [n["phase"] for n in nodes if n.get("displayName") == "long"] == ["Failed"]
    assert not [n for n in nodes if n.get("displayName") == "after" and n["type"] == "Pod"]
    assert [n["phase"] for n in nodes if n.get("displayName") == f"{run}.onExit"] == ["Succeeded"]

    done = wait_status(cluster, "stoppable", generation=1, timeout=RUN_TIMEOUT)
    status = done["status"]
    assert status["phase"] == "Failed", status
    last = status["lastRun"]
    assert last["name"] == run
    phases = {s["name"]: s["phase"] for s in last["steps"]}
    assert (phases["long"], phases["on-exit"]) == ("Failed", "Succeeded"), last["steps"]
    assert last["stoppedBy"] == "kubectl-annotate"
    assert last["stoppedAt"] == workflow["metadata"]["annotations"]["mlops.gitops.dev/stopped-at"]
    ready = condition(done, "Ready")
    assert (ready["reason"], ready["message"]) == (
        "RunStopped",
        f"run {run} stopped by kubectl-annotate at {last['stoppedAt']}",
    )


def test_suspend_submits_nothing_until_it_is_false(cluster: NodeCluster) -> None:
    assert cluster.control_plane is not None
    kube = cluster.control_plane.kube
    steps = [{"name": "quick", "command": ["python", "-c", "print('ran')"]}]
    apply_pipeline(cluster, pipeline(cluster, "paused", steps, suspend=True))

    def handled(generation: int) -> Any:
        def check(found: dict[str, Any] | None) -> bool:
            return ((found or {}).get("status") or {}).get("observedGeneration") == generation

        return check

    suspended = kube.wait_for(
        *MLPIPELINE, "paused", PIPELINE_NAMESPACE, handled(1), timeout=RUN_TIMEOUT, interval=1
    )
    assert suspended is not None
    assert condition(suspended, "Ready")["reason"] == "Suspended"
    assert labelled(cluster, "Workflow", f"{LABEL_PIPELINE}=paused") == []

    apply_pipeline(cluster, pipeline(cluster, "paused", steps, suspend=False))
    done = wait_status(cluster, "paused", generation=2, timeout=RUN_TIMEOUT)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert labelled(cluster, "Workflow", f"{LABEL_PIPELINE}=paused") == [
        run_name(PIPELINE_NAMESPACE, "paused", 2)
    ]
