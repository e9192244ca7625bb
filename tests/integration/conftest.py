"""Fixtures of the integration tier: one control plane per session, one namespace per test.

Every test under tests/integration/ is marked ``integration``. A missing binary makes the
fixtures fail with MissingBinaryError (run `make binaries`); nothing is skipped.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.controlplane.harness import (
    ControlPlane,
    Kube,
    ManagedProcess,
    find_binary,
    running_control_plane,
)
from tests.integration.operator_process import OperatorProcess

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.integration)


# The API server records every watch of the resources the operator watches when it ends, so
# that a test can tell that the operator's watches ended and started again.
WATCH_AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived", "ResponseStarted"],
    "rules": [
        {
            "level": "Metadata",
            "verbs": ["watch"],
            "resources": [
                {"group": "argoproj.io", "resources": ["workflows", "cronworkflows"]},
                {"group": "mlops.gitops.dev", "resources": ["mlpipelines"]},
            ],
        },
        {"level": "None"},
    ],
}


@pytest.fixture(scope="session")
def audit_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The API server's audit log: one JSON line per ended watch (WATCH_AUDIT_POLICY)."""
    return tmp_path_factory.mktemp("audit") / "audit.log"


@pytest.fixture(scope="session")
def control_plane(audit_log: Path) -> Iterator[ControlPlane]:
    """etcd + kube-apiserver with this project's CRD and Argo's full CRDs installed."""
    policy = audit_log.with_name("policy.json")
    policy.write_text(json.dumps(WATCH_AUDIT_POLICY))
    audit_args = [
        f"--audit-policy-file={policy}",
        f"--audit-log-path={audit_log}",
        "--audit-log-format=json",
    ]
    with running_control_plane(extra_apiserver_args=audit_args) as plane:
        yield plane


@pytest.fixture(scope="session")
def kube(control_plane: ControlPlane) -> Kube:
    """Admin helpers: create / apply (fieldValidation=Strict) / get / patch / delete."""
    return control_plane.kube


@pytest.fixture(scope="session")
def controller_manager(control_plane: ControlPlane) -> ManagedProcess:
    """Opt-in: kube-controller-manager (garbage collector and namespace controllers).

    It keeps running for the rest of the session once a test asked for it.
    """
    return control_plane.start_controller_manager()


def _namespace_name(node_name: str) -> str:
    base = re.sub(r"[^a-z0-9-]+", "-", node_name.lower()).strip("-")[:40].strip("-")
    return f"t-{base}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def namespace(request: pytest.FixtureRequest, kube: Kube) -> Iterator[str]:
    """A fresh namespace for this test, deleted afterwards."""
    name = _namespace_name(request.node.name)
    kube.create_namespace(name, labels={"mlpipeline-tests": "true"})
    yield name
    kube.delete_namespace(name)


@pytest.fixture(scope="session")
def argo_validate() -> Path:
    """The argo-validate binary (Argo's own workflow validator)."""
    return find_binary("argo-validate")


@pytest.fixture
def operator(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """The operator watching the test's namespace, standalone (no peering)."""
    process = OperatorProcess(control_plane, tmp_path, ["--standalone", "--namespace", namespace])
    process.start()
    yield process
    process.stop()
