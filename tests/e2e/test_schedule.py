"""A scheduled pipeline on the real cluster: Argo's CronWorkflow fires, its run shows in the
pipeline's status; suspending it stops new runs; removing the schedule deletes it."""

from __future__ import annotations

import datetime
from typing import Any

from mlpipeline_operator.api.constants import LABEL_PIPELINE
from tests.e2e.cluster import PIPELINE_NAMESPACE, NodeCluster
from tests.e2e.pipelines import MLPIPELINE, apply_pipeline, eventually, labelled, pipeline

SELECTOR = f"{LABEL_PIPELINE}=ticker"


def test_schedule_fires_suspends_and_goes(cluster: NodeCluster) -> None:
    assert cluster.control_plane is not None
    kube = cluster.control_plane.kube
    doc = pipeline(
        cluster,
        "ticker",
        [{"name": "tick", "command": ["python", "-c", "print('tick')"]}],
        schedule={"cron": "* * * * *"},
    )
    apply_pipeline(cluster, doc)

    def status() -> dict[str, Any]:
        return dict(kube.get(*MLPIPELINE, "ticker", PIPELINE_NAMESPACE).get("status") or {})

    # Argo fires at the next minute; the run then shows in the pipeline's status.
    eventually(
        lambda: (status().get("lastRun") or {}).get("phase") == "Succeeded",
        "a run of the CronWorkflow succeeds and shows in status.lastRun",
        timeout=180,
    )
    (cron,) = labelled(cluster, "CronWorkflow", SELECTOR)
    assert status()["lastRun"]["name"] in labelled(cluster, "Workflow", SELECTOR)

    doc["spec"]["schedule"]["suspend"] = True
    apply_pipeline(cluster, doc)
    cron_workflow = ("argoproj.io/v1alpha1", "CronWorkflow")
    kube.wait_for(
        *cron_workflow,
        cron,
        PIPELINE_NAMESPACE,
        lambda obj: bool(obj and obj["spec"].get("suspend")),
        timeout=60,
    )
    runs = set(labelled(cluster, "Workflow", SELECTOR))
    # No run starts in the next minute that begins (an absence is only seen by waiting it out).
    now = datetime.datetime.now(datetime.UTC)
    past_next_minute = (60 - now.second) + 20
    eventually(
        lambda: (
            datetime.datetime.now(datetime.UTC) - now > datetime.timedelta(seconds=past_next_minute)
        ),
        "a scheduled minute passes",
        timeout=past_next_minute + 10,
    )
    assert set(labelled(cluster, "Workflow", SELECTOR)) == runs

    del doc["spec"]["schedule"]
    apply_pipeline(cluster, doc)
    kube.wait_for(*cron_workflow, cron, PIPELINE_NAMESPACE, lambda obj: obj is None, timeout=60)
