"""Steps after the promotion (`{{promotion.*}}`) and the exit step (`spec.onExit`): validation
with exact field paths, and what the compiler makes of them."""

from __future__ import annotations

from typing import Any

import pytest

from mlpipeline_operator.compiler.workflow import compile_document
from mlpipeline_operator.reconcile.status import run_status
from mlpipeline_operator.validation import validate_document
from tests.unit.pipelines import pipeline

Doc = dict[str, Any]


def _with_deploy(doc: Doc, **fields: Any) -> Doc:
    """The base pipeline with a fourth step, `deploy`, after `evaluate`."""
    step = {"name": "deploy", "dependsOn": ["evaluate"], "command": ["deploy"], **fields}
    doc["spec"]["steps"].append(step)
    return doc


def problems_of(doc: Doc) -> list[str]:
    parsed, problems = validate_document(doc)
    assert (parsed is None) == bool(problems)
    return [str(p) for p in problems]


def _tasks(manifest: Doc) -> dict[str, Doc]:
    (dag,) = [t for t in manifest["spec"]["templates"] if t["name"] == "mlpipeline"]
    return {task["name"]: task for task in dag["dag"]["tasks"]}


def _templates(manifest: Doc) -> dict[str, Doc]:
    return {t["name"]: t for t in manifest["spec"]["templates"]}


# --- validation ----------------------------------------------------------------------------


def test_a_pipeline_with_a_step_after_the_promotion_and_an_exit_step_is_valid() -> None:
    doc = _with_deploy(pipeline(), args=["{{promotion.decision}}"])
    doc["spec"]["onExit"] = {
        "command": ["notify", "{{pipeline.status}}", "{{pipeline.failures}}"],
        "env": [{"name": "V", "value": "{{promotion.version}} {{pipeline.parameters.lr}}"}],
    }
    assert problems_of(doc) == []


def test_promotion_placeholders_need_a_promotion() -> None:
    doc = _with_deploy(pipeline(), env=[{"name": "D", "value": "{{promotion.alias}}"}])
    del doc["spec"]["promotion"]
    doc["spec"]["onExit"] = {"command": ["notify", "{{ promotion.version }}"]}
    assert problems_of(doc) == [
        'spec.onExit.command[1]: "{{ promotion.version }}" needs spec.promotion, which this '
        "pipeline does not have",
        'spec.steps[3].env[0].value: "{{promotion.alias}}" needs spec.promotion, which this '
        "pipeline does not have",
    ]


def test_an_unknown_promotion_value_names_the_known_forms() -> None:
    doc = _with_deploy(pipeline(), command=["deploy", "{{promotion.reason}}"])
    (problem,) = problems_of(doc)
    assert problem.startswith(
        'spec.steps[3].command[1]: "{{promotion.reason}}" is not a known placeholder; use one of '
    )
    assert "{{promotion.decision}}, {{promotion.version}}, {{promotion.alias}}" in problem


def test_the_run_status_and_failures_only_in_the_exit_step() -> None:
    doc = _with_deploy(pipeline(), args=["{{pipeline.status}}", "{{pipeline.failures}}"])
    assert problems_of(doc) == [
        'spec.steps[3].args[0]: "{{pipeline.status}}" can only be used in spec.onExit, once the '
        "run ended",
        'spec.steps[3].args[1]: "{{pipeline.failures}}" can only be used in spec.onExit, once '
        "the run ended",
    ]


def test_the_exit_step_has_no_inputs_or_outputs() -> None:
    doc = pipeline()
    doc["spec"]["onExit"] = {"command": ["notify", "{{inputs.parameters.run_id}}"]}
    assert problems_of(doc) == [
        'spec.onExit.command[1]: "{{inputs.parameters.run_id}}" cannot be used in spec.onExit; '
        "only {{pipeline.parameters.NAME}}, {{pipeline.status}}, {{pipeline.failures}}, "
        "{{pipeline.scheduledTime}}, {{pipeline.runName}}, {{pipeline.generation}}, "
        "{{promotion.*}} and {{volumes.NAME.path}} can",
    ]


def test_the_exit_step_refuses_the_fields_of_a_step_it_does_not_have() -> None:
    doc = pipeline()
    doc["spec"]["onExit"] = {"command": ["notify"], "dependsOn": ["train"], "outputs": {}}
    assert problems_of(doc) == [
        "spec.onExit.dependsOn: unknown field",
        "spec.onExit.outputs: unknown field",
    ]


