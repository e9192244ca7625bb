"""The chart against the real kube-apiserver: `helm install` and `helm upgrade` for real (default
values; `helm uninstall` at the end, in the fixture), server-side dry-run with
fieldValidation=Strict of what every values set renders, and every pod template admitted under
the restricted Pod Security Standard."""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import pytest

from hack.delivery_files import CHART_DIR
from mlpipeline_operator.reconcile.certificates import issue
from tests.chart.conftest import ChartPlane, ensure_namespace
from tests.chart.helm import CI_VALUES, NAMESPACE, RELEASE, find, helm, render
from tests.controlplane.harness import ApiException, Kube

pytestmark = pytest.mark.integration

VALUE_SETS = [None, *CI_VALUES]
IDS = ["default", *[p.name.removesuffix("-values.yaml") for p in CI_VALUES]]
WEBHOOK = "mlpipeline-operator-webhook"
ADMISSION_API = "admissionregistration.k8s.io/v1"
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}


def _pod_from(deployment: dict[str, Any], namespace: str, name: str) -> dict[str, Any]:
    template = deployment["spec"]["template"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": template["metadata"]["labels"],
        },
        "spec": copy.deepcopy(template["spec"]),
    }


def _namespaces_of(objects: list[dict[str, Any]]) -> set[str]:
    return {o["metadata"]["namespace"] for o in objects if o["metadata"].get("namespace")}


@pytest.mark.parametrize("values", VALUE_SETS, ids=IDS)
def test_server_side_dry_run_strict(
    chart_plane: ChartPlane, installed_chart: list[dict[str, Any]], values: Path | None
) -> None:
    kube = chart_plane.kube
    objects = render([values] if values else [])
    for namespace in _namespaces_of(objects):
        ensure_namespace(kube, namespace)
    for obj in objects:
        try:
            kube.apply(obj, dry_run=True, field_validation="Strict")
        except ApiException as error:
            raise AssertionError(f"{obj['kind']} {obj['metadata']['name']}: {error.body}") from None


def test_helm_install_created_every_object(
    chart_plane: ChartPlane, installed_chart: list[dict[str, Any]]
) -> None:
    """CRDs, RBAC, the Deployment and the ClusterKopfPeering, whose CRD came from crds/ first."""
    kube = chart_plane.kube
    for obj in installed_chart:
        namespace = obj["metadata"].get("namespace")
        live = kube.get(obj["apiVersion"], obj["kind"], obj["metadata"]["name"], namespace)
        assert live["metadata"]["uid"]
    deployment = kube.get("apps/v1", "Deployment", RELEASE, NAMESPACE)
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "mlpipeline-operator"
    crd = kube.get(
        "apiextensions.k8s.io/v1", "CustomResourceDefinition", "mlpipelines.mlops.gitops.dev"
    )
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_helm_upgrade(chart_plane: ChartPlane, installed_chart: list[dict[str, Any]]) -> None:
    kube = chart_plane.kube
    kubeconfig = ["--kubeconfig", str(chart_plane.plane.kubeconfig), "--namespace", NAMESPACE]
    # What the operator writes into the webhook's Secret and configuration: an upgrade keeps it.
    certificates = issue(["mlpipeline-operator-webhook"])
    data = {"ca.crt": base64.b64encode(certificates.ca).decode(), "tls.crt": "", "tls.key": ""}
    kube.patch("v1", "Secret", WEBHOOK, {"data": data}, NAMESPACE)
    configuration = kube.get(ADMISSION_API, "ValidatingWebhookConfiguration", WEBHOOK)
    (hook,) = configuration["webhooks"]
    hook["clientConfig"]["caBundle"] = data["ca.crt"]
    kube.patch(ADMISSION_API, "ValidatingWebhookConfiguration", WEBHOOK, configuration)
    helm("upgrade", RELEASE, str(CHART_DIR), *kubeconfig, "--set", "replicaCount=2")
    assert kube.get("apps/v1", "Deployment", RELEASE, NAMESPACE)["spec"]["replicas"] == 2
    # Without values helm would reuse the last ones: back to the chart's defaults.
    helm("upgrade", RELEASE, str(CHART_DIR), *kubeconfig, "--reset-values")
    assert kube.get("apps/v1", "Deployment", RELEASE, NAMESPACE)["spec"]["replicas"] == 1
    assert kube.get("v1", "Secret", WEBHOOK, NAMESPACE)["data"] == data
    configuration = kube.get(ADMISSION_API, "ValidatingWebhookConfiguration", WEBHOOK)
    assert configuration["webhooks"][0]["clientConfig"]["caBundle"] == data["ca.crt"]


@pytest.mark.parametrize("values", VALUE_SETS, ids=IDS)
def test_pod_template_meets_the_restricted_pod_security_standard(
    chart_plane: ChartPlane, values: Path | None
) -> None:
    """PodSecurity admission only warns about a Deployment's template: a bare Pod made of the
    template is created (dry-run) in a namespace that enforces `restricted`, where a
    non-compliant Pod is refused."""
    kube: Kube = chart_plane.kube
    namespace = "pss-restricted"
    ensure_namespace(kube, namespace, RESTRICTED)
    deployment = copy.deepcopy(find(render([values] if values else []), "Deployment"))
    deployment["metadata"]["namespace"] = namespace
    kube.apply(deployment, dry_run=True)
    kube.create(_pod_from(deployment, namespace, "operator-pod"), dry_run=True)


def test_restricted_namespace_refuses_a_non_compliant_pod(chart_plane: ChartPlane) -> None:
    """The check above has teeth: the same Pod without its hardening is refused."""
    kube = chart_plane.kube
    namespace = "pss-restricted"
    ensure_namespace(kube, namespace, RESTRICTED)
    pod = _pod_from(find(render(), "Deployment"), namespace, "weak-pod")
    for field in ("runAsNonRoot", "seccompProfile"):
        weak = copy.deepcopy(pod)
        del weak["spec"]["securityContext"][field]
        with pytest.raises(ApiException) as refused:
            kube.create(weak, dry_run=True)
        assert refused.value.status == 403 and "restricted" in str(refused.value.body)
    weak = copy.deepcopy(pod)
    weak["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    with pytest.raises(ApiException) as refused:
        kube.create(weak, dry_run=True)
    assert "allowPrivilegeEscalation" in str(refused.value.body)
