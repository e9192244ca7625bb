"""Argo Workflow objects as Argo's controller leaves them, for status tests.

`recorded` reads a Workflow exactly as Argo wrote it in a real run on the end-to-end cluster
(data/argo-runs/, re-recorded by `make record-runs`): the unit tier's fixtures. The integration
tier, where no Argo controller runs, plays its part with `workflow_status`, which writes the
`status` Argo would write for a run of the given steps: a DAG node for the run, a Pod node per
step (or a Retry node with one Pod per attempt), outputs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RECORDED = Path(__file__).parent / "data" / "argo-runs"


def recorded(name: str) -> dict[str, Any]:
    """The Workflow recorded as data/argo-runs/<name>.json."""
    workflow: dict[str, Any] = json.loads((RECORDED / f"{name}.json").read_text())
    return workflow


@dataclass(frozen=True)
class StepRun:
    """What happened to one step: its phase, its attempts and its output parameters."""

    phase: str
    attempts: int = 1
    retry_node: bool = False  # Argo makes a Retry node when the template has a retryStrategy
    message: str | None = None
    outputs: Mapping[str, str] = field(default_factory=dict)


def workflow_status(
    name: str,
    phase: str,
    steps: Mapping[str, StepRun],
    *,
    started: str = "2026-01-01T00:00:00Z",
    finished: str | None = None,
    message: str | None = None,
) -> dict[str, Any]:
    nodes: dict[str, Any] = {
        name: {
            "id": name,
            "name": name,
            "displayName": name,
            "type": "DAG",
            "phase": phase,
            "templateName": "mlpipeline",
            "startedAt": started,
            "children": [],
        }
    }
    for index, (step, run) in enumerate(steps.items()):
        node_id = f"{name}-{index}"
        pod = {
            "templateName": step,
            "startedAt": started,
            **({"finishedAt": finished or started} if run.phase != "Running" else {}),
            **({"message": run.message} if run.message else {}),
        }
        outputs = (
            {"outputs": {"parameters": [{"name": k, "value": v} for k, v in run.outputs.items()]}}
            if run.outputs
            else {}
        )
        if run.retry_node or run.attempts > 1:
            children = []
            for attempt in range(run.attempts):
                child_id = f"{node_id}-{attempt}"
                last = attempt == run.attempts - 1
                nodes[child_id] = {
                    "id": child_id,
                    "name": f"{name}.{step}({attempt})",
                    "displayName": f"{step}({attempt})",
                    "type": "Pod",
                    "phase": run.phase if last else "Failed",
                    **pod,
                    **(outputs if last else {}),
                }
                children.append(child_id)
            nodes[node_id] = {
                "id": node_id,
                "name": f"{name}.{step}",
                "displayName": step,
                "type": "Retry",
                "phase": run.phase,
                "children": children,
                **pod,
            }
        else:
            nodes[node_id] = {
                "id": node_id,
                "name": f"{name}.{step}",
                "displayName": step,
                "type": "Pod",
                "phase": run.phase,
                **pod,
                **outputs,
            }
        nodes[name]["children"].append(node_id)
    status: dict[str, Any] = {"phase": phase, "startedAt": started, "nodes": nodes}
    if finished:
        status["finishedAt"] = finished
    if message:
        status["message"] = message
    return status


def argo_labels(status: Mapping[str, Any]) -> dict[str, str]:
    """The labels Argo's controller writes with a status: the phase, and whether the run is
    completed (the operator's watch leaves out completed runs)."""
    phase = str(status.get("phase") or "")
    completed = phase in ("Succeeded", "Failed", "Error")
    return {
        "workflows.argoproj.io/phase": phase,
        "workflows.argoproj.io/completed": "true" if completed else "false",
    }


def workflow(
    name: str,
    generation: int,
    status: dict[str, Any] | None = None,
    *,
    created: str = "2026-01-01T00:00:00Z",
    pipeline: str = "demo",
    tasks: Sequence[str] = (),
    cron: bool = False,
) -> dict[str, Any]:
    labels = {
        "app.kubernetes.io/managed-by": "mlpipeline-operator",
        "mlops.gitops.dev/pipeline": pipeline,
        "mlops.gitops.dev/generation": str(generation),
    }
    if cron:
        labels["workflows.argoproj.io/cron-workflow"] = pipeline
    wf: dict[str, Any] = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            "name": name,
            "namespace": "ml",
            "labels": labels,
            "creationTimestamp": created,
        },
        "spec": {
            "templates": [{"name": "mlpipeline", "dag": {"tasks": [{"name": t} for t in tasks]}}]
        },
    }
    if status is not None:
        wf["status"] = status
    return wf
