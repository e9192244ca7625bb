"""Placement (nodeSelector, tolerations, affinity, priorityClassName), imagePullSecrets and
runLabels: their validation, with exact messages, and how they compile."""

from __future__ import annotations

from typing import Any

import pytest

from mlpipeline_operator.compiler.workflow import compile_document
from mlpipeline_operator.core import Problem
from mlpipeline_operator.validation import validate_document
from tests.unit.pipelines import pipeline

Doc = dict[str, Any]

GPU_NODES = {"nvidia.com/gpu.present": "true"}
GPU_TAINT = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
ZONE_AFFINITY = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"values": ["a"], "operator": "In", "key": "zone"}]}
            ]
        }
    }
}


def problems(doc: Doc) -> list[Problem]:
    parsed, found = validate_document(doc)
    assert (parsed is None) == bool(found)
    return found


def with_defaults(**placement: Any) -> Doc:
    doc = pipeline()
    doc["spec"]["defaults"] = placement
    return doc


def with_step(**placement: Any) -> Doc:
    doc = pipeline()
    doc["spec"]["steps"][1].update(placement)
    return doc


def with_labels(labels: dict[str, str]) -> Doc:
    doc = pipeline()
    doc["metadata"]["labels"] = labels
    return doc


def with_spec(**fields: Any) -> Doc:
    doc = pipeline()
    doc["spec"].update(fields)
    return doc


