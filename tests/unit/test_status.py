"""MLPipeline status computed from runs as Argo reports them: Workflows exactly as Argo's
controller wrote them in real runs on the end-to-end cluster (tests/unit/data/argo-runs/,
re-recorded by `make record-runs`): the example midway, promoted, then a worse model rejected; a
step retried until it succeeds; a step past its timeout. Cases that only need a run's phase use
minimal Workflows."""

from __future__ import annotations

import json
from typing import Any

from mlpipeline_operator.api.constants import MAX_STEPS
from mlpipeline_operator.api.models import History
from mlpipeline_operator.api.status import MLPipelineStatus
from mlpipeline_operator.core import Problem
from mlpipeline_operator.reconcile.housekeeping import runs_to_delete
from mlpipeline_operator.reconcile.status import (
    STEP_MESSAGES_BUDGET,
    build_status,
    invalid_status,
    parse_status,
    promotion_outputs,
    recorded_run,
    recorded_runs,
    slim_run,
    status_patch,
    still_as_recorded,
    transitions,
)
from tests.unit.argo_runs import StepRun, recorded, workflow, workflow_status

NOW = "2026-02-01T00:00:00Z"


def status_of(
    runs: list[dict[str, Any]],
    expected: str | None = "demo-g2",
    previous: MLPipelineStatus | None = None,
    model: str | None = "demo",
) -> MLPipelineStatus:
    """The status with these runs; the generation is that of the expected run (else 2)."""
    generation = next(
        (
            int(run["metadata"]["labels"]["mlops.gitops.dev/generation"])
            for run in runs
            if run["metadata"]["name"] == expected
        ),
        2,
    )
    return build_status(
        generation=generation,
        expected_run=expected,
        workflows=runs,
        previous=previous or MLPipelineStatus(),
        now=NOW,
        model=model,
    )


def conditions(status: MLPipelineStatus) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in status.conditions}


def test_no_run_yet_is_pending() -> None:
    status = status_of([])
    assert status.phase == "Pending" and status.observed_generation == 2
    assert conditions(status) == {"Valid": ("True", "Valid"), "Ready": ("False", "RunPending")}
    assert status.last_run is None and status.history == []


def test_running_run_with_steps_in_dag_order() -> None:
    run = recorded("fraud-detection-g1-running")
    status = status_of([run], expected=run["metadata"]["name"], model="fraud-detection")
    assert status.phase == "Running"
    assert status.last_run is not None
    assert [(s.name, s.phase, s.retries) for s in status.last_run.steps] == [
        ("ingest", "Succeeded", 0),
        ("preprocess", "Succeeded", 0),
        ("train", "Succeeded", 0),
        ("evaluate", "Succeeded", 0),
        ("promote-model", "Running", 0),
    ]
    assert conditions(status)["Ready"] == ("False", "RunRunning")
    assert status.promotion is None  # not decided yet


def test_retries_counted_from_the_retry_node() -> None:
    run = recorded("flaky-g1")
    status = status_of([run], expected=run["metadata"]["name"])
    assert status.phase == "Succeeded"
    assert status.last_run is not None
    assert [(s.name, s.phase, s.retries) for s in status.last_run.steps] == [
        ("flaky", "Succeeded", 2)
    ]


def test_failed_run_names_the_failing_step_and_the_reason() -> None:
    run = recorded("slow-g1")
    status = status_of([run], expected=run["metadata"]["name"])
    assert status.phase == "Failed"
    assert status.message is not None
    assert status.message.startswith('step "sleepy" failed: ')
    assert "deadline" in status.message
    assert conditions(status)["Ready"] == ("False", "RunFailed")


def test_error_phase_is_failed() -> None:
    wf = workflow("demo-g2", 2, {"phase": "Error", "message": "pod deleted"})
    assert status_of([wf]).phase == "Failed"


def test_old_generation_runs_do_not_decide_the_phase() -> None:
    old = workflow(
        "demo-g1", 1, {"phase": "Succeeded", "finishedAt": NOW}, created="2026-01-01T00:00:00Z"
    )
    status = status_of([old])
    assert status.phase == "Pending"
    assert status.last_run is not None and status.last_run.name == "demo-g1"
    assert [h.name for h in status.history] == ["demo-g1"]


def test_history_is_newest_first() -> None:
    runs = [
        workflow(f"demo-g{i}", i, {"phase": "Succeeded"}, created=f"2026-01-0{i}T00:00:00Z")
        for i in (1, 3, 2)
    ]
    assert [h.name for h in status_of(runs, expected="demo-g3").history] == [
        "demo-g3",
        "demo-g2",
        "demo-g1",
    ]


