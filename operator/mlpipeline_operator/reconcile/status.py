"""MLPipeline status from the pipeline's runs (Argo Workflows): pure functions, no I/O.

The status is recomputed whole from what the cluster holds (level-based), so replaying an event,
missing one, or restarting the operator always converges to the same status.
"""

from __future__ import annotations

import datetime
import re
from collections import Counter
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any, Literal

from mlpipeline_operator.api.constants import (
    ANNOTATION_STOPPED_AT,
    ANNOTATION_STOPPED_BY,
    ARGO_LABEL_COMPLETED,
    ARGO_LABEL_PHASE,
    LABEL_GENERATION,
)
from mlpipeline_operator.api.status import (
    MAX_FAILED_ITERATIONS,
    MAX_HISTORY,
    MAX_ITEM_SHOWN,
    Condition,
    FailedIteration,
    Iterations,
    MLPipelineStatus,
    Phase,
    RunStatus,
    RunSummary,
    StepStatus,
)
from mlpipeline_operator.core import ENTRY_TEMPLATE, EXIT_STEP, PROMOTION_TASK, Problem
from mlpipeline_operator.promotion.outputs import status_from_outputs

Obj = Mapping[str, Any]
MAX_MESSAGE = 4000
# Characters that the messages of the last run's steps share (see `_within_budget`).
STEP_MESSAGES_BUDGET = 256 * 1024
# Argo's workflow phases, as the pipeline's phase.
_PHASES: dict[str, Phase] = {
    "Pending": "Pending",
    "Running": "Running",
    "Succeeded": "Succeeded",
    "Failed": "Failed",
    "Error": "Failed",
}
# Node types that stand for a step as a whole (a Retry node groups the attempts).
_STEP_NODE_TYPES = frozenset({"Pod", "Retry", "Skipped", "Omitted", "Container"})


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the MLPipeline."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


