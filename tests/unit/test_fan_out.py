"""Fan-out and fan-in (`steps[].forEach`): validation with exact messages, the compiled tasks
and templates, the status of the iterations, and the values the local runner gives."""

from __future__ import annotations

from typing import Any

import pytest

from mlpipeline_operator.compiler.workflow import compile_document
from mlpipeline_operator.core import InvalidPipeline, Problem
from mlpipeline_operator.local import fan_out
from mlpipeline_operator.reconcile.status import run_status
from mlpipeline_operator.validation import validate_document
from tests.unit.argo_runs import recorded
from tests.unit.pipelines import pipeline

Doc = dict[str, Any]


def fanned(for_each: Doc, command: list[str] | None = None, **step: Any) -> Doc:
    """The base pipeline with `train` fanned out (its promotion taken away)."""
    doc = pipeline()
    doc["spec"].pop("promotion")
    train = doc["spec"]["steps"][1]
    train["forEach"] = for_each
    if command is not None:
        train["command"] = command
    train.update(step)
    return doc


def problems(doc: Doc) -> list[str]:
    return [str(p) for p in validate_document(doc)[1]]


# --- validation -----------------------------------------------------------------------------


def test_a_valid_fan_out_has_no_problem() -> None:
    doc = fanned(
        {"items": [{"lr": 0.1, "name": "a"}, {"lr": 1, "name": "b"}], "maxParallel": 2},
        ["train", "{{item.lr}}", "{{item.name}}", "{{item}}"],
        env=[{"name": "ITEM", "value": "{{item}}"}],
        inputs={"parameters": [{"name": "lr", "value": "lr={{item.lr}}"}]},
    )
    assert problems(doc) == []


@pytest.mark.parametrize(
    ("for_each", "command", "expected"),
    [
        (
            {"items": []},
            ["train"],
            "spec.steps[1].forEach.items: must not be empty: list at least one item, or use from",
        ),
        (
            {"items": ["a"], "from": "extract.raw"},
            ["train"],
            "spec.steps[1].forEach: set exactly one of items or from",
        ),
        ({}, ["train"], "spec.steps[1].forEach: set exactly one of items or from"),
        (
            {"items": [{"lr": 1}, {"depth": 2}]},
            ["train", "{{item.lr}}"],
            'spec.steps[1].command[1]: "{{item.lr}}": item 1 has no key "lr" (its keys: "depth")',
        ),
        (
            {"items": ["a"]},
            ["train", "{{item.lr}}"],
            'spec.steps[1].command[1]: "{{item.lr}}": item 0 ("a") is not an object; '
            "{{item.KEY}} needs every item to be an object with that key",
        ),
        (
            {"items": ["a", True]},
            ["train"],
            "spec.steps[1].forEach.items[1]: expected a string, a number, or an object of "
            "strings and numbers, got the boolean true",
        ),
        (
            {"items": [{"lr": [1]}]},
            ["train"],
            'spec.steps[1].forEach.items[0]: key "lr": expected a string or a number, got a list',
        ),
        (
            {"items": [{"learning-rate": 1}]},
            ["train"],
            'spec.steps[1].forEach.items[0]: key "learning-rate" is not a name {{item.KEY}} can '
            "use: letters, digits and '_', not starting with a digit, at most 63 characters",
        ),
        (
            {"items": ["x" * 1025]},
            ["train"],
            "spec.steps[1].forEach.items[0]: is 1025 characters long; at most 1024 are allowed",
        ),
        (
            {"items": list(range(257))},
            ["train"],
            "spec.steps[1].forEach.items: List should have at most 256 items after validation, "
            "not 257",
        ),
        (
            {"items": ["a"], "maxParallel": 0},
            ["train"],
            "spec.steps[1].forEach.maxParallel: Input should be greater than or equal to 1 (got 0)",
        ),
        (
            {"from": "extract.list"},
            ["train"],
            'spec.steps[1].forEach.from: unknown output parameter of step "extract" "list"; '
            "none is declared",
        ),
        (
            {"from": "train.run_id"},
            ["train"],
            "spec.steps[1].forEach.from: a step cannot take its own output",
        ),
        (
            {"from": "evaluate.scores"},
            ["train"],
            "spec.steps[1].dependsOn: dependency cycle: train -> evaluate -> train",
        ),
    ],
)
def test_a_misused_fan_out_names_its_field(
    for_each: Doc, command: list[str], expected: str
) -> None:
    doc = fanned(for_each, command)
    doc["spec"]["steps"][1]["command"] += ["{{outputs.parameters.run_id.path}}"]
    doc["spec"]["steps"][2]["outputs"] = {"parameters": [{"name": "scores", "path": "/s"}]}
    assert expected in problems(doc), problems(doc)


