"""Conditions (`steps[].when`): the parser, validation's exact messages, the value of a condition,
and what the compiler makes of it (with `continueOnFailure`)."""

from __future__ import annotations

from typing import Any

import pytest

from mlpipeline_operator import conditions
from mlpipeline_operator.compiler.workflow import compile_document
from mlpipeline_operator.core import InvalidPipeline, Problem
from mlpipeline_operator.validation import validate_document
from tests.unit.pipelines import pipeline

Doc = dict[str, Any]


def _with_when(when: str, step: int = 2) -> Doc:
    doc = pipeline()
    doc["spec"]["steps"][step]["when"] = when
    return doc


def _problems(doc: Doc) -> list[str]:
    parsed, problems = validate_document(doc)
    assert parsed is None
    return [str(p) for p in problems]


# --- Parser --------------------------------------------------------------------------------------


def test_the_tree_follows_precedence_not_before_and_before_or() -> None:
    tree = conditions.parse(
        "{{pipeline.parameters.a}} == x or not {{pipeline.parameters.b}} != 'y z' and "
        "({{inputs.parameters.c}} >= -1.5)"
    )
    assert isinstance(tree, conditions.Junction) and tree.operator == "or"
    first, second = tree.operands
    assert isinstance(first, conditions.Comparison) and first.operator == "=="
    assert first.right == conditions.Constant("x", number=False, position=30)
    assert isinstance(second, conditions.Junction) and second.operator == "and"
    negated, numeric = second.operands
    assert isinstance(negated, conditions.Not)
    assert isinstance(negated.operand, conditions.Comparison)
    assert negated.operand.right == conditions.Constant("y z", number=False, position=68)
    assert isinstance(numeric, conditions.Comparison) and numeric.numeric
    assert [r.text for r in conditions.references(tree)] == [
        "{{pipeline.parameters.a}}",
        "{{pipeline.parameters.b}}",
        "{{inputs.parameters.c}}",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "at position 1: empty condition"),
        (
            "{{pipeline.parameters.lr}} ==",
            'at position 30: expected a value after "==", found the end',
        ),
        (
            "{{pipeline.parameters.lr}}",
            "at position 27: expected a comparison (==, !=, <, <=, >, >=) after "
            "{{pipeline.parameters.lr}}, found the end",
        ),
        ("== 3", 'at position 1: expected a value to compare, found "=="'),
        ("{{pipeline.parameters.lr}} = 3", 'at position 28: unexpected "=": compare with "=="'),
        (
            "{{pipeline.parameters.lr}} == 1 && {{pipeline.parameters.lr}} == 2",
            'at position 33: unexpected "&&": use and, or, not',
        ),
        (
            "({{pipeline.parameters.lr}} == 1",
            'at position 33: expected ")" to close the "(" at position 1, found the end',
        ),
        (
            "{{pipeline.parameters.lr}} == 1 2",
            'at position 33: expected "and", "or" or the end, found "2"',
        ),
        ("{{pipeline.parameters.lr}} == 'x", "at position 31: string without its closing '"),
        ("{{pipeline.parameters.lr == 1", 'at position 1: "{{" without its closing "}}"'),
        (
            "1 == 2",
            "at position 1: compares two constants; one side must be a placeholder such as "
            "{{pipeline.parameters.NAME}}",
        ),
        (
            "{{inputs.artifacts.raw.path}} == x",
            'at position 1: "{{inputs.artifacts.raw.path}}" cannot be used in a condition; use '
            "one of {{pipeline.parameters.NAME}}, {{inputs.parameters.NAME}}, "
            "{{promotion.decision}}, {{promotion.version}}, {{promotion.alias}}",
        ),
        (
            "x == {{workflow.status}}",
            'at position 6: "{{workflow.status}}" cannot be used in a condition; use one of '
            "{{pipeline.parameters.NAME}}, {{inputs.parameters.NAME}}, {{promotion.decision}}, "
            "{{promotion.version}}, {{promotion.alias}}",
        ),
        (
            "{{pipeline.parameters.lr}} == and",
            'at position 31: expected a value after "==", found "and"',
        ),
        (
            "{{pipeline.parameters.lr}} > 1" + "0" * 400,
            f"at position 30: 1{'0' * 400} is too large a number",
        ),
        ("{{pipeline.parameters.lr}} == $", 'at position 31: unexpected character "$"'),
    ],
)
def test_a_syntax_error_says_what_and_where(text: str, message: str) -> None:
    with pytest.raises(conditions.ConditionError) as raised:
        conditions.parse(text)
    assert str(raised.value) == message


