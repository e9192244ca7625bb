"""The operator's metrics endpoint, scraped while a real `mlpipeline operator` process works
against the real kube-apiserver: the counts follow what happened, exactly."""

from __future__ import annotations

import pytest

from mlpipeline_operator.core import run_name
from tests.controlplane.harness import Kube
from tests.integration.operator_process import (
    OperatorProcess,
    make_pipeline,
    set_run_status,
    wait,
    wait_status,
)
from tests.unit.argo_runs import StepRun, workflow_status

pytestmark = pytest.mark.integration

TIMEOUT = 30
P = "mlpipeline_operator_"


def wait_metrics(operator: OperatorProcess, **expected: float) -> dict[str, float]:
    """Poll the endpoint until every series named (`reconciles_total__success` stands for
    `mlpipeline_operator_reconciles_total{result="success"}`) has its value; the scrape."""
    names = {key: _series(key) for key in expected}

    def reached() -> dict[str, float] | None:
        scrape = operator.metrics()
        return scrape if all(scrape.get(names[k]) == v for k, v in expected.items()) else None

    found: dict[str, float] = wait(reached, TIMEOUT, f"the metrics {expected}", operator)
    return found


LABELS = {
    "reconciles_total": "result",
    "runs_finished_total": "phase",
    "promotions_total": "decision",
    "handlers_in_progress": "handler",
}


def _series(key: str) -> str:
    name, _, label = key.partition("__")
    return f'{P}{name}{{{LABELS[name]}="{label}"}}' if label else P + name


def test_the_counts_follow_what_the_operator_did(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    before = operator.metrics()
    assert before[_series("reconciles_total__success")] == 0
    assert before[_series("runs_submitted_total")] == 0

    kube.create(make_pipeline(namespace))
    wait_status(kube, namespace, "demo", operator, phase="Pending", observedGeneration=1)
    wait_metrics(operator, reconciles_total__success=1, runs_submitted_total=1)

    bad = make_pipeline(namespace, "bad")
    bad["spec"]["steps"][1]["dependsOn"] = ["trian"]
    kube.create(bad)
    wait_status(kube, namespace, "bad", operator, phase="Invalid")
    scrape = wait_metrics(operator, reconciles_total__invalid=1, invalid_pipelines_total=1)
    assert scrape[_series("reconciles_total__success")] == 1
    assert scrape[_series("runs_submitted_total")] == 1  # nothing submitted for an invalid spec
    assert scrape[_series("reconcile_duration_seconds_count")] == 2

    run = run_name(namespace, "demo", 1)
    outputs = {"decision": "Promoted", "version": "1", "alias": "champion", "reason": "ok"}
    steps = {
        "extract": StepRun("Succeeded"),
        "train": StepRun("Succeeded"),
        "evaluate": StepRun("Succeeded"),
        "promote-model": StepRun("Succeeded", outputs=outputs),
    }
    set_run_status(
        kube,
        namespace,
        run,
        workflow_status(run, "Succeeded", steps, finished="2026-01-01T01:00:00Z"),
    )
    wait_status(kube, namespace, "demo", operator, phase="Succeeded")
    scrape = wait_metrics(
        operator,
        runs_finished_total__Succeeded=1,
        promotions_total__Promoted=1,
        handlers_in_progress__run_changed=0,
        handlers_in_progress__reconcile=0,
    )
    assert scrape[_series("runs_finished_total__Failed")] == 0
    assert scrape[_series("promotions_total__Rejected")] == 0
    assert scrape[_series("promotions_total__Failed")] == 0
    # The run's own changes are followed by the run_changed handler, not by a reconciliation.
    assert (
        scrape[_series("reconciles_total__success")],
        scrape[_series("reconciles_total__invalid")],
        scrape[_series("reconciles_total__retry")],
        scrape[_series("reconciles_total__error")],
        scrape[_series("runs_submitted_total")],
        scrape[_series("invalid_pipelines_total")],
    ) == (1, 1, 0, 0, 1, 1)