def test_item_outside_a_fan_out_is_refused_where_it_is_written() -> None:
    doc = pipeline()
    evaluate = doc["spec"]["steps"][2]
    evaluate["command"] += ["{{item}}"]
    evaluate["inputs"]["parameters"].append({"name": "x", "value": "{{item.lr}}"})
    doc["spec"]["parameters"][0]["value"] = "{{item}}"
    assert problems(doc) == [
        'spec.parameters[0].value: "{{item}}" cannot be used here; only '
        "{{pipeline.parameters.NAME}} can",
        'spec.steps[2].command[2]: "{{item}}" can only be used in a step with forEach',
        'spec.steps[2].inputs.parameters[1].value: "{{item.lr}}" can only be used in a step '
        "with forEach",
    ]


def test_what_cannot_be_taken_from_a_fanned_out_step() -> None:
    doc = fanned(
        {"items": ["a", "b"]},
        ["train", "{{outputs.parameters.run_id.path}}"],
        inputs={"parameters": [{"name": "item-x", "value": "1"}]},
    )
    doc["spec"]["steps"][1]["outputs"]["artifacts"] = [{"name": "model", "path": "/model"}]
    doc["spec"]["steps"][2]["inputs"]["artifacts"] = [
        {"name": "model", "from": "train.model", "path": "/model"}
    ]
    doc["spec"]["promotion"] = pipeline()["spec"]["promotion"]
    assert problems(doc) == [
        'spec.promotion.from.step: step "train" runs once per item (forEach); promote from one '
        "run id: add a step that takes its output parameter (a JSON list) and writes the chosen "
        "run's id",
        'spec.steps[1].inputs.parameters[0].name: "item-x" is reserved in a step with forEach '
        "(it carries the item): choose another name",
        'spec.steps[2].inputs.artifacts[0].from: step "train" runs once per item (forEach), so '
        "its artifacts cannot be taken; pass an output parameter instead (its values arrive as "
        "a JSON list), for example the location where each iteration stored its file",
    ]


def test_a_fan_out_is_never_cached() -> None:
    doc = fanned({"items": ["a", "b"]}, cache={"maxAge": "1h"})
    doc["spec"]["defaults"] = {"cache": {"maxAge": "2h"}}
    assert problems(doc) == [
        "spec.steps[1].cache: a step with forEach is not cached (its iterations would share one "
        "cache entry); remove cache, or set cache: {maxAge: 0s}",
        'spec.steps[2].cache: cached (spec.defaults.cache) but depends on step "train", which '
        "has forEach and is never cached; set cache: {maxAge: 0s} on this step",
    ]
    doc["spec"]["steps"][1]["cache"] = {"maxAge": "0s"}
    doc["spec"]["steps"][2]["cache"] = {"maxAge": "0s"}
    templates = compile_document(doc)["spec"]["templates"]
    assert [t["name"] for t in templates if "memoize" in t] == ["extract"]


# --- compiler -------------------------------------------------------------------------------


def _dag(manifest: Doc) -> dict[str, Doc]:
    templates = {t["name"]: t for t in manifest["spec"]["templates"]}
    return {t["name"]: t for t in templates["mlpipeline"]["dag"]["tasks"]} | {
        f"template:{name}": t for name, t in templates.items()
    }