# --- Validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "step", "problem"),
    [
        (
            "{{pipeline.parameters.rate}} > 1",
            2,
            "spec.steps[2].when: at position 1: placeholder {{pipeline.parameters.rate}}: unknown "
            'pipeline parameter "rate"; known: "lr"',
        ),
        (
            "{{inputs.parameters.run}} == x",
            2,
            "spec.steps[2].when: at position 1: placeholder {{inputs.parameters.run}}: unknown "
            'input parameter "run" (did you mean "run_id"?)',
        ),
        (
            "{{inputs.parameters.run_id}} == x",
            0,
            "spec.steps[0].when: at position 1: placeholder {{inputs.parameters.run_id}}: "
            'unknown input parameter "run_id"; none is declared',
        ),
        (
            "{{pipeline.parameters.lr}} >",
            2,
            'spec.steps[2].when: at position 29: expected a value after ">", found the end',
        ),
        (
            "{{promotion.decision}} == Promoted",
            1,
            "spec.steps[1]: runs after the promotion (its condition, or one of a step it depends "
            'on, reads {{promotion.*}}), but the promotion takes its model from step "train", '
            "which needs this step first",
        ),
    ],
)
def test_a_misused_condition_is_reported_at_its_field(when: str, step: int, problem: str) -> None:
    assert _problems(_with_when(when, step)) == [problem]


def test_the_promotion_cannot_be_read_without_a_promotion() -> None:
    doc = _with_when("{{promotion.decision}} == Promoted")
    del doc["spec"]["promotion"]
    assert _problems(doc) == [
        "spec.steps[2].when: at position 1: placeholder {{promotion.decision}}: there is no "
        "promotion (spec.promotion is not set)"
    ]


def test_the_promotion_placeholders_are_not_for_pipeline_parameters() -> None:
    # A step's command, args and env may use them (it then runs after the promotion).
    doc = pipeline()
    doc["spec"]["parameters"][0]["value"] = "{{promotion.version}}"
    assert _problems(doc) == [
        'spec.parameters[0].value: "{{promotion.version}}" cannot be used here; only '
        "{{pipeline.parameters.NAME}} can"
    ]


def test_an_empty_condition_is_refused_by_its_shape() -> None:
    assert _problems(_with_when("")) == ["spec.steps[2].when: must not be empty"]


def test_continue_on_failure_is_a_boolean() -> None:
    doc = pipeline()
    doc["spec"]["steps"][2]["continueOnFailure"] = "yes"
    assert _problems(doc) == [
        'spec.steps[2].continueOnFailure: expected a boolean, got the string "yes"'
    ]


# --- Value ---------------------------------------------------------------------------------------


def _holds(text: str, **values: str) -> bool:
    def value_of(ref: conditions.Reference) -> str:
        return values[ref.placeholder.name]

    return conditions.evaluate(conditions.parse(text), value_of)


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("{{promotion.decision}} == Promoted", {"decision": "Promoted"}, True),
        ("{{promotion.decision}} == Promoted", {"decision": "Rejected"}, False),
        ("{{inputs.parameters.a}} > 9", {"a": "10"}, True),  # numeric: 10 > 9
        ("{{inputs.parameters.a}} > '9'", {"a": "10"}, False),  # text: "10" < "9"
        ("{{inputs.parameters.a}} == 1", {"a": "1.0"}, True),
        ("{{inputs.parameters.a}} == '1'", {"a": "1.0"}, False),
        ("{{inputs.parameters.a}} <= -0.5", {"a": "-0.5"}, True),
        ("{{inputs.parameters.a}} != {{inputs.parameters.b}}", {"a": "x", "b": "x"}, False),
        ("not ({{inputs.parameters.a}} == x or {{inputs.parameters.a}} == y)", {"a": "y"}, False),
        ("{{inputs.parameters.a}} == 'x\\'s'", {"a": "x's"}, True),
        ("{{inputs.parameters.a}} == x", {"a": 'x" || true || "'}, False),
    ],
)
def test_a_condition_holds_with_its_values(
    text: str, values: dict[str, str], expected: bool
) -> None:
    assert _holds(text, **values) is expected


def test_a_value_compared_with_a_number_must_be_a_decimal_number() -> None:
    for value in ("", " 1", "1e3", "inf", "0x10", "1_000"):
        with pytest.raises(conditions.ConditionError) as raised:
            _holds("{{inputs.parameters.a}} > 0", a=value)
        assert str(raised.value) == (
            f'{{{{inputs.parameters.a}}}} is "{value}", not a number, and is compared with a number'
        )


def test_expr_strings_escape_what_argo_or_expr_would_read() -> None:
    assert conditions.expr_string('a"b\\c') == '"a\\"b\\\\c"'
    assert conditions.expr_string("}} {{x}}") == '"\\u007d\\u007d \\u007b\\u007bx\\u007d\\u007d"'
    assert conditions.expr_string("é\n") == '"é\\n"'


