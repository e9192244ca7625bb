"""Run limits and housekeeping as Argo really applies them: `spec.timeout` stops a run and the
status says so; `spec.parallelism: 1` runs two independent steps one after the other; a
succeeded step's log is read from the artifact store once its pod is gone (`archiveLogs`), and
a run pruned from the history takes its artifacts and logs with it (`artifactGC`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from mlpipeline_operator.api.constants import LABEL_GENERATION, LABEL_PIPELINE
from tests.e2e.cluster import PIPELINE_NAMESPACE, S3_BUCKET, NodeCluster
from tests.e2e.pipelines import (
    MLPIPELINE,
    apply_pipeline,
    eventually,
    labelled,
    pipeline,
    wait_status,
)

RUN_TIMEOUT = 300.0
MARKER = f"log-marker-{uuid.uuid4().hex}"


# Prints the marker and keeps it as an output artifact: Argo gives a run a GC finalizer only when
# one of its templates declares an output artifact (then the archived logs go with them).
SAY = "import sys; print(sys.argv[1]); open('/tmp/said.txt', 'w').write(sys.argv[1])"


def _logged(marker: str) -> dict[str, Any]:
    return {
        "name": "say",
        "command": ["python", "-c", SAY, marker],
        "outputs": {"artifacts": [{"name": "said", "path": "/tmp/said.txt"}]},
    }


@pytest.fixture(scope="module")
def started(cluster: NodeCluster) -> Iterator[None]:
    """The three pipelines applied at once (they run side by side)."""
    # One step: under load a step before it may itself outlast the 30 s (seen with a first
    # step that was still starting at the deadline), which would change the phases below.
    timed = pipeline(
        cluster,
        "timed",
        [{"name": "sleepy", "command": ["python", "-c", "import time; time.sleep(300)"]}],
        timeout="30s",
    )
    one_at_a_time = pipeline(
        cluster,
        "parallel-one",
        [
            {"name": name, "command": ["python", "-c", "import time; time.sleep(3)"]}
            for name in ("left", "right")
        ],
        parallelism=1,
    )
    logs = pipeline(cluster, "logs", [_logged(MARKER)], history={"succeeded": 1, "failed": 1})
    apply_pipeline(cluster, timed)
    apply_pipeline(cluster, one_at_a_time)
    apply_pipeline(cluster, logs)
    yield


def _workflow(cluster: NodeCluster, name: str, generation: int) -> dict[str, Any]:
    assert cluster.control_plane is not None
    (workflow,) = cluster.control_plane.kube.list_objects(
        "argoproj.io/v1alpha1",
        "Workflow",
        PIPELINE_NAMESPACE,
        label_selector=f"{LABEL_PIPELINE}={name},{LABEL_GENERATION}={generation}",
    )
    return workflow


def test_the_run_timeout_stops_the_run_and_the_status_says_so(
    cluster: NodeCluster, started: None
) -> None:
    done = wait_status(cluster, "timed", generation=1, timeout=RUN_TIMEOUT)

    status = done["status"]
    run = status["lastRun"]["name"]
    assert status["phase"] == "Failed", status
    assert (
        status["message"]
        == f"run {run} exceeded spec.timeout of 30s: its running steps were stopped"
    )
    phases = {step["name"]: step["phase"] for step in status["lastRun"]["steps"]}
    assert phases == {"sleepy": "Failed"}


def test_parallelism_1_runs_independent_steps_one_after_the_other(
    cluster: NodeCluster, started: None
) -> None:
    done = wait_status(cluster, "parallel-one", generation=1, timeout=RUN_TIMEOUT)

    status = done["status"]
    assert status["phase"] == "Succeeded", status
    steps = sorted(status["lastRun"]["steps"], key=lambda s: s["startedAt"])
    assert [s["phase"] for s in steps] == ["Succeeded", "Succeeded"]
    first, second = steps
    # RFC 3339 UTC times of the same format compare as text.
    assert first["finishedAt"] <= second["startedAt"], steps


def _artifact_key(workflow: dict[str, Any], step: str, artifact: str) -> str:
    """The key of a step's output artifact in the artifact repository (Argo names the archived
    log `main-logs`)."""
    (node,) = (
        n
        for n in workflow["status"]["nodes"].values()
        if n["type"] == "Pod" and n["displayName"] == step
    )
    (found,) = (a for a in node["outputs"]["artifacts"] if a["name"] == artifact)
    key: str = found["s3"]["key"]
    return key


def test_a_succeeded_steps_log_outlives_its_pod_and_goes_with_its_run(
    cluster: NodeCluster, started: None
) -> None:
    done = wait_status(cluster, "logs", generation=1, timeout=RUN_TIMEOUT)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    first = _workflow(cluster, "logs", 1)
    selector = f"{LABEL_PIPELINE}=logs"
    eventually(lambda: not labelled(cluster, "Pod", selector), "the succeeded pod deleted", 60)

    # versitygw keeps objects as files.
    stored = cluster.s3_root / S3_BUCKET / _artifact_key(first, "say", "main-logs")
    assert stored.read_text().splitlines() == [MARKER]
    said = cluster.s3_root / S3_BUCKET / _artifact_key(first, "say", "said")
    assert said.is_file()

    # A second generation: the first run is beyond history.succeeded (1) and is pruned, and
    # Argo's artifact GC deletes its objects before the Workflow goes.
    assert cluster.control_plane is not None
    cluster.control_plane.kube.patch(
        *MLPIPELINE,
        "logs",
        {"spec": {"steps": [_logged(MARKER + "-2")]}},
        PIPELINE_NAMESPACE,
    )
    second = wait_status(cluster, "logs", generation=2, timeout=RUN_TIMEOUT)
    assert second["status"]["phase"] == "Succeeded", second["status"]
    run_name = first["metadata"]["name"]
    eventually(
        lambda: run_name not in labelled(cluster, "Workflow", selector),
        f"run {run_name} pruned",
        120,
    )
    assert not stored.exists()
    assert not said.exists()
    kept = _workflow(cluster, "logs", 2)
    stored_again = cluster.s3_root / S3_BUCKET / _artifact_key(kept, "say", "main-logs")
    assert stored_again.read_text().splitlines() == [MARKER + "-2"]
