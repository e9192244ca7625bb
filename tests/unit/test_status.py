"""MLPipeline status computed from runs as Argo reports them."""

from __future__ import annotations

from mlpipeline_operator.api.models import History
from mlpipeline_operator.api.status import MLPipelineStatus
from mlpipeline_operator.core import Problem
from mlpipeline_operator.reconcile.housekeeping import runs_to_delete
from mlpipeline_operator.reconcile.status import (
    build_status,
    invalid_status,
    parse_status,
    status_patch,
    transitions,
)
from tests.unit.argo_runs import StepRun, workflow, workflow_status

NOW = "2026-02-01T00:00:00Z"


def status_of(
    runs: list[dict[str, object]],
    expected: str | None = "demo-g2",
    previous: MLPipelineStatus | None = None,
) -> MLPipelineStatus:
    return build_status(
        generation=2,
        expected_run=expected,
        workflows=runs,
        previous=previous or MLPipelineStatus(),
        now=NOW,
        model="demo",
    )


def conditions(status: MLPipelineStatus) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in status.conditions}


def test_no_run_yet_is_pending() -> None:
    status = status_of([])
    assert status.phase == "Pending" and status.observed_generation == 2
    assert conditions(status) == {"Valid": ("True", "Valid"), "Ready": ("False", "RunPending")}
    assert status.last_run is None and status.history == []


def test_running_run_with_steps_in_dag_order() -> None:
    wf = workflow(
        "demo-g2",
        2,
        workflow_status(
            "demo-g2",
            "Running",
            {"extract": StepRun("Succeeded"), "train": StepRun("Running", attempts=2)},
        ),
        tasks=["extract", "train"],
    )
    status = status_of([wf])
    assert status.phase == "Running"
    assert status.last_run is not None
    assert [(s.name, s.phase, s.retries) for s in status.last_run.steps] == [
        ("extract", "Succeeded", 0),
        ("train", "Running", 1),
    ]
    assert conditions(status)["Ready"] == ("False", "RunRunning")


def test_failed_run_names_the_failing_step() -> None:
    wf = workflow(
        "demo-g2",
        2,
        workflow_status(
            "demo-g2", "Failed", {"extract": StepRun("Failed", message="exit code 3")}, finished=NOW
        ),
    )
    status = status_of([wf])
    assert status.phase == "Failed"
    assert status.message == 'step "extract" failed: exit code 3'
    assert conditions(status)["Ready"] == ("False", "RunFailed")


def test_error_phase_is_failed() -> None:
    wf = workflow("demo-g2", 2, workflow_status("demo-g2", "Error", {}, message="pod deleted"))
    assert status_of([wf]).phase == "Failed"


def test_old_generation_runs_do_not_decide_the_phase() -> None:
    old = workflow(
        "demo-g1",
        1,
        workflow_status("demo-g1", "Succeeded", {}, finished=NOW),
        created="2026-01-01T00:00:00Z",
    )
    status = status_of([old])
    assert status.phase == "Pending"
    assert status.last_run is not None and status.last_run.name == "demo-g1"
    assert [h.name for h in status.history] == ["demo-g1"]


def test_history_is_newest_first() -> None:
    runs = [
        workflow(
            f"demo-g{i}",
            i,
            workflow_status(f"demo-g{i}", "Succeeded", {}),
            created=f"2026-01-0{i}T00:00:00Z",
        )
        for i in (1, 3, 2)
    ]
    assert [h.name for h in status_of(runs, expected="demo-g3").history] == [
        "demo-g3",
        "demo-g2",
        "demo-g1",
    ]


def test_promotion_read_from_the_promotion_task() -> None:
    wf = workflow(
        "demo-g2",
        2,
        workflow_status(
            "demo-g2",
            "Succeeded",
            {
                "train": StepRun("Succeeded"),
                "promote-model": StepRun(
                    "Succeeded", outputs={"decision": "Promoted", "version": "4"}
                ),
            },
            finished=NOW,
        ),
    )
    status = status_of([wf])
    assert status.promotion is not None
    assert (status.promotion.decision, status.promotion.version, status.promotion.run) == (
        "Promoted",
        "4",
        "demo-g2",
    )
    assert conditions(status)["Promoted"] == ("True", "Promoted")