INVALID: list[tuple[str, Doc, str, str]] = [
    (
        "toleration Exists with a value",
        with_defaults(tolerations=[{"key": "gpu", "operator": "Exists", "value": "yes"}]),
        "spec.defaults.tolerations[0].value",
        "must be empty with operator Exists (which tolerates any value); remove it, or use "
        "operator Equal",
    ),
    (
        "toleration without key, operator Equal",
        with_step(tolerations=[{"effect": "NoSchedule"}]),
        "spec.steps[1].tolerations[0].operator",
        "must be Exists when the key is empty (a toleration of every taint)",
    ),
    (
        "unknown toleration effect",
        with_step(tolerations=[{"key": "gpu", "effect": "NoSchedulee"}]),
        "spec.steps[1].tolerations[0].effect",
        "Input should be 'NoSchedule', 'PreferNoSchedule' or 'NoExecute' (got \"NoSchedulee\")",
    ),
    (
        "tolerationSeconds without NoExecute",
        with_step(tolerations=[{"key": "spot", "effect": "NoSchedule", "tolerationSeconds": 60}]),
        "spec.steps[1].tolerations[0].tolerationSeconds",
        "applies only to effect NoExecute (the time a pod stays once the taint appears); set "
        "effect: NoExecute or remove it",
    ),
    (
        "tolerationSeconds over an int64",
        with_step(tolerations=[{"key": "spot", "effect": "NoExecute", "tolerationSeconds": 2**63}]),
        "spec.steps[1].tolerations[0].tolerationSeconds",
        "9223372036854775808 is over 9223372036854775807, the most it takes",
    ),
    (
        "bad toleration key",
        with_step(tolerations=[{"key": "gpu/", "operator": "Exists"}]),
        "spec.steps[1].tolerations[0].key",
        '"gpu/" is not a label key: its name "" must have 1 to 63 characters (letters, '
        "digits, '-', '_' and '.'), starting and ending with a letter or digit",
    ),
    (
        "nodeSelector key with a space",
        with_defaults(nodeSelector={"gpu type": "a100"}),
        "spec.defaults.nodeSelector.gpu type",
        '"gpu type" is not a label key: its name "gpu type" must have 1 to 63 characters '
        "(letters, digits, '-', '_' and '.'), starting and ending with a letter or digit",
    ),
    (
        "nodeSelector key with an upper-case prefix",
        with_step(nodeSelector={"NVIDIA.com/gpu": "true"}),
        "spec.steps[1].nodeSelector.NVIDIA.com/gpu",
        '"NVIDIA.com/gpu" is not a label key: its prefix "NVIDIA.com" must be a DNS subdomain '
        "of at most 253 characters (lower-case letters, digits, '-' and '.')",
    ),
    (
        "nodeSelector value too long",
        with_step(nodeSelector={"pool": "x" * 64}),
        "spec.steps[1].nodeSelector.pool",
        "is 64 characters long; at most 63 are allowed",
    ),
    (
        "bad priorityClassName",
        with_defaults(priorityClassName="High_Priority"),
        "spec.defaults.priorityClassName",
        "\"High_Priority\" is not a PriorityClass name: use lower-case letters, digits, '-' and "
        "'.', starting and ending with a letter or digit",
    ),
    (
        "node affinity In without values",
        with_step(
            affinity={
                "nodeAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 1,
                            "preference": {"matchExpressions": [{"key": "zone", "operator": "In"}]},
                        }
                    ]
                }
            }
        ),
        "spec.steps[1].affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0]"
        ".preference.matchExpressions[0].values",
        "operator In needs at least one value",
    ),
    (
        "node affinity Gt with a word",
        with_step(
            affinity={
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {"key": "cores", "operator": "Gt", "values": ["many"]}
                                ]
                            }
                        ]
                    }
                }
            }
        ),
        "spec.steps[1].affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
        ".nodeSelectorTerms[0].matchExpressions[0].values",
        "operator Gt needs exactly one integer value",
    ),
    (
        "matchFields on a label",
        with_step(
            affinity={
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchFields": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                        ]
                    }
                }
            }
        ),
        "spec.steps[1].affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
        ".nodeSelectorTerms[0].matchFields[0].key",
        '"zone": matchFields takes only "metadata.name"',
    ),
    (
        "pod anti-affinity Exists with values",
        with_defaults(
            affinity={
                "podAntiAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {
                                "matchExpressions": [
                                    {"key": "app", "operator": "Exists", "values": ["x"]}
                                ]
                            },
                        }
                    ]
                }
            }
        ),
        "spec.defaults.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0]"
        ".labelSelector.matchExpressions[0].values",
        "must be empty with operator Exists",
    ),
    (
        "unknown affinity field",
        with_step(affinity={"nodeAffinty": {}}),
        "spec.steps[1].affinity.nodeAffinty",
        "unknown field",
    ),
    (
        "exit step toleration",
        with_spec(onExit={"command": ["true"], "tolerations": [{"operator": "Equal"}]}),
        "spec.onExit.tolerations[0].operator",
        "must be Exists when the key is empty (a toleration of every taint)",
    ),
    (
        "bad imagePullSecrets name",
        with_spec(imagePullSecrets=[{"name": "Regcred"}]),
        "spec.imagePullSecrets[0].name",
        "\"Regcred\" is not a Secret name: use lower-case letters, digits, '-' and '.', "
        "starting and ending with a letter or digit",
    ),
    (
        "duplicate imagePullSecrets",
        with_spec(imagePullSecrets=[{"name": "a"}, {"name": "a"}]),
        "spec.imagePullSecrets[1].name",
        'duplicate secret "a" (also at index 0)',
    ),
    (
        "runLabel with the operator's prefix",
        with_spec(runLabels={"mlops.gitops.dev/pipeline": "x"}),
        "spec.runLabels.mlops.gitops.dev/pipeline",
        "uses the operator's own label prefix mlops.gitops.dev, which a run label may not set; "
        "choose another key",
    ),
    (
        "runLabel with a subdomain of the operator's prefix",
        with_spec(runLabels={"pipeline.mlops.gitops.dev/team": "x"}),
        "spec.runLabels.pipeline.mlops.gitops.dev/team",
        "uses the operator's own label prefix mlops.gitops.dev, which a run label may not set; "
        "choose another key",
    ),
    (
        "runLabel with Argo's prefix",
        with_spec(runLabels={"workflows.argoproj.io/completed": "true"}),
        "spec.runLabels.workflows.argoproj.io/completed",
        "uses Argo's own label prefix argoproj.io, which a run label may not set; choose another "
        "key",
    ),
    (
        "runLabel managed-by",
        with_spec(runLabels={"app.kubernetes.io/managed-by": "me"}),
        "spec.runLabels.app.kubernetes.io/managed-by",
        "uses the operator's own label key, which a run label may not set; choose another key",
    ),
    (
        "runLabel value with a space",
        with_spec(runLabels={"team": "fraud team"}),
        "spec.runLabels.team",
        "\"fraud team\" is not a label value: at most 63 characters (letters, digits, '-', '_' "
        "and '.'), starting and ending with a letter or digit",
    ),
    (
        "bad label of the pipeline",
        with_labels({"-team": "a"}),
        "metadata.labels.-team",
        '"-team" is not a label key: its name "-team" must have 1 to 63 characters (letters, '
        "digits, '-', '_' and '.'), starting and ending with a letter or digit",
    ),
]


