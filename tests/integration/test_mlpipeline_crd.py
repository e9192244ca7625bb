"""The generated MLPipeline CRD in a real API server: schema, CEL rules, status subresource."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.controlplane.harness import REPO_ROOT, ApiException, Kube, load_yaml_documents

API_VERSION = "mlops.gitops.dev/v1alpha1"
KIND = "MLPipeline"
SAMPLES = sorted((REPO_ROOT / "manifests" / "samples").glob("*.yaml"))


def _pipeline(name: str = "minimal") -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name},
        "spec": {
            "image": "registry.example.com/tools:1.0.0",
            "steps": [
                {"name": "prepare", "command": ["sh", "-c", "echo prepare"]},
                {"name": "train", "dependsOn": ["prepare"], "command": ["sh", "-c", "echo train"]},
            ],
        },
    }


def _rejection(kube: Kube, obj: dict[str, Any], namespace: str) -> tuple[int, str]:
    with pytest.raises(ApiException) as rejected:
        kube.create(obj, namespace)
    status = json.loads(rejected.value.body or "{}")
    return int(rejected.value.status or 0), str(status.get("message", ""))


def test_samples_exist() -> None:
    assert SAMPLES, "manifests/samples/ holds no MLPipeline sample"


@pytest.mark.parametrize("sample", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_sample_is_accepted(kube: Kube, namespace: str, sample: Path) -> None:
    for doc in load_yaml_documents(sample):
        assert doc["kind"] == KIND
        doc["metadata"].pop("namespace", None)
        created = kube.create(doc, namespace)
        assert created["metadata"]["uid"]
        assert created["spec"] == doc["spec"], "the API server changed or pruned the spec"
        # Server-side apply of the same object is a no-op for the spec.
        applied = kube.apply(doc, namespace)
        assert applied["spec"] == doc["spec"]


def test_minimal_pipeline_is_accepted(kube: Kube, namespace: str) -> None:
    created = kube.create(_pipeline(), namespace)
    assert created["metadata"]["generation"] == 1


def test_unknown_field_is_rejected_with_strict_validation(kube: Kube, namespace: str) -> None:
    obj = _pipeline()
    obj["spec"]["steps"][0]["comand"] = ["typo"]
    code, message = _rejection(kube, obj, namespace)
    assert code == 400
    assert 'unknown field "spec.steps[0].comand"' in message

    # Server-side apply rejects it too: the server cannot build the typed patch (it answers
    # 500 "field not declared in schema" for unknown fields, whatever fieldValidation says).
    with pytest.raises(ApiException) as rejected:
        kube.apply(obj, namespace)
    message = json.loads(rejected.value.body or "{}").get("message", "")
    assert rejected.value.status == 500, message
    assert message == (
        f"failed to create typed patch object ({namespace}/minimal; mlops.gitops.dev/v1alpha1, "
        'Kind=MLPipeline): .spec.steps[name="prepare"].comand: field not declared in schema'
    )


def test_bad_retry_policy_enum_is_rejected(kube: Kube, namespace: str) -> None:
    obj = _pipeline()
    obj["spec"]["defaults"] = {"retry": {"limit": 2, "policy": "Sometimes"}}
    code, message = _rejection(kube, obj, namespace)
    assert code == 422
    assert "spec.defaults.retry.policy" in message
    assert 'Unsupported value: "Sometimes"' in message


def test_duplicate_step_names_are_rejected(kube: Kube, namespace: str) -> None:
    obj = _pipeline()
    obj["spec"]["steps"][1] = {"name": "prepare", "command": ["sh", "-c", "echo again"]}
    code, message = _rejection(kube, obj, namespace)
    assert code == 422, message
    assert message == (
        'MLPipeline.mlops.gitops.dev "minimal" is invalid: spec.steps[1]: Duplicate value: '
        '{"name":"prepare"}'
    )


def test_self_dependency_is_rejected_by_cel(kube: Kube, namespace: str) -> None:
    obj = _pipeline()
    obj["spec"]["steps"][1]["dependsOn"] = ["train"]
    code, message = _rejection(kube, obj, namespace)
    assert code == 422
    assert "a step cannot depend on itself" in message


@pytest.mark.parametrize(
    ("artifact", "message"),
    [
        (
            {"from": "prepare.data", "source": {"s3": {"key": "data.csv"}}},
            "spec.steps[1].inputs.artifacts[0]: Invalid value: set exactly one of from or source",
        ),
        (
            {"source": {"s3": {"key": "a"}, "http": {"url": "https://example.com/a"}}},
            "spec.steps[1].inputs.artifacts[0].source: Invalid value: set exactly one of s3, "
            "http or git",
        ),
    ],
    ids=["from-and-source", "two-sources"],
)
def test_input_artifact_source_is_checked_by_cel(
    kube: Kube, namespace: str, artifact: dict[str, Any], message: str
) -> None:
    obj = _pipeline()
    obj["spec"]["steps"][1]["inputs"] = {
        "artifacts": [{"name": "data", "path": "/data", **artifact}]
    }
    code, rejected = _rejection(kube, obj, namespace)
    assert code == 422
    assert rejected == f'MLPipeline.mlops.gitops.dev "minimal" is invalid: {message}'


def test_max_concurrent_runs_is_at_least_one_and_refused_with_a_schedule(
    kube: Kube, namespace: str
) -> None:
    obj = _pipeline()
    obj["spec"]["maxConcurrentRuns"] = 0
    code, message = _rejection(kube, obj, namespace)
    assert code == 422
    assert "spec.maxConcurrentRuns: Invalid value: 0" in message, message
    obj["spec"].update(maxConcurrentRuns=1, schedule={"cron": "@daily"})
    code, message = _rejection(kube, obj, namespace)
    assert code == 422
    assert (
        "spec.maxConcurrentRuns: a scheduled pipeline's runs are limited by "
        "spec.schedule.concurrencyPolicy"
    ) in message, message
    del obj["spec"]["schedule"]
    kube.create(obj, namespace)


def test_scheduled_pipeline_name_longer_than_argo_takes_is_rejected_by_cel(
    kube: Kube, namespace: str
) -> None:
    obj = _pipeline("a" * 53)
    obj["spec"]["schedule"] = {"cron": "@daily"}
    code, message = _rejection(kube, obj, namespace)
    assert code == 422
    assert "metadata.name must be at most 52 characters when spec.schedule is set" in message
    obj["metadata"]["name"] = "a" * 52
    kube.create(obj, namespace)


def test_gate_metric_with_a_comparison_sign_is_rejected(kube: Kube, namespace: str) -> None:
    obj = _pipeline()
    obj["spec"]["steps"][1]["outputs"] = {"parameters": [{"name": "run", "path": "/tmp/run"}]}
    obj["spec"]["mlflow"] = {"trackingUri": "http://mlflow:5000"}
    obj["spec"]["promotion"] = {
        "model": "m",
        "from": {"step": "train", "parameter": "run"},
        "gates": [{"metric": "auc>", "op": ">=", "value": 0.9}],
    }
    code, message = _rejection(kube, obj, namespace)
    assert code == 422
    assert "spec.promotion.gates[0].metric" in message, message
    assert "should match" in message, message


def test_a_placeholder_in_a_step_image_is_rejected_by_cel(kube: Kube, namespace: str) -> None:
    obj = _pipeline()
    obj["spec"]["steps"][0]["image"] = "registry.example.com/{{workflow.name}}:1"
    code, message = _rejection(kube, obj, namespace)
    assert code == 422
    assert message == (
        f'{KIND}.mlops.gitops.dev "minimal" is invalid: spec.steps[0].image: Invalid value: '
        '"registry.example.com/{{workflow.name}}:1": takes no placeholder ({{...}})'
    )


def test_credentials_in_the_tracking_uri_are_rejected_by_cel(kube: Kube, namespace: str) -> None:
    obj = _pipeline()
    obj["spec"]["mlflow"] = {"trackingUri": "https://alice:s3cret@mlflow.example.com"}
    code, message = _rejection(kube, obj, namespace)
    assert code == 422
    assert message == (
        f'{KIND}.mlops.gitops.dev "minimal" is invalid: spec.mlflow.trackingUri: Invalid value: '
        '"https://alice:s3cret@mlflow.example.com": holds credentials (USER:PASSWORD@); put '
        "them in the Secret named by credentialsSecret"
    )


def test_a_service_account_name_kubernetes_refuses_is_rejected(kube: Kube, namespace: str) -> None:
    obj = _pipeline()
    obj["spec"]["serviceAccountName"] = "Trainer_SA"
    code, message = _rejection(kube, obj, namespace)
    assert code == 422
    assert "spec.serviceAccountName: Invalid value: " in message, message
    assert "should match" in message, message


def test_status_is_written_only_through_the_subresource(kube: Kube, namespace: str) -> None:
    obj = _pipeline("status-test")
    obj["status"] = {"phase": "Succeeded", "observedGeneration": 9}
    created = kube.create(obj, namespace)
    assert "phase" not in created.get("status", {}), "status set on create must be dropped"

    # A status written through the main resource is dropped as well.
    patched = kube.patch(
        API_VERSION, KIND, "status-test", {"status": {"phase": "Failed"}}, namespace
    )
    assert "phase" not in patched.get("status", {})
    assert patched["metadata"]["generation"] == 1

    # Through the status subresource it is stored, and a spec change there is ignored.
    patch = {"status": {"phase": "Running", "observedGeneration": 1}, "spec": {"image": "x:1"}}
    updated = kube.patch(API_VERSION, KIND, "status-test", patch, namespace, subresource="status")
    assert updated["status"]["phase"] == "Running"
    assert updated["spec"]["image"] == obj["spec"]["image"]
    assert updated["metadata"]["generation"] == 1

    stored = kube.get(API_VERSION, KIND, "status-test", namespace)
    assert stored["status"] == {"phase": "Running", "observedGeneration": 1}


def test_status_subresource_validates_its_schema(kube: Kube, namespace: str) -> None:
    kube.create(_pipeline("status-enum"), namespace)
    with pytest.raises(ApiException) as rejected:
        kube.patch(
            API_VERSION,
            KIND,
            "status-enum",
            {"status": {"phase": "Exploded"}},
            namespace,
            subresource="status",
        )
    assert rejected.value.status == 422
    assert "status.phase" in (rejected.value.body or "")


def test_spec_change_bumps_generation(kube: Kube, namespace: str) -> None:
    obj = _pipeline("generation")
    kube.apply(obj, namespace)
    changed = copy.deepcopy(obj)
    changed["spec"]["image"] = "registry.example.com/tools:2.0.0"
    applied = kube.apply(changed, namespace)
    assert applied["metadata"]["generation"] == 2