def test_rejection_is_promoted_false() -> None:
    wf = workflow(
        "demo-g2",
        2,
        workflow_status(
            "demo-g2",
            "Succeeded",
            {
                "promote-model": StepRun(
                    "Succeeded",
                    retry_node=True,
                    outputs={"decision": "Rejected", "reason": "auc 0.8 < 0.9"},
                ),
            },
            finished=NOW,
        ),
    )
    status = status_of([wf])
    assert conditions(status)["Promoted"] == ("False", "Rejected")
    assert status.promotion is not None and status.promotion.reason == "auc 0.8 < 0.9"


def test_scheduled_pipeline_is_ready_and_follows_its_newest_run() -> None:
    assert conditions(status_of([], expected=None))["Ready"] == ("True", "Scheduled")
    wf = workflow("demo-123", 2, workflow_status("demo-123", "Running", {}), cron=True)
    assert status_of([wf], expected=None).phase == "Running"


def test_transition_time_is_kept_while_a_condition_holds() -> None:
    first = status_of([])
    again = build_status(
        generation=2,
        expected_run="demo-g2",
        workflows=[],
        previous=first,
        now="2026-03-01T00:00:00Z",
        model="demo",
    )
    assert again == first  # nothing changed: nothing to write


def test_invalid_keeps_runs_and_names_every_problem() -> None:
    wf = workflow("demo-g1", 1, workflow_status("demo-g1", "Succeeded", {}))
    before = status_of([wf], expected="demo-g1")
    problems = [
        Problem("spec.steps[1].dependsOn[0]", 'unknown step "trian"'),
        Problem("spec.schedule.cron", "bad"),
    ]
    status = invalid_status(generation=3, problems=problems, previous=before, now=NOW)
    assert status.phase == "Invalid" and status.observed_generation == 3
    assert status.message == (
        'spec.steps[1].dependsOn[0]: unknown step "trian"; spec.schedule.cron: bad'
    )
    assert conditions(status)["Valid"] == ("False", "InvalidSpec")
    assert status.history == before.history


def test_events_on_transitions() -> None:
    running = status_of([workflow("demo-g2", 2, workflow_status("demo-g2", "Running", {}))])
    done = status_of(
        [
            workflow(
                "demo-g2",
                2,
                workflow_status(
                    "demo-g2",
                    "Succeeded",
                    {
                        "promote-model": StepRun(
                            "Succeeded", outputs={"decision": "Promoted", "version": "7"}
                        )
                    },
                ),
            )
        ],
        previous=running,
    )
    assert [(e.type, e.reason) for e in transitions(running, done)] == [
        ("Normal", "RunSucceeded"),
        ("Normal", "Promoted"),
    ]
    assert transitions(done, done) == []


def test_status_round_trips_through_the_api_shape() -> None:
    wf = workflow("demo-g2", 2, workflow_status("demo-g2", "Running", {"a": StepRun("Running")}))
    status = status_of([wf])
    assert parse_status(status_patch(status)) == status
    assert parse_status(None) == MLPipelineStatus()


def test_history_limits_delete_the_oldest_finished_runs() -> None:
    def run(name: str, phase: str, day: int, cron: bool = False) -> dict[str, object]:
        return workflow(
            name, 1, {"phase": phase, "finishedAt": f"2026-01-{day:02d}T00:00:00Z"}, cron=cron
        )

    runs = [
        run("s1", "Succeeded", 1),
        run("s2", "Succeeded", 2),
        run("s3", "Succeeded", 3),
        run("f1", "Failed", 4),
        run("f2", "Error", 5),
        run("r1", "Running", 6),
        run("c1", "Succeeded", 1, cron=True),
    ]
    assert runs_to_delete(runs, History(succeeded=1, failed=1), keep=set()) == ["s1", "s2", "f1"]
    # The current run counts toward the limit but is never deleted.
    assert runs_to_delete(runs, History(succeeded=1, failed=5), keep={"s1"}) == ["s2", "s3"]
    assert runs_to_delete(runs, History(succeeded=0, failed=0), keep={"s1"}) == [
        "s2",
        "s3",
        "f1",
        "f2",
    ]


def test_a_stored_status_with_fields_of_another_version_keeps_what_is_known() -> None:
    wf = workflow("demo-g2", 2, workflow_status("demo-g2", "Running", {"a": StepRun("Running")}))
    written = status_patch(status_of([wf]))
    written["futureField"] = {"x": 1}
    written["lastRun"]["steps"][0]["futureStepField"] = "y"
    written["conditions"][0]["futureConditionField"] = True
    assert parse_status(written) == status_of([wf])
