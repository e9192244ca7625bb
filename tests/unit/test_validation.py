"""Invalid pipelines, each with the exact field path of its problem."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mlpipeline_operator.core import Problem
from mlpipeline_operator.validation import cron_error, validate_document
from tests.unit.pipelines import chain, pipeline

Doc = dict[str, Any]


def steps(doc: Doc) -> list[Doc]:
    result: list[Doc] = doc["spec"]["steps"]
    return result


def _set(path: str, value: Any) -> Callable[[Doc], None]:
    """A change that sets a dotted path ("spec.steps.1.retry") to a value."""

    def change(doc: Doc) -> None:
        keys = path.split(".")
        target: Any = doc
        for key in keys[:-1]:
            target = target[int(key)] if key.isdigit() else target.setdefault(key, {})
        last = keys[-1]
        if last.isdigit():
            target[int(last)] = value
        else:
            target[last] = value

    return change


def _del(path: str) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        keys = path.split(".")
        target: Any = doc
        for key in keys[:-1]:
            target = target[int(key)] if key.isdigit() else target[key]
        del target[keys[-1]]

    return change


def _cycle(doc: Doc) -> None:
    steps(doc)[0]["dependsOn"] = ["evaluate"]


def _duplicate(doc: Doc) -> None:
    steps(doc)[2]["name"] = "train"


def _suspended_schedule(doc: Doc) -> None:
    doc["spec"].update(suspend=True, schedule={"cron": "@daily"})


def _capped_schedule(doc: Doc) -> None:
    doc["spec"].update(maxConcurrentRuns=1, schedule={"cron": "@daily"})


def _too_large(doc: Doc) -> None:
    doc["spec"] = chain(1000, command_length=600)["spec"]


CASES: list[tuple[str, Callable[[Doc], None], str, str]] = [
    (
        "unknown dependency",
        _set("spec.steps.1.dependsOn", ["trian"]),
        "spec.steps[1].dependsOn[0]",
        'unknown step "trian" (did you mean "train"?)',
    ),
    (
        "self dependency",
        _set("spec.steps.1.dependsOn", ["train"]),
        "spec.steps[1].dependsOn[0]",
        "a step cannot depend on itself",
    ),
    ("duplicate step", _duplicate, "spec.steps[2].name", 'duplicate step name "train"'),
    (
        "cycle through inputs",
        _cycle,
        "spec.steps[0].dependsOn",
        "dependency cycle: extract -> train -> evaluate -> extract",
    ),
    (
        "artifact from unknown step",
        _set("spec.steps.1.inputs.artifacts.0.from", "extrct.raw"),
        "spec.steps[1].inputs.artifacts[0].from",
        'unknown step "extrct" (did you mean "extract"?)',
    ),
    (
        "artifact not declared",
        _set("spec.steps.1.inputs.artifacts.0.from", "extract.cooked"),
        "spec.steps[1].inputs.artifacts[0].from",
        'unknown output artifact of step "extract" "cooked"; known: "raw"',
    ),
    (
        "parameter from an artifact",
        _set("spec.steps.2.inputs.parameters.0.from", "extract.raw"),
        "spec.steps[2].inputs.parameters[0].from",
        'unknown output parameter of step "extract" "raw"; none is declared',
    ),
    (
        "input from itself",
        _set("spec.steps.2.inputs.parameters.0.from", "evaluate.x"),
        "spec.steps[2].inputs.parameters[0].from",
        "a step cannot take its own output",
    ),
    (
        "bad from syntax",
        _set("spec.steps.2.inputs.parameters.0.from", "train"),
        "spec.steps[2].inputs.parameters[0].from",
        'must be "STEP.NAME"',
    ),
    (
        "input parameter with value and from",
        _set("spec.steps.2.inputs.parameters.0.value", "1"),
        "spec.steps[2].inputs.parameters[0]",
        "set exactly one of value or from",
    ),
    (
        "placeholder not allowed",
        _set("spec.steps.0.command.1", "{{workflow.name}}"),
        "spec.steps[0].command[1]",
        '"{{workflow.name}}" is not a known placeholder',
    ),
    (
        "placeholder without .path",
        _set("spec.steps.0.command.2", "{{outputs.artifacts.raw}}"),
        "spec.steps[0].command[2]",
        'did you mean "{{outputs.artifacts.raw.path}}"?',
    ),
    (
        "undeclared input placeholder",
        _set("spec.steps.2.command.1", "{{inputs.parameters.runid}}"),
        "spec.steps[2].command[1]",
        'placeholder "{{inputs.parameters.runid}}": unknown input parameter "runid" '
        '(did you mean "run_id"?)',
    ),
    (
        "undeclared pipeline parameter",
        _set("spec.steps.1.command.2", "{{pipeline.parameters.x}}"),
        "spec.steps[1].command[2]",
        'unknown pipeline parameter "x"',
    ),
    (
        "unclosed placeholder",
        _set("spec.steps.0.command.0", "run {{inputs.parameters.a"),
        "spec.steps[0].command[0]",
        'has a "{{" without its closing "}}"',
    ),
    (
        "placeholder in env",
        _set("spec.steps.0.env", [{"name": "A", "value": "{{steps.x}}"}]),
        "spec.steps[0].env[0].value",
        "is not a known placeholder",
    ),
    (
        "placeholder in a pipeline parameter",
        _set("spec.parameters.0.value", "{{inputs.parameters.a}}"),
        "spec.parameters[0].value",
        "cannot be used here",
    ),
    (
        "promotion from unknown step",
        _set("spec.promotion.from.step", "trainer"),
        "spec.promotion.from.step",
        'unknown step "trainer" (did you mean "train"?)',
    ),
    (
        "promotion from undeclared parameter",
        _set("spec.promotion.from.parameter", "run"),
        "spec.promotion.from.parameter",
        'unknown output parameter of step "train" "run"',
    ),
    (
        "promotion without mlflow",
        _del("spec.mlflow"),
        "spec.mlflow",
        "required when spec.promotion is set",
    ),
    (
        "bad gate operator",
        _set("spec.promotion.gates.0.op", "=>"),
        "spec.promotion.gates[0].op",
        "Input should be '>=', '>', '<=', '<' or '=='",
    ),
    (
        "bad cron",
        _set("spec.schedule", {"cron": "61 * * * *"}),
        "spec.schedule.cron",
        'minute "61": 61 is out of range (allowed 0-59)',
    ),
    (
        "cron with six fields",
        _set("spec.schedule", {"cron": "0 0 2 * * *"}),
        "spec.schedule.cron",
        "has 6 fields; a cron expression has 5",
    ),
    (
        "bad time zone",
        _set("spec.schedule", {"cron": "@daily", "timezone": "Mars/Olympus"}),
        "spec.schedule.timezone",
        'unknown time zone "Mars/Olympus"',
    ),
    (
        "bad concurrency policy",
        _set("spec.schedule", {"cron": "@daily", "concurrencyPolicy": "Never"}),
        "spec.schedule.concurrencyPolicy",
        "Input should be 'Allow', 'Forbid' or 'Replace'",
    ),
    (
        "spec.suspend on a scheduled pipeline",
        _suspended_schedule,
        "spec.suspend",
        "a scheduled pipeline is suspended with spec.schedule.suspend, not spec.suspend",
    ),
    (
        "spec.maxConcurrentRuns on a scheduled pipeline",
        _capped_schedule,
        "spec.maxConcurrentRuns",
        "a scheduled pipeline's runs are limited by spec.schedule.concurrencyPolicy, "
        "not spec.maxConcurrentRuns",
    ),
    (
        "no run allowed at once",
        _set("spec.maxConcurrentRuns", 0),
        "spec.maxConcurrentRuns",
        "Input should be greater than or equal to 1",
    ),
    (
        "step name Kubernetes refuses",
        _set("spec.steps.0.name", "Extract_Data"),
        "spec.steps[0].name",
        "\"Extract_Data\" must be lower-case letters, digits and '-'",
    ),
    (
        "step name too long",
        _set("spec.steps.0.name", "a" * 64),
        "spec.steps[0].name",
        "is 64 characters long; at most 63 are allowed",
    ),
    (
        "reserved step name",
        _set("spec.steps.2.name", "promote-model"),
        "spec.steps[2].name",
        '"promote-model" is reserved for the promotion step',
    ),
    (
        "pipeline name too long",
        _set("metadata.name", "p" * 64),
        "metadata.name",
        "is 64 characters long; at most 63 are allowed",
    ),
    ("unknown field", _set("spec.steps.0.comand", ["x"]), "spec.steps[0].comand", "unknown field"),
    (
        "missing command",
        _del("spec.steps.0.command"),
        "spec.steps[0].command",
        "required field is missing",
    ),
    (
        "bad retry policy",
        _set("spec.steps.1.retry", {"limit": 2, "policy": "Sometimes"}),
        "spec.steps[1].retry.policy",
        "Input should be 'Always', 'OnFailure', 'OnError' or 'OnTransientError'",
    ),
    (
        "negative retry limit",
        _set("spec.defaults", {"retry": {"limit": -1}}),
        "spec.defaults.retry.limit",
        "greater than or equal to 0",
    ),
    (
        "bad timeout",
        _set("spec.steps.1.timeout", "1 hour"),
        "spec.steps[1].timeout",
        '"1 hour" must be a duration such as "30s"',
    ),
    (
        "bad quantity",
        _set("spec.defaults", {"resources": {"requests": {"cpu": "lots"}}}),
        "spec.defaults.resources.requests.cpu",
        '"lots" is not a Kubernetes quantity',
    ),
    (
        "env value and valueFrom",
        _set(
            "spec.steps.0.env",
            [{"name": "A", "value": "1", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
        ),
        "spec.steps[0].env[0]",
        "set either value or valueFrom, not both",
    ),
    (
        "env source with two kinds",
        _set(
            "spec.steps.0.env",
            [
                {
                    "name": "A",
                    "valueFrom": {
                        "secretKeyRef": {"name": "s", "key": "k"},
                        "fieldRef": {"fieldPath": "metadata.name"},
                    },
                }
            ],
        ),
        "spec.steps[0].env[0].valueFrom",
        "set exactly one of secretKeyRef",
    ),
    (
        "relative artifact path",
        _set("spec.steps.0.outputs.artifacts.0.path", "data/raw"),
        "spec.steps[0].outputs.artifacts[0].path",
        "must be an absolute path",
    ),
    (
        "bad cache maxAge",
        _set("spec.steps.1.cache", {"maxAge": "1 day"}),
        "spec.steps[1].cache.maxAge",
        '"1 day" must be a duration such as "30s"',
    ),
    (
        "cache without maxAge",
        _set("spec.defaults", {"cache": {}}),
        "spec.defaults.cache.maxAge",
        "required",
    ),
    (
        "unknown cache field",
        _set("spec.steps.0.cache", {"maxAge": "1h", "enabled": False}),
        "spec.steps[0].cache.enabled",
        "unknown field",
    ),
    (
        "default cache of 0s",
        _set("spec.defaults", {"cache": {"maxAge": "0s"}}),
        "spec.defaults.cache.maxAge",
        '"0s" caches nothing; set a longer maxAge, or remove spec.defaults.cache '
        "(a step turns caching off with cache: {maxAge: 0s})",
    ),
    (
        "cached step after an uncached one",
        _set("spec.steps.1.cache", {"maxAge": "1h"}),
        "spec.steps[1].cache",
        'cached (its cache) but depends on step "extract", which is not cached and may give '
        'other outputs at each run; cache "extract" too, or set cache: {maxAge: 0s} on this step',
    ),
    ("no image", _del("spec.image"), "spec.steps[0].image", "set the step's image or spec.image"),
    ("no steps", _set("spec.steps", []), "spec.steps", "at least 1 item"),
    (
        "too many steps",
        _set("spec.steps", [{"name": f"s{i}", "command": ["x"]} for i in range(1001)]),
        "spec.steps",
        "at most 1000 items",
    ),
    ("spec too large", _too_large, "spec", "a pipeline may use at most 524288 bytes"),
    ("not an MLPipeline", _set("kind", "Workflow"), "(document)", "not an MLPipeline"),
]


@pytest.mark.parametrize(
    ("change", "path", "message"), [pytest.param(c, p, m, id=name) for name, c, p, m in CASES]
)
def test_problem_names_its_field(change: Callable[[Doc], None], path: str, message: str) -> None:
    doc = pipeline()
    change(doc)
    parsed, problems = validate_document(doc)
    assert parsed is None
    at_path = [p for p in problems if p.path == path]
    assert at_path, f"no problem at {path}; got {[str(p) for p in problems]}"
    assert any(message in p.message for p in at_path), [str(p) for p in problems]


def test_valid_pipeline_has_no_problem() -> None:
    parsed, problems = validate_document(pipeline())
    assert problems == []
    assert parsed is not None and [s.name for s in parsed.spec.steps] == [
        "extract",
        "train",
        "evaluate",
    ]


def test_every_problem_is_reported_at_once() -> None:
    doc = pipeline()
    steps(doc)[1]["dependsOn"] = ["trian"]
    steps(doc)[2]["command"] = ["{{inputs.parameters.nope}}"]
    doc["spec"]["promotion"]["from"]["parameter"] = "nope"
    _, problems = validate_document(doc)
    assert [p.path for p in problems] == [
        "spec.promotion.from.parameter",
        "spec.steps[1].dependsOn[0]",
        "spec.steps[2].command[0]",
    ]


def test_shape_errors_are_all_reported() -> None:
    doc = pipeline()
    steps(doc)[0]["retry"] = {"limit": "many"}
    steps(doc)[1]["timeout"] = "soon"
    steps(doc)[2]["extra"] = True
    _, problems = validate_document(doc)
    assert {p.path for p in problems} == {
        "spec.steps[0].retry.limit",
        "spec.steps[1].timeout",
        "spec.steps[2].extra",
    }


def test_problems_are_ordered_by_step_index() -> None:
    doc = chain(12)
    for step in steps(doc)[8:]:
        step["dependsOn"] = ["missing"]
    _, problems = validate_document(doc)
    assert [p.path for p in problems] == [f"spec.steps[{i}].dependsOn[0]" for i in (8, 9, 10, 11)]


def test_problem_prints_as_path_colon_message() -> None:
    assert str(Problem("spec.steps[1].name", "bad")) == "spec.steps[1].name: bad"


@pytest.mark.parametrize(
    "expression",
    [
        "0 2 * * *",
        "*/15 * * * *",
        "0 0 1,15 * *",
        "0 9-17 * * mon-fri",
        "0 0 * JAN,jul SUN",
        "@daily",
        "@hourly",
        "@every 1h30m",
        "5 4 * * 0",
        "0 */2 1-10/3 * ?",
    ],
)
def test_cron_accepts_what_argo_accepts(expression: str) -> None:
    assert cron_error(expression) is None


@pytest.mark.parametrize(
    ("expression", "error"),
    [
        ("* * * *", "has 4 fields"),
        ("60 * * * *", 'minute "60": 60 is out of range'),
        ("0 24 * * *", 'hour "24"'),
        ("0 0 0 * *", 'day of month "0"'),
        ("0 0 * 13 *", 'month "13"'),
        ("0 0 * * 7", 'day of week "7"'),
        ("0 0 * * funday", '"funday" is not a number or a name'),
        ("*/0 * * * *", 'bad step "/0"'),
        ("5-1 * * * *", "runs backwards"),
        ("@fortnightly", "not a known descriptor"),
    ],
)
def test_cron_rejects_with_a_reason(expression: str, error: str) -> None:
    result = cron_error(expression)
    assert result is not None and error in result


_RESERVED = (
    "names starting with MLPIPELINE_ are reserved for the variables set in every step "
    "(MLPIPELINE_NAMESPACE, MLPIPELINE_NAME, MLPIPELINE_GENERATION, MLPIPELINE_RUN, "
    "MLPIPELINE_GIT_REVISION); choose another name"
)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            _set("spec.steps.1.env", [{"name": "MLPIPELINE_RUN", "value": "mine"}]),
            [Problem("spec.steps[1].env[0].name", f'"MLPIPELINE_RUN": {_RESERVED}')],
            id="a step sets a lineage variable",
        ),
        pytest.param(
            _set(
                "spec.onExit",
                {
                    "command": ["notify"],
                    "env": [{"name": "A", "value": "1"}, {"name": "MLPIPELINE_X"}],
                },
            ),
            [Problem("spec.onExit.env[1].name", f'"MLPIPELINE_X": {_RESERVED}')],
            id="the exit step uses the reserved prefix",
        ),
        pytest.param(
            _set("spec.steps.1.mlflowCredentials", True),
            [],
            id="credentials from spec.mlflow.credentialsSecret",
        ),
        pytest.param(
            _set("spec.steps.1.env", [{"name": "MLFLOW_TRACKING_URI", "value": "http://x:5000"}]),
            [],
            id="a step's own tracking URI",
        ),
        pytest.param(
            _set(
                "spec.steps.1.env",
                [
                    {
                        "name": "MLFLOW_TRACKING_URI",
                        "valueFrom": {"configMapKeyRef": {"name": "mlflow", "key": "uri"}},
                    }
                ],
            ),
            [
                Problem(
                    "spec.steps[1].env[0].valueFrom",
                    "MLFLOW_TRACKING_URI is spec.mlflow.trackingUri in every step, which a step "
                    "replaces with a literal value only; set value instead",
                )
            ],
            id="a tracking URI from a ConfigMap",
        ),
        pytest.param(
            lambda doc: (
                _set("spec.steps.1.mlflowCredentials", True)(doc),
                _del("spec.mlflow.credentialsSecret")(doc),
            ),
            [
                Problem(
                    "spec.steps[1].mlflowCredentials",
                    "spec.mlflow.credentialsSecret is not set: name the Secret of MLflow's "
                    "credentials there, or remove mlflowCredentials",
                )
            ],
            id="credentials without a Secret",
        ),
        pytest.param(
            lambda doc: (
                _set("spec.onExit", {"command": ["notify"], "mlflowCredentials": True})(doc),
                _del("spec.mlflow")(doc),
                _del("spec.promotion")(doc),
            ),
            [
                Problem(
                    "spec.onExit.mlflowCredentials",
                    "spec.mlflow is not set: set spec.mlflow with its credentialsSecret, or "
                    "remove mlflowCredentials",
                )
            ],
            id="credentials without spec.mlflow",
        ),
    ],
)
def test_lineage_variables_and_mlflow_credentials(
    change: Callable[[Doc], None], expected: list[Problem]
) -> None:
    doc = pipeline()
    change(doc)
    parsed, problems = validate_document(doc)
    assert problems == expected
    assert (parsed is None) == bool(expected)
