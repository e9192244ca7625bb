"""The Helm chart through the real `helm` binary: lint and template with the default values and
each ci/*-values.yaml, what the templates render, the schema's refusals, and the drift of
manifests/install.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hack.delivery_files import CHART_DIR, INSTALL_YAML, install_yaml
from mlpipeline_operator.policy import Allowed, parse_policy
from tests.chart.helm import (
    CI_VALUES,
    HelmError,
    find,
    helm,
    of_kind,
    render,
)

pytestmark = pytest.mark.integration

VALUE_SETS = [None, *CI_VALUES]
WEBHOOK = "mlpipeline-operator-webhook"
WEBHOOK_CONFIGURATION_RULE = {
    "apiGroups": ["admissionregistration.k8s.io"],
    "resources": ["validatingwebhookconfigurations"],
    "resourceNames": [WEBHOOK],
    "verbs": ["get", "patch"],
}
IDS = ["default", *[p.name.removesuffix("-values.yaml") for p in CI_VALUES]]


def _render(values: Path | None, *sets: str) -> list[dict[str, Any]]:
    return render([values] if values else [], sets)


def _container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = find(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(container)


def _env(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in _container(objects)["env"]}


def test_ci_values_cover_the_modes() -> None:
    assert {p.name for p in CI_VALUES} >= {
        "namespaced-values.yaml",
        "custom-images-values.yaml",
        "standalone-values.yaml",
    }


@pytest.mark.parametrize("values", VALUE_SETS, ids=IDS)
def test_helm_lint_strict(values: Path | None) -> None:
    output = helm(
        "lint", "--strict", str(CHART_DIR), *(["--values", str(values)] if values else [])
    )
    assert "1 chart(s) linted, 0 chart(s) failed" in output


@pytest.mark.parametrize("values", VALUE_SETS, ids=IDS)
def test_template_renders_well_formed_objects(values: Path | None) -> None:
    objects = _render(values)
    for obj in objects:
        assert obj["apiVersion"] and obj["kind"] and obj["metadata"]["name"], obj
    assert len(of_kind(objects, "Deployment")) == 1
    # No rule of the operator's grants secrets (but the webhook's Role its one Secret, of the
    # same name), or anything
    # with a wildcard.
    for role in of_kind(objects, "ClusterRole") + of_kind(objects, "Role"):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], (role["metadata"]["name"], rule)
            if "secrets" in rule["resources"]:
                assert rule["resourceNames"] == [role["metadata"]["name"]], rule
    pod = find(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_default_values_cluster_wide_with_peering() -> None:
    objects = _render(None)
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(
        [
            "CustomResourceDefinition",  # clusterkopfpeerings.kopf.dev (crds/)
            "CustomResourceDefinition",  # kopfpeerings.kopf.dev (crds/)
            "CustomResourceDefinition",  # mlpipelines.mlops.gitops.dev (template)
            "ServiceAccount",
            "ClusterRole",  # the operator's
            "ClusterRoleBinding",
            "ClusterRole",  # -edit, aggregated to admin and edit
            "ClusterRole",  # -view, aggregated to view
            "Role",  # -caches, in Argo's namespace
            "RoleBinding",
            "Deployment",  # the operator creates its ClusterKopfPeering itself
            "Service",  # -metrics
            "Service",  # -webhook
            "ValidatingWebhookConfiguration",
            "Secret",  # the webhook's certificates, written by the operator
            "Role",  # -webhook: that Secret
            "RoleBinding",
            "ClusterRole",  # -webhook: the caBundle of the ValidatingWebhookConfiguration
            "ClusterRoleBinding",
        ]
    )
    caches = find(objects, "Role", "mlpipeline-operator-caches")
    assert caches["metadata"]["namespace"] == "argo"
    verbs = ["create", "delete", "get", "list", "patch"]
    assert caches["rules"] == [{"apiGroups": [""], "resources": ["configmaps"], "verbs": verbs}]
    assert find(objects, "RoleBinding", "mlpipeline-operator-caches")["roleRef"]["name"] == (
        "mlpipeline-operator-caches"
    )
    crd = find(objects, "CustomResourceDefinition", "mlpipelines.mlops.gitops.dev")
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert not of_kind(objects, "ClusterKopfPeering")  # the operator creates it
    binding = find(objects, "ClusterRoleBinding", "mlpipeline-operator")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "mlpipeline-operator", "namespace": "mlpipeline-system"}
    ]
    container = _container(objects)
    assert container["image"] == "ghcr.io/mlops-gitops/mlpipeline-operator:0.1.0"
    assert container["args"] == ["operator"]
    env = _env(objects)
    assert env["MLPIPELINE_PEERING"] == "mlpipeline-operator"
    assert env["MLPIPELINE_ARGO_NAMESPACE"] == "argo"
    assert env["MLPIPELINE_PROMOTION_IMAGE"] == container["image"]
    assert env["MLPIPELINE_LIVENESS"] == "http://0.0.0.0:8080/healthz"
    assert env["POD_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert "MLPIPELINE_NAMESPACES" not in env
    assert "MLPIPELINE_PRIORITY" not in env  # every replica draws its own
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["ports"] == [
        {"name": "health", "containerPort": 8080, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
        {"name": "webhook", "containerPort": 9443, "protocol": "TCP"},
    ]
    assert env["MLPIPELINE_METRICS"] == "http://0.0.0.0:9090/metrics"


def test_namespaced_mode_grants_nothing_cluster_wide() -> None:
    objects = _render(CHART_DIR / "ci" / "namespaced-values.yaml")
    # argo: the Role of the cache ConfigMaps; the release's: the webhook's Secret.
    namespaces = ["argo", "ml", "ml-staging", "mlpipeline-system"]
    assert sorted(r["metadata"]["namespace"] for r in of_kind(objects, "Role")) == namespaces
    assert sorted(b["metadata"]["namespace"] for b in of_kind(objects, "RoleBinding")) == namespaces
    assert not of_kind(objects, "KopfPeering") and not of_kind(objects, "ClusterKopfPeering")
    # Cluster-wide, the aggregated user roles, and the operator's get and patch on its one
    # ValidatingWebhookConfiguration (cluster-scoped), by name.
    assert {r["metadata"]["name"] for r in of_kind(objects, "ClusterRole")} == {
        "mlpipeline-operator-edit",
        "mlpipeline-operator-view",
        WEBHOOK,
    }
    assert [b["roleRef"]["name"] for b in of_kind(objects, "ClusterRoleBinding")] == [WEBHOOK]
    assert find(objects, "ClusterRole", WEBHOOK)["rules"] == [WEBHOOK_CONFIGURATION_RULE]
    role = next(r for r in of_kind(objects, "Role") if r["metadata"]["namespace"] == "ml")
    cluster_role = find(_render(None), "ClusterRole", "mlpipeline-operator")
    swapped = yaml.safe_dump(cluster_role["rules"]).replace("clusterkopfpeerings", "kopfpeerings")
    assert yaml.safe_load(swapped) == role["rules"]
    env = _env(objects)
    assert env["MLPIPELINE_NAMESPACES"] == "ml,ml-staging"
    assert find(objects, "Deployment")["spec"]["replicas"] == 2
    assert find(objects, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_custom_images() -> None:
    objects = _render(CHART_DIR / "ci" / "custom-images-values.yaml")
    container = _container(objects)
    assert container["image"] == (
        "registry.example.com/platform/mlpipeline-operator@sha256:"
        "2f1d8b6c0a3e4f5d6c7b8a9e0f1d2c3b4a5e6f7d8c9b0a1e2f3d4c5b6a7e8f90"
    )
    assert container["imagePullPolicy"] == "Always"
    assert _env(objects)["MLPIPELINE_PROMOTION_IMAGE"] == (
        "registry.example.com/platform/mlpipeline-promote:0.1.0-mlflow"
    )
    pod = find(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    # Without promotionImage values the promotion step runs the operator image, digest included.
    pinned = _render(None, "image.digest=sha256:" + "a" * 64)
    assert _env(pinned)["MLPIPELINE_PROMOTION_IMAGE"] == _container(pinned)["image"]
    assert _container(pinned)["image"].endswith("@sha256:" + "a" * 64)
    tagged = _render(None, "promotionImage.tag=9.9.9")
    assert _env(tagged)["MLPIPELINE_PROMOTION_IMAGE"] == (
        "ghcr.io/mlops-gitops/mlpipeline-operator:9.9.9"
    )


def test_standalone_without_crds_or_service_account() -> None:
    objects = _render(CHART_DIR / "ci" / "standalone-values.yaml")
    assert not of_kind(objects, "ClusterKopfPeering") and not of_kind(objects, "KopfPeering")
    assert not of_kind(objects, "ServiceAccount")
    crds = {c["metadata"]["name"] for c in of_kind(objects, "CustomResourceDefinition")}
    assert crds == {"clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"}  # crds/ (--skip-crds)
    env = _env(objects)
    assert env["MLPIPELINE_PEERING"] == ""
    assert env["MLPIPELINE_PRIORITY"] == "100"
    assert (env["MLPIPELINE_WATCH_TIMEOUT"], env["MLPIPELINE_INACTIVITY_TIMEOUT"]) == ("120", "45")
    cluster_role = find(objects, "ClusterRole", "mlpipeline-operator")
    assert "kopf.dev" not in {g for r in cluster_role["rules"] for g in r["apiGroups"]}
    pod = find(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "mlpipeline-operator"


def test_scheduling_and_tuning_values() -> None:
    objects = _render(CHART_DIR / "ci" / "scheduling-values.yaml")
    deployment = find(objects, "Deployment", "mlops-operator")
    crd = find(objects, "CustomResourceDefinition", "mlpipelines.mlops.gitops.dev")
    assert "annotations" not in crd["metadata"]  # crds.keep: false
    container = _container(objects)
    assert container["args"] == ["operator", "--watch-timeout", "600"]
    assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [
        ("health", 9090),
        ("metrics", 9091),
        ("webhook", 9443),
    ]
    assert _env(objects)["MLPIPELINE_METRICS"] == "http://0.0.0.0:9091/metrics"
    assert _env(objects)["MLPIPELINE_LIVENESS"] == "http://0.0.0.0:9090/healthz"
    assert _env(objects)["HTTPS_PROXY"] == "http://proxy.example.com:3128"
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["labels"]["example.com/tier"] == "control"
    assert pod["spec"]["priorityClassName"] == "system-cluster-critical"
    assert pod["spec"]["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "128Mi"}}]


def test_metrics_service_and_service_monitor() -> None:
    service = find(_render(None), "Service", "mlpipeline-operator-metrics")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
    ]
    selector = find(_render(None), "Deployment")["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"] == selector
    assert not of_kind(_render(None), "ServiceMonitor")  # off by default

    objects = _render(
        None,
        "metrics.port=9100",
        "metrics.serviceMonitor.enabled=true",
        "metrics.serviceMonitor.labels.release=prometheus",
        "metrics.serviceMonitor.interval=15s",
    )
    monitor = find(objects, "ServiceMonitor", "mlpipeline-operator")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["selector"] == {"matchLabels": selector}
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["mlpipeline-system"]}
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "15s"}
    ]
    service = find(objects, "Service", "mlpipeline-operator-metrics")
    assert service["spec"]["ports"][0]["port"] == 9100
    assert _container(objects)["ports"][1] == {
        "name": "metrics",
        "containerPort": 9100,
        "protocol": "TCP",
    }
    assert _env(objects)["MLPIPELINE_METRICS"] == "http://0.0.0.0:9100/metrics"

    off = _render(None, "metrics.enabled=false", "metrics.serviceMonitor.enabled=true")
    assert [o["metadata"]["name"] for o in of_kind(off, "Service")] == [WEBHOOK]
    assert not of_kind(off, "ServiceMonitor")
    assert [p["name"] for p in _container(off)["ports"]] == ["health", "webhook"]
    assert _env(off)["MLPIPELINE_METRICS"] == ""


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["imageTypo.tag=1"], "additional properties 'imageTypo' not allowed"),
        (["image.pullPolicy=Sometimes"], "pullPolicy"),
        (["replicaCount=-1"], "replicaCount"),
        (["operator.watchNamespaces={Not_A_Namespace}"], "watchNamespaces"),
        (["operator.logFormat=xml"], "logFormat"),
        (["operator.watchTimeout=2.5"], "watchTimeout"),
        (["metrics.port=0"], "metrics.port"),
        (["metrics.port=8080"], "metrics.port must differ from operator.healthPort"),
        (["metrics.serviceMonitor.interval=soon"], "interval"),
        (["replicaCount=2", "operator.peering.enabled=false"], "needs operator.peering.enabled"),
        (["replicaCount=2", "operator.priority=5"], "operator.priority must stay empty"),
        (["serviceAccount.create=false"], "serviceAccount.name is required"),
        (["policy.defaults.serviceAccount={x}"], "additional properties 'serviceAccount'"),
        (["policy.namespaces.team-a.models=team-a"], "models"),
        (["policy.interval=0"], "interval"),
        (["networkPolicy.apiServerPorts={}"], "apiServerPorts"),
    ],
)
def test_bad_values_are_refused(sets: list[str], message: str) -> None:
    with pytest.raises(HelmError) as refused:
        _render(None, *sets)
    assert message in str(refused.value)


def test_install_yaml_is_current() -> None:
    assert INSTALL_YAML.read_text() == install_yaml(), "stale: run `make manifests`"
    docs = [d for d in yaml.safe_load_all(INSTALL_YAML.read_text()) if d]
    assert docs[0]["kind"] == "Namespace"
    assert docs[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    # Nothing of a kind whose CRD the same file creates: kubectl applies it in one pass.
    kinds = {d["kind"] for d in docs}
    defined = {d["spec"]["names"]["kind"] for d in docs if d["kind"] == "CustomResourceDefinition"}
    assert not kinds & defined


def test_the_tenancy_policy_is_off_by_default() -> None:
    objects = _render(None)
    assert not of_kind(objects, "ConfigMap") and not of_kind(objects, "NetworkPolicy")
    assert "MLPIPELINE_POLICY" not in _env(objects)


def test_the_tenancy_policy_is_a_config_map_the_operator_alone_reads() -> None:
    objects = _render(CHART_DIR / "ci" / "tenancy-values.yaml")
    name = "mlpipeline-operator-tenancy"
    config_map = find(objects, "ConfigMap", name)
    assert config_map["metadata"]["namespace"] == "mlpipeline-system"
    policy = parse_policy(config_map["data"]["policy.yaml"], "chart")
    assert policy.defaults == Allowed(
        service_accounts=["default"],
        secrets=[],
        tracking_uris=["http://mlflow.mlflow:5000"],
        models=[],
    )
    assert policy.namespaces == {
        "team-a": Allowed(
            service_accounts=["default", "trainer"],
            secrets=["mlflow-credentials", "team-a-*"],
            models=["team-a-*"],
        ),
        "team-b": Allowed(models=["team-b-*"]),
    }
    role = find(objects, "Role", name)
    assert role["metadata"]["namespace"] == "mlpipeline-system"
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [name], "verbs": ["get"]}
    ]
    binding = find(objects, "RoleBinding", name)
    assert binding["roleRef"]["name"] == name
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "mlpipeline-operator", "namespace": "mlpipeline-system"}
    ]
    env = _env(objects)
    assert (env["MLPIPELINE_POLICY"], env["MLPIPELINE_POLICY_INTERVAL"]) == (
        f"mlpipeline-system/{name}",
        "5",
    )


def test_the_network_policy_lets_in_health_metrics_and_webhook_and_out_the_api_server() -> None:
    policy = find(_render(CHART_DIR / "ci" / "tenancy-values.yaml"), "NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "mlpipeline-operator",
        "app.kubernetes.io/instance": "mlpipeline-operator",
    }
    assert policy["spec"]["ingress"] == [
        {"ports": [{"port": "health", "protocol": "TCP"}]},
        {
            "ports": [{"port": "metrics", "protocol": "TCP"}],
            "from": [
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
                    }
                }
            ],
        },
        {"ports": [{"port": "webhook", "protocol": "TCP"}]},
    ]
    assert policy["spec"]["egress"] == [
        {
            "ports": [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}],
            "to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}, {"ipBlock": {"cidr": "192.168.0.10/32"}}],
        }
    ]
    anywhere = find(
        _render(
            None, "networkPolicy.enabled=true", "metrics.enabled=false", "webhook.enabled=false"
        ),
        "NetworkPolicy",
    )
    assert anywhere["spec"]["ingress"] == [{"ports": [{"port": "health", "protocol": "TCP"}]}]
    assert anywhere["spec"]["egress"] == [
        {"ports": [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}]}
    ]


def test_webhook_with_the_operators_own_certificates() -> None:
    objects = _render(None)
    service = find(objects, "Service", WEBHOOK)
    assert service["metadata"]["namespace"] == "mlpipeline-system"
    assert service["spec"]["ports"] == [
        {"name": "webhook", "port": 443, "targetPort": "webhook", "protocol": "TCP"}
    ]
    assert (
        service["spec"]["selector"]
        == find(objects, "Deployment")["spec"]["selector"]["matchLabels"]
    )
    configuration = find(objects, "ValidatingWebhookConfiguration", WEBHOOK)
    assert "annotations" not in configuration["metadata"]
    (hook,) = configuration["webhooks"]
    assert hook == {
        "name": "validate.mlpipelines.mlops.gitops.dev",
        "clientConfig": {  # no caBundle: the operator sets it
            "service": {
                "name": WEBHOOK,
                "namespace": "mlpipeline-system",
                "path": "/validate",
                "port": 443,
            }
        },
        "rules": [
            {
                "apiGroups": ["mlops.gitops.dev"],
                "apiVersions": ["v1alpha1"],
                "operations": ["CREATE", "UPDATE"],
                "resources": ["mlpipelines"],
                "scope": "Namespaced",
            }
        ],
        "failurePolicy": "Ignore",
        "timeoutSeconds": 5,
        "matchPolicy": "Equivalent",
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    }
    secret = find(objects, "Secret", WEBHOOK)
    assert secret["type"] == "Opaque" and "data" not in secret
    role = find(objects, "Role", WEBHOOK)
    assert role["metadata"]["namespace"] == "mlpipeline-system"
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": [WEBHOOK],
            "verbs": ["get", "update"],
        }
    ]
    assert find(objects, "RoleBinding", WEBHOOK)["roleRef"]["name"] == WEBHOOK
    assert find(objects, "ClusterRole", WEBHOOK)["rules"] == [WEBHOOK_CONFIGURATION_RULE]
    assert find(objects, "ClusterRoleBinding", WEBHOOK)["subjects"] == [
        {"kind": "ServiceAccount", "name": "mlpipeline-operator", "namespace": "mlpipeline-system"}
    ]
    env = _env(objects)
    assert env["MLPIPELINE_WEBHOOK"] == "https://0.0.0.0:9443/validate"
    assert env["MLPIPELINE_WEBHOOK_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    for name in ("SECRET", "SERVICE", "CONFIGURATION"):
        assert env[f"MLPIPELINE_WEBHOOK_{name}"] == WEBHOOK
    assert "MLPIPELINE_WEBHOOK_CERT_DIR" not in env


def test_webhook_in_namespaced_mode_sees_the_watched_namespaces_only() -> None:
    objects = _render(CHART_DIR / "ci" / "namespaced-values.yaml")
    (hook,) = find(objects, "ValidatingWebhookConfiguration", WEBHOOK)["webhooks"]
    assert hook["namespaceSelector"] == {
        "matchExpressions": [
            {
                "key": "kubernetes.io/metadata.name",
                "operator": "In",
                "values": ["ml", "ml-staging"],
            }
        ]
    }


def test_webhook_with_cert_manager() -> None:
    objects = _render(
        None,
        "webhook.certManager.enabled=true",
        "webhook.failurePolicy=Fail",
        "webhook.timeoutSeconds=10",
    )
    configuration = find(objects, "ValidatingWebhookConfiguration", WEBHOOK)
    assert configuration["metadata"]["annotations"] == {
        "cert-manager.io/inject-ca-from": f"mlpipeline-system/{WEBHOOK}"
    }
    (hook,) = configuration["webhooks"]
    assert (hook["failurePolicy"], hook["timeoutSeconds"]) == ("Fail", 10)
    assert find(objects, "Issuer", WEBHOOK)["spec"] == {"selfSigned": {}}
    certificate = find(objects, "Certificate", WEBHOOK)["spec"]
    assert certificate == {
        "secretName": f"{WEBHOOK}-tls",
        "issuerRef": {"kind": "Issuer", "name": WEBHOOK},
        "dnsNames": [
            WEBHOOK,
            f"{WEBHOOK}.mlpipeline-system",
            f"{WEBHOOK}.mlpipeline-system.svc",
            f"{WEBHOOK}.mlpipeline-system.svc.cluster.local",
        ],
    }
    # No Secret of its own and no rights on it or on the webhook configuration.
    assert not of_kind(objects, "Secret")
    assert {r["metadata"]["name"] for r in of_kind(objects, "Role")} == {
        "mlpipeline-operator-caches"
    }
    assert WEBHOOK not in {r["metadata"]["name"] for r in of_kind(objects, "ClusterRole")}
    env = _env(objects)
    assert env["MLPIPELINE_WEBHOOK_CERT_DIR"] == "/etc/mlpipeline-operator/webhook"
    assert not {"MLPIPELINE_WEBHOOK_SECRET", "MLPIPELINE_WEBHOOK_NAMESPACE"} & set(env)
    pod = find(objects, "Deployment")["spec"]["template"]["spec"]
    assert {"name": "webhook-certificate", "secret": {"secretName": f"{WEBHOOK}-tls"}} in pod[
        "volumes"
    ]
    assert {
        "name": "webhook-certificate",
        "mountPath": "/etc/mlpipeline-operator/webhook",
        "readOnly": True,
    } in _container(objects)["volumeMounts"]


def test_webhook_off() -> None:
    objects = _render(None, "webhook.enabled=false")
    assert not of_kind(objects, "ValidatingWebhookConfiguration")
    assert WEBHOOK not in {o["metadata"]["name"] for o in objects}
    assert not {e for e in _env(objects) if e.startswith("MLPIPELINE_WEBHOOK")}
    assert "webhook" not in {p["name"] for p in _container(objects)["ports"]}


def test_webhook_port_must_be_its_own() -> None:
    with pytest.raises(HelmError, match=r"webhook\.port must differ"):
        _render(None, "webhook.port=9090")
