"""The tenancy policy: what each namespace may name, with exact field-path messages."""

from __future__ import annotations

from typing import Any

import pytest

from mlpipeline_operator.api.models import MLPipeline
from mlpipeline_operator.core import Problem
from mlpipeline_operator.policy import (
    SINGLE_TENANT,
    Policy,
    PolicyError,
    Tenancy,
    parse_policy,
    policy_problems,
)
from mlpipeline_operator.reconcile.tenancy import tenancy_of
from tests.unit.pipelines import pipeline

POLICY = """
apiVersion: mlops.gitops.dev/v1alpha1
kind: TenancyPolicy
defaults:
  trackingUris: ["http://mlflow:5000"]
namespaces:
  team-a:
    serviceAccounts: [default, trainer]
    secrets: [mlflow, "team-a-*"]
    models: ["team-a-*", demo]
"""


def policy() -> Policy:
    return parse_policy(POLICY, "policy.yaml")


def model(change: dict[str, Any] | None = None) -> MLPipeline:
    doc = pipeline()
    doc["spec"].update(change or {})
    return MLPipeline.model_validate(doc)


def test_an_allowed_pipeline_has_no_problem() -> None:
    assert policy_problems(model(), "team-a", policy()) == []


def test_every_forbidden_reference_is_named_by_its_path() -> None:
    doc = pipeline()
    spec = doc["spec"]
    spec["serviceAccountName"] = "admin"
    spec["steps"][1]["env"] = [
        {"name": "A", "value": "1"},
        {"name": "DB", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
        {"name": "OK", "valueFrom": {"secretKeyRef": {"name": "team-a-s3", "key": "k"}}},
    ]
    spec["onExit"] = {
        "command": ["notify"],
        "env": [{"name": "T", "valueFrom": {"secretKeyRef": {"name": "slack", "key": "t"}}}],
    }
    spec["imagePullSecrets"] = [{"name": "team-a-registry"}, {"name": "regcred"}]
    spec["volumes"] = [
        {"name": "keys", "secret": {"secretName": "team-a-keys"}},
        {"name": "tls", "secret": {"secretName": "tls"}},
    ]
    spec["mlflow"] = {"trackingUri": "http://other:5000", "credentialsSecret": "root"}
    spec["promotion"]["model"] = "fraud"
    assert policy_problems(MLPipeline.model_validate(doc), "team-a", policy()) == [
        Problem(
            "spec.serviceAccountName",
            '"admin" is not allowed in namespace team-a; allowed: default, trainer',
        ),
        Problem(
            "spec.steps[1].env[1].valueFrom.secretKeyRef.name",
            'Secret "db" is not allowed in namespace team-a; allowed: mlflow, team-a-*',
        ),
        Problem(
            "spec.onExit.env[0].valueFrom.secretKeyRef.name",
            'Secret "slack" is not allowed in namespace team-a; allowed: mlflow, team-a-*',
        ),
        Problem(
            "spec.mlflow.credentialsSecret",
            'Secret "root" is not allowed in namespace team-a; allowed: mlflow, team-a-*',
        ),
        Problem(
            "spec.imagePullSecrets[1].name",
            'Secret "regcred" is not allowed in namespace team-a; allowed: mlflow, team-a-*',
        ),
        Problem(
            "spec.volumes[1].secret.secretName",
            'Secret "tls" is not allowed in namespace team-a; allowed: mlflow, team-a-*',
        ),
        Problem(
            "spec.mlflow.trackingUri",
            '"http://other:5000" is not allowed in namespace team-a; allowed: http://mlflow:5000',
        ),
        Problem(
            "spec.promotion.model",
            '"fraud" is not allowed in namespace team-a; allowed: team-a-*, demo',
        ),
    ]


def test_a_namespace_without_an_entry_gets_the_defaults_then_the_built_ins() -> None:
    """Defaults set only trackingUris: the "default" service account, no Secret, no model."""
    assert policy_problems(model(), "team-b", policy()) == [
        Problem(
            "spec.mlflow.credentialsSecret",
            'Secret "mlflow" is not allowed in namespace team-b; allowed: none',
        ),
        Problem("spec.promotion.model", '"demo" is not allowed in namespace team-b; allowed: none'),
    ]


def test_the_default_service_account_is_checked_when_the_spec_names_none() -> None:
    strict = parse_policy(
        "apiVersion: mlops.gitops.dev/v1alpha1\nkind: TenancyPolicy\n"
        "defaults: {serviceAccounts: [trainer], secrets: ['*'], trackingUris: ['*'], "
        "models: ['*']}\n",
        "p",
    )
    assert policy_problems(model(), "ml", strict) == [
        Problem(
            "spec.serviceAccountName",
            'unset, so "default" is not allowed in namespace ml; allowed: trainer',
        )
    ]
    assert policy_problems(model({"serviceAccountName": "trainer"}), "ml", strict) == []


def test_globs_match_the_whole_value_case_sensitively() -> None:
    assert [p.path for p in policy_problems(model(), "team-a", policy())] == []
    renamed = model(
        {"promotion": {"model": "Team-a-x", "from": {"step": "train", "parameter": "run_id"}}}
    )
    assert [p.message for p in policy_problems(renamed, "team-a", policy())] == [
        '"Team-a-x" is not allowed in namespace team-a; allowed: team-a-*, demo'
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: [", "p:2:1: YAML syntax error: did not find expected node content"),
        ("", "p: expected one TenancyPolicy document, found 0"),
        (
            "apiVersion: mlops.gitops.dev/v1alpha1\nkind: TenancyPolicy\n"
            "defaults: {serviceAccount: [x]}\n",
            "p: defaults.serviceAccount: unknown field",
        ),
        (
            "apiVersion: v1\nkind: TenancyPolicy\n",
            "p: not a TenancyPolicy: expected apiVersion mlops.gitops.dev/v1alpha1 and kind "
            'TenancyPolicy, got apiVersion "v1" and kind "TenancyPolicy"',
        ),
        (
            "apiVersion: mlops.gitops.dev/v1alpha1\nkind: TenancyPolicy\n"
            "namespaces: {team-a: {models: team-a}}\n",
            'p: namespaces.team-a.models: expected a list, got the string "team-a"',
        ),
    ],
)
def test_a_malformed_policy_is_refused_with_where_and_why(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as refused:
        parse_policy(text, "p")
    assert str(refused.value) == message


def test_single_tenant_mode_checks_nothing() -> None:
    assert SINGLE_TENANT.problems(model({"serviceAccountName": "admin"}), "ml") == []


def test_a_broken_policy_refuses_every_pipeline() -> None:
    broken = tenancy_of({"data": {}}, "ops/tenancy")
    assert broken == Tenancy(broken="ConfigMap ops/tenancy has no key policy.yaml")
    assert broken.problems(model(), "ml") == [
        Problem(
            "spec",
            "not checked: the tenancy policy cannot be used, so no pipeline runs until it is "
            "fixed (ConfigMap ops/tenancy has no key policy.yaml)",
        )
    ]
    assert tenancy_of(None, "ops/tenancy").broken == "ConfigMap ops/tenancy not found"
    bad = tenancy_of({"data": {"policy.yaml": "kind: TenancyPolicy"}}, "ops/tenancy")
    assert bad.broken == (
        "ConfigMap ops/tenancy key policy.yaml: not a TenancyPolicy: expected apiVersion "
        "mlops.gitops.dev/v1alpha1 and kind TenancyPolicy, got apiVersion null and kind "
        '"TenancyPolicy"'
    )


def test_the_digest_tells_policies_apart() -> None:
    first = Tenancy(policy=policy())
    assert first.digest == Tenancy(policy=policy()).digest
    assert first.digest != Tenancy(policy=parse_policy(POLICY.replace("trainer", "x"), "p")).digest
    assert first.digest != SINGLE_TENANT.digest
