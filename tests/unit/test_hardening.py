"""Hardened pods (security contexts), placeholders refused outside their fields, Kubernetes
names, the tracking URI's credentials and warning, and the always reserved promote-model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlpipeline_operator.compiler.workflow import compile_document
from mlpipeline_operator.core import Problem
from mlpipeline_operator.validation import in_cluster_host, validate_document, warnings
from tests.unit.pipelines import pipeline

Doc = dict[str, Any]
RESTRICTED_POD = {
    "runAsGroup": 65532,
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "seccompProfile": {"type": "RuntimeDefault"},
}
RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
NO_PLACEHOLDER = (
    "cannot be used here: this field takes no placeholder (Argo's controller would evaluate "
    "it); write the value itself"
)


def _templates(manifest: Doc) -> dict[str, Doc]:
    return {t["name"]: t for t in manifest["spec"]["templates"]}


def _problems(doc: Doc) -> list[str]:
    parsed, problems = validate_document(doc)
    assert parsed is None
    return [str(p) for p in problems]


# --- Security contexts ---------------------------------------------------------------------------


def test_every_pod_is_restricted_by_default() -> None:
    doc = pipeline()
    doc["spec"]["onExit"] = {"command": ["notify", "{{pipeline.status}}"]}
    doc["spec"]["steps"][2]["forEach"] = {"items": ["a", "b"]}

    manifest = compile_document(doc)

    assert manifest["spec"]["securityContext"] == RESTRICTED_POD
    templates = _templates(manifest)
    for name in ("extract", "train", "evaluate", "on-exit"):
        assert "securityContext" not in templates[name], name  # the workflow's applies
        assert templates[name]["container"]["securityContext"] == RESTRICTED_CONTAINER, name
    promotion = templates["promote-model"]
    assert promotion["securityContext"] == RESTRICTED_POD
    assert promotion["container"]["securityContext"] == {
        **RESTRICTED_CONTAINER,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def test_the_pipeline_replaces_default_fields_but_not_the_promotions() -> None:
    doc = pipeline()
    doc["spec"]["podSecurityContext"] = {
        "runAsUser": 1000,
        "fsGroup": 2000,
        "supplementalGroups": [3000],
        "runAsNonRoot": False,
    }
    doc["spec"]["steps"][1]["securityContext"] = {
        "readOnlyRootFilesystem": True,
        "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
        "seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/train.json"},
        "allowPrivilegeEscalation": True,
    }

    manifest = compile_document(doc)

    assert manifest["spec"]["securityContext"] == {
        "fsGroup": 2000,
        "runAsGroup": 65532,
        "runAsNonRoot": False,
        "runAsUser": 1000,
        "seccompProfile": {"type": "RuntimeDefault"},
        "supplementalGroups": [3000],
    }
    templates = _templates(manifest)
    assert templates["train"]["container"]["securityContext"] == {
        "allowPrivilegeEscalation": True,
        "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "seccompProfile": {"localhostProfile": "profiles/train.json", "type": "Localhost"},
    }
    assert templates["extract"]["container"]["securityContext"] == RESTRICTED_CONTAINER
    assert templates["promote-model"]["securityContext"] == RESTRICTED_POD


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        (
            "spec.steps.1.securityContext",
            {"runAsUser": 0},
            "spec.steps[1].securityContext.runAsUser: 0 (root) with runAsNonRoot, which refuses "
            "to start the container; set a non-zero user, or runAsNonRoot: false",
        ),
        (
            "spec.podSecurityContext",
            {"runAsUser": 0},
            "spec.podSecurityContext.runAsUser: 0 (root) with runAsNonRoot, which refuses to "
            "start the containers; set a non-zero user, or runAsNonRoot: false",
        ),
        (
            "spec.steps.1.securityContext",
            {"capabilities": {"add": ["CAP_SYS_ADMIN"]}},
            "spec.steps[1].securityContext.capabilities.add: CAP_SYS_ADMIN needs "
            "allowPrivilegeEscalation: true (false by default); Kubernetes refuses the pair",
        ),
        (
            "spec.steps.0.securityContext",
            {"seccompProfile": {"type": "Localhost"}},
            "spec.steps[0].securityContext.seccompProfile.localhostProfile: required with type "
            "Localhost (the profile's file)",
        ),
        (
            "spec.podSecurityContext",
            {"seccompProfile": {"type": "RuntimeDefault", "localhostProfile": "p.json"}},
            "spec.podSecurityContext.seccompProfile.localhostProfile: must not be set with type "
            "RuntimeDefault; it is for type Localhost only",
        ),
        (
            "spec.steps.0.securityContext",
            {"runAsUser": -1},
            "spec.steps[0].securityContext.runAsUser: Input should be greater than or equal to 0 "
            "(got -1)",
        ),
        (
            "spec.steps.0.securityContext",
            {"privileged": True},
            "spec.steps[0].securityContext.privileged: unknown field",
        ),
        (
            "spec.steps.0.securityContext",
            {"capabilities": {"add": ["net_admin"]}},
            'spec.steps[0].securityContext.capabilities.add[0]: "net_admin" is not a Linux '
            "capability as Kubernetes names it: upper-case letters, digits and '_', such as "
            "NET_BIND_SERVICE",
        ),
        (
            "spec.podSecurityContext",
            {"seccompProfile": {"type": "Default"}},
            "spec.podSecurityContext.seccompProfile.type: Input should be 'RuntimeDefault', "
            "'Localhost' or 'Unconfined' (got \"Default\")",
        ),
    ],
)
def test_a_security_context_kubernetes_refuses_is_a_problem(
    field: str, value: Doc, expected: str
) -> None:
    doc = pipeline()
    keys = field.split(".")
    target: Any = doc
    for key in keys[:-1]:
        target = target[int(key)] if key.isdigit() else target[key]
    target[keys[-1]] = value
    assert _problems(doc) == [expected]


def test_root_is_allowed_once_run_as_non_root_is_false() -> None:
    doc = pipeline()
    doc["spec"]["podSecurityContext"] = {"runAsUser": 0, "runAsNonRoot": False}
    doc["spec"]["steps"][0]["securityContext"] = {"runAsUser": 0}
    assert validate_document(doc)[1] == []


# --- Placeholders outside their fields -----------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "path", "shown"),
    [
        ("spec.image", "reg/{{workflow.name}}:1", "spec.image", "{{workflow.name}}"),
        (
            "spec.steps.0.image",
            "{{=sprig.repeat('a', 9)}}",
            "spec.steps[0].image",
            "{{=sprig.repeat('a', 9)}}",
        ),
        (
            "spec.steps.0.outputs.artifacts.0.path",
            "/data/{{workflow.uid}}",
            "spec.steps[0].outputs.artifacts[0].path",
            "{{workflow.uid}}",
        ),
        (
            "spec.steps.1.inputs.artifacts.0.path",
            "/data/{{pod.name}}",
            "spec.steps[1].inputs.artifacts[0].path",
            "{{pod.name}}",
        ),
        (
            "spec.promotion.model",
            "m-{{workflow.name}}",
            "spec.promotion.model",
            "{{workflow.name}}",
        ),
        ("spec.promotion.alias", "{{workflow.name}}", "spec.promotion.alias", "{{workflow.name}}"),
        (
            "spec.promotion.artifactPath",
            "{{workflow.name}}",
            "spec.promotion.artifactPath",
            "{{workflow.name}}",
        ),
        (
            "spec.promotion.gates.0.metric",
            "auc{{workflow.name}}",
            "spec.promotion.gates[0].metric",
            "{{workflow.name}}",
        ),
        (
            "spec.mlflow.trackingUri",
            "http://{{workflow.namespace}}.svc:5000",
            "spec.mlflow.trackingUri",
            "{{workflow.namespace}}",
        ),
        (
            "spec.steps.0.env",
            [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "{{workflow.name}}"}}}],
            "spec.steps[0].env[0].valueFrom.fieldRef.fieldPath",
            "{{workflow.name}}",
        ),
        (
            "spec.parameters.0.description",
            "{{workflow.name}}",
            "spec.parameters[0].description",
            "{{workflow.name}}",
        ),
        (
            "spec.steps.2.forEach",
            {"items": ["{{workflow.name}}"]},
            "spec.steps[2].forEach.items[0]",
            "{{workflow.name}}",
        ),
        ("spec.steps.0.image", "reg/{{tools:1", "spec.steps[0].image", "{{"),
    ],
)
def test_a_placeholder_outside_its_fields_is_a_problem(
    field: str, value: Any, path: str, shown: str
) -> None:
    doc = pipeline()
    keys = field.split(".")
    target: Any = doc
    for key in keys[:-1]:
        target = target[int(key)] if key.isdigit() else target[key]
    target[keys[-1]] = value
    assert _problems(doc) == [f'{path}: "{shown}" {NO_PLACEHOLDER}']


def test_a_placeholder_in_the_git_revision_annotation_is_a_problem() -> None:
    doc = pipeline()
    doc["metadata"]["annotations"] = {"mlops.gitops.dev/git-revision": "{{workflow.uid}}"}
    assert _problems(doc) == [
        f'metadata.annotations["mlops.gitops.dev/git-revision"]: "{{{{workflow.uid}}}}" '
        f"{NO_PLACEHOLDER}"
    ]


def test_placeholders_stay_allowed_where_they_are_checked() -> None:
    doc = pipeline()
    doc["spec"]["parameters"].append({"name": "day", "value": "{{pipeline.parameters.lr}}"})
    doc["spec"]["steps"][0]["env"] = [{"name": "LR", "value": "{{pipeline.parameters.lr}}"}]
    doc["spec"]["steps"][2]["when"] = "{{inputs.parameters.run_id}} != ''"
    doc["spec"]["onExit"] = {"command": ["notify"], "args": ["{{pipeline.status}}"]}
    assert validate_document(doc)[1] == []


# --- Kubernetes names ----------------------------------------------------------------------------

RESOURCE_NAME = (
    "is not a Kubernetes resource name: use lower-case letters, digits, '-' and '.', starting "
    "and ending with a letter or digit"
)


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("spec.serviceAccountName", "Trainer_SA", "spec.serviceAccountName"),
        ("spec.mlflow.credentialsSecret", "MLflow", "spec.mlflow.credentialsSecret"),
        (
            "spec.artifactRepositoryRef",
            {"configMap": "repo-"},
            "spec.artifactRepositoryRef.configMap",
        ),
    ],
)
def test_an_object_name_kubernetes_refuses_is_a_problem(field: str, value: Any, path: str) -> None:
    doc = pipeline()
    keys = field.split(".")
    target: Any = doc
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value
    shown = value if isinstance(value, str) else value["configMap"]
    assert _problems(doc) == [f'{path}: "{shown}" {RESOURCE_NAME}']


def test_a_secret_reference_kubernetes_refuses_is_a_problem() -> None:
    doc = pipeline()
    doc["spec"]["steps"][0]["env"] = [
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "Creds", "key": "a/b"}}}
    ]
    assert _problems(doc) == [
        f'spec.steps[0].env[0].valueFrom.secretKeyRef.name: "Creds" {RESOURCE_NAME}',
        'spec.steps[0].env[0].valueFrom.secretKeyRef.key: "a/b" is not a key of a Secret or '
        "ConfigMap: use letters, digits, '-', '_' and '.'",
    ]


# --- The tracking URI ----------------------------------------------------------------------------


def test_credentials_in_the_tracking_uri_are_a_problem() -> None:
    doc = pipeline()
    doc["spec"]["mlflow"]["trackingUri"] = "https://alice:s3cret@mlflow.example.com"
    assert _problems(doc) == [
        "spec.mlflow.trackingUri: has credentials in it (USER:PASSWORD@), which every reader of "
        "the pipeline and its runs would see; remove them and put them in the Secret named by "
        "spec.mlflow.credentialsSecret (MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD)"
    ]


@pytest.mark.parametrize(
    "host",
    [
        *("mlflow", "mlflow.mlflow", "mlflow.ml.svc", "mlflow.ml.svc.cluster.local"),
        *("localhost", "127.0.0.1", "::1", "MLflow.ML.SVC."),
    ],
)
def test_an_in_cluster_host(host: str) -> None:
    assert in_cluster_host(host)


@pytest.mark.parametrize("host", ["mlflow.example.com", "10.0.0.5", "fd00::1", "a.b.c"])
def test_a_host_outside_the_cluster(host: str) -> None:
    assert not in_cluster_host(host)


def _warnings(uri: str) -> list[Problem]:
    doc = pipeline()
    doc["spec"]["mlflow"]["trackingUri"] = uri
    parsed, problems = validate_document(doc)
    assert parsed is not None, problems
    return warnings(parsed)


def test_plain_http_outside_the_cluster_is_a_warning() -> None:
    assert _warnings("http://mlflow.example.com:5000") == [
        Problem(
            "spec.mlflow.trackingUri",
            'plain http to "mlflow.example.com", outside the cluster: the promotion\'s MLflow '
            "credentials would cross the network unencrypted; use https",
        )
    ]


@pytest.mark.parametrize(
    "uri",
    [
        *("https://mlflow.example.com", "http://mlflow.mlflow:5000", "http://localhost:5000"),
        *("sqlite:///tmp/mlflow.db", "http://mlflow.ml.svc.cluster.local"),
    ],
)
def test_no_warning(uri: str) -> None:
    assert _warnings(uri) == []


def test_validate_prints_warnings_on_stderr_and_succeeds(tmp_path: Path) -> None:
    doc = pipeline()
    doc["spec"]["mlflow"]["trackingUri"] = "http://mlflow.example.com:5000"
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(doc))
    done = subprocess.run(
        [sys.executable, "-m", "mlpipeline_operator", "validate", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{path}: valid (1 pipeline)\n"
    assert done.stderr == (
        f'{path}: warning: spec.mlflow.trackingUri: plain http to "mlflow.example.com", outside '
        "the cluster: the promotion's MLflow credentials would cross the network unencrypted; "
        "use https\n"
    )


# --- Reserved names ------------------------------------------------------------------------------


def test_promote_model_is_reserved_without_a_promotion() -> None:
    doc = pipeline()
    del doc["spec"]["promotion"]
    doc["spec"]["steps"][2]["name"] = "promote-model"
    assert _problems(doc) == [
        'spec.steps[2].name: "promote-model" is reserved for the promotion step'
    ]
