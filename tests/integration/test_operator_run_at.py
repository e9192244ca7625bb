"""The run-at annotation, with a real `mlpipeline operator` process on the real kube-apiserver.
Argo's controller does not run here (the e2e tier, tests/e2e/test_run_at.py, runs the runs)."""

from __future__ import annotations

from datetime import datetime

from mlpipeline_operator.core import run_at_name, run_name
from tests.controlplane.harness import Kube
from tests.integration.operator_process import (
    PIPELINE_API,
    OperatorProcess,
    get_or_none,
    make_pipeline,
    pipeline_status,
    runs,
    wait,
    wait_status,
)

TIMEOUT = 30
RUN_AT = "mlops.gitops.dev/run-at"


def annotate(kube: Kube, namespace: str, annotations: dict[str, str]) -> None:
    kube.patch(
        PIPELINE_API, "MLPipeline", "demo", {"metadata": {"annotations": annotations}}, namespace
    )


def run_names(kube: Kube, namespace: str) -> set[str]:
    return {w["metadata"]["name"] for w in runs(kube, namespace, "demo")}


def test_run_at_submits_one_run_per_time(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    doc = make_pipeline(namespace)
    doc["metadata"]["annotations"] = {RUN_AT: "2026-01-31T00:00:00Z"}
    kube.create(doc)
    first = run_name(namespace, "demo", 1)
    at_run = run_at_name(namespace, "demo", datetime.fromisoformat("2026-01-31T00:00:00Z"))
    wait(
        lambda: get_or_none(kube, "Workflow", namespace, at_run),
        TIMEOUT,
        "the run-at run",
        operator,
    )
    workflow = get_or_none(kube, "Workflow", namespace, at_run)
    assert workflow is not None
    assert workflow["metadata"]["annotations"] == {
        "workflows.argoproj.io/scheduled-time": "2026-01-31T00:00:00Z"
    }
    assert run_names(kube, namespace) == {first, at_run}

    # The same instant written otherwise, with a re-run asked in the same change: the pass
    # that submits the re-run sees the run-at run there already.
    annotate(kube, namespace, {RUN_AT: "2026-01-31T01:00:00+01:00", "mlops.gitops.dev/rerun": "1"})
    rerun = run_name(namespace, "demo", 1, rerun="1")
    wait(
        lambda: pipeline_status(kube, namespace, "demo").get("lastRun", {}).get("name") == rerun,
        TIMEOUT,
        "the re-run in the status",
        operator,
    )
    assert run_names(kube, namespace) == {first, at_run, rerun}

    # Another time: one more run; the earlier one is kept.
    annotate(kube, namespace, {RUN_AT: "2026-02-01T00:00:00Z"})
    later = run_at_name(namespace, "demo", datetime.fromisoformat("2026-02-01T00:00:00Z"))
    wait(lambda: get_or_none(kube, "Workflow", namespace, later), TIMEOUT, "the new run", operator)
    assert run_names(kube, namespace) == {first, at_run, rerun, later}


def test_a_bad_run_at_time_is_an_invalid_spec_naming_the_annotation(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    doc = make_pipeline(namespace)
    doc["metadata"]["annotations"] = {RUN_AT: "2026-01-31"}
    kube.create(doc)
    status = wait_status(kube, namespace, "demo", operator, phase="Invalid")
    assert status["message"] == (
        'metadata.annotations["mlops.gitops.dev/run-at"]: "2026-01-31" is not an RFC 3339 '
        'time; write a date, "T", a time and "Z" or an offset, such as "2026-01-31T00:00:00Z" '
        'or "2026-01-31T02:00:00+02:00"'
    )
    assert runs(kube, namespace, "demo") == []
