"""Every rendered object is accepted by Argo's own published JSON schema.

The schema is the one in third_party/argo-workflows/, of the Argo version the Go modules build.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

import jsonschema
import pytest

from hack.golden import GOLDEN
from mlpipeline_operator.yamlio import load_all
from tests.paths import ARGO_SCHEMA

DEFINITION = {
    "Workflow": "io.argoproj.workflow.v1alpha1.Workflow",
    "CronWorkflow": "io.argoproj.workflow.v1alpha1.CronWorkflow",
}


@cache
def validator(kind: str) -> jsonschema.protocols.Validator:
    schema = json.loads(ARGO_SCHEMA.read_text())
    definitions = schema["definitions"]
    # The published schema declares IntOrString and Quantity as strings only, although Argo and
    # Kubernetes accept numbers there (retryStrategy.limit: 3): widen them.
    definitions["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = {"type": ["string", "integer"]}
    definitions["io.k8s.apimachinery.pkg.api.resource.Quantity"] = {
        "type": ["string", "integer", "number"]
    }
    root = {"$ref": f"#/definitions/{DEFINITION[kind]}", "definitions": definitions}
    cls = jsonschema.validators.validator_for(root, default=jsonschema.Draft4Validator)
    return cls(root)


def golden_documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(GOLDEN.glob("*.yaml")):
        for i, doc in enumerate(load_all(path.read_text())):
            docs.append((f"{path.name}#{i}", doc))
    return docs


def errors(doc: dict[str, Any]) -> list[str]:
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator(doc["kind"]).iter_errors(doc)
    ]


@pytest.mark.parametrize(
    ("name", "doc"), golden_documents(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_golden_object_matches_argo_schema(name: str, doc: dict[str, Any]) -> None:
    assert doc["kind"] in DEFINITION
    assert errors(doc) == []


def test_schema_check_can_fail() -> None:
    _, doc = golden_documents()[0]
    broken = copy.deepcopy(doc)
    spec = broken["spec"].get("workflowSpec", broken["spec"])
    spec["templates"][1]["retryStrategy"] = {"limit": ["three"]}
    spec["entrypoint"] = 7
    assert len(errors(broken)) >= 2