def test_literal_items_loop_the_steps_task_and_reach_the_container_as_parameters() -> None:
    doc = fanned(
        {"items": [{"lr": 0.1, "name": "a"}, {"lr": 1, "name": "b"}]},
        ["train", "{{item.lr}}", "{{item}}", "{{inputs.artifacts.raw.path}}"],
        inputs={
            "artifacts": [{"name": "raw", "from": "extract.raw", "path": "/data/raw"}],
            "parameters": [{"name": "tag", "value": "{{item.name}}-{{pipeline.parameters.lr}}"}],
        },
    )
    dag = _dag(compile_document(doc))
    assert dag["train"] == {
        "arguments": {
            "artifacts": [{"from": "{{tasks.extract.outputs.artifacts.raw}}", "name": "raw"}],
            "parameters": [
                {"name": "tag", "value": "{{item.name}}-{{workflow.parameters.lr}}"},
                {"name": "item-lr", "value": "{{item.lr}}"},
                {"name": "item", "value": "{{item}}"},
            ],
        },
        "dependencies": ["extract"],
        "name": "train",
        "template": "train",
        "withItems": [{"lr": 0.1, "name": "a"}, {"lr": 1, "name": "b"}],
    }
    template = dag["template:train"]
    assert template["container"]["command"] == [
        "train",
        "{{inputs.parameters.item-lr}}",
        "{{inputs.parameters.item}}",
        "{{inputs.artifacts.raw.path}}",
    ]
    assert template["inputs"]["parameters"] == [
        {"name": "tag"},
        {"name": "item-lr"},
        {"name": "item"},
    ]
    # The fan-in: the step that takes `train.run_id` gets Argo's aggregated JSON list.
    assert dag["evaluate"]["arguments"]["parameters"] == [
        {"name": "run_id", "value": "{{tasks.train.outputs.parameters.run_id}}"}
    ]


def test_from_loops_over_the_upstream_list_and_depends_on_it() -> None:
    doc = fanned({"from": "extract.configs"}, ["train", "{{item}}"])
    doc["spec"]["steps"][0]["outputs"]["parameters"] = [{"name": "configs", "path": "/c"}]
    del doc["spec"]["steps"][1]["inputs"]
    task = _dag(compile_document(doc))["train"]
    assert task["dependencies"] == ["extract"]
    assert task["withParam"] == "{{tasks.extract.outputs.parameters.configs}}"


def test_max_parallel_moves_the_loop_into_a_dag_template_with_parallelism() -> None:
    doc = fanned(
        {"from": "extract.configs", "maxParallel": 2},
        ["train", "{{item}}", "{{inputs.parameters.seed}}", "{{inputs.parameters.tag}}"],
        inputs={
            "artifacts": [{"name": "raw", "from": "extract.raw", "path": "/data/raw"}],
            "parameters": [
                {"name": "seed", "from": "extract.seed"},
                {"name": "tag", "value": "t-{{item}}"},
            ],
        },
    )
    doc["spec"]["steps"][0]["outputs"]["parameters"] = [
        {"name": "configs", "path": "/c"},
        {"name": "seed", "path": "/s"},
    ]
    dag = _dag(compile_document(doc))
    assert dag["train"] == {
        "arguments": {
            "artifacts": [{"from": "{{tasks.extract.outputs.artifacts.raw}}", "name": "raw"}],
            "parameters": [
                {"name": "seed", "value": "{{tasks.extract.outputs.parameters.seed}}"},
                {"name": "item-list", "value": "{{tasks.extract.outputs.parameters.configs}}"},
            ],
        },
        "dependencies": ["extract"],
        "name": "train",
        "template": "train-forEach",
        # Over an empty list the wrapper's task is skipped, as a looped task is.
        "when": '{{=len(fromJSON(get(get(get(get(tasks, "extract"), "outputs"), "parameters"), '
        '"configs"))) > 0}}',
    }
    assert dag["template:train-forEach"] == {
        "dag": {
            "tasks": [
                {
                    "arguments": {
                        "artifacts": [{"from": "{{inputs.artifacts.raw}}", "name": "raw"}],
                        "parameters": [
                            {"name": "seed", "value": "{{inputs.parameters.seed}}"},
                            {"name": "tag", "value": "t-{{item}}"},
                            {"name": "item", "value": "{{item}}"},
                        ],
                    },
                    "name": "train",
                    "template": "train",
                    "withParam": "{{inputs.parameters.item-list}}",
                }
            ]
        },
        "inputs": {
            "artifacts": [{"name": "raw"}],
            "parameters": [{"name": "seed"}, {"name": "item-list"}],
        },
        "name": "train-forEach",
        "outputs": {
            "parameters": [
                {
                    "name": "run_id",
                    "valueFrom": {"parameter": "{{tasks.train.outputs.parameters.run_id}}"},
                }
            ]
        },
        "parallelism": 2,
    }
    assert "train" in {name.removeprefix("template:") for name in dag if ":" in name}


