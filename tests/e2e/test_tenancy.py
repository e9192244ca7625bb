"""The tenancy policy on the real cluster: the chart's operator upgraded with `policy.enabled`
and rules for a namespace of this module's own (every other namespace may name anything, so
that the pipelines of the other modules stay as they are); a pipeline that names a forbidden
service account, Secret, tracking URI and model is refused at apply by the operator's webhook,
with field-path messages, and has no Workflow; an allowed one runs to success (the Invalid
status of a pipeline the webhook did not see: tests/integration/test_operator_tenancy.py).
The release is upgraded back at the end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from hack.delivery_files import CHART_DIR
from mlpipeline_operator.api.constants import LABEL_PIPELINE
from tests.chart.helm import NAMESPACE as OPERATOR_NAMESPACE
from tests.chart.helm import RELEASE as OPERATOR_RELEASE
from tests.chart.helm import helm
from tests.e2e.cluster import NodeCluster, pipeline_namespace_objects
from tests.e2e.pipelines import FINISHED, MLPIPELINE, eventually, kubectl_apply

NAMESPACE = "tenancy"
RUN_TIMEOUT = 300.0
ROLLOUT_TIMEOUT = 180.0


def upgrade(cluster: NodeCluster, policy: dict[str, Any]) -> None:
    """`helm upgrade` of the operator's release with these `policy` values; returns once every
    replica runs the new Deployment (the old ones, which read another policy, are gone)."""
    assert cluster.control_plane is not None
    helm(
        "upgrade",
        OPERATOR_RELEASE,
        str(CHART_DIR),
        f"--kubeconfig={cluster.kubeconfig}",
        f"--namespace={OPERATOR_NAMESPACE}",
        "--reuse-values",
        f"--set-json=policy={json.dumps(policy)}",
        "--wait",
        f"--timeout={ROLLOUT_TIMEOUT:g}s",
    )

    def rolled_out(deployment: dict[str, Any] | None) -> bool:
        meta, status = (deployment or {}).get("metadata", {}), (deployment or {}).get("status", {})
        return bool(
            status.get("observedGeneration") == meta.get("generation")
            and status.get("updatedReplicas") == 2
            and status.get("availableReplicas") == 2
            and status.get("replicas") == 2
        )

    cluster.control_plane.kube.wait_for(
        "apps/v1",
        "Deployment",
        OPERATOR_RELEASE,
        OPERATOR_NAMESPACE,
        rolled_out,
        timeout=ROLLOUT_TIMEOUT,
        interval=1,
    )


@pytest.fixture(scope="module")
def policed(cluster: NodeCluster) -> Iterator[None]:
    """A namespace ready for workflows, and the operator enforcing a policy on it."""
    assert cluster.control_plane is not None
    kube = cluster.control_plane.kube
    for obj in pipeline_namespace_objects(NAMESPACE, cluster.s3_endpoint):
        kube.apply(obj)
    anything = {"serviceAccounts": ["*"], "secrets": ["*"], "trackingUris": ["*"], "models": ["*"]}
    rules = {
        "serviceAccounts": ["default"],
        "secrets": ["mlflow"],
        "trackingUris": [cluster.mlflow_uri],
        "models": ["tenancy-*"],
    }
    try:
        upgrade(
            cluster,
            {
                "enabled": True,
                "interval": 2,
                "defaults": anything,
                "namespaces": {NAMESPACE: rules},
            },
        )
        yield
    finally:
        try:
            cluster.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=false")
        finally:
            upgrade(cluster, {"enabled": False, "namespaces": {}})
            # Until the replicas that read the policy are gone (they are terminating once the
            # rollout is done), they answer the webhook for the modules that come next.
            eventually(
                lambda: not any(_reads_a_policy(pod) for pod in _operator_pods(cluster)),
                "the operator pods that read the policy gone",
                ROLLOUT_TIMEOUT,
            )


def _operator_pods(cluster: NodeCluster) -> list[dict[str, Any]]:
    assert cluster.control_plane is not None
    return cluster.control_plane.kube.list_objects(
        "v1",
        "Pod",
        OPERATOR_NAMESPACE,
        label_selector="app.kubernetes.io/name=mlpipeline-operator",
    )


def _reads_a_policy(pod: dict[str, Any]) -> bool:
    return any(
        env.get("name") == "MLPIPELINE_POLICY"
        for container in pod["spec"]["containers"]
        for env in container.get("env") or []
    )


def tenancy_pipeline(cluster: NodeCluster, name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": MLPIPELINE[0],
        "kind": MLPIPELINE[1],
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"image": cluster.images["STEP_IMAGE"], **spec},
    }


def finished(cluster: NodeCluster, name: str) -> dict[str, Any]:
    assert cluster.control_plane is not None
    kube = cluster.control_plane.kube

    def done(pipeline: dict[str, Any] | None) -> bool:
        return ((pipeline or {}).get("status") or {}).get("phase") in FINISHED

    try:
        found = kube.wait_for(*MLPIPELINE, name, NAMESPACE, done, timeout=RUN_TIMEOUT, interval=2)
    except TimeoutError:
        status = kube.get(*MLPIPELINE, name, NAMESPACE).get("status")
        raise AssertionError(
            f"MLPipeline {name} unfinished after {RUN_TIMEOUT:g}s: {status}"
        ) from None
    assert found is not None
    return found


def secret_env(secret: str, key: str) -> list[dict[str, Any]]:
    return [{"name": "VALUE", "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}]


def test_a_forbidden_pipeline_is_refused_and_an_allowed_one_runs(
    cluster: NodeCluster, policed: None
) -> None:
    assert cluster.control_plane is not None
    kube = cluster.control_plane.kube
    train = {
        "name": "train",
        "command": ["python", "-c", "import os; print(os.environ['VALUE'])"],
        "outputs": {"parameters": [{"name": "run_id", "path": "/tmp/run_id"}]},
    }
    forbidden = tenancy_pipeline(
        cluster,
        "forbidden",
        serviceAccountName="admin",
        steps=[{**train, "env": secret_env("s3-credentials", "accesskey")}],
        promotion={"model": "fraud", "from": {"step": "train", "parameter": "run_id"}},
        mlflow={"trackingUri": "http://mlflow.elsewhere:5000"},
    )
    allowed = tenancy_pipeline(
        cluster,
        "allowed",
        steps=[
            {
                "name": "train",
                "command": train["command"],
                "env": secret_env("mlflow", "MLFLOW_TRACKING_USERNAME"),
            }
        ],
    )
    # The operator's webhook refuses it at apply (the new replicas answer once the API server
    # reaches them: a dry run, which stores nothing, tells when).
    eventually(
        lambda: kubectl_apply(cluster, forbidden, "--dry-run=server").returncode == 1,
        "the webhook refusing the forbidden pipeline",
        ROLLOUT_TIMEOUT,
    )
    refused = kubectl_apply(cluster, forbidden)
    kube.apply(allowed)

    assert refused.returncode == 1
    assert refused.stderr.endswith(
        ': admission webhook "validate.mlpipelines.mlops.gitops.dev" denied the request: '
        + "\n".join(
            [
                'spec.serviceAccountName: "admin" is not allowed in namespace tenancy; '
                "allowed: default",
                'spec.steps[0].env[0].valueFrom.secretKeyRef.name: Secret "s3-credentials" is '
                "not allowed in namespace tenancy; allowed: mlflow",
                'spec.mlflow.trackingUri: "http://mlflow.elsewhere:5000" is not allowed in '
                f"namespace tenancy; allowed: {cluster.mlflow_uri}",
                'spec.promotion.model: "fraud" is not allowed in namespace tenancy; '
                "allowed: tenancy-*",
            ]
        )
        + "\n"
    ), refused.stderr
    workflows = kube.list_objects(
        "argoproj.io/v1alpha1", "Workflow", NAMESPACE, label_selector=f"{LABEL_PIPELINE}=forbidden"
    )
    assert workflows == []

    status = finished(cluster, "allowed")["status"]
    assert status["phase"] == "Succeeded", status
    assert [(s["name"], s["phase"]) for s in status["lastRun"]["steps"]] == [("train", "Succeeded")]
