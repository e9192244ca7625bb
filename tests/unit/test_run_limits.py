"""Run limits and housekeeping (`spec.timeout`, `spec.parallelism`, `spec.podGC`,
`spec.archiveLogs`, `spec.artifactGC`): validation with exact messages, the compiled Workflow,
and the status of a run stopped by its timeout."""

from __future__ import annotations

from typing import Any

import pytest

from mlpipeline_operator.api.status import MLPipelineStatus
from mlpipeline_operator.compiler.workflow import compile_document
from mlpipeline_operator.reconcile.status import build_status
from mlpipeline_operator.validation import validate_document
from tests.unit.argo_runs import workflow
from tests.unit.pipelines import pipeline


def problems_of(doc: dict[str, Any]) -> list[str]:
    parsed, problems = validate_document(doc)
    assert parsed is None
    return [str(p) for p in problems]


def with_spec(**fields: Any) -> dict[str, Any]:
    doc = pipeline()
    doc["spec"].update(fields)
    return doc


def test_limits_compile_to_the_workflow() -> None:
    doc = with_spec(timeout="1h30m", parallelism=2)
    spec = compile_document(doc)["spec"]
    assert spec["activeDeadlineSeconds"] == 5400
    assert spec["parallelism"] == 2


def test_housekeeping_defaults() -> None:
    spec = compile_document(pipeline())["spec"]
    assert "activeDeadlineSeconds" not in spec
    assert "parallelism" not in spec
    assert spec["podGC"] == {"strategy": "OnPodSuccess"}
    assert spec["archiveLogs"] is True
    assert spec["artifactGC"] == {"forceFinalizerRemoval": True, "strategy": "OnWorkflowDeletion"}


def test_housekeeping_can_be_turned_off() -> None:
    doc = with_spec(
        podGC={"strategy": "Never"}, archiveLogs=False, artifactGC={"strategy": "Never"}
    )
    spec = compile_document(doc)["spec"]
    assert "podGC" not in spec
    assert spec["archiveLogs"] is False
    assert "artifactGC" not in spec


def test_pod_gc_strategy_is_argos() -> None:
    spec = compile_document(with_spec(podGC={"strategy": "OnWorkflowCompletion"}))["spec"]
    assert spec["podGC"] == {"strategy": "OnWorkflowCompletion"}


def test_a_scheduled_run_has_the_limits_too() -> None:
    doc = with_spec(timeout="10m", parallelism=1, schedule={"cron": "@daily"})
    workflow_spec = compile_document(doc)["spec"]["workflowSpec"]
    assert workflow_spec["activeDeadlineSeconds"] == 600
    assert workflow_spec["parallelism"] == 1


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"timeout": "0s"},
            'spec.timeout: "0s" would stop every attempt at once; a timeout is longer than 0s',
        ),
        (
            {"timeout": "soon"},
            'spec.timeout: "soon" must be a duration such as "30s", "10m" or "1h30m" '
            "(units: ns, us, ms, s, m, h)",
        ),
        (
            {"parallelism": 0},
            "spec.parallelism: Input should be greater than or equal to 1 (got 0)",
        ),
        ({"parallelism": "2"}, 'spec.parallelism: expected an integer, got the string "2"'),
        (
            {"podGC": {"strategy": "Sometimes"}},
            "spec.podGC.strategy: Input should be 'OnPodSuccess', 'OnPodCompletion', "
            "'OnWorkflowSuccess', 'OnWorkflowCompletion' or 'Never' (got \"Sometimes\")",
        ),
        ({"archiveLogs": "yes"}, 'spec.archiveLogs: expected a boolean, got the string "yes"'),
    ],
)
def test_a_bad_limit_is_refused_at_its_field(fields: dict[str, Any], expected: str) -> None:
    assert problems_of(with_spec(**fields)) == [expected]


def test_a_step_timeout_longer_than_the_run_is_refused() -> None:
    doc = with_spec(timeout="1h", defaults={"timeout": "2h"})
    doc["spec"]["steps"][1]["timeout"] = "61m"
    doc["spec"]["steps"][2]["timeout"] = "1h"  # as long as the run: allowed
    doc["spec"]["onExit"] = {"command": ["notify"], "timeout": "90m"}
    assert problems_of(doc) == [
        'spec.defaults.timeout: "2h" is longer than spec.timeout "1h", which stops the whole '
        "run first; make it at most as long",
        'spec.onExit.timeout: "90m" is longer than spec.timeout "1h", which stops the whole run '
        "first; make it at most as long",
        'spec.steps[1].timeout: "61m" is longer than spec.timeout "1h", which stops the whole '
        "run first; make it at most as long",
    ]


def test_max_parallel_above_the_run_parallelism_is_refused() -> None:
    doc = with_spec(parallelism=2)
    doc["spec"]["steps"][2]["forEach"] = {"items": ["a", "b", "c"], "maxParallel": 3}
    assert problems_of(doc) == [
        "spec.steps[2].forEach.maxParallel: 3 is more than spec.parallelism 2, which limits the "
        "iterations too; make it at most 2 or leave it out"
    ]
    doc["spec"]["steps"][2]["forEach"]["maxParallel"] = 2
    assert validate_document(doc)[1] == []


def _failed_run(active_deadline: int | None, started: str, finished: str) -> dict[str, Any]:
    wf = workflow(
        "demo-g2",
        2,
        {
            "phase": "Failed",
            "startedAt": started,
            "finishedAt": finished,
            "message": "child 'demo-g2-1' failed",
            "nodes": {
                "demo-g2-1": {
                    "id": "demo-g2-1",
                    "name": "demo-g2.train",
                    "displayName": "train",
                    "templateName": "train",
                    "type": "Pod",
                    "phase": "Failed",
                    "message": "Step exceeded its deadline",
                }
            },
        },
        tasks=["train"],
    )
    if active_deadline is not None:
        wf["spec"]["activeDeadlineSeconds"] = active_deadline
    return wf


def _status(run: dict[str, Any]) -> MLPipelineStatus:
    return build_status(
        generation=2,
        expected_run="demo-g2",
        workflows=[run],
        previous=MLPipelineStatus(),
        now="2026-02-01T00:00:00Z",
    )


def test_a_run_stopped_by_its_timeout_says_so() -> None:
    status = _status(_failed_run(90, "2026-01-01T00:00:00Z", "2026-01-01T00:01:31Z"))
    assert status.phase == "Failed"
    assert status.message == (
        "run demo-g2 exceeded spec.timeout of 90s: its running steps were stopped"
    )


def test_a_run_that_failed_before_its_timeout_names_the_step() -> None:
    status = _status(_failed_run(90, "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"))
    assert status.message == 'step "train" failed: Step exceeded its deadline'
    status = _status(_failed_run(None, "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z"))
    assert status.message == 'step "train" failed: Step exceeded its deadline'