def _over_a_list(max_parallel: int | None, **step: Any) -> Doc:
    """`train` over the list `extract.configs`; `evaluate` takes its outputs, `report` only
    comes after it."""
    for_each: Doc = {"from": "extract.configs"}
    if max_parallel is not None:
        for_each["maxParallel"] = max_parallel
    doc = fanned(for_each, ["train", "{{item}}"], **step)
    doc["spec"]["steps"][0]["outputs"]["parameters"] = [{"name": "configs", "path": "/c"}]
    del doc["spec"]["steps"][1]["inputs"]
    doc["spec"]["steps"].append({"name": "report", "command": ["report"], "dependsOn": ["train"]})
    return doc


@pytest.mark.parametrize("max_parallel", [None, 2])
def test_a_step_over_an_empty_list_skips_the_steps_that_take_its_outputs_only(
    max_parallel: int | None,
) -> None:
    dag = _dag(compile_document(_over_a_list(max_parallel)))
    assert dag["evaluate"]["when"] == '{{=get(get(tasks, "train"), "status") == "Succeeded"}}'
    assert "when" not in dag["report"]
    assert dag["report"]["dependencies"] == ["train"]


def test_with_max_parallel_the_wrappers_task_keeps_the_steps_condition_and_continue_on() -> None:
    step = {"when": "{{pipeline.parameters.lr}} > 0", "continueOnFailure": True}
    looped = _dag(compile_document(_over_a_list(None, **step)))["train"]
    wrapped = _dag(compile_document(_over_a_list(2, **step)))["train"]
    assert wrapped["continueOn"] == looped["continueOn"] == {"error": True, "failed": True}
    non_empty = (
        'len(fromJSON(get(get(get(get(tasks, "extract"), "outputs"), "parameters"), '
        '"configs"))) > 0'
    )
    assert looped["when"].startswith("{{=(float(")
    assert wrapped["when"] == "{{=" + non_empty + " && " + looped["when"].removeprefix("{{=")


def test_a_step_over_the_list_of_a_step_that_may_be_skipped_is_skipped_with_it() -> None:
    doc = _over_a_list(None)
    doc["spec"]["steps"][0]["when"] = "{{pipeline.parameters.lr}} > 0"
    task = _dag(compile_document(doc))["train"]
    assert task["when"] == '{{=get(get(tasks, "extract"), "status") == "Succeeded"}}'


def test_an_invalid_fan_out_does_not_compile() -> None:
    with pytest.raises(InvalidPipeline) as error:
        compile_document(fanned({"items": []}))
    assert error.value.problems == [
        Problem(
            "spec.steps[1].forEach.items",
            "must not be empty: list at least one item, or use from",
        )
    ]


# --- status ---------------------------------------------------------------------------------


def _node(node_id: str, name: str, type_: str, phase: str, **fields: Any) -> Doc:
    return {"id": node_id, "displayName": name, "type": type_, "phase": phase, **fields}


def _workflow(nodes: list[Doc], tasks: list[str]) -> Doc:
    return {
        "metadata": {"name": "run"},
        "spec": {
            "templates": [{"name": "mlpipeline", "dag": {"tasks": [{"name": t} for t in tasks]}}]
        },
        "status": {"phase": "Failed", "nodes": {n["id"]: n for n in nodes}},
    }


