"""Validation at admission: the AdmissionReview answers, exact."""

from __future__ import annotations

from typing import Any

import pytest

from mlpipeline_operator import admission
from mlpipeline_operator.admission import admission_review
from mlpipeline_operator.policy import Tenancy, parse_policy
from mlpipeline_operator.validation import validate_document
from tests.unit.pipelines import pipeline

Doc = dict[str, Any]
KNOWN = 'known: "evaluate", "extract", "train"'
UNKNOWN_GHOST = f'spec.promotion.from.step: unknown step "ghost"; {KNOWN}'
UNKNOWN_NOPE = f'spec.steps[0].dependsOn[0]: unknown step "nope"; {KNOWN}'


def bad() -> Doc:
    doc = pipeline()
    doc["spec"]["steps"][0]["dependsOn"] = ["nope"]
    doc["spec"]["promotion"]["from"]["step"] = "ghost"
    return doc


def review(operation: str, obj: Doc | None, old: Doc | None = None) -> Doc:
    request: Doc = {"uid": "4b1c", "operation": operation, "object": obj}
    if old is not None:
        request["oldObject"] = old
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def allowed() -> Doc:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": "4b1c", "allowed": True},
    }


def denied(*problems: str) -> Doc:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {
            "uid": "4b1c",
            "allowed": False,
            "status": {"code": 422, "reason": "Invalid", "message": "\n".join(problems)},
        },
    }


def test_a_valid_pipeline_is_admitted() -> None:
    assert admission_review(review("CREATE", pipeline())) == allowed()


def test_a_create_is_refused_with_every_problem_one_a_line() -> None:
    assert admission_review(review("CREATE", bad())) == denied(UNKNOWN_GHOST, UNKNOWN_NOPE)


def test_a_shape_problem_names_its_field() -> None:
    doc = pipeline()
    doc["spec"]["steps"][1]["name"] = "Bad_Name"
    assert admission_review(review("CREATE", doc)) == denied(
        "spec.steps[1].name: \"Bad_Name\" must be lower-case letters, digits and '-', start "
        "with a letter and not end with '-'"
    )


def test_an_update_to_invalid_is_refused() -> None:
    assert admission_review(review("UPDATE", bad(), pipeline())) == denied(
        UNKNOWN_GHOST, UNKNOWN_NOPE
    )


def test_an_update_adding_a_problem_to_an_invalid_pipeline_is_refused() -> None:
    old = pipeline()
    old["spec"]["promotion"]["from"]["step"] = "ghost"
    assert admission_review(review("UPDATE", bad(), old)) == denied(UNKNOWN_GHOST, UNKNOWN_NOPE)


def test_an_update_of_an_already_invalid_pipeline_that_adds_no_problem_is_admitted() -> None:
    """kopf's annotations, a label, a finalizer removed, half of the problems fixed."""
    labelled = bad()
    labelled["metadata"]["labels"] = {"team": "fraud"}
    assert admission_review(review("UPDATE", labelled, bad())) == allowed()
    half_fixed = bad()
    half_fixed["spec"]["steps"][0].pop("dependsOn")
    assert admission_review(review("UPDATE", half_fixed, bad())) == allowed()


def test_other_operations_are_admitted() -> None:
    assert admission_review(review("DELETE", None, bad())) == allowed()


@pytest.mark.parametrize("body", [{}, [], {"request": {"operation": "CREATE"}}, {"request": []}])
def test_what_is_not_an_admission_review_is_an_error(body: Any) -> None:
    with pytest.raises(ValueError, match=r"^not an AdmissionReview: expected request.uid$"):
        admission_review(body)


TEAM_A_POLICY = """apiVersion: mlops.gitops.dev/v1alpha1
kind: TenancyPolicy
defaults:
  secrets: [mlflow]
  trackingUris: ["http://mlflow:5000"]
  models: [demo]
namespaces:
  team-a:
    serviceAccounts: [trainer]
"""


def test_the_tenancy_policy_in_force_refuses_what_the_namespace_may_not_use() -> None:
    tenancy = Tenancy(policy=parse_policy(TEAM_A_POLICY, "test"))
    request = review("CREATE", pipeline())
    request["request"]["namespace"] = "team-a"

    assert admission_review(request, tenancy) == denied(
        'spec.serviceAccountName: unset, so "default" is not allowed in namespace team-a; '
        "allowed: trainer"
    )
    # Single-tenant mode (no policy): the same pipeline is admitted.
    assert admission_review(request) == allowed()


def test_a_policy_that_cannot_be_used_refuses_a_create_but_not_an_update_it_does_not_worsen() -> (
    None
):
    tenancy = Tenancy(broken="ConfigMap ops/tenancy: not found")
    message = (
        "spec: not checked: the tenancy policy cannot be used, so no pipeline runs until it is "
        "fixed (ConfigMap ops/tenancy: not found)"
    )
    assert admission_review(review("CREATE", pipeline()), tenancy) == denied(message)
    relabelled = pipeline()
    relabelled["metadata"]["labels"] = {"team": "a"}
    assert admission_review(review("UPDATE", relabelled, pipeline()), tenancy) == allowed()


def test_plain_http_to_a_tracking_server_outside_the_cluster_is_admitted_with_a_warning() -> None:
    doc = pipeline()
    doc["spec"]["mlflow"]["trackingUri"] = "http://mlflow.example.com"

    answer = admission_review(review("CREATE", doc))

    assert answer["response"] == {
        "uid": "4b1c",
        "allowed": True,
        "warnings": [
            'spec.mlflow.trackingUri: plain http to "mlflow.example.com", outside the cluster: '
            "the promotion's MLflow credentials would cross the network unencrypted; use https"
        ],
    }


@pytest.mark.parametrize("operation", ["CREATE", "UPDATE"])
def test_an_admitted_object_is_validated_once(
    operation: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    validated: list[str] = []
    real = validate_document

    def counted(doc: Doc) -> Any:
        validated.append(doc["metadata"]["name"])
        return real(doc)

    monkeypatch.setattr(admission, "validate_document", counted)
    old = pipeline() if operation == "UPDATE" else None
    assert admission_review(review(operation, pipeline(), old)) == allowed()
    assert validated == ["demo"]  # the stored object only counts when the new one has problems
