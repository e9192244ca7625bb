"""The run-at annotation on the real cluster: `mlops.gitops.dev/run-at` submits one run whose
`{{pipeline.scheduledTime}}` is the annotation's time, beside the generation's run (scheduled for
its creation time); `{{pipeline.runName}}` and `{{pipeline.generation}}` are each run's own;
applying the annotation again, and a new generation, submit no second run for that time."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from mlpipeline_operator.api.constants import LABEL_PIPELINE
from mlpipeline_operator.core import run_at_name, run_name
from tests.e2e.cluster import PIPELINE_NAMESPACE, NodeCluster
from tests.e2e.pipelines import apply_pipeline, labelled, pipeline, wait_status
from tests.e2e.workflows import wait_finished

RUN_TIMEOUT = 300.0
NAME = "backfill"
RUN_AT = "2026-01-31T00:00:00Z"

# Records what the step is given as its output parameter, which Argo keeps in the run's status.
SEE = (
    "import json, os, sys\n"
    "seen = dict(zip(['scheduledTime', 'runName', 'generation'], sys.argv[2:]))\n"
    "seen['env'] = os.environ['RUN_NAME']\n"
    "json.dump(seen, open(sys.argv[1], 'w'))\n"
)


def backfill(cluster: NodeCluster, message: str) -> dict[str, Any]:
    doc = pipeline(
        cluster,
        NAME,
        [
            {
                "name": "see",
                "command": ["python", "-c", SEE],
                "args": [
                    "{{outputs.parameters.seen.path}}",
                    "{{pipeline.scheduledTime}}",
                    "{{pipeline.runName}}",
                    "{{pipeline.generation}}",
                ],
                "env": [
                    {"name": "RUN_NAME", "value": "{{pipeline.runName}}"},
                    {"name": "MESSAGE", "value": message},
                ],
                "outputs": {"parameters": [{"name": "seen", "path": "/tmp/seen.json"}]},
            }
        ],
    )
    doc["metadata"]["annotations"] = {"mlops.gitops.dev/run-at": RUN_AT}
    return doc


def seen(cluster: NodeCluster, run: str) -> dict[str, Any]:
    """What the step of a run saw, once the run finished."""
    assert cluster.control_plane is not None
    workflow = wait_finished(cluster.control_plane.kube, PIPELINE_NAMESPACE, run, RUN_TIMEOUT)
    assert workflow["status"]["phase"] == "Succeeded", workflow["status"]
    (node,) = [n for n in workflow["status"]["nodes"].values() if n.get("templateName") == "see"]
    (output,) = node["outputs"]["parameters"]
    recorded: dict[str, Any] = json.loads(output["value"])
    recorded["created"] = workflow["metadata"]["creationTimestamp"]
    return recorded


def test_run_at_runs_once_for_its_time(cluster: NodeCluster) -> None:
    apply_pipeline(cluster, backfill(cluster, "first"))
    first = run_name(PIPELINE_NAMESPACE, NAME, 1)
    at = datetime.fromisoformat(RUN_AT)
    at_run = run_at_name(PIPELINE_NAMESPACE, NAME, at)

    at_seen = seen(cluster, at_run)
    assert at_seen == {
        "scheduledTime": RUN_AT,
        "runName": at_run,
        "generation": "1",
        "env": at_run,
        "created": at_seen["created"],
    }
    first_seen = seen(cluster, first)
    # The generation's run is scheduled for the time it was created.
    assert first_seen == {
        "scheduledTime": first_seen["created"],
        "runName": first,
        "generation": "1",
        "env": first,
        "created": first_seen["created"],
    }
    done = wait_status(cluster, NAME, generation=1, timeout=RUN_TIMEOUT)
    assert done["status"]["lastRun"]["name"] == first
    assert {h["name"] for h in done["status"]["history"]} == {first, at_run}

    # Applied again as it is, then with a new spec: a run for generation 2 only.
    apply_pipeline(cluster, backfill(cluster, "first"))
    apply_pipeline(cluster, backfill(cluster, "second"))
    second = run_name(PIPELINE_NAMESPACE, NAME, 2)
    assert seen(cluster, second)["generation"] == "2"
    done = wait_status(cluster, NAME, generation=2, timeout=RUN_TIMEOUT)
    assert done["status"]["lastRun"]["name"] == second
    runs = labelled(cluster, "Workflow", f"{LABEL_PIPELINE}={NAME}")
    assert sorted(runs) == sorted([first, second, at_run])
