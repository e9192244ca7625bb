"""Reconciliation of one MLPipeline: validate, compile, own the child, write the status.

Called by the kopf handlers in handlers.py, which only translate its exceptions; nothing here
imports kopf. Every step is idempotent: the run's name is deterministic from the pipeline and
generation, an existing child is adopted, and the status is recomputed whole from the cluster.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlpipeline_operator.api.constants import ANNOTATION_RERUN, API_VERSION, KIND, LABEL_PIPELINE
from mlpipeline_operator.api.models import History
from mlpipeline_operator.api.status import MLPipelineStatus
from mlpipeline_operator.compiler.workflow import CompileOptions, compile_pipeline, run_name
from mlpipeline_operator.reconcile.housekeeping import runs_to_delete
from mlpipeline_operator.reconcile.kube import Conflict, Kube, Retryable
from mlpipeline_operator.reconcile.status import (
    Event,
    build_status,
    invalid_status,
    parse_status,
    status_patch,
    transitions,
)
from mlpipeline_operator.validation import InvalidPipeline, Problem, validate_document

Obj = dict[str, Any]
Emit = Callable[[Mapping[str, Any], Event], Awaitable[None]]
LOGGER = logging.getLogger("mlpipeline_operator")
# Rereads after a status conflict before giving up to a later retry.
STATUS_ATTEMPTS = 4


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def owner_reference(owner: Mapping[str, Any]) -> Obj:
    meta = owner["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def expected_run(pipeline: Mapping[str, Any]) -> str | None:
    """The name of the current generation's run; None for a scheduled pipeline."""
    if (pipeline.get("spec") or {}).get("schedule"):
        return None
    meta = pipeline["metadata"]
    rerun = (meta.get("annotations") or {}).get(ANNOTATION_RERUN)
    return run_name(meta["namespace"], meta["name"], int(meta.get("generation") or 1), rerun)


def _history(pipeline: Mapping[str, Any]) -> History:
    raw = (pipeline.get("spec") or {}).get("history") or {}
    try:
        return History.model_validate(raw)
    except ValueError:
        return History()


