"""The control plane itself: versions, RBAC, namespaces, garbage collection."""

from __future__ import annotations

import json
import time

import pytest
from kubernetes import client as k8s

from tests.controlplane.harness import ApiException, ControlPlane, Kube, ManagedProcess


def test_server_version_is_stamped(control_plane: ControlPlane) -> None:
    info = k8s.VersionApi(control_plane.api_client).get_code()
    assert info.git_version.startswith("v1."), info.git_version
    assert "master" not in info.git_version
    assert info.major == "1"
    assert int(info.minor.rstrip("+")) >= 33


def test_listens_on_loopback_only(control_plane: ControlPlane) -> None:
    assert control_plane.server.startswith("https://127.0.0.1:")
    assert control_plane.etcd_url.startswith("http://127.0.0.1:")


def test_argo_and_project_crds_are_served(kube: Kube) -> None:
    assert kube.resource("argoproj.io/v1alpha1", "Workflow").plural == "workflows"
    assert kube.resource("argoproj.io/v1alpha1", "CronWorkflow").plural == "cronworkflows"
    assert kube.resource("argoproj.io/v1alpha1", "WorkflowTemplate").plural == "workflowtemplates"
    assert kube.resource("mlops.gitops.dev/v1alpha1", "MLPipeline").plural == "mlpipelines"


def test_rbac_denies_a_service_account_without_bindings(kube: Kube, namespace: str) -> None:
    nobody = f"system:serviceaccount:{namespace}:nobody"
    with pytest.raises(ApiException) as denied:
        kube.list_objects("v1", "Secret", namespace, as_user=nobody)
    assert denied.value.status == 403
    status = json.loads(denied.value.body or "{}")
    assert status.get("reason") == "Forbidden"
    assert 'cannot list resource "secrets"' in status.get("message", "")

    # The same identity is allowed once a Role grants it: RBAC decides, nothing else.
    kube.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "secret-reader"},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}],
        },
        namespace,
    )
    kube.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "nobody-reads-secrets"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "secret-reader",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "nobody", "namespace": namespace}],
        },
        namespace,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            assert kube.list_objects("v1", "Secret", namespace, as_user=nobody) == []
            break
        except ApiException as exc:  # the authorizer's cache catches up within moments
            if exc.status != 403 or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_namespaces_are_isolated(kube: Kube, namespace: str) -> None:
    assert namespace.startswith("t-test-namespaces-are-isolated-")
    assert kube.list_objects("v1", "ConfigMap", namespace) == []


def test_garbage_collector_deletes_dependents(
    kube: Kube, namespace: str, controller_manager: ManagedProcess
) -> None:
    assert controller_manager.running()
    owner = kube.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}}, namespace
    )
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "dependent",
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "name": "owner",
                        "uid": owner["metadata"]["uid"],
                    }
                ],
            },
        },
        namespace,
    )
    kube.delete("v1", "ConfigMap", "owner", namespace)
    kube.wait_for("v1", "ConfigMap", "dependent", namespace, lambda obj: obj is None, timeout=60)
