"""argo-validate and Argo's full CRDs reject what Argo would reject."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.controlplane.harness import ApiException, Kube, load_yaml_documents

INVALID = Path(__file__).resolve().parent / "data" / "invalid-workflows.yaml"


def _run(binary: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_invalid_document_is_reported(argo_validate: Path) -> None:
    result = _run(argo_validate, str(INVALID))
    assert result.returncode == 1, result.stdout + result.stderr
    err = result.stderr
    assert '(Workflow "unresolved-variable")' in err
    assert "inputs.parameters.missing" in err
    assert '(Workflow "unknown-dependency")' in err
    assert "ghost" in err
    assert '(Workflow "bad-retry-policy")' in err
    assert "Sometimes is not a valid RetryPolicy" in err
    assert '(CronWorkflow "bad-schedule")' in err
    assert "every night" in err
    assert "4 of 4 documents invalid" in err


def test_unknown_fields_are_errors(argo_validate: Path) -> None:
    doc = (
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {generateName: x-}\n"
        "spec:\n  entrypoint: main\n  retryStratgy: {}\n"
        "  templates: [{name: main, container: {image: alpine:3}}]\n"
    )
    result = _run(argo_validate, "-", stdin=doc)
    assert result.returncode == 1
    assert 'unknown field "spec.retryStratgy"' in result.stderr


def test_non_argo_documents_fail(argo_validate: Path) -> None:
    result = _run(
        argo_validate, "-", stdin="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"
    )
    assert result.returncode == 1
    assert "not a Workflow" in result.stderr


def test_usage_error(argo_validate: Path) -> None:
    assert _run(argo_validate).returncode == 2


def _workflow() -> dict[str, Any]:
    return load_yaml_documents(INVALID)[2]  # a structurally fine Workflow


def test_full_crd_rejects_unknown_workflow_fields(kube: Kube, namespace: str) -> None:
    doc = _workflow()
    doc["spec"]["entrypointt"] = "main"
    with pytest.raises(ApiException) as rejected:
        kube.create(doc, namespace)
    assert rejected.value.status == 400
    message = json.loads(rejected.value.body or "{}").get("message", "")
    assert 'unknown field "spec.entrypointt"' in message


def test_full_crd_rejects_wrong_types(kube: Kube, namespace: str) -> None:
    doc = _workflow()
    doc["spec"]["templates"][0]["container"]["image"] = 3
    with pytest.raises(ApiException) as rejected:
        kube.create(doc, namespace)
    assert rejected.value.status == 422
    message = json.loads(rejected.value.body or "{}").get("message", "")
    assert "spec.templates[0].container.image" in message