def test_the_exit_step_needs_an_image() -> None:
    doc = pipeline()
    doc["spec"]["steps"] = [{**s, "image": "x:1"} for s in doc["spec"]["steps"]]
    del doc["spec"]["image"]
    doc["spec"]["onExit"] = {"command": ["notify"]}
    assert problems_of(doc) == [
        "spec.onExit.image: required: set the exit step's image or spec.image"
    ]


def test_on_exit_is_a_reserved_step_name_with_an_exit_step() -> None:
    doc = _with_deploy(pipeline())
    doc["spec"]["steps"][3]["name"] = "on-exit"
    assert problems_of(doc) == []
    doc["spec"]["onExit"] = {"command": ["notify"]}
    assert problems_of(doc) == ['spec.steps[3].name: "on-exit" is reserved for spec.onExit']


def test_the_input_parameters_of_the_promotion_values_are_reserved() -> None:
    doc = _with_deploy(
        pipeline(), inputs={"parameters": [{"name": "mlpipeline-promotion-version", "value": "1"}]}
    )
    assert problems_of(doc) == [
        'spec.steps[3].inputs.parameters[0].name: "mlpipeline-promotion-version" is reserved '
        "for the values of {{promotion.*}}"
    ]


@pytest.mark.parametrize(
    ("step", "field", "cycle"),
    [
        (1, "command[1]", "promote-model -> train -> promote-model"),
        (0, "command[1]", "promote-model -> extract -> train -> promote-model"),
    ],
)
def test_a_step_the_promotion_needs_cannot_read_its_decision(
    step: int, field: str, cycle: str
) -> None:
    doc = pipeline()
    doc["spec"]["steps"][step]["command"][1] = "{{promotion.decision}}"
    assert problems_of(doc) == [
        f"spec.steps[{step}].{field}: uses {{{{promotion.*}}}}, so it runs after the promotion, "
        f'which needs it first (promotion.from.step "train"): dependency cycle: {cycle}'
    ]


def test_a_step_the_source_does_not_need_may_read_the_decision() -> None:
    doc = pipeline()
    doc["spec"]["steps"][2]["command"].append("{{promotion.decision}}")
    assert problems_of(doc) == []


# --- compiler ------------------------------------------------------------------------------


def test_a_step_after_the_promotion_depends_on_it_and_gets_its_values_as_inputs() -> None:
    doc = _with_deploy(
        pipeline(),
        command=["deploy", "{{promotion.decision}}"],
        env=[{"name": "ALIAS", "value": "{{promotion.alias}}"}],
    )
    doc["spec"]["steps"].append({"name": "smoke", "dependsOn": ["deploy"], "command": ["smoke"]})
    manifest = compile_document(doc)

    tasks, templates = _tasks(manifest), _templates(manifest)
    # The promotion no longer waits for deploy nor for smoke (downstream of deploy).
    assert tasks["promote-model"]["dependencies"] == ["train", "evaluate"]
    assert tasks["deploy"] == {
        "arguments": {
            "parameters": [
                {
                    "name": "mlpipeline-promotion-decision",
                    "value": "{{tasks.promote-model.outputs.parameters.decision}}",
                },
                {
                    "name": "mlpipeline-promotion-alias",
                    "value": "{{tasks.promote-model.outputs.parameters.alias}}",
                },
            ]
        },
        "dependencies": ["evaluate", "promote-model"],
        "name": "deploy",
        "template": "deploy",
        # Argo runs a task whose dependency was Skipped: the decision must be there.
        "when": '{{=get(get(tasks, "promote-model"), "status") == "Succeeded"}}',
    }
    deploy = templates["deploy"]
    assert deploy["container"]["command"] == [
        "deploy",
        "{{inputs.parameters.mlpipeline-promotion-decision}}",
    ]
    assert deploy["container"]["env"] == [
        {"name": "ALIAS", "value": "{{inputs.parameters.mlpipeline-promotion-alias}}"}
    ]
    assert deploy["inputs"] == {
        "parameters": [
            {"name": "mlpipeline-promotion-decision"},
            {"name": "mlpipeline-promotion-alias"},
        ]
    }
    assert tasks["smoke"]["dependencies"] == ["deploy"]
    assert "globalName" not in str(templates["promote-model"]["outputs"])