def test_promotion_read_from_the_promotion_task() -> None:
    run = recorded("fraud-detection-g1")
    outputs = promotion_outputs(run)
    assert outputs is not None
    status = status_of([run], expected=run["metadata"]["name"], model="fraud-detection")
    assert status.phase == "Succeeded"
    assert status.promotion is not None
    assert (status.promotion.decision, status.promotion.version, status.promotion.run) == (
        "Promoted",
        outputs["version"],
        run["metadata"]["name"],
    )
    assert conditions(status) == {
        "Valid": ("True", "Valid"),
        "Ready": ("True", "RunSucceeded"),
        "Promoted": ("True", "Promoted"),
    }


def test_a_step_named_promote_model_in_a_pipeline_without_promotion_decides_nothing() -> None:
    # Without spec.promotion the name is free: a step of the user's that writes "Promoted".
    steps = {"promote-model": StepRun("Succeeded", outputs={"decision": "Promoted"})}
    wf = workflow("demo-g2", 2, workflow_status("demo-g2", "Succeeded", steps), tasks=list(steps))
    assert promotion_outputs(wf) == {"decision": "Promoted"}

    status = status_of([wf], model=None)

    assert status.promotion is None
    assert "Promoted" not in conditions(status)


def test_a_worse_model_rejected_after_the_champion() -> None:
    first, second = recorded("fraud-detection-g1"), recorded("fraud-detection-g2")
    status = status_of(
        [first, second], expected=second["metadata"]["name"], model="fraud-detection"
    )
    assert status.phase == "Succeeded"
    assert status.last_run is not None and status.last_run.name == second["metadata"]["name"]
    assert status.promotion is not None and status.promotion.decision == "Rejected"
    assert status.promotion.reason
    assert conditions(status)["Promoted"] == ("False", "Rejected")
    assert [run.name for run in status.history] == [
        second["metadata"]["name"],
        first["metadata"]["name"],
    ]


def test_scheduled_pipeline_is_ready_and_follows_its_newest_run() -> None:
    assert conditions(status_of([], expected=None))["Ready"] == ("True", "Scheduled")
    wf = workflow("demo-123", 2, {"phase": "Running"}, cron=True)
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
    wf = workflow("demo-g1", 1, {"phase": "Succeeded"})
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
    midway, done = recorded("fraud-detection-g1-running"), recorded("fraud-detection-g1")
    name = done["metadata"]["name"]
    running = status_of([midway], expected=name, model="fraud-detection")
    finished = status_of([done], expected=name, previous=running, model="fraud-detection")
    assert [(e.type, e.reason) for e in transitions(running, finished)] == [
        ("Normal", "RunSucceeded"),
        ("Normal", "Promoted"),
    ]
    assert transitions(finished, finished) == []


def test_status_round_trips_through_the_api_shape() -> None:
    run = recorded("fraud-detection-g1-running")
    status = status_of([run], expected=run["metadata"]["name"])
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
    run = recorded("fraud-detection-g1-running")
    status = status_of([run], expected=run["metadata"]["name"])
    written = status_patch(status)
    written["futureField"] = {"x": 1}
    written["lastRun"]["steps"][0]["futureStepField"] = "y"
    written["conditions"][0]["futureConditionField"] = True
    assert parse_status(written) == status


def test_steps_served_from_the_cache_are_marked_cached() -> None:
    run = recorded("fraud-detection-g1-running")
    nodes = run["status"]["nodes"]
    ingest = next(n for n in nodes.values() if n.get("displayName") == "ingest")
    # As Argo marks a node whose outputs it took from the memoization cache.
    ingest["memoizationStatus"] = {"hit": True, "key": "ingest-0123", "cacheName": "c"}
    status = status_of([run], expected=run["metadata"]["name"], model="fraud-detection")
    assert status.last_run is not None
    assert [(s.name, s.cached) for s in status.last_run.steps] == [
        ("ingest", True),
        ("preprocess", False),
        ("train", False),
        ("evaluate", False),
        ("promote-model", False),
    ]
    written = status_patch(status)["lastRun"]["steps"]
    assert [s.get("cached") for s in written] == [True, None, None, None, None]
    assert parse_status(status_patch(status)) == status


