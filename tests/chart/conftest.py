"""Fixtures of the chart tier: one control plane for the package, with an audit log of what
service accounts do (the RBAC proof reads it) and the OwnerReferencesPermissionEnforcement
admission plugin (so that blockOwnerDeletion is checked against mlpipelines/finalizers, as on
clusters that enable it).

Tests that need helm or the control plane are marked `integration` in their modules.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from hack.delivery_files import CHART_DIR
from tests.chart.helm import NAMESPACE, RELEASE, helm, render
from tests.controlplane.harness import ApiException, ControlPlane, Kube, argo_crd_files

AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "Metadata", "userGroups": ["system:serviceaccounts"]},
        {"level": "None"},
    ],
}


@dataclass
class ChartPlane:
    plane: ControlPlane
    audit_log: Path

    @property
    def kube(self) -> Kube:
        return self.plane.kube

    def audit_mark(self) -> int:
        """Where the audit log is now: `audit_events(since=...)` reads what comes after."""
        return len(self.audit_log.read_text().splitlines())

    def audit_events(self, username: str, since: int = 0) -> list[dict[str, Any]]:
        """Requests of one user, from the API server's audit log (from line `since` on):
        completed ones, and watches from the moment they started (their completion is logged
        only when they end)."""
        stages = {"ResponseStarted", "ResponseComplete"}
        events = []
        for line in self.audit_log.read_text().splitlines()[since:]:
            event = json.loads(line)
            if event.get("stage") in stages and event["user"]["username"] == username:
                events.append(event)
        return events


@pytest.fixture(scope="package")
def chart_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChartPlane]:
    """etcd + kube-apiserver (audited), with Argo's CRDs installed."""
    workdir = tmp_path_factory.mktemp("chart-plane")
    policy = workdir / "audit-policy.yaml"
    policy.write_text(yaml.safe_dump(AUDIT_POLICY))
    audit_log = workdir / "audit.log"
    args = [
        f"--audit-policy-file={policy}",
        f"--audit-log-path={audit_log}",
        "--audit-log-format=json",
        "--enable-admission-plugins=OwnerReferencesPermissionEnforcement",
    ]
    with ControlPlane(extra_apiserver_args=args) as plane:
        plane.install_crds(argo_crd_files())
        yield ChartPlane(plane, audit_log)


def ensure_namespace(kube: Kube, name: str, labels: dict[str, str] | None = None) -> None:
    try:
        kube.create_namespace(name, labels=labels)
    except ApiException as error:
        if error.status != 409:
            raise


@pytest.fixture(scope="package")
def installed_chart(chart_plane: ChartPlane) -> Iterator[list[dict[str, Any]]]:
    """`helm install` of the chart with its default values, for real, into a namespace that
    enforces the restricted Pod Security Standard; yields the chart's objects.

    Afterwards `helm uninstall` must remove the operator and keep the MLPipeline CRD
    (crds.keep) and the peering CRDs (crds/ folder)."""
    plane = chart_plane.plane
    kube = chart_plane.kube
    ensure_namespace(kube, NAMESPACE, {"pod-security.kubernetes.io/enforce": "restricted"})
    ensure_namespace(kube, "argo")  # Argo's, where the chart's Role of the step caches goes
    kubeconfig = ["--kubeconfig", str(plane.kubeconfig), "--namespace", NAMESPACE]
    helm("install", RELEASE, str(CHART_DIR), *kubeconfig)
    for crd in (
        "mlpipelines.mlops.gitops.dev",
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
    ):
        kube.wait_for(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            crd,
            None,
            lambda obj: any(
                c["type"] == "Established" and c["status"] == "True"
                for c in (obj or {}).get("status", {}).get("conditions", [])
            ),
        )
    yield render()
    helm("uninstall", RELEASE, *kubeconfig)
    left = {
        crd["metadata"]["name"]
        for crd in kube.list_objects("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    }
    assert {"mlpipelines.mlops.gitops.dev", "clusterkopfpeerings.kopf.dev"} <= left
    with pytest.raises(ApiException) as gone:
        kube.get("rbac.authorization.k8s.io/v1", "ClusterRole", RELEASE)
    assert gone.value.status == 404
