"""Stopping runs (the mlops.gitops.dev/stop annotation) and spec.suspend, against an in-memory
API (tests/unit/memory_kube.py); the integration tier runs the operator on a real API server."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from mlpipeline_operator.api.constants import (
    ANNOTATION_STOP,
    ANNOTATION_STOPPED_AT,
    ANNOTATION_STOPPED_BY,
    LABEL_PIPELINE,
)
from mlpipeline_operator.core import run_name
from mlpipeline_operator.reconcile.reconciler import Reconciler, Target
from mlpipeline_operator.reconcile.status import Event
from mlpipeline_operator.reconcile.stop import stop_requester
from tests.unit import test_reconciler as base
from tests.unit.argo_runs import StepRun, workflow_status
from tests.unit.memory_kube import MemoryKube

Obj = dict[str, Any]
NOW = "2026-01-01T00:00:00Z"


def managed(manager: str, time: str, annotation: str = ANNOTATION_STOP) -> Obj:
    """A managedFields entry as the API server writes it for a client that set an annotation."""
    return {
        "manager": manager,
        "operation": "Update",
        "apiVersion": "mlops.gitops.dev/v1alpha1",
        "time": time,
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": {"f:annotations": {f"f:{annotation}": {}}}},
    }


def request_stop(kube: MemoryKube, value: str, manager: str = "kubectl-annotate") -> Obj:
    """The pipeline as stored after a client set the stop annotation."""
    changed = copy.deepcopy(kube.pipeline())
    changed["metadata"].setdefault("annotations", {})[ANNOTATION_STOP] = value
    changed["metadata"]["managedFields"] = [
        managed("kopf", "2026-01-01T00:00:00Z", "operator.mlops.gitops.dev/x"),
        managed(manager, "2026-01-01T00:05:00Z"),
    ]
    return kube.add(changed)


def stop(reconciler: Reconciler, body: Obj, events: list[Event]) -> None:
    asyncio.run(reconciler.stop(body, base.record(events)))


def running(kube: MemoryKube, name: str) -> None:
    kube.child("Workflow", name)["status"] = workflow_status(
        name, "Running", {"extract": StepRun("Running")}
    )


def test_stop_current_stops_the_generations_run_once_and_the_status_says_who_and_when() -> None:
    kube, reconciler, doc, events = base.setup()
    base.run(reconciler, copy.deepcopy(doc), events)
    name = run_name("ml", "demo", 1)
    running(kube, name)
    body = request_stop(kube, "current")
    kube.writes.clear()
    events.clear()
    stop(reconciler, body, events)
    assert kube.writes == [f"patch Workflow {name}"]
    workflow = kube.child("Workflow", name)
    assert workflow["spec"]["shutdown"] == "Stop"
    assert workflow["metadata"]["annotations"][ANNOTATION_STOPPED_BY] == "kubectl-annotate"
    assert workflow["metadata"]["annotations"][ANNOTATION_STOPPED_AT] == NOW
    assert events == [
        Event("Normal", "Stopped", f"stopping run {name} (asked by kubectl-annotate)")
    ]

    # The same request again (a resume, a retry): already applied, nothing more.
    kube.writes.clear()
    events.clear()
    stop(reconciler, kube.pipeline(), events)
    assert kube.writes == []
    assert events == []

    # Argo ends the run Failed; the status tells it was stopped, by whom and when.
    workflow["status"] = workflow_status(
        name,
        "Failed",
        {"extract": StepRun("Failed", message="Stopped with strategy 'Stop'")},
        finished="2026-01-01T00:06:00Z",
        message="Stopped with strategy 'Stop'",
    )
    asyncio.run(reconciler.refresh(Target.of(kube.pipeline()), base.record(events)))
    status = kube.pipeline()["status"]
    assert status["lastRun"]["stoppedBy"] == "kubectl-annotate"
    assert status["lastRun"]["stoppedAt"] == NOW
    assert status["history"][0]["stoppedBy"] == "kubectl-annotate"
    assert status["phase"] == "Failed"
    assert status["message"] == f"run {name} stopped by kubectl-annotate at {NOW}"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "RunStopped")


def test_stop_of_a_finished_run_does_nothing_and_says_so() -> None:
    kube, reconciler, doc, events = base.setup()
    base.run(reconciler, copy.deepcopy(doc), events)
    name = run_name("ml", "demo", 1)
    kube.child("Workflow", name)["status"] = workflow_status(
        name, "Succeeded", {"extract": StepRun("Succeeded")}, finished=NOW
    )
    body = request_stop(kube, name)
    kube.writes.clear()
    events.clear()
    stop(reconciler, body, events)
    assert kube.writes == []
    assert events == [Event("Normal", "NothingToStop", f"run {name} already finished (Succeeded)")]


def test_stop_of_a_run_that_does_not_exist_or_is_not_the_pipelines_is_rejected() -> None:
    kube, reconciler, doc, events = base.setup()
    base.run(reconciler, copy.deepcopy(doc), events)
    # Labelled for the pipeline, but owned by another object of the same name (another uid).
    stranger = copy.deepcopy(kube.child("Workflow", run_name("ml", "demo", 1)))
    stranger["metadata"].update(name="stranger", uid="uid-9")
    stranger["metadata"]["ownerReferences"][0]["uid"] = "uid-other"
    kube.add(stranger)
    unlabelled = copy.deepcopy(kube.child("Workflow", run_name("ml", "demo", 1)))
    unlabelled["metadata"].update(name="unlabelled", uid="uid-10")
    del unlabelled["metadata"]["labels"][LABEL_PIPELINE]
    kube.add(unlabelled)
    kube.writes.clear()
    events.clear()
    for requested in ("nope", "stranger", "unlabelled"):
        stop(reconciler, request_stop(kube, requested), events)
    assert kube.writes == []
    assert events == [
        Event("Warning", "StopRejected", f'{ANNOTATION_STOP}: no run "nope"'),
        Event(
            "Warning", "StopRejected", f'{ANNOTATION_STOP}: run "stranger" is not one of its runs'
        ),
        Event(
            "Warning", "StopRejected", f'{ANNOTATION_STOP}: run "unlabelled" is not one of its runs'
        ),
    ]


def test_stop_current_of_a_suspended_pipeline_has_no_run_to_stop() -> None:
    kube, reconciler, doc, events = base.setup(suspend=True)
    base.run(reconciler, copy.deepcopy(doc), events)
    stop(reconciler, request_stop(kube, "current"), events)
    assert events == [
        Event("Warning", "StopRejected", f'{ANNOTATION_STOP}: no run "{run_name("ml", "demo", 1)}"')
    ]


def test_a_removed_stop_annotation_stops_nothing() -> None:
    kube, reconciler, doc, events = base.setup()
    base.run(reconciler, copy.deepcopy(doc), events)
    kube.writes.clear()
    kube.reads.clear()
    events.clear()
    stop(reconciler, kube.pipeline(), events)
    assert (kube.reads, kube.writes, events) == ([], [], [])


def scheduled_run(kube: MemoryKube, name: str, created: str) -> None:
    """A run as Argo's controller creates it from the pipeline's CronWorkflow."""
    cron = kube.child("CronWorkflow", "demo")
    kube.add(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {
                "name": name,
                "namespace": "ml",
                "creationTimestamp": created,
                "labels": {
                    **cron["spec"]["workflowMetadata"]["labels"],
                    "workflows.argoproj.io/cron-workflow": "demo",
                },
                "ownerReferences": [
                    {
                        "apiVersion": "argoproj.io/v1alpha1",
                        "kind": "CronWorkflow",
                        "name": "demo",
                        "uid": cron["metadata"]["uid"],
                    }
                ],
            },
            "spec": {"workflowTemplateRef": {"name": "demo"}},
            "status": {"phase": "Running"},
        }
    )


def test_stop_current_of_a_scheduled_pipeline_stops_its_newest_run() -> None:
    kube, reconciler, doc, events = base.setup(schedule={"cron": "0 1 * * *"})
    base.run(reconciler, copy.deepcopy(doc), events)
    scheduled_run(kube, "demo-1767229200", "2026-01-01T01:00:00Z")
    scheduled_run(kube, "demo-1767315600", "2026-01-02T01:00:00Z")
    kube.writes.clear()
    events.clear()
    stop(reconciler, request_stop(kube, "current", manager="argocd-controller"), events)
    assert kube.writes == ["patch Workflow demo-1767315600"]
    assert [e.reason for e in events] == ["Stopped"]
    # A run named explicitly: the same checks, through the CronWorkflow that owns it.
    stop(reconciler, request_stop(kube, "demo-1767229200"), events)
    assert kube.writes == ["patch Workflow demo-1767315600", "patch Workflow demo-1767229200"]


def test_the_requester_is_the_field_manager_that_set_the_annotation_last() -> None:
    assert stop_requester({}) == "unknown"
    assert stop_requester({"managedFields": [managed("kopf", NOW, "other")]}) == "unknown"
    entries = [
        managed("argocd-controller", "2026-01-01T00:00:00Z"),
        managed("kubectl-annotate", "2026-01-02T00:00:00Z"),
        managed("helm", "2026-01-01T12:00:00Z"),
    ]
    assert stop_requester({"managedFields": entries}) == "kubectl-annotate"


def test_suspend_submits_nothing_until_false_then_the_generations_run_once() -> None:
    kube, reconciler, doc, events = base.setup(suspend=True)
    base.run(reconciler, copy.deepcopy(doc), events)
    assert base.children(kube) == []
    assert kube.writes == ["status"]
    status = kube.pipeline()["status"]
    assert status["phase"] == "Pending"
    assert status["message"] == (
        f"suspended (spec.suspend): run {run_name('ml', 'demo', 1)} is not submitted"
    )
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "Suspended")
    assert events == []

    resumed = copy.deepcopy(kube.pipeline())
    resumed["spec"]["suspend"] = False
    resumed["metadata"]["generation"] = 2
    resumed = kube.add(resumed)
    kube.writes.clear()
    base.run(reconciler, copy.deepcopy(resumed), events)
    second = run_name("ml", "demo", 2)
    assert kube.writes == [f"create Workflow {second}", "status"]
    kube.writes.clear()
    base.run(reconciler, copy.deepcopy(kube.pipeline()), events)  # again: nothing more
    assert kube.writes == []
    assert [e.reason for e in events] == ["Submitted"]