def test_iterations_are_counted_by_phase_and_failed_ones_listed_by_item() -> None:
    long_item = "x" * 70
    nodes = [
        _node("run", "run", "DAG", "Failed", children=["g"]),
        _node("e", "extract", "Pod", "Succeeded", startedAt="2026-01-01T00:00:00Z"),
        _node(
            "g",
            "train",
            "TaskGroup",
            "Failed",
            startedAt="2026-01-01T00:01:00Z",
            finishedAt="2026-01-01T00:02:00Z",
            message="child 'run-3' failed",
            children=["i2", "i0", "i1", "i3"],
        ),
        _node("i0", "train(0:lr:0.1)", "Pod", "Succeeded"),
        _node("i1", f"train(1:{long_item})", "Pod", "Failed", message="exit code 1"),
        _node("i2", "train(2:lr:1)", "Retry", "Error", children=["a", "b"], message="OOMKilled"),
        _node("a", "train(2:lr:1)(0)", "Pod", "Error"),
        _node("b", "train(2:lr:1)(1)", "Pod", "Error"),
        _node("i3", "train(3:lr:2)", "Pod", "Running"),
    ]
    run = run_status(_workflow(nodes, ["extract", "train"]))
    step = run.steps[1]
    assert step.model_dump(by_alias=True, exclude_none=True) == {
        "name": "train",
        "phase": "Failed",
        "retries": 1,
        "startedAt": "2026-01-01T00:01:00Z",
        "finishedAt": "2026-01-01T00:02:00Z",
        "message": f"iteration 1 ({'x' * 64}...) failed: exit code 1",
        "iterations": {
            "total": 4,
            "phases": {"Error": 1, "Failed": 1, "Running": 1, "Succeeded": 1},
            "failed": [
                {"index": 1, "item": f"{'x' * 64}...", "message": "exit code 1"},
                {"index": 2, "item": "lr:1", "message": "OOMKilled"},
            ],
        },
    }


def test_with_max_parallel_the_step_is_its_dag_node() -> None:
    nodes = [
        _node(
            "w",
            "train",
            "DAG",
            "Running",
            templateName="train-forEach",
            startedAt="2026-01-01T00:00:00Z",
            children=["g"],
        ),
        _node("g", "train", "TaskGroup", "Running", children=["i0", "i1"]),
        _node("i0", "train(0:a)", "Pod", "Succeeded"),
        _node("i1", "train(1:b)", "Pod", "Running"),
    ]
    (step,) = run_status(_workflow(nodes, ["train"])).steps
    assert (step.name, step.phase, step.started_at) == ("train", "Running", "2026-01-01T00:00:00Z")
    assert step.iterations is not None
    assert step.iterations.model_dump(exclude_none=True) == {
        "total": 2,
        "phases": {"Running": 1, "Succeeded": 1},
    }


# --- the local runner's values --------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "key", "text"),
    [
        ("a<b", "", "a<b"),
        (3, "", "3"),
        (0.5, "", "0.5"),
        (True, "", "true"),
        ({"b": "x&y", "a": 1}, "", '{"a":1,"b":"x\\u0026y"}'),
        ({"b": "x&y", "a": 1}, "b", "x&y"),
        ({"a": 1.5}, "a", "1.5"),
        ({"a": {"z": 1, "y": "<"}}, "a", '{"z":1,"y":"<"}'),
        (["a", 1], "", '["a",1]'),
    ],
)
def test_item_text_is_what_argo_substitutes(item: Any, key: str, text: str) -> None:
    assert fan_out.item_text(item, key) == text


def test_item_label_is_argos_name_of_the_iteration() -> None:
    assert fan_out.item_label({"size": 2, "name": "b"}) == "name:b,size:2"
    assert fan_out.item_label("f(x)") == "fx"


