"""Validation at admission on the real kube-apiserver: the operator serves its webhook on
loopback with the CA it made itself, registered by URL (no Service routing here)."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.controlplane.harness import (
    ApiException,
    ControlPlane,
    Kube,
    find_binary,
    free_port,
)
from tests.integration.operator_process import (
    PIPELINE_API,
    OperatorProcess,
    get_or_none,
    make_pipeline,
    wait,
    wait_status,
)

TIMEOUT = 30
WEBHOOK = "validate.mlpipelines.mlops.gitops.dev"
SECRET = "mlpipeline-operator-webhook"
DENIED = f'admission webhook "{WEBHOOK}" denied the request: '
PROBLEMS = (
    'spec.steps[1].dependsOn[0]: unknown step "trian" (did you mean "train"?)\n'
    'spec.steps[2].command[0]: placeholder "{{inputs.parameters.nope}}": unknown input '
    'parameter "nope"; known: "run_id"'
)
ADMISSION_API = "admissionregistration.k8s.io/v1"


def bad(doc: dict[str, Any]) -> dict[str, Any]:
    doc["spec"]["steps"][1]["dependsOn"] = ["trian"]
    doc["spec"]["steps"][2]["command"] = ["{{inputs.parameters.nope}}"]
    return doc


def webhook_configuration(
    name: str, namespace: str, port: int, failure_policy: str
) -> dict[str, Any]:
    """The chart's webhook, called by URL, for this test's namespace only (the control plane
    is shared by the whole session)."""
    return {
        "apiVersion": ADMISSION_API,
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": WEBHOOK,
                "clientConfig": {"url": f"https://127.0.0.1:{port}/validate"},
                "rules": [
                    {
                        "apiGroups": ["mlops.gitops.dev"],
                        "apiVersions": ["v1alpha1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["mlpipelines"],
                        "scope": "Namespaced",
                    }
                ],
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "failurePolicy": failure_policy,
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 10,
            }
        ],
    }


class Webhook:
    """A ValidatingWebhookConfiguration of the test's own, and the operator serving it."""

    def __init__(
        self,
        plane: ControlPlane,
        namespace: str,
        workdir: Path,
        failure_policy: str,
        replica: str = "operator",
    ) -> None:
        self.kube = plane.kube
        self.name = f"mlpipeline-{namespace}-{replica}"
        self.port = free_port()
        self.kube.create(webhook_configuration(self.name, namespace, self.port, failure_policy))
        self.operator = OperatorProcess(
            plane,
            workdir,
            [
                "--standalone",
                "--namespace",
                namespace,
                "--webhook",
                f"https://127.0.0.1:{self.port}/validate",
                "--webhook-namespace",
                namespace,
                "--webhook-configuration",
                self.name,
            ],
            name=replica,
        )

    def ca_bundle(self) -> str | None:
        configuration = self.kube.get(ADMISSION_API, "ValidatingWebhookConfiguration", self.name)
        bundle: str | None = configuration["webhooks"][0]["clientConfig"].get("caBundle")
        return bundle

    def start(self, namespace: str) -> None:
        """Start the operator; wait until the API server trusts the CA of its Secret."""
        self.operator.start()
        self.wait_injected(namespace)

    def wait_injected(self, namespace: str) -> None:
        """Wait until the webhook configuration has the CA of the operator's Secret."""

        def injected() -> bool:
            secret = get_or_none(self.kube, "Secret", namespace, SECRET, api="v1")
            return secret is not None and self.ca_bundle() == secret["data"]["ca.crt"]

        wait(injected, TIMEOUT, "the operator's CA in the webhook configuration", self.operator)

    def stop(self) -> None:
        self.operator.stop()
        self.kube.delete(ADMISSION_API, "ValidatingWebhookConfiguration", self.name)


@pytest.fixture
def webhook(control_plane: ControlPlane, namespace: str, tmp_path: Path) -> Iterator[Webhook]:
    hook = Webhook(control_plane, namespace, tmp_path, "Fail")
    hook.start(namespace)
    yield hook
    hook.stop()


