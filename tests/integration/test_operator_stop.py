"""The stop annotation and spec.suspend, with a real `mlpipeline operator` process on the real
kube-apiserver. Argo's controller does not run here: the tests play its part (the e2e tier,
tests/e2e/test_stop.py, has Argo really stop a run)."""

from __future__ import annotations

from typing import Any

import pytest

from mlpipeline_operator.api.constants import ANNOTATION_STOPPED_AT, ANNOTATION_STOPPED_BY
from mlpipeline_operator.core import run_name
from tests.controlplane.harness import ApiException, Kube
from tests.integration.operator_process import (
    PIPELINE_API,
    OperatorProcess,
    get_or_none,
    make_pipeline,
    runs,
    set_run_status,
    wait,
    wait_status,
)
from tests.unit.argo_runs import StepRun, workflow_status

TIMEOUT = 30


def annotate(kube: Kube, namespace: str, value: str, manager: str = "alice-cli") -> None:
    kube.patch(
        PIPELINE_API,
        "MLPipeline",
        "demo",
        {"metadata": {"annotations": {"mlops.gitops.dev/stop": value}}},
        namespace,
        field_manager=manager,
    )


def events(kube: Kube, namespace: str, reason: str) -> list[str]:
    return [
        e["message"] for e in kube.list_objects("v1", "Event", namespace) if e["reason"] == reason
    ]


def test_stop_annotation_stops_the_current_run_and_the_status_says_who(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    kube.create(make_pipeline(namespace))
    name = run_name(namespace, "demo", 1)
    wait(lambda: get_or_none(kube, "Workflow", namespace, name), TIMEOUT, "the run", operator)
    set_run_status(
        kube, namespace, name, workflow_status(name, "Running", {"extract": StepRun("Running")})
    )
    wait_status(kube, namespace, "demo", operator, phase="Running")

    annotate(kube, namespace, "current")

    def stopped() -> dict[str, Any] | None:
        run = get_or_none(kube, "Workflow", namespace, name)
        return run if run is not None and run["spec"].get("shutdown") == "Stop" else None

    run = wait(stopped, TIMEOUT, "spec.shutdown: Stop on the run", operator)
    annotations = run["metadata"]["annotations"]
    assert annotations[ANNOTATION_STOPPED_BY] == "alice-cli"
    stopped_at = annotations[ANNOTATION_STOPPED_AT]
    wait(lambda: events(kube, namespace, "Stopped"), TIMEOUT, "the Stopped event", operator)
    assert events(kube, namespace, "Stopped") == [f"stopping run {name} (asked by alice-cli)"]

    # What Argo's controller then does; the status follows.
    set_run_status(
        kube,
        namespace,
        name,
        workflow_status(
            name,
            "Failed",
            {"extract": StepRun("Failed", message="Stopped with strategy 'Stop'")},
            finished="2026-01-01T00:05:00Z",
            message="Stopped with strategy 'Stop'",
        ),
    )
    status = wait_status(kube, namespace, "demo", operator, phase="Failed")
    assert (status["lastRun"]["stoppedBy"], status["lastRun"]["stoppedAt"]) == (
        "alice-cli",
        stopped_at,
    )
    assert status["message"] == f"run {name} stopped by alice-cli at {stopped_at}"

    # A stop of a run that is not there: an Event, nothing else, and the operator goes on.
    annotate(kube, namespace, "no-such-run")
    wait(
        lambda: events(kube, namespace, "StopRejected"), TIMEOUT, "the StopRejected event", operator
    )
    assert events(kube, namespace, "StopRejected") == [
        'mlops.gitops.dev/stop: no run "no-such-run"'
    ]
    # The finished run named explicitly: nothing to stop, said so.
    annotate(kube, namespace, name)
    wait(lambda: events(kube, namespace, "NothingToStop"), TIMEOUT, "NothingToStop", operator)
    assert events(kube, namespace, "NothingToStop") == [f"run {name} already finished (Failed)"]
    assert [r["metadata"]["name"] for r in runs(kube, namespace, "demo")] == [name]


def test_suspend_submits_nothing_until_false(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    doc = make_pipeline(namespace)
    doc["spec"]["suspend"] = True
    kube.create(doc)
    status = wait_status(kube, namespace, "demo", operator, observedGeneration=1)
    assert status["phase"] == "Pending"
    assert status["message"] == (
        f"suspended (spec.suspend): run {run_name(namespace, 'demo', 1)} is not submitted"
    )
    assert runs(kube, namespace, "demo") == []

    kube.patch(PIPELINE_API, "MLPipeline", "demo", {"spec": {"suspend": False}}, namespace)
    second = run_name(namespace, "demo", 2)
    wait(lambda: get_or_none(kube, "Workflow", namespace, second), TIMEOUT, "the run", operator)
    wait_status(kube, namespace, "demo", operator, observedGeneration=2)
    assert [r["metadata"]["name"] for r in runs(kube, namespace, "demo")] == [second]


def test_suspend_with_a_schedule_is_refused_at_apply(kube: Kube, namespace: str) -> None:
    doc = make_pipeline(namespace)
    doc["spec"].update(suspend=True, schedule={"cron": "@daily"})
    with pytest.raises(ApiException) as rejected:  # the CRD's CEL rule
        kube.create(doc)
    assert rejected.value.status == 422
    assert "spec.suspend: a scheduled pipeline is suspended with spec.schedule.suspend" in str(
        rejected.value.body
    )
