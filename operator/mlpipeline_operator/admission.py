"""Validation at admission: the answer to the API server's AdmissionReview about an MLPipeline.

Pure (no kopf, no network): the operator's webhook server (reconcile/webhook.py) hands each
request's body to `admission_review` and sends back what it returns. The checks are those of
`mlpipeline validate --policy` and of the operator's Invalid status: `validate_document`, then
the tenancy policy in force.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlpipeline_operator.core import Problem
from mlpipeline_operator.policy import SINGLE_TENANT, Tenancy
from mlpipeline_operator.validation import validate_document, warnings

ADMISSION_API_VERSION = "admission.k8s.io/v1"
# The denial's HTTP code and reason (the API server's own for an invalid object), which kubectl
# shows as "The request is invalid: ... denied the request: <problems>".
DENIED_CODE = 422


def admission_review(review: Any, tenancy: Tenancy = SINGLE_TENANT) -> dict[str, Any]:
    """The AdmissionReview answering `review`, the JSON body of the API server's request
    (ValueError when it is not an AdmissionReview with a request), under `tenancy`."""
    request = review.get("request") if isinstance(review, Mapping) else None
    if not isinstance(request, Mapping) or not isinstance(request.get("uid"), str):
        raise ValueError("not an AdmissionReview: expected request.uid")
    problems, shown = assessment(request, tenancy)
    response: dict[str, Any] = {"uid": request["uid"], "allowed": not problems}
    if problems:
        response["status"] = {
            "code": DENIED_CODE,
            "reason": "Invalid",
            "message": denial_message(problems),
        }
    elif shown:
        response["warnings"] = shown
    return {"apiVersion": ADMISSION_API_VERSION, "kind": "AdmissionReview", "response": response}


def assessment(
    request: Mapping[str, Any], tenancy: Tenancy = SINGLE_TENANT
) -> tuple[list[Problem], list[str]]:
    """What refuses the request, and else what `kubectl apply` shows as warnings about the
    admitted object (`mlpipeline validate` prints the same on stderr). The new object is
    validated once: a spec may be 512 KiB.

    Refused: every problem of the new object, for a CREATE; for an UPDATE, the same, but only
    when the update adds a problem that the stored object did not have. An object that is
    already invalid (created while the webhook was not reachable) must stay writable: kopf
    records its state in annotations, a user removes a label or fixes half of the problems, a
    deletion removes finalizers. An update may never make it worse."""
    obj = request.get("object")
    if request.get("operation") not in ("CREATE", "UPDATE") or not isinstance(obj, Mapping):
        return [], []
    namespace = str(request.get("namespace") or "")
    pipeline, problems = validate_document(dict(obj))
    if pipeline is not None:
        problems = tenancy.problems(pipeline, namespace)
    old = request.get("oldObject")
    if (
        problems
        and request.get("operation") == "UPDATE"
        and isinstance(old, Mapping)
        and set(problems) <= set(object_problems(old, namespace, tenancy))
    ):
        problems = []
    if problems or pipeline is None:
        return problems, []
    return [], [str(warning) for warning in warnings(pipeline)]


def object_problems(
    obj: Mapping[str, Any], namespace: str, tenancy: Tenancy = SINGLE_TENANT
) -> list[Problem]:
    """Everything wrong with one MLPipeline object of `namespace`, as the operator's
    reconciliation finds it: the spec's problems, else what the tenancy policy refuses."""
    pipeline, problems = validate_document(dict(obj))
    if pipeline is None:
        return problems
    return tenancy.problems(pipeline, namespace)


def denial_message(problems: list[Problem]) -> str:
    """Every problem as `field.path: message`, one a line, as `mlpipeline validate` prints them
    (a message may itself hold "; ")."""
    return "\n".join(str(problem) for problem in problems)