# --- Compiler ------------------------------------------------------------------------------------


def _tasks(doc: Doc) -> dict[str, Doc]:
    manifest = compile_document(doc)
    dag = manifest["spec"]["templates"][0]["dag"]
    return {t["name"]: t for t in dag["tasks"]}


def _get(task: str, *keys: str) -> str:
    expression = "tasks"
    for key in (task, *keys):
        expression = f'get({expression}, "{key}")'
    return expression


def test_a_condition_becomes_one_argo_expression_over_variables() -> None:
    doc = _with_when(
        "{{inputs.parameters.run_id}} != '' and {{pipeline.parameters.lr}} < 0.5 and "
        "{{inputs.parameters.fixed}} == 'a-0.1'"
    )
    doc["spec"]["steps"][2]["inputs"]["parameters"].append(
        {"name": "fixed", "value": "a-{{pipeline.parameters.lr}}"}
    )
    tasks = _tasks(doc)
    number = '"^-?[0-9]+(\\\\.[0-9]+)?$"'
    lr = 'workflow.parameters["lr"]'
    assert tasks["evaluate"]["when"] == (
        "{{=("
        f'({_get("train", "outputs", "parameters", "run_id")} != "") && '
        f"(float({lr} matches {number} ? {lr} : "
        '"\\u007b\\u007bpipeline.parameters.lr\\u007d\\u007d is not a number") < 0.5) && '
        f'(("a-" + {lr}) == "a-0.1")'
        ")}}"
    )
    assert "when" not in tasks["train"] and "when" not in tasks["promote-model"]


def test_consumers_of_a_conditional_step_are_guarded_transitively() -> None:
    doc = _with_when("{{pipeline.parameters.lr}} == 0.1", step=0)
    tasks = _tasks(doc)
    assert tasks["extract"]["when"] == (
        '{{=(float(workflow.parameters["lr"] matches "^-?[0-9]+(\\\\.[0-9]+)?$" ? '
        'workflow.parameters["lr"] : "\\u007b\\u007bpipeline.parameters.lr\\u007d\\u007d is not '
        'a number") == 0.1)}}'
    )
    assert tasks["train"]["when"] == "{{=" + _get("extract", "status") + ' == "Succeeded"}}'
    assert tasks["evaluate"]["when"] == "{{=" + _get("train", "status") + ' == "Succeeded"}}'
    assert tasks["promote-model"]["when"] == tasks["evaluate"]["when"]


def test_a_step_that_only_depends_on_a_conditional_step_has_no_guard() -> None:
    doc = _with_when("{{pipeline.parameters.lr}} == x", step=2)
    doc["spec"]["steps"].append({"name": "report", "command": ["r"], "dependsOn": ["evaluate"]})
    tasks = _tasks(doc)
    assert "when" not in tasks["report"]
    assert tasks["report"]["dependencies"] == ["evaluate"]


def test_continue_on_failure_continues_on_failed_and_errored_tasks() -> None:
    doc = pipeline()
    doc["spec"]["steps"][1]["continueOnFailure"] = True
    tasks = _tasks(doc)
    assert tasks["train"]["continueOn"] == {"error": True, "failed": True}
    assert "continueOn" not in tasks["extract"]
    guard = "{{=" + _get("train", "status") + ' == "Succeeded"}}'
    assert tasks["evaluate"]["when"] == guard
    assert tasks["promote-model"]["when"] == guard


def test_a_step_that_reads_the_promotion_runs_after_it() -> None:
    doc = pipeline()
    doc["spec"]["steps"].append(
        {"name": "notify", "command": ["n"], "when": "{{promotion.decision}} == Promoted"}
    )
    doc["spec"]["steps"].append({"name": "tell", "command": ["t"], "dependsOn": ["notify"]})
    tasks = _tasks(doc)
    assert tasks["notify"]["dependencies"] == ["promote-model"]
    assert tasks["notify"]["when"] == (
        "{{="
        + _get("promote-model", "status")
        + ' == "Succeeded" && ('
        + _get("promote-model", "outputs", "parameters", "decision")
        + ' == "Promoted")}}'
    )
    # The promotion waits for the last steps before it, not for those after it.
    assert tasks["promote-model"]["dependencies"] == ["train", "evaluate"]


def test_a_problem_in_a_condition_stops_compilation() -> None:
    with pytest.raises(InvalidPipeline) as raised:
        compile_document(_with_when("{{pipeline.parameters.lr}} =="))
    assert raised.value.problems == [
        Problem("spec.steps[2].when", 'at position 30: expected a value after "==", found the end')
    ]