def test_the_exit_step_is_the_workflow_exit_handler() -> None:
    doc = pipeline()
    doc["spec"]["defaults"] = {"timeout": "1h", "retry": {"limit": 1}}
    doc["spec"]["onExit"] = {
        "image": "notify:1",
        "command": ["notify", "{{pipeline.status}}", "{{pipeline.parameters.lr}}"],
        "args": ["{{promotion.decision}}"],
        "env": [{"name": "FAILED", "value": "{{pipeline.failures}}"}],
        "timeout": "2m",
    }
    manifest = compile_document(doc)

    assert manifest["spec"]["onExit"] == "on-exit"
    assert _templates(manifest)["on-exit"] == {
        "activeDeadlineSeconds": 120,
        "container": {
            "args": ["{{=workflow?.outputs?.parameters?.mlpipeline_promotion_decision ?? ''}}"],
            "command": ["notify", "{{workflow.status}}", "{{workflow.parameters.lr}}"],
            "env": [
                {
                    "name": "FAILED",
                    "value": "{{=fromJSON(workflow.failures) == 'null' ? '[]' : "
                    "fromJSON(workflow.failures)}}",
                }
            ],
            "image": "notify:1",
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
            },
        },
        "name": "on-exit",
        "retryStrategy": {"limit": 1},
    }
    outputs = _templates(manifest)["promote-model"]["outputs"]["parameters"]
    assert {p["name"]: p.get("globalName") for p in outputs} == {
        "decision": "mlpipeline_promotion_decision",
        "version": "mlpipeline_promotion_version",
        "alias": "mlpipeline_promotion_alias",
        "reason": None,
        "metrics": None,
        "lineage": None,
    }


def test_without_an_exit_step_there_is_no_exit_handler() -> None:
    manifest = compile_document(pipeline())
    assert "onExit" not in manifest["spec"]
    assert "on-exit" not in _templates(manifest)


# --- status --------------------------------------------------------------------------------


def test_the_exit_handler_node_is_the_step_on_exit_in_status() -> None:
    def node(display: str, type_: str, phase: str, **more: Any) -> Doc:
        return {"displayName": display, "type": type_, "phase": phase, **more}

    workflow = {
        "metadata": {"name": "demo-g1-abc123"},
        "spec": {
            "templates": [{"name": "mlpipeline", "dag": {"tasks": [{"name": "train"}]}}],
        },
        "status": {
            "phase": "Failed",
            "nodes": {
                "a": node("demo-g1-abc123", "DAG", "Succeeded"),
                "b": node("train", "Pod", "Succeeded", startedAt="2026-01-01T00:00:00Z"),
                "c": node("demo-g1-abc123.onExit", "Retry", "Failed", children=["d", "e"]),
                "d": node("demo-g1-abc123.onExit(0)", "Pod", "Failed"),
                "e": node("demo-g1-abc123.onExit(1)", "Pod", "Failed", message="exit code 1"),
            },
        },
    }
    steps = run_status(workflow).steps
    assert [(s.name, s.phase, s.retries) for s in steps] == [
        ("train", "Succeeded", 0),
        ("on-exit", "Failed", 1),
    ]


def test_a_step_after_the_promotion_is_not_cached() -> None:
    doc = _with_deploy(pipeline(), args=["{{promotion.decision}}"])
    doc["spec"]["defaults"] = {"cache": {"maxAge": "24h"}}
    assert problems_of(doc) == [
        "spec.steps[3].cache: cached (spec.defaults.cache) but uses {{promotion.*}}, whose "
        "values its cache key does not hold; set cache: {maxAge: 0s} on this step"
    ]
    doc["spec"]["steps"][3]["cache"] = {"maxAge": "0s"}
    assert problems_of(doc) == []


def test_a_step_with_for_each_cannot_read_the_decision() -> None:
    doc = _with_deploy(pipeline(), args=["{{promotion.decision}}", "{{item}}"])
    doc["spec"]["steps"][3]["forEach"] = {"items": ["a", "b"]}
    assert problems_of(doc) == [
        "spec.steps[3].forEach: cannot be used with {{promotion.*}} in the same step; read the "
        "decision in a step of its own, and make this one depend on it"
    ]


def test_a_step_with_a_condition_on_the_decision_that_uses_it_depends_on_the_promotion_once() -> (
    None
):
    doc = _with_deploy(
        pipeline(), when="{{promotion.decision}} == Promoted", args=["{{promotion.version}}"]
    )
    manifest = compile_document(doc)
    tasks = _tasks(manifest)
    assert tasks["deploy"]["dependencies"] == ["evaluate", "promote-model"]
    assert tasks["promote-model"]["dependencies"] == ["train", "evaluate"]
    assert tasks["deploy"]["arguments"] == {
        "parameters": [
            {
                "name": "mlpipeline-promotion-version",
                "value": "{{tasks.promote-model.outputs.parameters.version}}",
            }
        ]
    }
