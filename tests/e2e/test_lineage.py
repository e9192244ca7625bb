"""Lineage and MLflow in every step, on the real cluster: the steps (the exit step too) find
MLflow through `spec.mlflow` and see the pipeline's lineage as MLPIPELINE_* variables; the
example's train step tags its MLflow run with them, and the promotion finds that the run's
lineage matches the pipeline's; MLflow's credentials reach only the step that asks for them.
What each step saw is read back from the cluster's MLflow server."""

from __future__ import annotations

import uuid
from typing import Any

from tests.e2e.cluster import PIPELINE_NAMESPACE, NodeCluster
from tests.e2e.pipelines import apply_pipeline, pipeline, wait_status
from tests.e2e.test_after_promotion import _mlflow, _train_steps, recorded

RUN_TIMEOUT = 600.0
NAMES = [
    "MLPIPELINE_NAMESPACE",
    "MLPIPELINE_NAME",
    "MLPIPELINE_GENERATION",
    "MLPIPELINE_RUN",
    "MLPIPELINE_GIT_REVISION",
]
# argv: the MLflow run's name; records the lineage variables, and whether MLflow's credentials
# (the e2e namespace's Secret "mlflow") are in the environment, as the run's tags.
SHOW = f"""
import os, sys, mlflow
with mlflow.start_run(run_name=sys.argv[1]):
    tags = {{n: os.environ.get(n, "(unset)") for n in {NAMES!r}}}
    tags["credentials"] = "yes" if "MLFLOW_TRACKING_USERNAME" in os.environ else "no"
    mlflow.set_tags(tags)
"""


def _show(name: str, experiment: str, **fields: Any) -> dict[str, Any]:
    """A step that records what it sees; MLFLOW_TRACKING_URI comes from spec.mlflow."""
    return {
        "command": ["python", "-c", SHOW, name],
        "env": [{"name": "MLFLOW_EXPERIMENT_NAME", "value": experiment}],
        **fields,
    }


def test_steps_see_the_lineage_the_train_run_records_it_and_the_promotion_matches_it(
    cluster: NodeCluster,
) -> None:
    experiment = f"e2e-lineage-{uuid.uuid4().hex[:8]}"
    # Made before the run: steps that create it concurrently race, and the loser logs to the
    # Default experiment.
    _mlflow(cluster, "experiments/create", {"name": experiment})
    train_steps = _train_steps(cluster)
    train = train_steps[-1]
    assert train["name"] == "train"
    # The tracking URI comes from spec.mlflow; the experiment is the test's own.
    train["env"] = [{"name": "MLFLOW_EXPERIMENT_NAME", "value": experiment}]
    train["mlflowCredentials"] = True
    doc = pipeline(
        cluster,
        "lineage",
        [
            *train_steps,
            {
                "name": "with-credentials",
                "mlflowCredentials": True,
                **_show("with-credentials", experiment),
            },
            {"name": "without", **_show("without", experiment)},
        ],
        promotion={
            "model": f"lineage-{experiment}",
            "from": {"step": "train", "parameter": "run_id"},
        },
        mlflow={"trackingUri": cluster.mlflow_uri, "credentialsSecret": "mlflow"},
        onExit=_show("on-exit", experiment),
    )
    doc["metadata"]["annotations"] = {"mlops.gitops.dev/git-revision": "e2e-4f2c9e1"}
    apply_pipeline(cluster, doc)

    done = wait_status(cluster, "lineage", generation=1, timeout=RUN_TIMEOUT)

    status = done["status"]
    assert status["phase"] == "Succeeded", status
    run = status["lastRun"]["name"]
    lineage = {
        "MLPIPELINE_NAMESPACE": PIPELINE_NAMESPACE,
        "MLPIPELINE_NAME": "lineage",
        "MLPIPELINE_GENERATION": "1",
        "MLPIPELINE_RUN": run,
        "MLPIPELINE_GIT_REVISION": "e2e-4f2c9e1",
    }
    seen = recorded(cluster, experiment)
    assert seen.pop("with-credentials") == {**lineage, "credentials": "yes"}
    assert seen.pop("without") == {**lineage, "credentials": "no"}
    assert seen.pop("on-exit") == {**lineage, "credentials": "no"}
    # The remaining run is the train step's (MLflow names it), tagged by fraud_detection.train.
    assert list(seen.values()) == [
        {
            "mlpipeline.namespace": PIPELINE_NAMESPACE,
            "mlpipeline.pipeline": "lineage",
            "mlpipeline.generation": "1",
            "mlpipeline.workflow": run,
            "mlpipeline.git-revision": "e2e-4f2c9e1",
        }
    ], seen
    promotion = status["promotion"]
    assert (promotion["decision"], promotion["lineage"], promotion["run"]) == (
        "Promoted",
        "Matched",
        run,
    ), promotion
    assert promotion["reason"] == "no gates", promotion