def _clip(text: str, limit: int = MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."


def _fair_limit(lengths: Sequence[int], budget: int) -> int | None:
    """The largest length L such that messages clipped to L take at most `budget` characters
    together: short messages stay whole, long ones share the rest. None: all fit."""
    if sum(lengths) <= budget:
        return None
    remaining = budget
    ordered = sorted(lengths)
    for index, length in enumerate(ordered):
        share = remaining // (len(ordered) - index)
        if length > share:
            return share
        remaining -= length
    return None


def _within_budget(steps: list[StepStatus]) -> list[StepStatus]:
    """The steps with their messages (and their failed iterations') clipped to share
    STEP_MESSAGES_BUDGET: a run of 1,000 failed steps with long messages would make a status
    larger than the API server stores (etcd's 1.5 MiB, which the spec shares)."""
    lengths = [len(step.message or "") for step in steps] + [
        len(failed.message or "")
        for step in steps
        if step.iterations is not None
        for failed in step.iterations.failed or ()
    ]
    limit = _fair_limit(lengths, STEP_MESSAGES_BUDGET)
    if limit is None:
        return steps

    def clipped(message: str | None) -> str | None:
        return None if message is None else _clip(message, limit)

    def fitted(step: StepStatus) -> StepStatus:
        iterations = step.iterations
        if iterations is not None and iterations.failed:
            failed = [
                f.model_copy(update={"message": clipped(f.message)}) for f in iterations.failed
            ]
            iterations = iterations.model_copy(update={"failed": failed})
        return step.model_copy(update={"message": clipped(step.message), "iterations": iterations})

    return [fitted(step) for step in steps]


def run_generation(workflow: Obj) -> int | None:
    value = workflow.get("metadata", {}).get("labels", {}).get(LABEL_GENERATION)
    return int(value) if value and str(value).isdigit() else None


def newest_first(workflows: Sequence[Obj]) -> list[Obj]:
    def key(wf: Obj) -> tuple[str, str]:
        meta = wf.get("metadata", {})
        return (meta.get("creationTimestamp") or "", meta.get("name", ""))

    return sorted(workflows, key=key, reverse=True)


def _annotation(annotations: Mapping[str, str], key: str, limit: int) -> str | None:
    value = annotations.get(key)
    return str(value)[:limit] if value else None


def newest_run(workflows: Sequence[Obj]) -> Obj | None:
    """The run created last (the one that speaks for a scheduled pipeline)."""
    runs = newest_first(workflows)
    return runs[0] if runs else None


def run_summary(workflow: Obj) -> RunSummary:
    status = workflow.get("status") or {}
    annotations = workflow["metadata"].get("annotations") or {}
    return RunSummary(
        name=workflow["metadata"]["name"],
        generation=run_generation(workflow),
        phase=status.get("phase") or "Pending",
        started_at=status.get("startedAt"),
        finished_at=status.get("finishedAt"),
        message=_clip(status["message"]) if status.get("message") else None,
        # Written by the operator; clipped to their schema's bounds should anyone else write them.
        stopped_by=_annotation(annotations, ANNOTATION_STOPPED_BY, 128),
        stopped_at=_annotation(annotations, ANNOTATION_STOPPED_AT, 64),
    )


def _task_order(workflow: Obj) -> dict[str, int]:
    for template in workflow.get("spec", {}).get("templates", []):
        if template.get("name") == ENTRY_TEMPLATE and "dag" in template:
            return {t["name"]: i for i, t in enumerate(template["dag"].get("tasks", []))}
    return {}


def _step_nodes(workflow: Obj) -> dict[str, Obj]:
    """The node that stands for each step: its Retry node, or its only Pod node."""
    nodes = (workflow.get("status") or {}).get("nodes") or {}
    # Argo names the exit handler's node "<workflow>.onExit": it is the step on-exit.
    exit_node = f"{workflow.get('metadata', {}).get('name', '')}.onExit"
    chosen: dict[str, Obj] = {}
    for node in nodes.values():
        if node.get("type") not in _STEP_NODE_TYPES:
            continue
        name = node.get("displayName", "")
        if "(" in name:  # "train(1)": an attempt inside a Retry node
            continue
        if name == exit_node:
            name = EXIT_STEP
        if name not in chosen or node.get("type") == "Retry":
            chosen[name] = node
    return chosen


# An iteration's node: "train(2:lr:0.1,model:forest)", Argo's display name for item 2.
_ITERATION_NAME = re.compile(r"^(?P<step>[^(]*)\((?P<index>[0-9]+):(?P<item>.*)\)$")
_FAILED_PHASES = ("Failed", "Error")


@dataclass(frozen=True)
class FanOut:
    """A step with forEach: the node standing for it and its iterations."""

    node: Obj
    iterations: Iterations
    retries: int
    message: str | None


def _retries(node: Obj) -> int:
    return max(0, len(node.get("children") or []) - 1) if node.get("type") == "Retry" else 0


def _fan_out_steps(workflow: Obj) -> dict[str, FanOut]:
    """Steps with forEach, from their TaskGroup nodes (whose children are the iterations) and,
    with maxParallel, the DAG node of their `STEP-forEach` template above it."""
    nodes = (workflow.get("status") or {}).get("nodes") or {}
    groups = {n.get("displayName", ""): n for n in nodes.values() if n.get("type") == "TaskGroup"}
    wrappers = {
        n.get("displayName", ""): n
        for n in nodes.values()
        if n.get("type") == "DAG" and n.get("templateName") == f"{n.get('displayName')}-forEach"
    }
    found: dict[str, FanOut] = {}
    for name, group in groups.items():
        children = [nodes[c] for c in group.get("children") or [] if c in nodes]
        indexed = []
        for child in children:
            match = _ITERATION_NAME.match(child.get("displayName", ""))
            if match is not None and match["step"] == name:
                indexed.append((int(match["index"]), match["item"], child))
        indexed.sort(key=lambda entry: entry[0])
        phases = Counter(child.get("phase") or "Pending" for _, _, child in indexed)
        failed = [
            FailedIteration(
                index=index,
                item=item if len(item) <= MAX_ITEM_SHOWN else item[:MAX_ITEM_SHOWN] + "...",
                message=_clip(child["message"]) if child.get("message") else None,
            )
            for index, item, child in indexed
            if child.get("phase") in _FAILED_PHASES
        ]
        message = None
        if failed:
            first = failed[0]
            message = f"iteration {first.index} ({first.item}) failed" + (
                f": {first.message}" if first.message else ""
            )
        found[name] = FanOut(
            node=wrappers.get(name, group),
            iterations=Iterations(
                total=len(indexed),
                phases=dict(sorted(phases.items())),
                failed=failed[:MAX_FAILED_ITERATIONS] or None,
            ),
            retries=sum(_retries(child) for _, _, child in indexed),
            message=message,
        )
    return found


def run_status(workflow: Obj) -> RunStatus:
    """A run with its steps, in the DAG's order."""
    order = _task_order(workflow)
    nodes = _step_nodes(workflow)
    fan_outs = _fan_out_steps(workflow)
    nodes.update({name: fan_out.node for name, fan_out in fan_outs.items()})
    steps = [
        StepStatus(
            name=name,
            phase=node.get("phase") or "Pending",
            retries=_retries(node),
            started_at=node.get("startedAt"),
            finished_at=node.get("finishedAt"),
            message=_clip(node["message"]) if node.get("message") else None,
            cached=bool((node.get("memoizationStatus") or {}).get("hit")),
        )
        if name not in fan_outs
        else StepStatus(
            name=name,
            phase=node.get("phase") or "Pending",
            retries=fan_outs[name].retries,
            started_at=node.get("startedAt"),
            finished_at=node.get("finishedAt"),
            message=fan_outs[name].message,
            iterations=fan_outs[name].iterations,
        )
        for name, node in sorted(
            nodes.items(),
            key=lambda kv: (order.get(kv[0], len(order)), kv[1].get("startedAt") or ""),
        )
    ]
    summary = run_summary(workflow)
    return RunStatus(**summary.model_dump(), steps=_within_budget(steps))


def recorded_runs(previous: MLPipelineStatus) -> dict[str, RunSummary]:
    """The finished runs an earlier status records, by name: a finished run's summary does not
    change, so the status needs no more of them than their metadata."""
    runs = [*previous.history, *([previous.last_run] if previous.last_run else [])]
    return {r.name: r for r in runs if r.phase in FINISHED}


def still_as_recorded(metadata: Obj, summary: RunSummary) -> bool:
    """Whether Argo's labels on the run agree with its recorded summary (none: nothing says
    otherwise); `argo retry` runs a finished Workflow again."""
    labels = metadata.get("labels") or {}
    phase = labels.get(ARGO_LABEL_PHASE)
    return labels.get(ARGO_LABEL_COMPLETED) != "false" and phase in (None, summary.phase)


def recorded_run(metadata: Obj, summary: RunSummary) -> dict[str, Any]:
    """A finished run as its metadata and its summary in an earlier status give it."""
    fields = {
        "phase": summary.phase,
        "startedAt": summary.started_at,
        "finishedAt": summary.finished_at,
        "message": summary.message,
    }
    return {"metadata": metadata, "status": {k: v for k, v in fields.items() if v is not None}}


def slim_run(workflow: Obj) -> dict[str, Any]:
    """What the status reads of a run other than the last: its metadata, the fields of its
    summary, and the nodes of its promotion task (whose outputs may be the decision)."""
    status = workflow.get("status") or {}
    nodes = status.get("nodes") or {}
    node = _step_nodes(workflow).get(PROMOTION_TASK)
    last_attempt = (node.get("children") or [])[-1:] if node is not None else []
    kept = {key: n for key, n in nodes.items() if n is node or key in last_attempt}
    fields = {k: status[k] for k in ("phase", "startedAt", "finishedAt", "message") if k in status}
    return {"metadata": workflow["metadata"], "status": {**fields, "nodes": kept}}


def promotion_outputs(workflow: Obj) -> dict[str, str] | None:
    """The output parameters of the promotion task, once it has finished."""
    node = _step_nodes(workflow).get(PROMOTION_TASK)
    if node is None or node.get("phase") not in ("Succeeded", "Failed", "Error"):
        return None
    # A Retry node has no outputs of its own: read those of its last attempt.
    nodes = (workflow.get("status") or {}).get("nodes") or {}
    if node.get("type") == "Retry" and node.get("children"):
        node = nodes.get(node["children"][-1], node)
    params = (node.get("outputs") or {}).get("parameters") or []
    return {p["name"]: str(p.get("value", "")) for p in params if "name" in p}


def _condition(
    previous: Sequence[Condition],
    type_: Literal["Valid", "Ready", "Promoted"],
    status: Literal["True", "False", "Unknown"],
    reason: str,
    message: str,
    generation: int,
    now: str,
) -> Condition:
    before = next((c for c in previous if c.type == type_), None)
    changed = before is None or before.status != status
    return Condition(
        type=type_,
        status=status,
        reason=reason,
        message=_clip(message),
        last_transition_time=now if changed or before is None else before.last_transition_time,
        observed_generation=generation,
    )


def _exceeded_timeout(workflow: Obj) -> int | None:
    """The run's `activeDeadlineSeconds` (spec.timeout) when it ran that long: Argo stopped it
    then, failing its running steps with "Step exceeded its deadline" or Kubernetes'
    DeadlineExceeded, which say nothing of the run's limit."""
    limit = (workflow.get("spec") or {}).get("activeDeadlineSeconds")
    status = workflow.get("status") or {}
    started, finished = status.get("startedAt"), status.get("finishedAt")
    if not isinstance(limit, int) or not started or not finished:
        return None
    ran = datetime.datetime.fromisoformat(finished) - datetime.datetime.fromisoformat(started)
    return limit if ran.total_seconds() >= limit else None


def _failure_message(run: RunStatus, workflow: Obj) -> str:
    if (limit := _exceeded_timeout(workflow)) is not None:
        return f"run {run.name} exceeded spec.timeout of {limit}s: its running steps were stopped"
    failed = [s for s in run.steps if s.phase in ("Failed", "Error")]
    if failed:
        step = failed[0]
        return f'step "{step.name}" failed' + (f": {step.message}" if step.message else "")
    return run.message or f"run {run.name} failed"


def _pending_reason(run: RunStatus) -> str:
    """Why the first waiting step waits, as Argo reports it (the scheduler's reason when no node
    can take its pod: "Unschedulable: 0/1 nodes are available: ..."), or ""."""
    waiting = [s for s in run.steps if s.phase == "Pending" and s.message]
    if not waiting:
        return ""
    return f'; step "{waiting[0].name}" is pending: {waiting[0].message}'


def build_status(
    *,
    generation: int,
    expected_run: str | None,
    workflows: Sequence[Obj],
    previous: MLPipelineStatus,
    now: str,
    model: str | None = None,
    suspended: bool = False,
    recorded: Set[str] = frozenset(),
    max_concurrent_runs: int | None = None,
) -> MLPipelineStatus:
    """The status of a valid pipeline from its runs.

    `expected_run` is the run of the current generation (None for a scheduled pipeline, whose
    runs come from its CronWorkflow: then the newest run speaks for the pipeline). `model` is
    `spec.promotion.model`, recorded with the promotion decision. `suspended`: `spec.suspend`,
    under which the current generation's run is not submitted. `recorded`: the runs given by
    their summary in `previous` (`recorded_run`), whose promotion outputs, if any, `previous`
    holds already. `max_concurrent_runs`: `spec.maxConcurrentRuns`, under which the current
    generation's run waits while as many runs are going on.
    """
    runs = newest_first(workflows)
    current = (
        next((w for w in runs if w["metadata"]["name"] == expected_run), None)
        if expected_run is not None
        else (runs[0] if runs else None)
    )
    last = current or (runs[0] if runs else None)
    last_run = run_status(last) if last is not None else None
    history = [run_summary(w) for w in runs[:MAX_HISTORY]]

    promotion = previous.promotion
    # Without spec.promotion, "promote-model" may be a step of the user's like any other: its
    # outputs are no decision.
    for wf in runs if model is not None else ():
        if wf["metadata"]["name"] in recorded:
            if promotion is not None and promotion.run == wf["metadata"]["name"]:
                break  # the newest decision, as recorded
            continue
        outputs = promotion_outputs(wf)
        if outputs is not None:
            found = status_from_outputs(outputs, model=model, run=wf["metadata"]["name"])
            if found is not None:
                promotion = found
                break

    run = run_status(current) if current is not None else None
    phase: Phase = _PHASES.get(run.phase, "Pending") if run is not None else "Pending"
    conds = previous.conditions
    conditions = [_condition(conds, "Valid", "True", "Valid", "", generation, now)]
    if expected_run is None:
        message = "waiting for the schedule" if run is None else f"last run {run.name}: {run.phase}"
        conditions.append(_condition(conds, "Ready", "True", "Scheduled", message, generation, now))
    elif run is None and suspended:
        message = f"suspended (spec.suspend): run {expected_run} is not submitted"
        conditions.append(
            _condition(conds, "Ready", "False", "Suspended", message, generation, now)
        )
    elif run is None and waits_for_room(runs, max_concurrent_runs):
        going = len(active_runs(runs))
        message = (
            f"waiting: {going} run{'s' if going != 1 else ''} of this pipeline "
            f"{'are' if going != 1 else 'is'} running (spec.maxConcurrentRuns: "
            f"{max_concurrent_runs})"
        )
        conditions.append(
            _condition(conds, "Ready", "False", "RunWaiting", message, generation, now)
        )
    elif run is None:
        message = f"run {expected_run} submitted"
        conditions.append(
            _condition(conds, "Ready", "False", "RunPending", message, generation, now)
        )
    elif phase == "Succeeded":
        message = f"run {run.name} succeeded"
        conditions.append(
            _condition(conds, "Ready", "True", "RunSucceeded", message, generation, now)
        )
    elif phase == "Failed" and run.stopped_at is not None:
        message = f"run {run.name} stopped by {run.stopped_by or 'unknown'} at {run.stopped_at}"
        conditions.append(
            _condition(conds, "Ready", "False", "RunStopped", message, generation, now)
        )
    elif phase == "Failed":
        assert current is not None
        message = _failure_message(run, current)
        conditions.append(
            _condition(conds, "Ready", "False", "RunFailed", message, generation, now)
        )
    else:
        message = f"run {run.name} is {phase.lower()}" + _pending_reason(run)
        conditions.append(
            _condition(conds, "Ready", "False", f"Run{phase}", message, generation, now)
        )
    if promotion is not None:
        promoted = promotion.decision == "Promoted"
        detail = promotion.reason or ""
        if promoted:
            detail = (
                f"version {promotion.version} of {promotion.model} holds alias {promotion.alias}"
            )
        conditions.append(
            _condition(
                conds,
                "Promoted",
                "True" if promoted else "False",
                promotion.decision,
                detail,
                generation,
                now,
            )
        )
    return MLPipelineStatus(
        observed_generation=generation,
        phase=phase,
        message=_clip(message),
        conditions=conditions,
        last_run=last_run,
        history=history,
        promotion=promotion,
    )


FINISHED = frozenset({"Succeeded", "Failed", "Error"})


def active_runs(workflows: Sequence[Obj]) -> list[str]:
    """The runs not finished yet (nor being deleted): those `spec.maxConcurrentRuns` counts."""
    return [
        wf["metadata"]["name"]
        for wf in workflows
        if (wf.get("status") or {}).get("phase") not in FINISHED
        and not wf["metadata"].get("deletionTimestamp")
    ]


def waits_for_room(workflows: Sequence[Obj], max_concurrent_runs: int | None) -> bool:
    """Whether a new run must wait: as many runs as `spec.maxConcurrentRuns` are going on."""
    return max_concurrent_runs is not None and len(active_runs(workflows)) >= max_concurrent_runs


def with_new_run(history: Sequence[RunSummary], run: RunSummary) -> list[RunSummary]:
    """The history with a run newer than every run in it (newest first, at most MAX_HISTORY)."""
    return [run, *(h for h in history if h.name != run.name)][:MAX_HISTORY]


def invalid_status(
    *, generation: int, problems: Sequence[Problem], previous: MLPipelineStatus, now: str
) -> MLPipelineStatus:
    """Phase Invalid with every problem; earlier runs and the last promotion are kept."""
    message = _clip("; ".join(str(p) for p in problems))
    conds = previous.conditions
    conditions = [
        _condition(conds, "Valid", "False", "InvalidSpec", message, generation, now),
        _condition(conds, "Ready", "False", "InvalidSpec", "the spec is invalid", generation, now),
        *[c for c in conds if c.type == "Promoted"],
    ]
    return previous.model_copy(
        update={
            "observed_generation": generation,
            "phase": "Invalid",
            "message": message,
            "conditions": conditions,
        }
    )


def transitions(previous: MLPipelineStatus, current: MLPipelineStatus) -> list[Event]:
    """Events worth telling: a run that finished, a new promotion decision, a spec gone bad."""
    events: list[Event] = []
    run = current.last_run
    before = previous.last_run
    if run is not None and (before is None or before.name != run.name or before.phase != run.phase):
        if run.phase == "Succeeded":
            events.append(Event("Normal", "RunSucceeded", f"run {run.name} succeeded"))
        elif run.phase in ("Failed", "Error"):
            events.append(
                Event("Warning", "RunFailed", current.message or f"run {run.name} failed")
            )
    new, old = current.promotion, previous.promotion
    if new is not None and (
        old is None or (new.run, new.decision, new.version) != (old.run, old.decision, old.version)
    ):
        if new.decision == "Promoted":
            events.append(
                Event(
                    "Normal",
                    "Promoted",
                    f"{new.model} version {new.version} now holds alias {new.alias}",
                )
            )
        else:
            events.append(Event("Warning", new.decision, new.reason or new.decision))
    return events


def status_patch(status: MLPipelineStatus) -> dict[str, Any]:
    """The status as the API wants it (camelCase, unset fields left out)."""
    return status.model_dump(by_alias=True, exclude_none=True, mode="json")


def parse_status(raw: Mapping[str, Any] | None) -> MLPipelineStatus:
    """The status read back from the cluster; unreadable parts are dropped, never fatal."""
    if not raw:
        return MLPipelineStatus()
    try:
        return MLPipelineStatus.model_validate(dict(raw))
    except ValueError:
        return MLPipelineStatus()
