"""Which finished runs to delete under `spec.history`: a pure function, no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from typing import Any

from mlpipeline_operator.api.constants import ARGO_LABEL_CRON
from mlpipeline_operator.api.models import History
from mlpipeline_operator.api.status import MAX_HISTORY, RunSummary


def may_exceed(recorded: Sequence[RunSummary], history: History) -> bool:
    """Whether the runs a status records (newest first, at most MAX_HISTORY) may hold finished
    runs beyond the limits: too many of a kind, or a list cut short."""
    succeeded = sum(1 for r in recorded if r.phase == "Succeeded")
    failed = sum(1 for r in recorded if r.phase in ("Failed", "Error"))
    return len(recorded) >= MAX_HISTORY or succeeded > history.succeeded or failed > history.failed


def runs_to_delete(
    workflows: Sequence[Mapping[str, Any]], history: History, keep: Set[str]
) -> list[str]:
    """Names of the oldest finished runs beyond the limits, oldest first.

    Runs in `keep` (the current generation's run, the run-at annotation's) are never deleted,
    so that a restart cannot mistake a pruned run for one never submitted. Runs created by a
    CronWorkflow are left to Argo, which applies the same limits to them.
    """
    succeeded: list[tuple[str, str]] = []
    failed: list[tuple[str, str]] = []
    for wf in workflows:
        meta = wf.get("metadata", {})
        if ARGO_LABEL_CRON in (meta.get("labels") or {}) or meta.get("deletionTimestamp"):
            continue
        phase = (wf.get("status") or {}).get("phase")
        finished = (wf.get("status") or {}).get("finishedAt") or meta.get("creationTimestamp", "")
        if phase == "Succeeded":
            succeeded.append((finished, meta["name"]))
        elif phase in ("Failed", "Error"):
            failed.append((finished, meta["name"]))
    doomed: list[tuple[str, str]] = []
    for runs, limit in ((succeeded, history.succeeded), (failed, history.failed)):
        runs.sort(reverse=True)  # newest first
        kept = sum(1 for _, name in runs if name in keep)  # they count toward the limit
        for finished, name in runs:
            if name in keep:
                continue
            if kept < limit:
                kept += 1
            else:
                doomed.append((finished, name))
    return [name for _, name in sorted(doomed)]