def refusal(write: Callable[[], object]) -> tuple[int, str]:
    """The HTTP status and message of the API server's refusal of `write`."""
    with pytest.raises(ApiException) as caught:
        write()
    return caught.value.status, json.loads(caught.value.body)["message"]


def test_a_bad_pipeline_is_refused_at_create_with_every_field_path(
    kube: Kube, namespace: str, webhook: Webhook
) -> None:
    doc = bad(make_pipeline(namespace))
    assert refusal(lambda: kube.create(doc)) == (422, DENIED + PROBLEMS)
    assert get_or_none(kube, "MLPipeline", namespace, "demo", api=PIPELINE_API) is None


def test_kubectl_apply_shows_every_problem(
    control_plane: ControlPlane, namespace: str, webhook: Webhook, tmp_path: Path
) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(yaml.safe_dump(bad(make_pipeline(namespace))))
    result = subprocess.run(
        [
            str(find_binary("kubectl")),
            f"--kubeconfig={control_plane.kubeconfig}",
            *("apply", "-f", str(manifest)),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr == (
        f'The request is invalid: error when creating "{manifest}": {DENIED}{PROBLEMS}\n'
    )


def test_a_good_pipeline_is_admitted_and_an_update_to_bad_is_refused(
    kube: Kube, namespace: str, webhook: Webhook
) -> None:
    created = kube.create(make_pipeline(namespace))
    wait_status(kube, namespace, "demo", webhook.operator, phase="Pending")
    steps = {"spec": {"steps": bad(make_pipeline(namespace))["spec"]["steps"]}}
    update = refusal(lambda: kube.patch(PIPELINE_API, "MLPipeline", "demo", steps, namespace))
    assert update == (422, DENIED + PROBLEMS)
    stored = kube.get(PIPELINE_API, "MLPipeline", "demo", namespace)
    assert stored["spec"] == created["spec"]


def test_with_the_webhook_down_and_ignore_the_operator_marks_it_invalid_later(
    control_plane: ControlPlane, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    hook = Webhook(control_plane, namespace, tmp_path, "Ignore")
    try:
        kube.create(bad(make_pipeline(namespace)))  # nothing listens: admitted
        hook.start(namespace)
        status = wait_status(kube, namespace, "demo", hook.operator, phase="Invalid")
        assert status["message"] == PROBLEMS.replace("\n", "; ")
        # Still writable without adding a problem: a label, kopf's own annotations.
        labelled = {"metadata": {"labels": {"team": "fraud"}}}
        kube.patch(PIPELINE_API, "MLPipeline", "demo", labelled, namespace)
        stored = kube.get(PIPELINE_API, "MLPipeline", "demo", namespace)
        assert stored["metadata"]["labels"] == {"team": "fraud"}
    finally:
        hook.stop()


def test_two_replicas_starting_at_once_serve_certificates_of_one_ca(
    control_plane: ControlPlane, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    """Started at once with no Secret yet: whichever stores its certificates first, the other
    reads them (a lost race is a 409, then a read; see tests/unit/test_webhook_certificates.py):
    both serve a certificate that the stored CA verifies, and both answer reviews."""
    hooks = [Webhook(control_plane, namespace, tmp_path, "Fail", f"r{i}") for i in (1, 2)]
    try:
        for hook in hooks:
            hook.operator.start(wait_healthy=False)
        for hook in hooks:
            hook.wait_injected(namespace)
        secret = kube.get("v1", "Secret", SECRET, namespace)
        ca = tmp_path / "ca.crt"
        ca.write_bytes(base64.b64decode(secret["data"]["ca.crt"]))
        context = ssl.create_default_context(cafile=ca)
        for hook in hooks:
            with (
                socket.create_connection(("127.0.0.1", hook.port)) as raw,
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
            ):
                assert tls.version() is not None  # verified by the stored CA
        doc = bad(make_pipeline(namespace))
        assert refusal(lambda: kube.create(doc)) == (422, DENIED + PROBLEMS)
    finally:
        for hook in hooks:
            hook.stop()
