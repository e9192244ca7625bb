"""Placement and run labels on the real node: the node gets a label and a NoSchedule taint of its
own for this module (always removed at its end: later tests share the node); a step that
tolerates the taint and selects the label runs and succeeds; a step whose nodeSelector no node
has waits, and the MLPipeline's status says why, in the scheduler's words; the runs and their
pods carry the runLabels and the pipeline's own labels."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from mlpipeline_operator.api.constants import LABEL_PIPELINE
from tests.e2e.cluster import NODE_NAME, PIPELINE_NAMESPACE, NodeCluster
from tests.e2e.pipelines import (
    MLPIPELINE,
    apply_pipeline,
    eventually,
    labelled,
    pipeline,
    wait_status,
)

RUN_TIMEOUT = 300.0
# Unique to this module's run, so that nothing else on the node can match or tolerate it.
POOL = f"placement-e2e-{uuid.uuid4().hex[:8]}"
COST_CENTER = f"e2e-{uuid.uuid4().hex[:8]}"
UNSCHEDULABLE = (
    "Unschedulable: 0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
)


def _node(cluster: NodeCluster) -> dict[str, Any]:
    assert cluster.control_plane is not None
    return cluster.control_plane.kube.get("v1", "Node", NODE_NAME)


def _our_taints(cluster: NodeCluster) -> list[dict[str, Any]]:
    return [t for t in _node(cluster)["spec"].get("taints", []) if t["key"] == POOL]


def _remove_pool(cluster: NodeCluster) -> None:
    """The node as it was: without our taint and label (each removed only when present, since
    kubectl refuses to remove a taint that is not there)."""
    try:
        if _our_taints(cluster):
            cluster.kubectl("taint", "node", NODE_NAME, f"{POOL}:NoSchedule-")
    finally:
        if POOL in _node(cluster)["metadata"].get("labels", {}):
            cluster.kubectl("label", "node", NODE_NAME, f"{POOL}-")
    assert not _our_taints(cluster)
    assert POOL not in _node(cluster)["metadata"].get("labels", {})


@pytest.fixture(scope="module")
def pool(cluster: NodeCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """The node labelled and tainted with POOL; both removed at the end, whatever happens."""
    request.addfinalizer(lambda: _remove_pool(cluster))
    cluster.kubectl("label", "node", NODE_NAME, f"{POOL}=yes")
    cluster.kubectl("taint", "node", NODE_NAME, f"{POOL}=yes:NoSchedule")
    yield POOL


@pytest.fixture(scope="module")
def started(cluster: NodeCluster, pool: str) -> Iterator[None]:
    """Both pipelines applied; the one that can never be scheduled is deleted at the end, with
    its Workflow and pending pod (before the taint goes, by the fixtures' order)."""
    toleration = {"key": pool, "operator": "Exists", "effect": "NoSchedule"}
    placed = pipeline(
        cluster,
        "placed",
        [{"name": "train", "command": ["python", "-c", "print('on the pool')"]}],
        defaults={"nodeSelector": {pool: "yes"}, "tolerations": [toleration]},
        runLabels={"cost-center": COST_CENTER},
    )
    placed["metadata"]["labels"] = {"team": "vision"}
    stuck = pipeline(
        cluster,
        "nowhere",
        [
            {
                "name": "train",
                "command": ["python", "-c", "print('never')"],
                "nodeSelector": {pool: "no"},
                "tolerations": [toleration],
            }
        ],
        runLabels={"cost-center": COST_CENTER},
    )
    try:
        apply_pipeline(cluster, placed)
        apply_pipeline(cluster, stuck)
        yield
    finally:
        cluster.kubectl(
            "delete",
            "mlpipeline",
            "placed",
            "nowhere",
            "-n",
            PIPELINE_NAMESPACE,
            "--ignore-not-found",
        )
        nowhere = f"{LABEL_PIPELINE}=nowhere"
        eventually(
            lambda: (
                not (labelled(cluster, "Pod", nowhere) + labelled(cluster, "Workflow", nowhere))
            ),
            "the pending run and its pod deleted",
            timeout=120,
        )


def test_a_step_that_tolerates_the_taint_and_selects_the_label_succeeds(
    cluster: NodeCluster, started: None
) -> None:
    done = wait_status(cluster, "placed", generation=1, timeout=RUN_TIMEOUT)

    status = done["status"]
    assert status["phase"] == "Succeeded", status
    assert [(s["name"], s["phase"]) for s in status["lastRun"]["steps"]] == [("train", "Succeeded")]
    (workflow,) = labelled(cluster, "Workflow", f"{LABEL_PIPELINE}=placed")
    assert workflow == status["lastRun"]["name"]
    selector = f"cost-center={COST_CENTER},pipeline.mlops.gitops.dev/team=vision"
    assert labelled(cluster, "Workflow", selector) == [workflow]


def test_a_step_no_node_can_take_waits_and_the_status_says_why(
    cluster: NodeCluster, started: None
) -> None:
    assert cluster.control_plane is not None
    kube = cluster.control_plane.kube
    seen: dict[str, Any] = {}

    def waiting() -> bool:
        seen.update(kube.get(*MLPIPELINE, "nowhere", PIPELINE_NAMESPACE).get("status") or {})
        return "is pending: " in seen.get("message", "")

    eventually(waiting, "the status of a run whose step cannot be scheduled", RUN_TIMEOUT)

    run = seen["lastRun"]["name"]
    assert seen["phase"] == "Running", seen
    assert seen["message"].startswith(
        f'run {run} is running; step "train" is pending: {UNSCHEDULABLE}'
    ), seen["message"]
    (step,) = seen["lastRun"]["steps"]
    assert (step["name"], step["phase"]) == ("train", "Pending")
    assert step["message"].startswith(UNSCHEDULABLE), step
    # The waiting pod carries the run labels, as the run does.
    selector = f"cost-center={COST_CENTER},{LABEL_PIPELINE}=nowhere"
    assert labelled(cluster, "Workflow", selector) == [run]
    (pod,) = labelled(cluster, "Pod", selector)
    assert pod.startswith(run), pod
