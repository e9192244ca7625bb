"""Failover on the real cluster: the leading operator pod is deleted while a run is in
progress; the other replica takes over, the run completes and is reported, and there is still
exactly one Workflow for the generation."""

from __future__ import annotations

from typing import Any

from mlpipeline_operator.api.constants import LABEL_PIPELINE
from tests.chart.helm import NAMESPACE as OPERATOR_NAMESPACE
from tests.e2e.cluster import NodeCluster
from tests.e2e.pipelines import apply_pipeline, eventually, labelled, pipeline, wait_status

PEERING = ("kopf.dev/v1", "ClusterKopfPeering", "mlpipeline-operator")


def leader(cluster: NodeCluster) -> str:
    """The pod that acts: the highest priority among the live records of the peering object
    (a replica's record is keyed by its pod's name)."""
    assert cluster.control_plane is not None
    records: dict[str, Any] = cluster.control_plane.kube.get(*PEERING).get("status") or {}
    return max(records, key=lambda pod: int(records[pod]["priority"]))


def test_leader_deleted_during_a_run(cluster: NodeCluster) -> None:
    assert cluster.control_plane is not None
    kube = cluster.control_plane.kube
    doc = pipeline(
        cluster,
        "failover",
        [
            {"name": "long", "command": ["python", "-c", "import time; time.sleep(30)"]},
            {"name": "after", "dependsOn": ["long"], "command": ["python", "-c", "print(1)"]},
        ],
    )
    apply_pipeline(cluster, doc)
    selector = f"{LABEL_PIPELINE}=failover"
    eventually(lambda: bool(labelled(cluster, "Workflow", selector)), "the run starts", 120)
    (run,) = labelled(cluster, "Workflow", selector)
    pods = {p["metadata"]["name"] for p in kube.list_objects("v1", "Pod", OPERATOR_NAMESPACE)}
    acting = leader(cluster)
    assert acting in pods

    cluster.kubectl("delete", "pod", acting, "-n", OPERATOR_NAMESPACE, "--wait=false")

    done = wait_status(cluster, "failover", generation=1, timeout=300)
    status = done["status"]
    assert status["phase"] == "Succeeded", status
    assert status["lastRun"]["name"] == run
    assert [s["phase"] for s in status["lastRun"]["steps"]] == ["Succeeded", "Succeeded"]
    assert labelled(cluster, "Workflow", selector) == [run]
    assert leader(cluster) != acting
