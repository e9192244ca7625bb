"""Every rendered golden Workflow/CronWorkflow is accepted by Argo's full CRDs and validator.

The files are tests/golden/*.yaml (multi-document) plus a hand-made fixture that proves the
plumbing. Each document is created in a test namespace with fieldValidation=Strict; each file
goes through `argo-validate` (Argo's workflow/validate package, as `argo lint --offline`).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from hack.golden import GOLDEN
from tests.controlplane.harness import Kube, load_yaml_documents

PLUMBING = Path(__file__).resolve().parent / "data" / "hello-workflow.yaml"
ARGO_KINDS = {"Workflow", "CronWorkflow"}


def _files() -> list[Path]:
    return [*sorted(GOLDEN.glob("*.yaml")), PLUMBING]


def _file_id(path: Path) -> str:
    return "plumbing" if path == PLUMBING else path.stem


def _documents() -> list[tuple[Path, int]]:
    return [(path, i) for path in _files() for i, _ in enumerate(load_yaml_documents(path))]


@pytest.mark.parametrize(
    ("path", "index"),
    _documents(),
    ids=[f"{_file_id(p)}-{i}" for p, i in _documents()],
)
def test_golden_document_is_created_in_the_api_server(
    kube: Kube, namespace: str, path: Path, index: int
) -> None:
    doc: dict[str, Any] = load_yaml_documents(path)[index]
    assert doc.get("apiVersion") == "argoproj.io/v1alpha1", f"{path}: not an Argo object"
    assert doc.get("kind") in ARGO_KINDS, f"{path}: kind {doc.get('kind')}"
    metadata = doc["metadata"]
    assert metadata.get("name") or metadata.get("generateName"), "needs name or generateName"
    metadata["namespace"] = namespace

    created = kube.create(doc, namespace)  # fieldValidation=Strict against Argo's full CRD
    assert created["metadata"]["uid"]
    assert created["spec"] == doc["spec"], "the API server pruned or changed the spec"

    if metadata.get("name"):
        # Server-side apply (as the operator may do) accepts it as well.
        applied = kube.apply(doc, namespace, dry_run=True)
        assert applied["spec"] == doc["spec"]


@pytest.mark.parametrize("path", _files(), ids=[_file_id(p) for p in _files()])
def test_golden_file_passes_argo_validator(argo_validate: Path, path: Path) -> None:
    result = subprocess.run(
        [str(argo_validate), str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"argo-validate {path}:\n{result.stderr}{result.stdout}"
    assert f"{len(load_yaml_documents(path))} documents valid" in result.stdout
