"""spec.maxConcurrentRuns on the real cluster: two generations applied in quick succession
with maxConcurrentRuns: 1; the second generation's run waits, not submitted, while the first
runs, and Argo starts it only after the first finished."""

from __future__ import annotations

import copy

from mlpipeline_operator.core import run_name
from tests.e2e.cluster import PIPELINE_NAMESPACE, NodeCluster
from tests.e2e.pipelines import MLPIPELINE, apply_pipeline, condition, pipeline, wait_status
from tests.e2e.workflows import WORKFLOW, wait_finished

RUN_TIMEOUT = 300.0
NAME = "one-at-a-time"


def test_a_second_generation_runs_only_after_the_first_finished(cluster: NodeCluster) -> None:
    assert cluster.control_plane is not None
    kube = cluster.control_plane.kube
    first = pipeline(
        cluster,
        NAME,
        [{"name": "work", "command": ["python", "-c", "import time; time.sleep(20)"]}],
        parameters=[{"name": "marker", "value": "1"}],
        maxConcurrentRuns=1,
    )
    second = copy.deepcopy(first)
    second["spec"]["parameters"] = [{"name": "marker", "value": "2"}]
    apply_pipeline(cluster, first)
    apply_pipeline(cluster, second)

    waiting = kube.wait_for(
        *MLPIPELINE,
        NAME,
        PIPELINE_NAMESPACE,
        lambda obj: condition(obj or {}, "Ready").get("reason") == "RunWaiting",
        timeout=RUN_TIMEOUT,
        interval=1,
    )
    assert waiting is not None
    status = waiting["status"]
    assert status["observedGeneration"] == 2
    assert status["message"] == (
        "waiting: 1 run of this pipeline is running (spec.maxConcurrentRuns: 1)"
    )
    first_run, second_run = (run_name(PIPELINE_NAMESPACE, NAME, g) for g in (1, 2))
    assert [h["name"] for h in status["history"]] == [first_run]

    done = wait_status(cluster, NAME, generation=2, timeout=RUN_TIMEOUT)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert [(h["name"], h["phase"]) for h in done["status"]["history"]] == [
        (second_run, "Succeeded"),
        (first_run, "Succeeded"),
    ]
    ended = wait_finished(kube, PIPELINE_NAMESPACE, first_run, RUN_TIMEOUT)["status"]
    later = kube.get(*WORKFLOW, second_run, PIPELINE_NAMESPACE)
    # Created (submitted) only once the first had finished: RFC 3339 UTC times sort as text.
    assert later["metadata"]["creationTimestamp"] >= ended["finishedAt"], (ended, later["metadata"])
    assert later["status"]["startedAt"] >= ended["finishedAt"]