@dataclass
class Reconciler:
    """Everything one reconciliation needs: the API and the compile options."""

    kube: Kube
    options: CompileOptions
    clock: Callable[[], str] = utc_now
    logger: logging.Logger = LOGGER

    async def reconcile(self, pipeline: Mapping[str, Any], emit: Emit) -> None:
        """Bring the child of the current generation into being, then refresh the status.

        Raises InvalidPipeline (after writing an Invalid status) when the spec is wrong: the
        caller must not retry until the spec changes.
        """
        meta = pipeline["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        doc, problems = validate_document(dict(pipeline))
        manifest = None
        if doc is not None:
            rerun = (meta.get("annotations") or {}).get(ANNOTATION_RERUN)
            options = CompileOptions(promotion_image=self.options.promotion_image, rerun=rerun)
            try:
                manifest = compile_pipeline(doc, options)
            except InvalidPipeline as error:
                problems = error.problems
        if manifest is None:
            await self.refresh(pipeline, emit, problems=problems)
            raise InvalidPipeline(problems)
        manifest["metadata"]["namespace"] = namespace
        manifest["metadata"]["ownerReferences"] = [owner_reference(pipeline)]
        if manifest["kind"] == "CronWorkflow":
            try:
                await self._apply_schedule(manifest, emit, pipeline)
            except InvalidPipeline as error:
                await self.refresh(pipeline, emit, problems=error.problems)
                raise
        else:
            if _was_scheduled(pipeline):
                await self._drop_schedule(namespace, name, meta["uid"])
            await self._submit(manifest, pipeline, emit)
        await self.refresh(pipeline, emit)

    async def _submit(self, manifest: Obj, pipeline: Mapping[str, Any], emit: Emit) -> None:
        run = manifest["metadata"]["name"]
        known = parse_status(pipeline.get("status"))
        if (known.last_run and known.last_run.name == run) or any(
            h.name == run for h in known.history
        ):
            return  # already submitted and seen: nothing to write
        created = await self.kube.create_child(manifest)
        if created is None:
            self.logger.info("%s: run %s already exists: adopted", _ref(pipeline), run)
            return
        self.logger.info("%s: submitted run %s", _ref(pipeline), run)
        await emit(pipeline, Event("Normal", "Submitted", f"submitted run {run}"))

    async def _apply_schedule(self, manifest: Obj, emit: Emit, pipeline: Mapping[str, Any]) -> None:
        meta = manifest["metadata"]
        created = await self.kube.create_child(manifest)
        if created is not None:
            self.logger.info("%s: created CronWorkflow %s", _ref(pipeline), meta["name"])
            await emit(
                pipeline, Event("Normal", "Scheduled", f"created CronWorkflow {meta['name']}")
            )
            return
        existing = await self.kube.get_child("CronWorkflow", meta["namespace"], meta["name"])
        if existing is None:
            raise Retryable(f"CronWorkflow {meta['name']} vanished while being updated", delay=1)
        owners = existing["metadata"].get("ownerReferences") or []
        if not any(o.get("uid") == pipeline["metadata"]["uid"] for o in owners):
            raise InvalidPipeline(
                [
                    Problem(
                        "spec.schedule",
                        f'a CronWorkflow "{meta["name"]}" that this pipeline does not own is '
                        "in the way; delete or rename it",
                    )
                ]
            )
        if existing.get("spec") == manifest["spec"] and all(
            existing["metadata"].get(k) == manifest["metadata"].get(k) for k in ("labels",)
        ):
            return
        manifest["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
        try:
            await self.kube.replace_child(manifest)
        except Conflict:
            raise Retryable(f"CronWorkflow {meta['name']} changed while being updated", 1) from None
        self.logger.info("%s: updated CronWorkflow %s in place", _ref(pipeline), meta["name"])
        await emit(pipeline, Event("Normal", "Updated", f"updated CronWorkflow {meta['name']}"))

    async def _drop_schedule(self, namespace: str, name: str, uid: str) -> None:
        """Delete the CronWorkflow left from an earlier generation that had a schedule."""
        existing = await self.kube.get_child("CronWorkflow", namespace, name)
        if existing is None:
            return
        owners = existing["metadata"].get("ownerReferences") or []
        if any(o.get("uid") == uid for o in owners):
            await self.kube.delete_child("CronWorkflow", namespace, name)
            self.logger.info("%s/%s: schedule removed: deleted CronWorkflow", namespace, name)

    async def refresh(
        self, pipeline: Mapping[str, Any], emit: Emit, problems: list[Problem] | None = None
    ) -> None:
        """Recompute the status from the pipeline's runs and write it if it changed."""
        current: Mapping[str, Any] | None = pipeline
        for _ in range(STATUS_ATTEMPTS):
            assert current is not None
            try:
                await self._write_status(current, emit, problems)
                return
            except Conflict:
                meta = current["metadata"]
                current = await self.kube.get_pipeline(meta["namespace"], meta["name"])
                if current is None:
                    return  # deleted meanwhile
        raise Retryable("the MLPipeline kept changing while its status was written", delay=1)

    async def _write_status(
        self, pipeline: Mapping[str, Any], emit: Emit, problems: list[Problem] | None
    ) -> None:
        meta = pipeline["metadata"]
        generation = int(meta.get("generation") or 1)
        previous = parse_status(pipeline.get("status"))
        runs = await self.kube.list_runs(meta["namespace"], meta["name"])
        now = self.clock()
        status = build_status(
            generation=generation,
            expected_run=expected_run(pipeline),
            workflows=runs,
            previous=previous,
            now=now,
            model=((pipeline.get("spec") or {}).get("promotion") or {}).get("model"),
        )
        if problems is not None:
            fresh_runs = status.model_copy(update={"conditions": previous.conditions})
            status = invalid_status(
                generation=generation, problems=problems, previous=fresh_runs, now=now
            )
        elif previous.phase == "Invalid" and previous.observed_generation == generation:
            # A run of an earlier generation reported: record it, the spec stays Invalid.
            status = status.model_copy(
                update={k: getattr(previous, k) for k in ("phase", "message", "conditions")}
            )
        if status != previous:
            body = copy.deepcopy(dict(pipeline))
            body["status"] = status_patch(status)
            await self.kube.replace_pipeline_status(body)
            for event in _events(previous, status, problems is not None):
                await emit(pipeline, event)
        keep = {name for name in (expected_run(pipeline),) if name}
        for name in runs_to_delete(runs, _history(pipeline), keep):
            await self.kube.delete_child("Workflow", meta["namespace"], name)
            self.logger.info("%s: deleted run %s (history limit)", _ref(pipeline), name)

    async def refresh_for_run(
        self, run: Mapping[str, Any], emit: Emit, event_type: str | None = None
    ) -> None:
        """A run changed: refresh the status of the pipeline it belongs to.

        A run just added and not yet started tells nothing new: the status written right after
        submitting it already lists it (and a resume recomputes everything after a restart).
        """
        if event_type == "ADDED" and not run.get("status"):
            return
        meta = run["metadata"]
        owner = next((o for o in meta.get("ownerReferences") or [] if o.get("kind") == KIND), None)
        labels = meta.get("labels") or {}
        name = owner["name"] if owner else labels.get(LABEL_PIPELINE)
        if not name:
            return
        pipeline = await self.kube.get_pipeline(meta["namespace"], name)
        if pipeline is None:
            return  # the pipeline is gone; garbage collection takes its runs
        await self.refresh(pipeline, emit)


def _was_scheduled(pipeline: Mapping[str, Any]) -> bool:
    """Whether the status says a CronWorkflow was in place (so that it may need deleting)."""
    status = parse_status(pipeline.get("status"))
    return any(c.type == "Ready" and c.reason == "Scheduled" for c in status.conditions)


def _ref(pipeline: Mapping[str, Any]) -> str:
    return f"{pipeline['metadata']['namespace']}/{pipeline['metadata']['name']}"


def _events(previous: MLPipelineStatus, status: MLPipelineStatus, invalid: bool) -> list[Event]:
    events = transitions(previous, status)
    if invalid and previous.message != status.message:
        events.insert(0, Event("Warning", "Invalid", status.message or "invalid spec"))
    return events