@pytest.mark.parametrize(
    ("doc", "path", "message"), [pytest.param(d, p, m, id=name) for name, d, p, m in INVALID]
)
def test_misused_placement_names_its_field(doc: Doc, path: str, message: str) -> None:
    assert problems(doc) == [Problem(path, message)]


def templates(manifest: Doc) -> dict[str, Doc]:
    return {t["name"]: t for t in manifest["spec"]["templates"]}


def test_a_step_gets_the_default_placement_and_its_own_replaces_it_whole() -> None:
    doc = with_defaults(
        nodeSelector=GPU_NODES,
        tolerations=[GPU_TAINT],
        affinity=ZONE_AFFINITY,
        priorityClassName="training",
    )
    _, train, evaluate = doc["spec"]["steps"]
    train["nodeSelector"] = {"pool": "big"}
    train["tolerations"] = [{"key": "spot", "value": "true"}]
    evaluate.update(nodeSelector={}, tolerations=[], affinity={}, priorityClassName="")

    found = templates(compile_document(doc))

    assert {
        k: found["extract"][k]
        for k in ("affinity", "nodeSelector", "priorityClassName", "tolerations")
    } == {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                    ]
                }
            }
        },
        "nodeSelector": GPU_NODES,
        "priorityClassName": "training",
        "tolerations": [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}],
    }
    assert found["train"]["nodeSelector"] == {"pool": "big"}
    assert found["train"]["tolerations"] == [{"key": "spot", "value": "true"}]
    assert found["train"]["priorityClassName"] == "training"
    placement = {"affinity", "nodeSelector", "priorityClassName", "tolerations"}
    assert placement & found["evaluate"].keys() == set()
    # The promotion step runs wherever it fits: the steps' placement is not its own.
    assert placement & found["promote-model"].keys() == set()


def test_the_exit_step_gets_the_default_placement() -> None:
    doc = with_defaults(nodeSelector=GPU_NODES)
    doc["spec"]["onExit"] = {"command": ["true"]}
    assert templates(compile_document(doc))["on-exit"]["nodeSelector"] == GPU_NODES


def test_run_labels_and_the_pipelines_own_go_on_the_run_and_its_pods() -> None:
    doc = pipeline()
    doc["metadata"]["labels"] = {"team": "fraud", "app.kubernetes.io/instance": "ml"}
    doc["spec"]["runLabels"] = {"cost-center": "ml-42", "team": "risk"}
    doc["spec"]["imagePullSecrets"] = [{"name": "registry"}]

    workflow = compile_document(doc)

    expected = {
        "pipeline.mlops.gitops.dev/team": "fraud",
        "cost-center": "ml-42",
        "team": "risk",
        "app.kubernetes.io/managed-by": "mlpipeline-operator",
        "mlops.gitops.dev/pipeline": "demo",
        "mlops.gitops.dev/generation": "3",
    }
    assert workflow["metadata"]["labels"] == expected
    assert workflow["spec"]["podMetadata"]["labels"] == expected
    assert workflow["spec"]["imagePullSecrets"] == [{"name": "registry"}]


def test_a_scheduled_pipelines_runs_carry_the_run_labels() -> None:
    doc = pipeline()
    doc["spec"]["runLabels"] = {"cost-center": "ml-42"}
    doc["spec"]["schedule"] = {"cron": "@daily"}

    cron = compile_document(doc)

    assert cron["spec"]["workflowMetadata"]["labels"]["cost-center"] == "ml-42"
    assert cron["spec"]["workflowSpec"]["podMetadata"]["labels"]["cost-center"] == "ml-42"
    assert cron["metadata"]["labels"]["cost-center"] == "ml-42"
