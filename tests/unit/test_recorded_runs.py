"""Status from Workflows exactly as Argo's controller wrote them in real runs on the
end-to-end cluster (tests/unit/data/argo-runs/, re-recorded by `make record-runs`): the example
promoted and then rejected, a step retried until it succeeds, a step past its timeout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlpipeline_operator.api.status import MLPipelineStatus
from mlpipeline_operator.reconcile.status import build_status, promotion_outputs, run_status

RECORDED = Path(__file__).parent / "data" / "argo-runs"


def recorded(name: str) -> dict[str, Any]:
    workflow: dict[str, Any] = json.loads((RECORDED / f"{name}.json").read_text())
    return workflow


def status_of(*workflows: dict[str, Any], model: str | None = None) -> MLPipelineStatus:
    newest = workflows[-1]
    return build_status(
        generation=int(newest["metadata"]["labels"]["mlops.gitops.dev/generation"]),
        expected_run=newest["metadata"]["name"],
        workflows=list(workflows),
        previous=MLPipelineStatus(),
        now="2026-12-01T00:00:00Z",
        model=model,
    )


def conditions(status: MLPipelineStatus) -> dict[str, str]:
    return {c.type: c.status for c in status.conditions}


def test_the_example_promoted() -> None:
    workflow = recorded("fraud-detection-g1")
    run = run_status(workflow)
    assert run.phase == "Succeeded"
    assert [(s.name, s.phase, s.retries) for s in run.steps] == [
        (name, "Succeeded", 0)
        for name in ("ingest", "preprocess", "train", "evaluate", "promote-model")
    ]
    outputs = promotion_outputs(workflow)
    assert outputs is not None and outputs["decision"] == "Promoted"
    status = status_of(workflow, model="fraud-detection")
    assert status.phase == "Succeeded"
    assert conditions(status) == {"Valid": "True", "Ready": "True", "Promoted": "True"}
    assert status.promotion is not None and status.promotion.version == outputs["version"]


def test_a_worse_model_rejected_after_the_champion() -> None:
    first, second = recorded("fraud-detection-g1"), recorded("fraud-detection-g2")
    status = status_of(first, second, model="fraud-detection")
    assert status.phase == "Succeeded"
    assert status.last_run is not None and status.last_run.name == second["metadata"]["name"]
    assert status.promotion is not None and status.promotion.decision == "Rejected"
    assert conditions(status)["Promoted"] == "False"
    assert [run.name for run in status.history] == [
        second["metadata"]["name"],
        first["metadata"]["name"],
    ]


def test_retries_counted_from_the_retry_node() -> None:
    run = run_status(recorded("flaky-g1"))
    assert run.phase == "Succeeded"
    assert [(s.name, s.phase, s.retries) for s in run.steps] == [("flaky", "Succeeded", 2)]


def test_a_step_past_its_timeout_names_the_step_and_the_reason() -> None:
    status = status_of(recorded("slow-g1"))
    assert status.phase == "Failed"
    assert status.message is not None
    assert status.message.startswith('step "sleepy" failed: ')
    assert "deadline" in status.message
    assert conditions(status)["Ready"] == "False"
