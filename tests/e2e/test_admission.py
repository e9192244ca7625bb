"""Validation at admission on the real cluster: the chart's webhook, served by the operator's
pods behind their Service, with the CA the operator made and put into the webhook
configuration; `kubectl apply` of a bad pipeline is refused with every field path."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.helm import NAMESPACE as OPERATOR_NAMESPACE
from tests.controlplane.harness import ApiException
from tests.e2e.cluster import PIPELINE_NAMESPACE, NodeCluster
from tests.e2e.pipelines import MLPIPELINE, apply_pipeline, eventually, kubectl_apply, pipeline

WEBHOOK = "mlpipeline-operator-webhook"
DENIED = 'admission webhook "validate.mlpipelines.mlops.gitops.dev" denied the request: '
PROBLEMS = (
    'spec.steps[1].command[1]: placeholder "{{inputs.parameters.model}}": unknown input '
    'parameter "model"; none is declared\n'
    'spec.steps[1].dependsOn[0]: unknown step "trian" (did you mean "train"?)'
)


def steps() -> list[dict[str, Any]]:
    return [
        {"name": "train", "command": ["python", "-c", "print('trained')"]},
        {"name": "evaluate", "command": ["python", "-c", "print('evaluated')"]},
    ]


def bad(cluster: NodeCluster) -> dict[str, Any]:
    doc = pipeline(cluster, "admission", steps())
    doc["spec"]["steps"][1]["dependsOn"] = ["trian"]
    doc["spec"]["steps"][1]["command"] = ["python", "{{inputs.parameters.model}}"]
    return doc


def webhook_calls(cluster: NodeCluster) -> str:
    """What the API server logged of its calls to the webhook (why it failed open), and the
    operator pods' log lines about the webhook."""
    assert cluster.control_plane is not None and cluster.control_plane.workdir is not None
    log = (cluster.control_plane.workdir / "kube-apiserver.log").read_text(errors="replace")
    calls = [line for line in log.splitlines() if "webhook" in line.lower()][-10:]
    pods = cluster.kubectl(
        "logs",
        "-n",
        OPERATOR_NAMESPACE,
        "-l",
        "app.kubernetes.io/name=mlpipeline-operator",
        "--tail=200",
        "--prefix",
    )
    ours = [line for line in pods.splitlines() if "webhook" in line.lower()]
    return "\n".join(["API server:", *calls, "operator:", *ours])


def test_the_operators_pods_refuse_a_bad_pipeline_at_apply(cluster: NodeCluster) -> None:
    assert cluster.control_plane is not None
    kube = cluster.control_plane.kube

    def ca_injected() -> bool:
        secret = kube.get("v1", "Secret", WEBHOOK, OPERATOR_NAMESPACE)
        configuration = kube.get(
            "admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", WEBHOOK
        )
        bundle = configuration["webhooks"][0]["clientConfig"].get("caBundle")
        return bundle is not None and bundle == (secret.get("data") or {}).get("ca.crt")

    eventually(ca_injected, "the operator's CA in the webhook configuration", 60)
    # The API server takes up the new caBundle, and the Service its endpoints, a moment later;
    # until then a call fails and failurePolicy Ignore admits. A dry run stores nothing.
    eventually(
        lambda: kubectl_apply(cluster, bad(cluster), "--dry-run=server").returncode == 1,
        "the webhook answering a dry run",
        60,
    )

    refused = kubectl_apply(cluster, bad(cluster))
    assert refused.returncode == 1, webhook_calls(cluster)
    assert refused.stderr.endswith(f"{DENIED}{PROBLEMS}\n"), refused.stderr
    with pytest.raises(ApiException) as missing:
        kube.get(*MLPIPELINE, "admission", PIPELINE_NAMESPACE)
    assert missing.value.status == 404

    good = pipeline(cluster, "admission", steps())
    apply_pipeline(cluster, good)
    stored = kube.get(*MLPIPELINE, "admission", PIPELINE_NAMESPACE)
    assert stored["metadata"]["generation"] == 1
    # An update to bad: refused, the stored spec unchanged.
    refused = kubectl_apply(cluster, bad(cluster))
    assert refused.returncode == 1
    assert refused.stderr.endswith(f"{DENIED}{PROBLEMS}\n"), refused.stderr
    assert kube.get(*MLPIPELINE, "admission", PIPELINE_NAMESPACE)["metadata"]["generation"] == 1
    kube.delete(*MLPIPELINE, "admission", PIPELINE_NAMESPACE)
