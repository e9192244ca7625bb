"""The product on the real cluster, as a user meets it: the operator installed by its chart
(by the cluster fixture), the fraud-detection example applied with kubectl, run by Argo, its
model promoted in MLflow; then a worse model that the champion/challenger gate rejects; and the
operator's metrics, scraped through the API server, counting what happened."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.chart.helm import NAMESPACE as OPERATOR_NAMESPACE
from tests.controlplane.harness import REPO_ROOT
from tests.e2e.cluster import PIPELINE_NAMESPACE, NodeCluster
from tests.e2e.pipelines import (
    apply_pipeline,
    condition,
    health_log,
    recording_midway,
    wait_status,
)

EXAMPLE = REPO_ROOT / "examples" / "fraud-detection" / "pipeline.yaml"
RUN_TIMEOUT = 900.0  # seconds for the whole example; about 3 minutes on an idle machine


def example_for(cluster: NodeCluster, **parameters: str) -> dict[str, Any]:
    """The example's MLPipeline with this cluster's namespace, step image and MLflow."""
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    doc["metadata"]["namespace"] = PIPELINE_NAMESPACE
    spec = doc["spec"]
    spec["image"] = cluster.images["STEP_IMAGE"]
    spec["mlflow"]["trackingUri"] = cluster.mlflow_uri
    for step in spec["steps"]:
        for env in step.get("env", []):
            if env["name"] == "MLFLOW_TRACKING_URI":
                env["value"] = cluster.mlflow_uri
    for parameter in spec["parameters"]:
        parameter["value"] = parameters.get(parameter["name"], parameter["value"])
    return doc


def champion_version(cluster: NodeCluster, model: str) -> str:
    """The version that holds the `champion` alias, asked of the MLflow server itself."""
    query = urllib.parse.urlencode({"name": model, "alias": "champion"})
    url = f"{cluster.mlflow_uri}/api/2.0/mlflow/registered-models/alias?{query}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(json.load(response)["model_version"]["version"])


@pytest.fixture(scope="module")
def first_run(cluster: NodeCluster) -> dict[str, Any]:
    with (
        health_log(cluster, ["fraud-detection"]) as healths,
        recording_midway(cluster, "fraud-detection", 1),
    ):
        apply_pipeline(cluster, example_for(cluster))
        done = wait_status(cluster, "fraud-detection", generation=1, timeout=RUN_TIMEOUT)
    # Argo CD's view all along: Progressing while it runs, then Healthy.
    assert healths["fraud-detection"] == ["Progressing", "Healthy"]
    return done


def test_example_runs_and_promotes(cluster: NodeCluster, first_run: dict[str, Any]) -> None:
    status = first_run["status"]
    assert status["phase"] == "Succeeded", status
    assert condition(first_run, "Promoted")["status"] == "True", status
    steps = [step["name"] for step in status["lastRun"]["steps"]]
    assert steps == ["ingest", "preprocess", "train", "evaluate", "promote-model"]
    assert all(step["phase"] == "Succeeded" for step in status["lastRun"]["steps"])
    promotion = status["promotion"]
    assert promotion["decision"] == "Promoted"
    assert promotion["version"] == champion_version(cluster, "fraud-detection")
    assert promotion["metrics"]["auc"] >= 0.7

    table = cluster.kubectl("get", "mlp", "-n", PIPELINE_NAMESPACE)
    header = table.splitlines()[0].split()
    assert header[:4] == ["NAME", "PHASE", "LAST", "RUN"], table
    assert "Succeeded" in table.splitlines()[1]


def test_worse_model_is_rejected(cluster: NodeCluster, first_run: dict[str, Any]) -> None:
    champion = first_run["status"]["promotion"]["version"]
    apply_pipeline(cluster, example_for(cluster, n_estimators="1"))

    second = wait_status(cluster, "fraud-detection", generation=2, timeout=RUN_TIMEOUT)

    status = second["status"]
    assert status["lastRun"]["name"] != first_run["status"]["lastRun"]["name"]
    assert status["lastRun"]["generation"] == 2
    assert status["promotion"]["decision"] == "Rejected", status["promotion"]
    assert condition(second, "Promoted")["status"] == "False"
    assert champion_version(cluster, "fraud-detection") == champion
    history = {run["name"]: run for run in status["history"]}
    assert history[first_run["status"]["lastRun"]["name"]]["phase"] == "Succeeded"


def operator_metrics(cluster: NodeCluster) -> dict[str, float]:
    """The operator's series summed over its pods (the chart's metrics port, through the API
    server's proxy): only the leader acts, the replica standing by counts zeros."""
    assert cluster.control_plane is not None
    pods = cluster.control_plane.kube.list_objects("v1", "Pod", OPERATOR_NAMESPACE)
    assert len(pods) == 2, [p["metadata"]["name"] for p in pods]
    total: dict[str, float] = {}
    for pod in pods:
        path = f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/pods/{pod['metadata']['name']}:9090"
        text = cluster.kubectl("get", "--raw", f"{path}/proxy/metrics")
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                key = f"{sample.name}{{{labels}}}" if labels else sample.name
                total[key] = total.get(key, 0) + sample.value
    return total


def test_operator_metrics_count_the_example(
    cluster: NodeCluster, first_run: dict[str, Any]
) -> None:
    """At least what the example did (the scenarios above, whichever ran): one run submitted
    for each run in the pipeline's history, each decision seen counted."""
    assert cluster.control_plane is not None
    now = cluster.control_plane.kube.get(
        "mlops.gitops.dev/v1alpha1", "MLPipeline", "fraud-detection", PIPELINE_NAMESPACE
    )
    runs = len(now["status"]["history"])
    succeeded = sum(run["phase"] == "Succeeded" for run in now["status"]["history"])
    decisions = {first_run["status"]["promotion"]["decision"]}
    decisions.add(now["status"]["promotion"]["decision"])
    found = operator_metrics(cluster)
    p = "mlpipeline_operator_"
    assert found[f"{p}runs_submitted_total"] >= runs >= 1, found
    assert found[f'{p}runs_finished_total{{phase="Succeeded"}}'] >= succeeded >= 1, found
    for decision in decisions:
        assert found[f'{p}promotions_total{{decision="{decision}"}}'] >= 1, found
    assert found[f'{p}promotions_total{{decision="Promoted"}}'] >= 1, found
    assert found[f'{p}reconciles_total{{result="success"}}'] >= runs, found
    assert found[f'{p}handlers_in_progress{{handler="reconcile"}}'] == 0, found
