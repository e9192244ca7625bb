"""Reconciliation of one MLPipeline: validate, compile, own the child, write the status.

Called by the kopf handlers in handlers.py, which only translate its exceptions; nothing here
imports kopf. Every step is idempotent: the run's name is deterministic from the pipeline and
generation, an existing child is adopted, and the status is recomputed whole from the cluster.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NoReturn

from mlpipeline_operator.api.constants import (
    ANNOTATION_RERUN,
    ANNOTATION_RUN_AT,
    ANNOTATION_STOP,
    API_VERSION,
    DEFAULT_ARGO_NAMESPACE,
    KIND,
    LABEL_PIPELINE,
    STOP_CURRENT,
)
from mlpipeline_operator.api.models import History, MLPipeline
from mlpipeline_operator.api.status import MLPipelineStatus
from mlpipeline_operator.caching import (
    cache_config_map,
    cache_config_map_name,
    cache_owner,
    cache_size,
    cache_trim_patch,
    memoize_keys,
    stale_cache_keys,
    uses_cache,
)
from mlpipeline_operator.compiler.workflow import CompileOptions, compile_run
from mlpipeline_operator.core import (
    CompiledRun,
    InvalidPipeline,
    Problem,
    parse_rfc3339,
    run_at_name,
    run_name,
)
from mlpipeline_operator.policy import SINGLE_TENANT, Tenancy
from mlpipeline_operator.reconcile.housekeeping import may_exceed, runs_to_delete
from mlpipeline_operator.reconcile.kube import ClientClosed, Conflict, KubeApi, Refused, Retryable
from mlpipeline_operator.reconcile.status import (
    FINISHED,
    Event,
    active_runs,
    build_status,
    invalid_status,
    newest_first,
    newest_run,
    parse_status,
    recorded_run,
    recorded_runs,
    run_summary,
    slim_run,
    status_patch,
    still_as_recorded,
    transitions,
    waits_for_room,
    with_new_run,
)
from mlpipeline_operator.reconcile.stop import (
    labelled_for,
    owned_by,
    owner_of,
    stop_patch,
    stop_requester,
)
from mlpipeline_operator.validation import validate_document

Obj = dict[str, Any]
# How often the caches of pipelines deleted while no operator ran are looked for (at start,
# then this often), and how soon again after the API server could not answer.
CACHE_SWEEP_INTERVAL = 3600.0
CACHE_SWEEP_RETRY_INTERVAL = 60.0
Emit = Callable[[Mapping[str, Any], Event], Awaitable[None]]
LOGGER = logging.getLogger("mlpipeline_operator")
# Rereads after a status conflict before giving up to a later retry.
STATUS_ATTEMPTS = 4
# The longest wait between attempts of a queued pass (a status refresh after a run's event, a
# resume), while the API server cannot answer (the wait doubles from the error's own delay).
RUN_REFRESH_MAX_DELAY = 20.0
# Seconds before a queued pass is tried again after a refusal (403, 404, 422): rights or CRDs
# missing, a fix outside the operator.
REFUSED_RETRY_DELAY = 60.0


class RefusedByPolicy(InvalidPipeline):
    """A valid pipeline that names what the tenancy policy does not allow in its namespace."""


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Target:
    """The MLPipeline one pass works on, as read from the API (its status is written against
    that resourceVersion), with what the pass needs of it read once.

    Its spec may be invalid: only what a status needs is read, leniently.
    """

    body: Mapping[str, Any]
    namespace: str
    name: str
    uid: str
    generation: int
    rerun: str | None
    scheduled: bool
    model: str | None  # spec.promotion.model, for the status
    history: History
    suspended: bool = False  # spec.suspend (a scheduled pipeline has schedule.suspend instead)
    run_at: str | None = None  # the run-at annotation: the scheduled time of one more run
    max_concurrent_runs: int | None = None  # spec.maxConcurrentRuns

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> Target:
        meta = body["metadata"]
        spec = body.get("spec") or {}
        try:
            history = History.model_validate(spec.get("history") or {})
        except ValueError:
            history = History()
        return cls(
            body=body,
            namespace=meta["namespace"],
            name=meta["name"],
            uid=meta.get("uid", ""),
            generation=int(meta.get("generation") or 1),
            rerun=(meta.get("annotations") or {}).get(ANNOTATION_RERUN),
            scheduled=bool(spec.get("schedule")),
            model=(spec.get("promotion") or {}).get("model"),
            history=history,
            suspended=spec.get("suspend") is True,
            run_at=(meta.get("annotations") or {}).get(ANNOTATION_RUN_AT),
            max_concurrent_runs=_positive(spec.get("maxConcurrentRuns")),
        )

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    @functools.cached_property
    def status(self) -> MLPipelineStatus:
        """The status as read, parsed once per pass."""
        return parse_status(self.body.get("status"))

    @property
    def expected_run(self) -> str | None:
        """The name of the current generation's run (the name the compiler gives it); None
        for a scheduled pipeline, whose CronWorkflow names its runs."""
        if self.scheduled:
            return None
        return run_name(self.namespace, self.name, self.generation, self.rerun)

    @property
    def run_at_run(self) -> str | None:
        """The name of the run that the run-at annotation asks for (the name the compiler gives
        it); None without the annotation, or with a time that is not valid."""
        at = parse_rfc3339(self.run_at) if self.run_at is not None else None
        return None if at is None else run_at_name(self.namespace, self.name, at)

    def owner_reference(self) -> Obj:
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


@dataclass
class Reconciler:
    """Everything one reconciliation needs: the API and the compile options."""

    kube: KubeApi
    options: CompileOptions
    # Where Argo's controller keeps memoization caches: its own namespace.
    cache_namespace: str = DEFAULT_ARGO_NAMESPACE
    clock: Callable[[], str] = utc_now
    logger: logging.Logger = LOGGER
    # Status computations at once: each holds the last run of its pipeline whole (a start
    # recomputes every pipeline's status at the same time).
    refreshes: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(8))
    # Compilations and submissions at once: each holds its compiled run (about 700 KB parsed
    # for 100 steps) while it waits for the API server (a start resumes every pipeline).
    applies: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(8))
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    # Passes queued by run events (a refresh) and by a start (a whole reconcile, the pipelines
    # in `to_reconcile`): the pipelines waiting for one, those under way, the tasks, and how
    # many run at once (each reads its pipeline before taking a `refreshes` or `applies`).
    queued: set[tuple[str, str]] = field(default_factory=set)
    to_reconcile: set[tuple[str, str]] = field(default_factory=set)
    refreshing: set[tuple[str, str]] = field(default_factory=set)
    background: set[asyncio.Task[None]] = field(default_factory=set)
    run_refreshes: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(16))
    # The tenancy policy in force (reconcile/tenancy.py replaces it when it changes).
    tenancy: Tenancy = SINGLE_TENANT
    # Wraps each queued reconcile: the handlers count the others themselves (the metrics).
    counted: Callable[[], AbstractContextManager[object]] = nullcontext

    async def reconcile(self, pipeline: Mapping[str, Any], emit: Emit) -> None:
        """Bring the child of the current generation into being, then refresh the status.

        Raises InvalidPipeline (after writing an Invalid status) when the spec is wrong: the
        caller must not retry until the spec changes.
        """
        target = Target.of(pipeline)
        try:
            async with self.applies:
                submitted = await self._apply(target, emit)
        except InvalidPipeline as error:
            if isinstance(error, RefusedByPolicy) and _was_scheduled(target):
                await self._drop_schedule(target)  # what the policy forbids runs no more
            await self.refresh(target, emit, problems=error.problems)
            raise
        await self.refresh(target, emit, submitted=submitted, validated=True)

    async def _apply(self, target: Target, emit: Emit) -> Obj | None:
        """Compile the pipeline, then create or update its children; return the run this call
        created when the status needs no list of the runs (see `refresh`), as its metadata
        and status only.

        The compiled objects (several hundred KB for 100 steps) go when this returns: at a
        start, every pipeline's pass waits for its turn to refresh its status.
        """
        compiled = self._compile(target)
        _own(target, compiled)
        if compiled.scheduled:
            await self._apply_schedule(target, compiled, emit)
            await self._submit_run_at(target, compiled.pipeline, emit)
            return None
        if _was_scheduled(target):
            await self._drop_schedule(target)
        if target.suspended:  # nothing is submitted until spec.suspend is false again
            return None
        submitted = await self._submit(target, compiled, emit)
        if await self._submit_run_at(target, compiled.pipeline, emit) is not None:
            return None  # two new runs: a list of the runs gives both
        if submitted is None or may_exceed(target.status.history, target.history):
            return None  # a list of the runs tells which ones to delete
        return {"metadata": submitted["metadata"], "status": submitted.get("status") or {}}

    def _compile(self, target: Target) -> CompiledRun:
        pipeline, problems = validate_document(dict(target.body))
        if pipeline is None:
            raise InvalidPipeline(problems)
        refused = self.tenancy.problems(pipeline, target.namespace)
        if refused:
            raise RefusedByPolicy(refused)
        options = CompileOptions(promotion_image=self.options.promotion_image, rerun=target.rerun)
        return compile_run(pipeline, options)

    async def _submit_run_at(self, target: Target, pipeline: MLPipeline, emit: Emit) -> Obj | None:
        """Create the run that the run-at annotation asks for, once per time (its name comes
        from the time); return it when this call created it."""
        if target.run_at is None:
            return None
        options = CompileOptions(
            promotion_image=self.options.promotion_image, scheduled_time=target.run_at
        )
        compiled = compile_run(pipeline, options)
        _own(target, compiled)
        return await self._submit(target, compiled, emit)

    async def _submit(self, target: Target, compiled: CompiledRun, emit: Emit) -> Obj | None:
        """Create the generation's run; return it when this call created it."""
        run = compiled.name
        if _recorded(target, run):
            return None  # already submitted and seen: nothing to write
        if target.max_concurrent_runs is not None:
            listed = await self._runs(target)
            if any(r["metadata"]["name"] == run for r in listed):
                return None  # submitted already: the status is refreshed next
            runs, _ = await self._read_runs(target, listed)
            if waits_for_room(runs, target.max_concurrent_runs):
                # Submitted by the refresh after a run's end (`refresh_pipeline`).
                self.logger.info(
                    "%s: run %s waits: %d runs are going on (spec.maxConcurrentRuns: %d)",
                    target.ref,
                    run,
                    len(active_runs(runs)),
                    target.max_concurrent_runs,
                )
                return None
        await self._ensure_cache(target, compiled)
        created = await self.kube.create_child(compiled.manifest)
        if created is None:
            existing = await self.kube.get_child("Workflow", target.namespace, run)
            if existing is not None and not owned_by(existing, target.uid):
                _not_adopted(existing, target)
            self.logger.info("%s: run %s already exists: adopted", target.ref, run)
            return None
        self.logger.info("%s: submitted run %s", target.ref, run)
        await emit(target.body, Event("Normal", "Submitted", f"submitted run {run}"))
        return created

    async def _apply_schedule(self, target: Target, compiled: CompiledRun, emit: Emit) -> None:
        """Create the CronWorkflow or bring it in line. Its cache is read and trimmed only when
        it is created or replaced: only then may its runs use keys new to the cache (each pass,
        every start included, would otherwise read a cache of up to 1 MiB)."""
        manifest, name = compiled.manifest, compiled.name
        await self._ensure_cache(target, compiled, trim=False)
        created = await self.kube.create_child(manifest)
        if created is not None:
            self.logger.info("%s: created CronWorkflow %s", target.ref, name)
            await emit(target.body, Event("Normal", "Scheduled", f"created CronWorkflow {name}"))
            await self._ensure_cache(target, compiled)
            return
        existing = await self.kube.get_child("CronWorkflow", target.namespace, name)
        if existing is None:
            raise Retryable(f"CronWorkflow {name} vanished while being updated", delay=1)
        owners = existing["metadata"].get("ownerReferences") or []
        if not any(o.get("uid") == target.uid for o in owners):
            raise InvalidPipeline(
                [
                    Problem(
                        "spec.schedule",
                        f'a CronWorkflow "{name}" that this pipeline does not own is '
                        "in the way; delete or rename it",
                    )
                ]
            )
        if existing.get("spec") == manifest["spec"] and existing["metadata"].get(
            "labels"
        ) == manifest["metadata"].get("labels"):
            return
        manifest["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
        try:
            await self.kube.replace_child(manifest)
        except Conflict:
            raise Retryable(f"CronWorkflow {name} changed while being updated", 1) from None
        self.logger.info("%s: updated CronWorkflow %s in place", target.ref, name)
        await emit(target.body, Event("Normal", "Updated", f"updated CronWorkflow {name}"))
        await self._ensure_cache(target, compiled)

    async def _ensure_cache(self, target: Target, compiled: CompiledRun, trim: bool = True) -> None:
        """The cache ConfigMap of a pipeline with cached steps, before a run uses it (made by
        the operator, so that Argo's controller needs no right to create ConfigMaps); with
        `trim`, read, with room made for the run's entries: Argo never removes one, and ends
        in Error a step whose entry does not fit."""
        if not uses_cache(compiled.pipeline.spec):
            return
        name = cache_config_map_name(target.namespace, target.name)
        existing = await self.kube.get_config_map(self.cache_namespace, name) if trim else None
        if existing is not None:
            await self._trim_cache(target, existing, memoize_keys(compiled.manifest))
            return
        manifest = cache_config_map(target.namespace, target.name, self.cache_namespace)
        if await self.kube.create_config_map(manifest):
            self.logger.info(
                "%s: created cache ConfigMap %s/%s", target.ref, self.cache_namespace, name
            )

    async def _trim_cache(self, target: Target, cache: Obj, current: set[str]) -> None:
        """Remove the entries that the run does not use from a cache above
        CACHE_TRIM_THRESHOLD. A conflict (Argo saved an entry since the read) leaves them to
        the next run: the submission does not wait for the cache."""
        data = cache.get("data") or {}
        stale = stale_cache_keys(data, current)
        if not stale:
            return
        meta = cache["metadata"]
        where = f"{self.cache_namespace}/{meta['name']}"
        try:
            await self.kube.patch_config_map(
                self.cache_namespace,
                meta["name"],
                cache_trim_patch(meta["resourceVersion"], stale),
            )
        except Conflict:
            self.logger.info(
                "%s: cache ConfigMap %s changed while being trimmed: left as it is",
                target.ref,
                where,
            )
            return
        kept = {key: value for key, value in data.items() if key not in stale}
        self.logger.info(
            "%s: trimmed cache ConfigMap %s: %d stale entries removed, %d bytes -> %d bytes",
            target.ref,
            where,
            len(stale),
            cache_size(data),
            cache_size(kept),
        )

    async def forget(self, pipeline: Mapping[str, Any]) -> None:
        """The pipeline was deleted: delete its cache ConfigMap, which lives in Argo's
        namespace, out of reach of an owner reference (its runs go by garbage collection)."""
        meta = pipeline["metadata"]
        name = cache_config_map_name(meta["namespace"], meta["name"])
        await self.kube.delete_config_map(self.cache_namespace, name)

    async def sweep_caches(self, watched: Callable[[str], bool]) -> list[str]:
        """Delete the cache ConfigMaps of pipelines that are gone (deleted while no operator
        saw it); returns their names. Caches of pipelines in namespaces this operator does not
        watch are another operator's: left alone."""
        deleted = []
        caches = await self.kube.list_cache_metadata(self.cache_namespace)
        for metadata in caches:
            owner = cache_owner(metadata)
            if owner is None or not watched(owner[0]):
                continue
            if await self.kube.get_pipeline(*owner) is None:
                await self.kube.delete_config_map(self.cache_namespace, metadata["name"])
                self.logger.info(
                    "deleted cache ConfigMap %s/%s of %s/%s, which no longer exists",
                    self.cache_namespace,
                    metadata["name"],
                    *owner,
                )
                deleted.append(metadata["name"])
        self.logger.info(
            "swept the caches in %s: %d of %d deleted",
            self.cache_namespace,
            len(deleted),
            len(caches),
        )
        return deleted

    async def _drop_schedule(self, target: Target) -> None:
        """Delete the CronWorkflow left from an earlier generation that had a schedule."""
        existing = await self.kube.get_child("CronWorkflow", target.namespace, target.name)
        if existing is None:
            return
        owners = existing["metadata"].get("ownerReferences") or []
        if any(o.get("uid") == target.uid for o in owners):
            await self.kube.delete_child("CronWorkflow", target.namespace, target.name)
            self.logger.info("%s: schedule removed: deleted CronWorkflow", target.ref)

    async def refresh(
        self,
        target: Target,
        emit: Emit,
        problems: list[Problem] | None = None,
        submitted: Obj | None = None,
        validated: bool = False,
    ) -> None:
        """Recompute the status from the pipeline's runs and write it if it changed; then
        delete the finished runs beyond the history limits.

        `validated`: the spec has just been found valid, so an Invalid status of the same
        generation (a Workflow that was in the way of its run) is over.

        `submitted`: the run this pass has just created, when the runs the status records leave
        nothing to delete. The status then needs no list of the runs: it is the status read
        with the pipeline plus that run, which is newer than every run listed there (the run's
        next change lists them all again).
        """
        for _ in range(STATUS_ATTEMPTS):
            try:
                async with self.refreshes:
                    runs = await self._write_status(target, emit, problems, submitted, validated)
                break
            except Conflict:
                body = await self.kube.get_pipeline(target.namespace, target.name)
                if body is None:
                    return  # deleted meanwhile
                target = Target.of(body)
                submitted = None  # the pipeline changed: its status is no base to add to
        else:
            raise Retryable("the MLPipeline kept changing while its status was written", delay=1)
        await self._prune(target, runs)

    async def _write_status(
        self,
        target: Target,
        emit: Emit,
        problems: list[Problem] | None,
        submitted: Obj | None = None,
        validated: bool = False,
    ) -> list[Obj]:
        """Write the status computed from the runs listed now (or from the previous status and
        the run just submitted); return the runs it was computed from."""
        previous = target.status
        recorded: frozenset[str] = frozenset()
        if submitted is None:
            runs, recorded = await self._read_runs(target, await self._runs(target))
        else:
            runs = [submitted]
        now = self.clock()
        status = build_status(
            generation=target.generation,
            expected_run=target.expected_run,
            workflows=runs,
            previous=previous,
            now=now,
            model=target.model,
            suspended=target.suspended,
            recorded=recorded,
            max_concurrent_runs=target.max_concurrent_runs,
        )
        if submitted is not None:
            status = status.model_copy(
                update={"history": with_new_run(previous.history, run_summary(submitted))}
            )
        if problems is not None:
            fresh_runs = status.model_copy(update={"conditions": previous.conditions})
            status = invalid_status(
                generation=target.generation, problems=problems, previous=fresh_runs, now=now
            )
        elif (
            previous.phase == "Invalid"
            and previous.observed_generation == target.generation
            and not validated
        ):
            # A run of an earlier generation reported: record it, the spec stays Invalid.
            status = status.model_copy(
                update={k: getattr(previous, k) for k in ("phase", "message", "conditions")}
            )
        if status != previous:
            await self.kube.replace_pipeline_status(_with_status(target, status_patch(status)))
            for event in _events(previous, status, problems is not None):
                await emit(target.body, event)
        return runs

    async def _read_runs(
        self, target: Target, listed: list[Obj]
    ) -> tuple[list[Obj], frozenset[str]]:
        """The runs as the status needs them, from their metadata: the last run whole; a
        finished run that the status read records, as recorded (and named in the set
        returned); any other run read whole, one at a time, and kept slim (`slim_run`). A run
        deleted meanwhile is left out."""
        ordered = newest_first(listed)
        names = [run["metadata"]["name"] for run in ordered]
        last = target.expected_run if target.expected_run in names else next(iter(names), None)
        known = recorded_runs(target.status)
        runs: list[Obj] = []
        recorded: set[str] = set()
        for run, name in zip(ordered, names, strict=True):
            summary = known.get(name)
            if name != last and summary is not None and still_as_recorded(run["metadata"], summary):
                runs.append(recorded_run(run["metadata"], summary))
                recorded.add(name)
                continue
            whole = await self.kube.get_child("Workflow", target.namespace, name)
            if whole is not None:
                runs.append(whole if name == last else slim_run(whole))
        return runs, frozenset(recorded)

    async def _prune(self, target: Target, runs: list[Obj]) -> None:
        """Delete the oldest finished runs beyond `spec.history`, never the current one."""
        keep = {name for name in (target.expected_run, target.run_at_run) if name}
        for name in runs_to_delete(runs, target.history, keep):
            await self.kube.delete_child("Workflow", target.namespace, name)
            self.logger.info("%s: deleted run %s (history limit)", target.ref, name)

    async def stop(self, pipeline: Mapping[str, Any], emit: Emit) -> None:
        """Stop the run that the pipeline's stop annotation names (`current`: the current
        generation's run, or the newest run of a scheduled pipeline), if it is one of the
        pipeline's runs and still going. Every outcome is told in an Event; none is retried
        but a failure to reach the API server."""
        target = Target.of(pipeline)
        meta = target.body["metadata"]
        requested = ((meta.get("annotations") or {}).get(ANNOTATION_STOP) or "").strip()
        if not requested:
            return  # the annotation was removed: nothing to stop
        name = await self._current_run(target) if requested == STOP_CURRENT else requested
        if name is None:
            await emit(
                target.body,
                Event("Warning", "StopRejected", f"{ANNOTATION_STOP}: no current run to stop"),
            )
            return
        run = await self.kube.get_child("Workflow", target.namespace, name)
        if run is None or not await self._owns(target, run):
            reason = f'no run "{name}"' if run is None else f'run "{name}" is not one of its runs'
            await emit(
                target.body,
                Event("Warning", "StopRejected", f"{ANNOTATION_STOP}: {reason}"),
            )
            return
        phase = (run.get("status") or {}).get("phase")
        if phase in FINISHED:
            await emit(
                target.body,
                Event("Normal", "NothingToStop", f"run {name} already finished ({phase})"),
            )
            return
        if (run.get("spec") or {}).get("shutdown"):
            self.logger.info("%s: run %s is already being stopped", target.ref, name)
            return
        by = stop_requester(meta)
        try:
            patch = stop_patch(run, by=by, at=self.clock())
            await self.kube.patch_child("Workflow", target.namespace, name, patch)
        except Conflict:
            raise Retryable(f"run {name} changed while being stopped", delay=1) from None
        self.logger.info("%s: stopped run %s (asked by %s)", target.ref, name, by)
        await emit(target.body, Event("Normal", "Stopped", f"stopping run {name} (asked by {by})"))

    async def _current_run(self, target: Target) -> str | None:
        """The run `current` names: the current generation's, or a schedule's newest."""
        if target.expected_run is not None:
            return target.expected_run
        newest = newest_run(await self._runs(target))
        return None if newest is None else str(newest["metadata"]["name"])

    async def _runs(self, target: Target) -> list[Obj]:
        """The pipeline's runs. Another Workflow with its label is neither shown nor deleted."""
        labelled = await self.kube.list_runs(target.namespace, target.name)
        scheduled = any(_by_schedule(run, target) for run in labelled)
        schedule = await self._schedule_uid(target) if scheduled else None
        return [run for run in labelled if _run_of(run, target, schedule)]

    async def _owns(self, target: Target, run: Mapping[str, Any]) -> bool:
        """Whether the run is the pipeline's (reading its CronWorkflow's uid if need be)."""
        schedule = await self._schedule_uid(target) if _by_schedule(run, target) else None
        return _run_of(run, target, schedule)

    async def _schedule_uid(self, target: Target) -> str | None:
        """The uid of the pipeline's own CronWorkflow, if it has one."""
        schedule = await self.kube.get_child("CronWorkflow", target.namespace, target.name)
        if schedule is None or not owned_by(schedule, target.uid):
            return None
        return str(schedule["metadata"].get("uid"))

    def pipeline_of_run(
        self, run: Mapping[str, Any], event_type: str | None = None
    ) -> tuple[str, str] | None:
        """The pipeline (namespace, name) whose status a run's event may change; None when the
        event tells nothing new: a run just added and not yet started (the status written
        right after submitting it already lists it). A finished run is seen once, as it leaves
        the operator's watch (handlers.py `RUN_SELECTOR`)."""
        if event_type == "ADDED" and not run.get("status"):
            return None
        meta = run["metadata"]
        owner = next((o for o in meta.get("ownerReferences") or [] if o.get("kind") == KIND), None)
        labels = meta.get("labels") or {}
        name = owner["name"] if owner else labels.get(LABEL_PIPELINE)
        if not name:
            return None
        return (meta["namespace"], str(name))

    async def refresh_for_run(
        self, run: Mapping[str, Any], emit: Emit, event_type: str | None = None
    ) -> None:
        """A run changed: refresh the status of the pipeline it belongs to, unless the event
        tells nothing new (`pipeline_of_run`)."""
        pipeline = self.pipeline_of_run(run, event_type)
        if pipeline is not None:
            await self.refresh_pipeline(*pipeline, emit)

    def queue_refresh_for_run(
        self, run: Mapping[str, Any], emit: Emit, event_type: str | None = None
    ) -> None:
        """As `refresh_for_run`, in the background: the caller does not hold the run (80 KB
        for 100 steps, much more once parsed) while refreshes wait for their turn."""
        pipeline = self.pipeline_of_run(run, event_type)
        if pipeline is not None:
            self._queue(pipeline, emit)

    def queue_reconcile(self, namespace: str, name: str, emit: Emit) -> None:
        """Reconcile a pipeline in the background, reading it when its turn comes: a start
        resumes every pipeline at once, and the caller (kopf) would otherwise hold each one's
        body (a spec of 100 steps is about 220 KB parsed) until its pass is done."""
        self.to_reconcile.add((namespace, name))
        self._queue((namespace, name), emit)

    def _queue(self, pipeline: tuple[str, str], emit: Emit) -> None:
        """One pass per pipeline at a time: a request arriving meanwhile makes it run once
        more, after (a whole reconcile when one was asked for, else a refresh)."""
        if pipeline in self.queued:
            return
        self.queued.add(pipeline)
        if pipeline in self.refreshing:
            return  # its pass runs again once done
        self._background(self._queued_pass(pipeline, emit))

    def _background(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _queued_pass(self, pipeline: tuple[str, str], emit: Emit) -> None:
        async with self.run_refreshes:
            self.refreshing.add(pipeline)
            try:
                while pipeline in self.queued:
                    self.queued.discard(pipeline)  # a change from now on: once more
                    await self._pass_logged(pipeline, emit)
            finally:
                self.refreshing.discard(pipeline)

    async def _pass_logged(self, pipeline: tuple[str, str], emit: Emit) -> None:
        whole = pipeline in self.to_reconcile
        self.to_reconcile.discard(pipeline)
        what = "not reconciled" if whole else "status not refreshed"
        try:
            if whole:
                await self.reconcile_pipeline(*pipeline, emit)
            else:
                await self.refresh_pipeline(*pipeline, emit)
        except Refused as error:
            if whole:  # a resume has no next event to wait for
                self.logger.warning(
                    "%s/%s: %s, trying again in %g s: %s",
                    *pipeline,
                    what,
                    REFUSED_RETRY_DELAY,
                    error,
                )
                self._background(self._reconcile_later(pipeline, emit))
            else:
                self.logger.warning(
                    "%s/%s: %s, will be on the next event: %s", *pipeline, what, error
                )
        except ClientClosed as error:
            self.logger.warning("%s/%s: %s, will be on the next start: %s", *pipeline, what, error)

    async def _reconcile_later(self, pipeline: tuple[str, str], emit: Emit) -> None:
        await self.sleep(REFUSED_RETRY_DELAY)
        self.queue_reconcile(*pipeline, emit)

    def cancel_queued(self) -> None:
        """Cancel the queued passes (the operator is stopping: its next start resumes every
        pipeline)."""
        for task in list(self.background):
            task.cancel()

    async def reconcile_pipeline(self, namespace: str, name: str, emit: Emit) -> None:
        """Reconcile a pipeline read now (a queued resume). An invalid spec ends it: the status
        says why, and a spec change reconciles it again."""

        async def reconcile(pipeline: Obj) -> None:
            with self.counted():
                await self.reconcile(pipeline, emit)

        await self._retried(namespace, name, reconcile, "not reconciled")

    async def refresh_pipeline(self, namespace: str, name: str, emit: Emit) -> None:
        """Refresh the status of a pipeline after one of its runs changed; with
        `spec.maxConcurrentRuns` and a run not submitted yet, reconcile it then: a run that
        ended makes room for it."""

        async def refresh(pipeline: Obj) -> None:
            await self.refresh(Target.of(pipeline), emit)
            if Target.of(pipeline).max_concurrent_runs is not None:
                # A run that ended may make room for one waiting to be submitted.
                again = await self.kube.get_pipeline(namespace, name)
                if again is not None and _waiting(Target.of(again)):
                    await self.reconcile(again, emit)

        await self._retried(namespace, name, refresh, "status not refreshed")

    async def _retried(
        self, namespace: str, name: str, act: Callable[[Obj], Awaitable[None]], what: str
    ) -> None:
        """Read the pipeline and act on it; while the API server cannot answer, try again
        (each attempt reads everything anew) with a doubling wait: nothing else would, as the
        event that asked for the pass comes once."""
        delay = 0.0
        while True:
            try:
                pipeline = await self.kube.get_pipeline(namespace, name)
                if pipeline is None:
                    return  # the pipeline is gone; garbage collection takes its runs
                await act(pipeline)
                return
            except InvalidPipeline:
                return  # the status says why; a spec change reconciles it again
            except ClientClosed:
                # The operator is stopping: end now rather than be cancelled (kopf's shutdown
                # waits for its handlers); the next start resumes every pipeline.
                raise
            except Retryable as error:
                delay = min(max(delay * 2, error.delay), RUN_REFRESH_MAX_DELAY)
                self.logger.warning(
                    "%s/%s: %s, trying again in %g s: %s", namespace, name, what, delay, error
                )
                await self.sleep(delay)


async def sweep_caches_periodically(
    reconciler: Reconciler,
    watched: Callable[[str], bool],
    interval: float = CACHE_SWEEP_INTERVAL,
    retry_interval: float = CACHE_SWEEP_RETRY_INTERVAL,
) -> None:
    """Sweep the caches of deleted pipelines now and then for ever (cancelled at shutdown):
    a deletion seen by the operator deletes its cache at once; this catches the others."""
    while True:
        try:
            await reconciler.sweep_caches(watched)
            delay = interval
        except (Retryable, Refused) as error:
            reconciler.logger.warning(
                "cache ConfigMaps not swept, trying again in %gs: %s", retry_interval, error
            )
            delay = retry_interval
        await asyncio.sleep(delay)


def _by_schedule(run: Mapping[str, Any], target: Target) -> bool:
    """Whether the run names a CronWorkflow of the pipeline's name as its owner."""
    return (owner_of(run, "CronWorkflow") or {}).get("name") == target.name


def _run_of(run: Mapping[str, Any], target: Target, schedule: str | None) -> bool:
    """Whether the run is the pipeline's: its label, and an owner reference to the pipeline or
    to the pipeline's own CronWorkflow of uid `schedule` (which creates a schedule's runs)."""
    if not labelled_for(run, target.name):
        return False
    if owned_by(run, target.uid):
        return True
    return schedule is not None and (owner_of(run, "CronWorkflow") or {}).get("uid") == schedule


def _with_status(target: Target, status: Obj) -> Obj:
    """The object a status write sends: the status subresource takes only the status (and the
    resourceVersion it was computed from) and keeps the rest as stored, so the spec (up to
    512 KiB) is not sent back."""
    meta = target.body["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "resourceVersion": meta.get("resourceVersion"),
        },
        "status": status,
    }


def _recorded(target: Target, run: str) -> bool:
    """Whether the status read records the run (submitted and seen)."""
    known = target.status
    return (known.last_run is not None and known.last_run.name == run) or any(
        h.name == run for h in known.history
    )


def _waiting(target: Target) -> bool:
    """Whether a run the pipeline asks for (its generation's, its run-at annotation's) is not
    recorded by its status: not submitted yet, or not seen yet."""
    if target.suspended or target.scheduled:
        return False
    return any(
        run is not None and not _recorded(target, run)
        for run in (target.expected_run, target.run_at_run)
    )


def _positive(value: Any) -> int | None:
    """A positive integer of the spec, read leniently (None: unset or not valid)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _not_adopted(run: Obj, target: Target) -> NoReturn:
    """Raise why a Workflow with the run's name, not owned by the pipeline, is not adopted:
    the run of an earlier pipeline of the same name, which garbage collection is about to
    delete (retried soon), or someone else's (the spec gets another run name to go on)."""
    name = run["metadata"]["name"]
    earlier = owner_of(run, KIND)
    if earlier is not None and earlier.get("name") == target.name:
        raise Retryable(f"run {name} of an earlier MLPipeline {target.name} is being deleted")
    raise InvalidPipeline(
        [
            Problem(
                "metadata.name",
                f'a Workflow "{name}" that this pipeline does not own has the name of its run; '
                f"give the annotation {ANNOTATION_RERUN} a value to submit the run under "
                "another name",
            )
        ]
    )


def _own(target: Target, compiled: CompiledRun) -> None:
    """Place the compiled object in the pipeline's namespace, owned by the pipeline."""
    compiled.manifest["metadata"]["namespace"] = target.namespace
    compiled.manifest["metadata"]["ownerReferences"] = [target.owner_reference()]


def _was_scheduled(target: Target) -> bool:
    """Whether the status says a CronWorkflow was in place (so that it may need deleting)."""
    status = target.status
    return any(c.type == "Ready" and c.reason == "Scheduled" for c in status.conditions)


def _events(previous: MLPipelineStatus, status: MLPipelineStatus, invalid: bool) -> list[Event]:
    events = transitions(previous, status)
    if invalid and previous.message != status.message:
        events.insert(0, Event("Warning", "Invalid", status.message or "invalid spec"))
    return events
