"""Pipelines in a namespace that enforces the restricted Pod Security Standard (Pod Security
admission, built into kube-apiserver): with the compiler's default security contexts and the
controller's executor settings of docs/argo-workflows.md, two steps passing an artifact and the
promotion run there and succeed; a step whose securityContext allows privilege escalation has
its pod refused, and the MLPipeline's status says so."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.cluster import NodeCluster, pipeline_namespace_objects
from tests.e2e.pipelines import FINISHED, MLPIPELINE, apply_pipeline, pipeline

RUN_TIMEOUT = 600.0
NAMESPACE = f"restricted-{uuid.uuid4().hex[:8]}"
REFUSED = 'violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false'

# argv: the experiment, the input file, the file that receives the run id.
TRAIN = """
import sys, mlflow
rows = open(sys.argv[2]).read().split()
mlflow.set_experiment(sys.argv[1])
with mlflow.start_run() as run:
    mlflow.log_metric("rows", len(rows))
    # A model as the registry finds one in a run (an MLmodel file under its artifact path).
    mlflow.log_text("flavors: {}\\n", "model/MLmodel")
open(sys.argv[3], "w").write(run.info.run_id)
"""


@pytest.fixture(scope="module")
def namespace(cluster: NodeCluster) -> Iterator[str]:
    """A namespace ready for workflows, labelled to enforce the restricted standard; deleted
    with everything in it at the end."""
    objects = pipeline_namespace_objects(NAMESPACE, cluster.s3_endpoint)
    objects[0]["metadata"]["labels"] = {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    assert cluster.control_plane is not None
    try:
        for doc in objects:
            cluster.control_plane.kube.apply(doc)
        yield NAMESPACE
    finally:
        cluster.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=false")


def _in(namespace: str, doc: dict[str, Any]) -> dict[str, Any]:
    doc["metadata"]["namespace"] = namespace
    return doc


def _finished(cluster: NodeCluster, namespace: str, name: str) -> dict[str, Any]:
    """The MLPipeline once its first generation's run has finished."""
    assert cluster.control_plane is not None
    kube = cluster.control_plane.kube

    def done(found: dict[str, Any] | None) -> bool:
        status = (found or {}).get("status") or {}
        return status.get("observedGeneration") == 1 and status.get("phase") in FINISHED

    try:
        found = kube.wait_for(*MLPIPELINE, name, namespace, done, timeout=RUN_TIMEOUT, interval=2)
    except TimeoutError:
        status = kube.get(*MLPIPELINE, name, namespace).get("status")
        raise AssertionError(f"MLPipeline {name} unfinished: {status}") from None
    assert found is not None
    return found


def test_steps_and_promotion_run_under_the_restricted_standard(
    cluster: NodeCluster, namespace: str
) -> None:
    experiment = f"e2e-restricted-{uuid.uuid4().hex[:8]}"
    doc = pipeline(
        cluster,
        "hardened",
        [
            {
                "name": "prepare",
                "command": ["python", "-c", "import sys; open(sys.argv[1], 'w').write('a b c')"],
                "args": ["{{outputs.artifacts.rows.path}}"],
                "outputs": {"artifacts": [{"name": "rows", "path": "/tmp/rows.txt"}]},
            },
            {
                "name": "train",
                "command": ["python", "-c", TRAIN, experiment],
                "args": ["{{inputs.artifacts.rows.path}}", "{{outputs.parameters.run_id.path}}"],
                "env": [{"name": "MLFLOW_TRACKING_URI", "value": cluster.mlflow_uri}],
                "inputs": {
                    "artifacts": [{"name": "rows", "from": "prepare.rows", "path": "/tmp/rows"}]
                },
                "outputs": {"parameters": [{"name": "run_id", "path": "/tmp/run_id"}]},
            },
        ],
        promotion={
            "model": experiment,
            "from": {"step": "train", "parameter": "run_id"},
            "gates": [{"metric": "rows", "op": "==", "value": 3}],
        },
        mlflow={"trackingUri": cluster.mlflow_uri},
    )
    apply_pipeline(cluster, _in(namespace, doc))

    status = _finished(cluster, namespace, "hardened")["status"]

    assert status["phase"] == "Succeeded", status
    phases = [(s["name"], s["phase"]) for s in status["lastRun"]["steps"]]
    assert phases == [
        ("prepare", "Succeeded"),
        ("train", "Succeeded"),
        ("promote-model", "Succeeded"),
    ], status["lastRun"]
    assert status["promotion"]["decision"] == "Promoted", status["promotion"]


def test_a_step_that_allows_privilege_escalation_is_refused_and_the_status_says_so(
    cluster: NodeCluster, namespace: str
) -> None:
    doc = pipeline(
        cluster,
        "escalating",
        [
            {
                "name": "escalate",
                "command": ["python", "-c", "print('never')"],
                "securityContext": {"allowPrivilegeEscalation": True},
            }
        ],
    )
    apply_pipeline(cluster, _in(namespace, doc))

    status = _finished(cluster, namespace, "escalating")["status"]

    assert status["phase"] == "Failed", status
    (step,) = status["lastRun"]["steps"]
    assert step["name"] == "escalate", step
    assert step["phase"] in ("Failed", "Error"), step
    assert REFUSED in step["message"], step
    assert REFUSED in status["message"], status["message"]
    assert '"escalate"' in status["message"], status["message"]
