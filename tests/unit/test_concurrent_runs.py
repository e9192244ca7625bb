"""spec.maxConcurrentRuns against an in-memory API: a run beyond the cap waits, not submitted,
with a status saying why, and is submitted by the refresh that follows the end of a run."""

from __future__ import annotations

import asyncio
import copy

from mlpipeline_operator.core import run_name
from mlpipeline_operator.reconcile.reconciler import Target
from tests.unit import test_reconciler as base
from tests.unit.argo_runs import StepRun, workflow_status
from tests.unit.memory_kube import MemoryKube

Obj = base.Obj


def new_generation(kube: MemoryKube, generation: int) -> Obj:
    changed = copy.deepcopy(kube.pipeline())
    changed["spec"]["parameters"][0]["value"] = f"0.{generation}"
    changed["metadata"]["generation"] = generation
    return kube.add(changed)


def set_phase(kube: MemoryKube, name: str, phase: str) -> Obj:
    finished = "2026-01-01T00:10:00Z" if phase != "Running" else None
    workflow = kube.child("Workflow", name)
    workflow["status"] = workflow_status(name, phase, {"train": StepRun(phase)}, finished=finished)
    return workflow


def ready(status: Obj) -> tuple[str, str]:
    condition = next(c for c in status["conditions"] if c["type"] == "Ready")
    return (condition["status"], condition["reason"])


def test_a_run_beyond_the_cap_waits_then_is_submitted_when_a_run_ends() -> None:
    kube, reconciler, doc, events = base.setup(maxConcurrentRuns=1)
    first, second = run_name("ml", "demo", 1), run_name("ml", "demo", 2)
    base.run(reconciler, copy.deepcopy(doc), events)
    running = set_phase(kube, first, "Running")
    kube.writes.clear()

    base.run(reconciler, new_generation(kube, 2), events)
    assert base.children(kube) == [("Workflow", "ml", first)]
    assert kube.writes == ["status"]
    status = kube.pipeline()["status"]
    assert (status["observedGeneration"], status["phase"]) == (2, "Pending")
    assert status["message"] == (
        "waiting: 1 run of this pipeline is running (spec.maxConcurrentRuns: 1)"
    )
    assert ready(status) == ("False", "RunWaiting")
    assert [h["name"] for h in status["history"]] == [first]

    # The first run's event while it still runs: nothing is submitted.
    kube.writes.clear()
    asyncio.run(reconciler.refresh_for_run(running, base.record(events), "MODIFIED"))
    assert kube.writes == []

    # It ends: the status records it, then the waiting run is submitted.
    finished = set_phase(kube, first, "Succeeded")
    asyncio.run(reconciler.refresh_for_run(finished, base.record(events), "MODIFIED"))
    assert kube.writes == ["status", f"create Workflow {second}", "status"]
    status = kube.pipeline()["status"]
    assert status["lastRun"]["name"] == second
    assert [(h["name"], h["phase"]) for h in status["history"]] == [
        (second, "Pending"),
        (first, "Succeeded"),
    ]
    assert ready(status) == ("False", "RunPending")
    assert [e.reason for e in events] == ["Submitted", "RunSucceeded", "Submitted"]


def test_every_unfinished_run_counts_and_the_message_says_how_many() -> None:
    kube, reconciler, doc, events = base.setup(maxConcurrentRuns=2)
    names = [run_name("ml", "demo", g) for g in (1, 2, 3)]
    base.run(reconciler, copy.deepcopy(doc), events)
    base.run(reconciler, new_generation(kube, 2), events)
    assert [k[2] for k in base.children(kube)] == names[:2]  # the first still Pending: 2 fit
    set_phase(kube, names[0], "Running")
    base.run(reconciler, new_generation(kube, 3), events)
    assert [k[2] for k in base.children(kube)] == names[:2]
    status = kube.pipeline()["status"]
    assert status["message"] == (
        "waiting: 2 runs of this pipeline are running (spec.maxConcurrentRuns: 2)"
    )
    # A failed run makes room as a succeeded one does.
    asyncio.run(
        reconciler.refresh_for_run(set_phase(kube, names[1], "Failed"), base.record(events))
    )
    assert [k[2] for k in base.children(kube)] == names


def test_a_run_at_run_waits_for_room_too() -> None:
    kube, reconciler, doc, events = base.setup(maxConcurrentRuns=1)
    base.run(reconciler, copy.deepcopy(doc), events)
    first = run_name("ml", "demo", 1)
    set_phase(kube, first, "Running")
    asked = copy.deepcopy(kube.pipeline())
    asked["metadata"]["annotations"] = {"mlops.gitops.dev/run-at": "2026-01-01T03:00:00Z"}
    asked = kube.add(asked)
    base.run(reconciler, asked, events)
    assert base.children(kube) == [("Workflow", "ml", first)]
    asyncio.run(
        reconciler.refresh_for_run(set_phase(kube, first, "Succeeded"), base.record(events))
    )
    run_at = Target.of(kube.pipeline()).run_at_run
    assert run_at is not None
    assert base.children(kube) == [("Workflow", "ml", first), ("Workflow", "ml", run_at)]


def test_without_a_cap_runs_do_not_wait() -> None:
    kube, reconciler, doc, events = base.setup()
    base.run(reconciler, copy.deepcopy(doc), events)
    set_phase(kube, run_name("ml", "demo", 1), "Running")
    base.run(reconciler, new_generation(kube, 2), events)
    assert len(base.children(kube)) == 2