@pytest.mark.parametrize(
    ("values", "aggregated"),
    [
        (["one", "two"], '["one","two"]'),
        (["1", "2.5"], '["1","2.5"]'),
        (['{"b":1.0,"a":"<"}', "[1,2]"], '[{"a":"\\u003c","b":1},[1,2]]'),
        (['{"a":1}', "plain"], '["{\\"a\\":1}","plain"]'),
        (["é & ü"], '["é \\u0026 ü"]'),
    ],
)
def test_fan_in_is_argos_aggregated_list(values: list[str], aggregated: str) -> None:
    assert fan_out.aggregate(values) == aggregated


def _from_step(command: list[str]) -> Any:
    doc = fanned({"from": "extract.configs"}, command)
    doc["spec"]["steps"][0]["outputs"]["parameters"] = [{"name": "configs", "path": "/c"}]
    del doc["spec"]["steps"][1]["inputs"]
    parsed, found = validate_document(doc)
    assert parsed is not None, found
    return parsed.spec.steps[1]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("a,b", 'forEach.from "extract.configs": the value is not JSON: "a,b"'),
        (
            '{"a": 1}',
            'forEach.from "extract.configs": the value is not a JSON list: "{\\"a\\": 1}"',
        ),
        (
            '[{"lr": 1}, null]',
            'forEach.from "extract.configs": item 1 is null; an item is a string, a number, '
            "a boolean, a list or an object",
        ),
        (
            '[{"lr": 1}, {"depth": 2}]',
            'forEach.from "extract.configs": item 1 ("{\\"depth\\":2}") has no key "lr", which '
            "{{item.lr}} needs",
        ),
    ],
)
def test_a_runtime_list_that_does_not_fit_is_a_clear_error(value: str, message: str) -> None:
    step = _from_step(["train", "{{item.lr}}"])
    with pytest.raises(fan_out.FanOutError) as error:
        fan_out.items_of(step, {"extract": {"configs": value}})
    assert str(error.value) == message


def test_a_runtime_list_gives_the_items() -> None:
    step = _from_step(["train", "{{item}}"])
    items = fan_out.items_of(step, {"extract": {"configs": '["a", 2, {"k": "v"}]'}})
    assert items == ["a", 2, {"k": "v"}]


# --- a run recorded on the end-to-end cluster (tests/e2e/test_fan_out.py) -------------------


def test_the_recorded_run_shows_each_fan_out_with_its_iterations() -> None:
    run = run_status(recorded("fan-out-g1"))
    shown = [
        (s.name, s.phase, s.iterations.model_dump(exclude_none=True) if s.iterations else None)
        for s in run.steps
    ]
    assert shown == [
        ("configs", "Succeeded", None),
        ("one-at-a-time", "Succeeded", {"total": 3, "phases": {"Succeeded": 3}}),
        ("per-config", "Succeeded", {"total": 3, "phases": {"Succeeded": 3}}),
        ("per-done", "Succeeded", {"total": 3, "phases": {"Succeeded": 3}}),
        ("words", "Succeeded", {"total": 2, "phases": {"Succeeded": 2}}),
        ("fan-in", "Succeeded", None),
    ]
    # With maxParallel, the step's times are those of its DAG node.
    assert (run.steps[1].started_at, run.steps[1].finished_at) == (
        "2026-12-01T21:08:49Z",
        "2026-12-01T21:09:39Z",
    )


def test_the_local_fan_in_is_what_argo_gave_in_the_recorded_run() -> None:
    nodes = recorded("fan-out-g1")["status"]["nodes"].values()
    fan_in = next(n for n in nodes if n["displayName"] == "fan-in")
    received = {p["name"]: p["value"] for p in fan_in["inputs"]["parameters"]}
    for name, step in (
        ("done", "one-at-a-time"),
        ("sizes", "per-config"),
        ("shouted", "per-done"),
        ("words", "words"),
    ):
        iterations = sorted(
            (n for n in nodes if n["type"] == "Pod" and n["displayName"].startswith(f"{step}(")),
            key=lambda n: int(n["displayName"].split("(")[1].split(":")[0]),
        )
        values = [n["outputs"]["parameters"][0]["value"] for n in iterations]
        assert fan_out.aggregate(values) == received[name]