def test_the_messages_of_a_largest_failed_run_share_a_budget_that_keeps_the_status_storable() -> (
    None
):
    # 1,000 steps, the promotion and the exit step, every one failed with a long message but
    # two: the status would hold 4 MB of messages, past the 1.5 MiB that etcd stores.
    names = [f"step-{i}" for i in range(MAX_STEPS)] + ["promote-model", "on-exit"]
    steps = {name: StepRun("Failed", message="m" * 5000) for name in names}
    steps["step-1"] = StepRun("Failed", message="exit code 1")
    steps["step-2"] = StepRun("Failed", message="x" * 100)
    wf = workflow("demo-g2", 2, workflow_status("demo-g2", "Failed", steps), tasks=names)

    status = status_of([wf])

    assert status.last_run is not None
    messages = {s.name: s.message or "" for s in status.last_run.steps}
    assert list(messages) == names
    assert messages["step-1"] == "exit code 1" and messages["step-2"] == "x" * 100
    clipped = {text for name, text in messages.items() if name not in ("step-1", "step-2")}
    assert len(clipped) == 1
    (text,) = clipped
    assert text.startswith("mmm") and text.endswith("...")
    assert sum(map(len, messages.values())) <= STEP_MESSAGES_BUDGET
    assert sum(map(len, messages.values())) > STEP_MESSAGES_BUDGET - len(names)
    assert len(json.dumps(status_patch(status))) < 768 * 1024


def test_messages_within_the_budget_are_kept_whole() -> None:
    steps = {f"step-{i}": StepRun("Failed", message="m" * 4000) for i in range(20)}
    wf = workflow("demo-g2", 2, workflow_status("demo-g2", "Failed", steps), tasks=list(steps))

    status = status_of([wf])

    assert status.last_run is not None
    assert {s.message for s in status.last_run.steps} == {"m" * 4000}


def test_a_running_run_says_why_its_waiting_step_waits() -> None:
    unschedulable = (
        "Unschedulable: 0/1 nodes are available: 1 node(s) didn't match Pod's node "
        "affinity/selector. preemption: 0/1 nodes are available: 1 Preemption is not helpful "
        "for scheduling."
    )
    steps = {
        "prepare": StepRun("Succeeded"),
        "train": StepRun("Pending", message=unschedulable),
        "score": StepRun("Pending"),
    }
    run = workflow("demo-g2", 2, workflow_status("demo-g2", "Running", steps))

    status = status_of([run])

    assert status.message == f'run demo-g2 is running; step "train" is pending: {unschedulable}'
    assert conditions(status)["Ready"] == ("False", "RunRunning")


def test_runs_as_recorded_or_slim_give_the_status_that_whole_runs_give() -> None:
    first, second = recorded("fraud-detection-g1"), recorded("fraud-detection-g2")
    names = [first["metadata"]["name"], second["metadata"]["name"]]
    previous = status_of([first], expected=names[0], model="fraud-detection")
    assert previous.promotion is not None and previous.promotion.run == names[0]

    def of(runs: list[dict[str, Any]], recorded_names: frozenset[str]) -> MLPipelineStatus:
        return build_status(
            generation=2,
            expected_run=names[1],
            workflows=runs,
            previous=previous,
            now=NOW,
            model="fraud-detection",
            recorded=recorded_names,
        )

    whole = of([first, second], frozenset())
    as_recorded = recorded_run(first["metadata"], recorded_runs(previous)[names[0]])
    assert of([as_recorded, second], frozenset({names[0]})) == whole
    assert of([slim_run(first), second], frozenset()) == whole
    assert whole.promotion is not None and whole.promotion.run == names[1]  # the newest decision
    # The promotion recorded from the first run stays when the second decides nothing yet.
    running = {**second, "status": {**second["status"], "phase": "Running", "nodes": {}}}
    kept = of([as_recorded, running], frozenset({names[0]}))
    assert kept.promotion == previous.promotion
    # Pruning reads the same phases and finish times from them.
    limits = History(succeeded=1)
    assert runs_to_delete([as_recorded, second], limits, set()) == [names[0]]
    assert runs_to_delete([first, second], limits, set()) == [names[0]]


def test_a_slim_run_keeps_its_summary_and_promotion_outputs_only() -> None:
    run = recorded("fraud-detection-g1")
    slim = slim_run(run)
    assert set(slim) == {"metadata", "status"}
    assert promotion_outputs(slim) == promotion_outputs(run)
    assert len(slim["status"]["nodes"]) < len(run["status"]["nodes"])
    assert len(json.dumps(slim)) < len(json.dumps(run)) // 4


def test_argo_labels_that_contradict_a_recorded_run_make_it_read_again() -> None:
    summary = recorded_runs(status_of([workflow("demo-g2", 2, {"phase": "Succeeded"})])).popitem()
    meta = workflow("demo-g2", 2)["metadata"]
    assert still_as_recorded(meta, summary[1])  # no Argo labels: nothing says otherwise
    meta["labels"]["workflows.argoproj.io/phase"] = "Succeeded"
    meta["labels"]["workflows.argoproj.io/completed"] = "true"
    assert still_as_recorded(meta, summary[1])
    # `argo retry`: running again.
    meta["labels"]["workflows.argoproj.io/phase"] = "Running"
    meta["labels"]["workflows.argoproj.io/completed"] = "false"
    assert not still_as_recorded(meta, summary[1])
