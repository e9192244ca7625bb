"""Stopping a run on request (the `mlops.gitops.dev/stop` annotation): pure functions, no I/O.

The operator stops a run as `argo stop` does, with `spec.shutdown: Stop` on the Workflow, and
records on the Workflow itself who asked and when, so that the status, recomputed from the runs,
keeps saying it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlpipeline_operator.api.constants import (
    ANNOTATION_STOP,
    ANNOTATION_STOPPED_AT,
    ANNOTATION_STOPPED_BY,
    KIND,
    LABEL_PIPELINE,
)

Obj = dict[str, Any]
UNKNOWN_REQUESTER = "unknown"


def stop_requester(metadata: Mapping[str, Any]) -> str:
    """The field manager that set the stop annotation (`kubectl-annotate`, `argocd-controller`,
    ...): of the `metadata.managedFields` entries owning it, the one changed last. The API server
    records managers on objects, not users; "unknown" when no entry owns the annotation."""
    key = f"f:{ANNOTATION_STOP}"
    owners = [
        entry
        for entry in metadata.get("managedFields") or []
        if key
        in (((entry.get("fieldsV1") or {}).get("f:metadata") or {}).get("f:annotations") or {})
    ]
    newest = max(owners, key=lambda entry: str(entry.get("time") or ""), default=None)
    manager = newest.get("manager") if newest is not None else None
    return str(manager) if manager else UNKNOWN_REQUESTER


def labelled_for(run: Mapping[str, Any], pipeline: str) -> bool:
    """Whether the run carries the label that ties it to the pipeline."""
    return (run["metadata"].get("labels") or {}).get(LABEL_PIPELINE) == pipeline


def owner_of(run: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    """The run's owner reference of that kind (MLPipeline, or CronWorkflow for a scheduled run)."""
    refs = run["metadata"].get("ownerReferences") or []
    return next((ref for ref in refs if ref.get("kind") == kind), None)


def owned_by(run: Mapping[str, Any], uid: str) -> bool:
    """Whether the run is owned by the MLPipeline of that uid directly."""
    ref = owner_of(run, KIND)
    return ref is not None and ref.get("uid") == uid


def stop_patch(run: Mapping[str, Any], by: str, at: str) -> Obj:
    """The merge patch that stops a run as of the version read, and says who asked and when."""
    return {
        "metadata": {
            "resourceVersion": run["metadata"]["resourceVersion"],
            "annotations": {ANNOTATION_STOPPED_BY: by, ANNOTATION_STOPPED_AT: at},
        },
        "spec": {"shutdown": "Stop"},
    }
