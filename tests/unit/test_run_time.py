"""The run's time and identity: `{{pipeline.scheduledTime}}`, `{{pipeline.runName}}` and
`{{pipeline.generation}}`, the run-at annotation, and `schedule.startingDeadlineSeconds`."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from mlpipeline_operator.compiler.workflow import CompileOptions, compile_document
from mlpipeline_operator.core import parse_rfc3339, rfc3339_error, run_at_name, run_name
from mlpipeline_operator.local.arguments import rfc3339_time
from mlpipeline_operator.reconcile.reconciler import Target
from mlpipeline_operator.validation import validate_document
from tests.unit.argo_runs import StepRun, workflow_status
from tests.unit.pipelines import pipeline
from tests.unit.test_reconciler import children, record, run, setup

Doc = dict[str, Any]
RUN_AT = "mlops.gitops.dev/run-at"


def problems_of(doc: Doc) -> list[str]:
    return [str(p) for p in validate_document(doc)[1]]


def with_run_texts(doc: Doc) -> Doc:
    """The base pipeline whose extract step uses the three placeholders everywhere it may."""
    extract = doc["spec"]["steps"][0]
    extract["args"] = ["--day", "{{pipeline.scheduledTime}}"]
    extract["env"] = [
        {"name": "RUN", "value": "{{pipeline.runName}}"},
        {"name": "GEN", "value": "g{{pipeline.generation}}"},
    ]
    extract["inputs"] = {"parameters": [{"name": "day", "value": "{{pipeline.scheduledTime}}"}]}
    return doc


def template(manifest: Doc, name: str) -> Doc:
    spec = manifest["spec"].get("workflowSpec", manifest["spec"])
    found: Doc = next(t for t in spec["templates"] if t["name"] == name)
    return found


def task_argument(manifest: Doc, task: str) -> str:
    spec = manifest["spec"].get("workflowSpec", manifest["spec"])
    tasks = spec["templates"][0]["dag"]["tasks"]
    value: str = next(t for t in tasks if t["name"] == task)["arguments"]["parameters"][0]["value"]
    return value


def run_texts(manifest: Doc) -> tuple[list[str], list[str], str]:
    container = template(manifest, "extract")["container"]
    return (
        container["args"],
        [e["value"] for e in container["env"]],
        task_argument(manifest, "extract"),
    )


# --- Compiler ------------------------------------------------------------------------------------


def test_a_workflow_gets_its_creation_time_name_and_generation() -> None:
    args, env, argument = run_texts(compile_document(with_run_texts(pipeline())))
    assert args == ["--day", "{{workflow.creationTimestamp.RFC3339}}"]
    assert env == ["{{workflow.name}}", "g3"]
    assert argument == "{{workflow.creationTimestamp.RFC3339}}"


def test_a_cronworkflow_gives_its_runs_their_scheduled_time() -> None:
    doc = with_run_texts(pipeline())
    doc["spec"]["schedule"] = {"cron": "@daily", "startingDeadlineSeconds": 600}
    cron = compile_document(doc)
    args, env, argument = run_texts(cron)
    assert args == ["--day", "{{workflow.scheduledTime}}"]
    assert env == ["{{workflow.name}}", "g3"]
    assert argument == "{{workflow.scheduledTime}}"
    assert cron["spec"]["startingDeadlineSeconds"] == 600


def test_a_run_at_run_is_a_workflow_for_that_time_even_for_a_schedule() -> None:
    doc = with_run_texts(pipeline())
    doc["spec"]["schedule"] = {"cron": "@daily"}
    doc["metadata"]["annotations"] = {"mlops.gitops.dev/git-revision": "abc"}
    options = CompileOptions(scheduled_time="2026-01-31T02:00:00+02:00")
    workflow = compile_document(doc, options)
    assert workflow["kind"] == "Workflow"
    at = datetime(2026, 1, 31, tzinfo=UTC)
    assert workflow["metadata"]["name"] == run_at_name("ml", "demo", at)
    assert workflow["metadata"]["annotations"] == {
        "mlops.gitops.dev/git-revision": "abc",
        "workflows.argoproj.io/scheduled-time": "2026-01-31T02:00:00+02:00",
    }
    args, env, argument = run_texts(workflow)
    assert args == ["--day", "2026-01-31T02:00:00+02:00"]
    assert env == ["{{workflow.name}}", "g3"]
    assert argument == "2026-01-31T02:00:00+02:00"


def test_the_exit_step_reads_the_run_texts_too() -> None:
    doc = pipeline()
    doc["spec"]["onExit"] = {"command": ["notify", "{{pipeline.runName}}@{{pipeline.generation}}"]}
    exit_template = template(compile_document(doc), "on-exit")
    assert exit_template["container"]["command"] == ["notify", "{{workflow.name}}@3"]


def test_a_run_at_name_is_the_instant_however_written() -> None:
    utc = parse_rfc3339("2026-01-31T00:00:00Z")
    paris = parse_rfc3339("2026-01-31T01:00:00+01:00")
    assert utc is not None and paris is not None
    assert run_at_name("ml", "demo", utc) == run_at_name("ml", "demo", paris)
    assert run_at_name("ml", "demo", utc).startswith("demo-at-20260131t000000-")
    later = parse_rfc3339("2026-01-31T00:00:00.5Z")
    assert later is not None
    names = {
        run_at_name("ml", "demo", utc),
        run_at_name("ml", "demo", later),
        run_at_name("other", "demo", utc),
        run_at_name("ml", "demo2", utc),
    }
    assert len(names) == 4
    long_name = run_at_name("ml", "a" * 63, utc)
    assert len(long_name) == 63 and long_name.startswith("a" * 37 + "-at-")


# --- Validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "yesterday",
        "2026-01-31",
        "2026-01-31 00:00:00Z",
        "2026-01-31T00:00:00",
        "2026-02-30T00:00:00Z",
    ],
)
def test_a_run_at_time_that_is_not_rfc3339_is_a_problem_of_the_annotation(text: str) -> None:
    doc = pipeline()
    doc["metadata"]["annotations"] = {RUN_AT: text}
    assert problems_of(doc) == [
        f'metadata.annotations["mlops.gitops.dev/run-at"]: "{text}" is not an RFC 3339 time; '
        'write a date, "T", a time and "Z" or an offset, such as "2026-01-31T00:00:00Z" or '
        '"2026-01-31T02:00:00+02:00"',
    ]


def test_the_placeholders_are_valid_in_steps_inputs_and_the_exit_step() -> None:
    doc = with_run_texts(pipeline())
    doc["spec"]["onExit"] = {"command": ["notify", "{{pipeline.scheduledTime}}"]}
    doc["metadata"]["annotations"] = {RUN_AT: "2026-01-31T00:00:00.250-05:00"}
    assert problems_of(doc) == []


def test_a_pipeline_parameter_cannot_use_them() -> None:
    doc = pipeline()
    doc["spec"]["parameters"][0]["value"] = "{{pipeline.runName}}"
    assert problems_of(doc) == [
        'spec.parameters[0].value: "{{pipeline.runName}}" cannot be used here; only '
        "{{pipeline.parameters.NAME}} can",
    ]


def test_a_misspelt_one_names_the_known_forms() -> None:
    doc = pipeline()
    doc["spec"]["steps"][0]["args"] = ["{{pipeline.scheduledtime}}"]
    (problem,) = problems_of(doc)
    assert problem.startswith(
        'spec.steps[0].args[0]: "{{pipeline.scheduledtime}}" is not a known placeholder; use '
    )
    assert "{{pipeline.scheduledTime}}, {{pipeline.runName}}, {{pipeline.generation}}" in problem


def test_a_condition_cannot_read_them() -> None:
    doc = with_run_texts(pipeline())
    doc["spec"]["steps"][0]["when"] = "{{inputs.parameters.day}} != ''"
    assert problems_of(doc) == [
        "spec.steps[0].when: at position 1: placeholder {{inputs.parameters.day}}: input "
        'parameter "day" uses "{{pipeline.scheduledTime}}", which a condition cannot read',
    ]
    doc["spec"]["steps"][0]["when"] = "{{pipeline.runName}} != ''"
    (problem,) = problems_of(doc)
    assert problem.startswith("spec.steps[0].when: at position 1: ")
    assert "{{pipeline.runName}}" in problem


def test_a_cached_step_cannot_use_them() -> None:
    doc = pipeline()
    doc["spec"]["defaults"] = {"cache": {"maxAge": "24h"}}
    doc["spec"]["steps"][1]["env"] = [{"name": "GEN", "value": "{{pipeline.generation}}"}]
    doc["spec"]["steps"][2]["cache"] = {"maxAge": "1h"}
    doc["spec"]["steps"][2]["inputs"]["parameters"].append(
        {"name": "run", "value": "{{pipeline.runName}}"}
    )
    assert problems_of(doc) == [
        'spec.steps[1].cache: cached (spec.defaults.cache) but uses "{{pipeline.generation}}", '
        "whose value the cache key does not cover (a result would be reused for another value); "
        "remove the placeholder or set cache: {maxAge: 0s} on this step",
        'spec.steps[2].cache: cached (its cache) but uses "{{pipeline.runName}}", whose value '
        "the cache key does not cover (a result would be reused for another value); remove the "
        "placeholder or set cache: {maxAge: 0s} on this step",
    ]
    doc["spec"]["steps"][1]["cache"] = {"maxAge": "0s"}
    doc["spec"]["steps"][2]["cache"] = {"maxAge": "0s"}
    assert problems_of(doc) == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, "Input should be greater than or equal to 0 (got -1)"),
        ("60", 'expected an integer, got the string "60"'),
        (2**31, "Input should be less than or equal to 2147483647 (got 2147483648)"),
    ],
)
def test_starting_deadline_seconds_is_a_non_negative_integer(value: object, message: str) -> None:
    doc = pipeline()
    doc["spec"]["schedule"] = {"cron": "@daily", "startingDeadlineSeconds": value}
    assert problems_of(doc) == [f"spec.schedule.startingDeadlineSeconds: {message}"]


def test_the_local_flag_takes_an_rfc3339_time_as_written() -> None:
    assert rfc3339_time("2026-01-31T00:00:00+01:00") == "2026-01-31T00:00:00+01:00"
    assert rfc3339_error("2026-01-31T00:00:00Z") is None
    with pytest.raises(Exception, match='"31/01/2026" is not an RFC 3339 time'):
        rfc3339_time("31/01/2026")


# --- Reconciler ----------------------------------------------------------------------------------


def annotated(doc: Doc, at: str) -> Doc:
    changed = copy.deepcopy(doc)
    changed["metadata"].setdefault("annotations", {})[RUN_AT] = at
    return changed


def test_run_at_submits_one_run_for_that_time_beside_the_generations_run() -> None:
    kube, reconciler, doc, events = setup()
    doc = kube.add(annotated(doc, "2026-01-31T00:00:00Z"))
    run(reconciler, copy.deepcopy(doc), events)
    at_run = run_at_name("ml", "demo", datetime(2026, 1, 31, tzinfo=UTC))
    first = run_name("ml", "demo", 1)
    assert kube.writes == [f"create Workflow {first}", f"create Workflow {at_run}", "status"]
    workflow = kube.child("Workflow", at_run)
    assert workflow["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert workflow["metadata"]["annotations"] == {
        "workflows.argoproj.io/scheduled-time": "2026-01-31T00:00:00Z"
    }
    status = kube.pipeline()["status"]
    assert status["lastRun"]["name"] == first  # the status speaks for the generation's run
    assert sorted(h["name"] for h in status["history"]) == sorted([first, at_run])
    # Applied again (as Argo CD re-syncs), or with the same time written otherwise: no new run.
    kube.writes.clear()
    run(reconciler, kube.pipeline(), events)
    run(reconciler, annotated(kube.pipeline(), "2026-01-31T01:00:00+01:00"), events)
    assert kube.writes == []
    assert [e.reason for e in events] == ["Submitted", "Submitted"]


def test_an_existing_run_at_run_is_adopted_after_a_lost_status() -> None:
    kube, reconciler, doc, events = setup()
    doc = kube.add(annotated(doc, "2026-01-31T00:00:00Z"))
    run(reconciler, copy.deepcopy(doc), events)
    del kube.pipeline()["status"]
    kube.writes.clear()
    run(reconciler, copy.deepcopy(kube.pipeline()), events)
    assert kube.writes == ["status"]
    assert len(children(kube)) == 2


def test_a_new_time_is_a_new_run_and_the_old_one_is_kept() -> None:
    kube, reconciler, doc, events = setup()
    run(reconciler, kube.add(annotated(doc, "2026-01-30T00:00:00Z")), events)
    run(reconciler, kube.add(annotated(kube.pipeline(), "2026-01-31T00:00:00Z")), events)
    names = {key[2] for key in children(kube)}
    assert names == {
        run_name("ml", "demo", 1),
        run_at_name("ml", "demo", datetime(2026, 1, 30, tzinfo=UTC)),
        run_at_name("ml", "demo", datetime(2026, 1, 31, tzinfo=UTC)),
    }


def test_history_limits_never_delete_the_run_the_annotation_names() -> None:
    kube, reconciler, doc, events = setup(history={"succeeded": 0})
    doc = kube.add(annotated(doc, "2026-01-31T00:00:00Z"))
    run(reconciler, copy.deepcopy(doc), events)
    at_run = run_at_name("ml", "demo", datetime(2026, 1, 31, tzinfo=UTC))
    for name in (run_name("ml", "demo", 1), at_run):
        kube.child("Workflow", name)["status"] = workflow_status(
            name, "Succeeded", {"extract": StepRun("Succeeded")}, finished="2026-01-31T00:10:00Z"
        )
    asyncio.run(reconciler.refresh(Target.of(kube.pipeline()), record(events)))
    assert len(children(kube)) == 2
    # Once the annotation names another time, the old run is one finished run among others.
    kube.writes.clear()
    run(reconciler, kube.add(annotated(kube.pipeline(), "2026-02-01T00:00:00Z")), events)
    newer = run_at_name("ml", "demo", datetime(2026, 2, 1, tzinfo=UTC))
    assert kube.writes == [f"create Workflow {newer}", "status", f"delete Workflow {at_run}"]


def test_a_scheduled_pipeline_gets_its_cronworkflow_and_the_run_at_run() -> None:
    kube, reconciler, doc, events = setup(schedule={"cron": "@daily"})
    run(reconciler, kube.add(annotated(doc, "2026-01-31T00:00:00Z")), events)
    at_run = run_at_name("ml", "demo", datetime(2026, 1, 31, tzinfo=UTC))
    assert children(kube) == [("CronWorkflow", "ml", "demo"), ("Workflow", "ml", at_run)]
    assert kube.pipeline()["status"]["lastRun"]["name"] == at_run  # the newest run


def test_a_suspended_pipeline_submits_no_run_at_run() -> None:
    kube, reconciler, doc, events = setup(suspend=True)
    run(reconciler, kube.add(annotated(doc, "2026-01-31T00:00:00Z")), events)
    assert children(kube) == []


def test_an_invalid_time_submits_nothing_and_says_why() -> None:
    kube, reconciler, doc, events = setup()
    with pytest.raises(Exception, match="is not an RFC 3339 time"):
        run(reconciler, kube.add(annotated(doc, "tomorrow")), events)
    assert children(kube) == []
    assert kube.pipeline()["status"]["phase"] == "Invalid"
