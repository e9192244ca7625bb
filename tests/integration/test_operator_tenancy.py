"""The tenancy policy with a real `mlpipeline operator` process on the real kube-apiserver: a
pipeline that names what its namespace may not use is Invalid with field-path messages, an
allowed one runs, and a change of the policy's ConfigMap checks every pipeline again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlpipeline_operator.core import run_name
from tests.controlplane.harness import ControlPlane, Kube
from tests.integration.operator_process import (
    OperatorProcess,
    get_or_none,
    make_pipeline,
    pipeline_status,
    wait_status,
)

TIMEOUT = 30
POLICY_NAME = "tenancy"


def policy_config_map(namespace: str, rules: dict[str, Any]) -> dict[str, Any]:
    policy = {
        "apiVersion": "mlops.gitops.dev/v1alpha1",
        "kind": "TenancyPolicy",
        "namespaces": {namespace: rules},
    }
    return config_map(namespace, yaml.safe_dump(policy))


def config_map(namespace: str, text: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": POLICY_NAME, "namespace": namespace},
        "data": {"policy.yaml": text},
    }


RULES = {
    "serviceAccounts": ["default", "trainer"],
    "secrets": ["mlflow"],
    "trackingUris": ["http://mlflow:5000"],
    "models": ["demo"],
}


@pytest.fixture
def policed(
    control_plane: ControlPlane, kube: Kube, namespace: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """The operator with the policy of RULES for the test's namespace, read every 0.2 s."""
    kube.apply(policy_config_map(namespace, RULES))
    process = OperatorProcess(
        control_plane,
        tmp_path,
        ["--standalone", "--namespace", namespace, "--policy", f"{namespace}/{POLICY_NAME}"],
        env={"MLPIPELINE_POLICY_INTERVAL": "0.2"},
    )
    process.start()
    yield process
    process.stop()


def forbidden(namespace: str) -> dict[str, Any]:
    doc = make_pipeline(namespace, "forbidden", serviceAccountName="admin")
    doc["spec"]["steps"][1]["env"] = [
        {"name": "DB", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}
    ]
    doc["spec"]["mlflow"]["trackingUri"] = "http://other:5000"
    doc["spec"]["promotion"]["model"] = "fraud"
    return doc


def refusals(namespace: str) -> str:
    """The status message of `forbidden` under RULES."""
    return "; ".join(
        [
            'spec.serviceAccountName: "admin" is not allowed in namespace '
            f"{namespace}; allowed: default, trainer",
            'spec.steps[1].env[0].valueFrom.secretKeyRef.name: Secret "db" is not allowed in '
            f"namespace {namespace}; allowed: mlflow",
            'spec.mlflow.trackingUri: "http://other:5000" is not allowed in namespace '
            f"{namespace}; allowed: http://mlflow:5000",
            f'spec.promotion.model: "fraud" is not allowed in namespace {namespace}; allowed: demo',
        ]
    )


def test_a_forbidden_pipeline_is_invalid_and_an_allowed_one_runs(
    kube: Kube, namespace: str, policed: OperatorProcess
) -> None:
    kube.create(make_pipeline(namespace, "allowed"))
    kube.create(forbidden(namespace))
    status = wait_status(kube, namespace, "forbidden", policed, TIMEOUT, phase="Invalid")
    assert status["message"] == refusals(namespace)
    assert get_or_none(kube, "Workflow", namespace, run_name(namespace, "forbidden", 1)) is None
    wait_status(kube, namespace, "allowed", policed, TIMEOUT, phase="Pending")
    assert get_or_none(kube, "Workflow", namespace, run_name(namespace, "allowed", 1))


def test_a_policy_change_checks_every_pipeline_again(
    kube: Kube, namespace: str, policed: OperatorProcess
) -> None:
    kube.create(make_pipeline(namespace, "allowed"))
    kube.create(forbidden(namespace))
    wait_status(kube, namespace, "forbidden", policed, TIMEOUT, message=refusals(namespace))
    wait_status(kube, namespace, "allowed", policed, TIMEOUT, phase="Pending")

    # Everything allowed but the model "demo": the forbidden one runs, the allowed one stops.
    opened = {"serviceAccounts": ["*"], "secrets": ["*"], "trackingUris": ["*"], "models": ["f*"]}
    kube.apply(policy_config_map(namespace, opened))
    wait_status(kube, namespace, "forbidden", policed, TIMEOUT, phase="Pending")
    assert get_or_none(kube, "Workflow", namespace, run_name(namespace, "forbidden", 1))
    status = wait_status(kube, namespace, "allowed", policed, TIMEOUT, phase="Invalid")
    assert status["message"] == (
        f'spec.promotion.model: "demo" is not allowed in namespace {namespace}; allowed: f*'
    )

    # A policy that does not parse refuses every pipeline, and the operator goes on.
    kube.apply(config_map(namespace, "apiVersion: mlops.gitops.dev/v1alpha1\nkind: Tenancy\n"))
    refusal = (
        "spec: not checked: the tenancy policy cannot be used, so no pipeline runs until it is "
        f"fixed (ConfigMap {namespace}/{POLICY_NAME} key policy.yaml: not a TenancyPolicy: "
        "expected apiVersion mlops.gitops.dev/v1alpha1 and kind TenancyPolicy, got apiVersion "
        '"mlops.gitops.dev/v1alpha1" and kind "Tenancy")'
    )
    for name in ("allowed", "forbidden"):
        wait_status(kube, namespace, name, policed, TIMEOUT, phase="Invalid", message=refusal)
    assert policed.exit_code() is None
    assert "tenancy policy refuses every pipeline" in policed.log()

    # Fixed: both are checked again against the policy.
    kube.apply(policy_config_map(namespace, RULES))
    wait_status(kube, namespace, "allowed", policed, TIMEOUT, phase="Pending")
    wait_status(
        kube,
        namespace,
        "forbidden",
        policed,
        TIMEOUT,
        phase="Invalid",
        message=refusals(namespace),
    )


def test_a_missing_policy_config_map_refuses_every_pipeline(
    control_plane: ControlPlane, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    process = OperatorProcess(
        control_plane,
        tmp_path,
        ["--standalone", "--namespace", namespace, "--policy", f"{namespace}/{POLICY_NAME}"],
        env={"MLPIPELINE_POLICY_INTERVAL": "0.2"},
    )
    process.start()
    try:
        kube.create(make_pipeline(namespace, "allowed"))
        status = wait_status(kube, namespace, "allowed", process, TIMEOUT, phase="Invalid")
        assert status["message"] == (
            "spec: not checked: the tenancy policy cannot be used, so no pipeline runs until it "
            f"is fixed (ConfigMap {namespace}/{POLICY_NAME} not found)"
        )
        kube.apply(policy_config_map(namespace, RULES))
        wait_status(kube, namespace, "allowed", process, TIMEOUT, phase="Pending")
        assert pipeline_status(kube, namespace, "allowed")["observedGeneration"] == 1
    finally:
        process.stop()
