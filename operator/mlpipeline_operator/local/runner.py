"""The local run: steps as processes, scheduled as Argo schedules a DAG's tasks.

- A step starts once every step it depends on has succeeded, been skipped, or failed with
  `continueOnFailure`; at most `parallel` steps run at once.
- A step whose `when` is false ends Skipped, and so does every step that takes an output of a
  step that did not succeed (skipped, or failed with `continueOnFailure`); `when` is evaluated
  by `conditions.evaluate`, over the same syntax tree that the compiler turns into Argo's.
- A failed step (its retries spent) skips its dependents and, as Argo's DAG does by default
  (failFast), no step starts after it; steps already running finish. A failed step with
  `continueOnFailure` stops nothing, and the run still succeeds.
- A step with forEach runs once per item (at most `maxParallel` iterations at once, each taking
  one of the `parallel` slots), each iteration in directories of its own (`steps/STEP.N/`);
  its output parameters become the JSON lists of the iterations' values (`fan_out`).
- The run fails, as Argo's DAG judges it, when a last step (one no other step depends on) was
  Skipped and the nearest steps before it that ran include one that failed (with
  `continueOnFailure`, as any other failure stops the run): Argo gives a skipped step the phase
  of the steps before it. A last step that ran, or one with `continueOnFailure`, does not.
- The promotion task runs `mlpipeline promote` once the steps before it are done, unless a step
  failed (or is Skipped when the step it takes the model from did not succeed); the steps whose
  `when` reads `{{promotion.*}}` run after it.
  A step that uses `{{promotion.*}}` runs after it too, and is Skipped without a decision.
- `spec.onExit` runs last, whatever happened (unless the run was interrupted), with
  `{{pipeline.status}}` and `{{pipeline.failures}}`; its failure fails the run, as in Argo.
- `spec.parallelism` lowers `parallel` (it counts the promotion and the exit step too).
- `spec.timeout`, from the run's start, stops every running step's process group (as a signal
  does) and ends them Failed, the steps not started Skipped; the exit step still runs, as
  Argo's exit handler does after its `activeDeadlineSeconds`.
- SIGINT and SIGTERM stop every running step's process group, then the run ends (exit 130);
  a second signal kills the groups still running at once.
- Whatever a step leaves behind (outputs missing, unreadable, binary...) is that step's Error.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from mlpipeline_operator import conditions, lineage, placeholders
from mlpipeline_operator.api.models import ArtifactSource, MLPipeline, Step
from mlpipeline_operator.caching import cache_keys, step_max_age
from mlpipeline_operator.core import (
    EXIT_STEP,
    PROMOTION_TASK,
    after_promotion,
    exit_as_step,
    reads_promotion,
    split_ref,
    step_dependencies,
    step_producers,
    timeout_seconds,
    uses_promotion,
)
from mlpipeline_operator.local import external, fan_out, mlflow_store, outputs, retry
from mlpipeline_operator.local.cache import CacheError, LocalCache
from mlpipeline_operator.local.plan import (
    RunLayout,
    StepPlan,
    input_parameter_values,
    resolve,
    step_plan,
)
from mlpipeline_operator.local.process import KILL_GRACE_SECONDS, Exit, run_attempt
from mlpipeline_operator.local.report import Reporter, format_seconds
from mlpipeline_operator.local.results import PromotionResult, StepPhase, StepResult
from mlpipeline_operator.local.volumes import LocalVolumes, mount
from mlpipeline_operator.promotion.request import (
    OUTPUT_DIR,
    OUTPUT_NAMES,
    PromotionRequest,
    request_for,
)

# The namespace of a local run of a pipeline without metadata.namespace.
LOCAL_NAMESPACE = "local"


class StepSetupError(Exception):
    """What stops an attempt before its process starts: an input that cannot be placed."""


@dataclass(frozen=True)
class RunOptions:
    """How to run, beyond the pipeline itself."""

    parallel: int = 1
    backoff_scale: float = 1.0
    skip_promotion: bool = False
    store: mlflow_store.Store | None = None
    # The experiment the steps log to (MLFLOW_EXPERIMENT_NAME), when there is a store.
    experiment: str | None = None
    # Where cached steps keep their results (None: no step is served from a cache).
    cache: LocalCache | None = None
    # {{pipeline.scheduledTime}} (RFC 3339; None: the time the run starts).
    scheduled_time: str | None = None
    # Where each volume is on this machine (local/volumes.py).
    volumes: LocalVolumes = field(default_factory=LocalVolumes)
    # Where the S3 keys and git repositories of input artifacts' sources are (local.external).
    source_dir: Path | None = None


def step_environment(base: Mapping[str, str]) -> dict[str, str]:
    """The environment every step starts from: ours, with this interpreter's bin first in PATH.

    So `python` and `mlpipeline` in a step's command are the ones running the runner (the venv's),
    and relative PYTHONPATH entries keep working from the steps' own directories.
    """
    env = dict(base)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(
        [bin_dir, *(p for p in env.get("PATH", "").split(os.pathsep) if p)]
    )
    if env.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.pathsep.join(
            str(Path(p).resolve()) for p in env["PYTHONPATH"].split(os.pathsep) if p
        )
    env["PYTHONUNBUFFERED"] = "1"
    return env


def wall_clock(monotonic: float | None) -> str:
    """A time.monotonic() reading as an RFC 3339 UTC time, as Argo writes times ("" if none)."""
    if monotonic is None:
        return ""
    at = time.time() - (time.monotonic() - monotonic)
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def exit_plan(pipeline: MLPipeline) -> StepPlan | None:
    """`spec.onExit` as a step named on-exit, with the settings that apply to it."""
    exit_step = pipeline.spec.on_exit
    if exit_step is None:
        return None
    return step_plan(exit_as_step(exit_step), pipeline.spec.defaults)


class LocalRun:
    """One run of a validated pipeline in `layout.root`."""

    def __init__(
        self,
        pipeline: MLPipeline,
        plans: list[StepPlan],
        layout: RunLayout,
        values: Mapping[str, str],
        options: RunOptions,
        reporter: Reporter,
    ) -> None:
        self.pipeline = pipeline
        self.plans = plans
        self.layout = layout
        self.values = dict(values)
        self.options = options
        self.reporter = reporter
        self.steps: dict[str, Step] = {p.name: p.step for p in plans}
        self.results: dict[str, StepResult] = {
            p.name: StepResult(
                p.name,
                p.max_attempts,
                layout.log(p.name),
                continue_on_failure=p.step.continue_on_failure,
            )
            for p in plans
        }
        self.after_promotion = after_promotion([p.step for p in plans])
        self.done: dict[str, asyncio.Event] = {}
        self.promotion_done: asyncio.Event | None = None
        self.slots: asyncio.Semaphore | None = None
        # The lineage variables are the run's own, never inherited from the runner's environment.
        self.base_env = {
            k: v for k, v in step_environment(os.environ).items() if k not in lineage.RUN_TAGS
        }
        # The first step that failed: from then on no step starts (Argo's failFast).
        self.failed_step: str | None = None
        # The signal that interrupted the run, and the second one that killed its steps at once.
        self.interrupted: str | None = None
        self.killed: str | None = None
        self.kill_now: asyncio.Event | None = None
        # spec.timeout, once it stopped the run ("exceeded spec.timeout of 90s").
        self.timed_out: str | None = None
        # How the process of each step running when the run was interrupted ended.
        self.stopped: dict[str, str] = {}
        self.promotion: PromotionResult | None = None
        # The cache key of each step, with this run's parameter values (as the cluster's).
        self.cache_keys = cache_keys(pipeline.spec, self.values)
        # {{pipeline.status}} and {{pipeline.failures}}, once the run has ended.
        self.exit_values: dict[str, str] = {}
        # Steps that use the promotion's decision, skipped without one (they wait for the
        # promotion as every step of `after_promotion` does).
        self.needs_decision = {p.name for p in plans if uses_promotion(p.step)}
        self.exit_plan = exit_plan(pipeline)
        # {{pipeline.scheduledTime}}, {{pipeline.runName}} (the run directory's name) and
        # {{pipeline.generation}}, as the cluster gives them.
        self.run_values = {
            "scheduledTime": options.scheduled_time or wall_clock(time.monotonic()),
            "runName": layout.root.name,
            "generation": str(pipeline.metadata.generation or 1),
        }

    @property
    def all_results(self) -> list[StepResult]:
        return list(self.results.values())

    # --- the run ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Run every step, then the promotion; returns early (interrupted set) on a signal."""
        loop = asyncio.get_running_loop()
        main = asyncio.current_task()
        assert main is not None
        self.done = {p.name: asyncio.Event() for p in self.plans}
        self.promotion_done = asyncio.Event()
        limit = self.pipeline.spec.parallelism
        self.slots = asyncio.Semaphore(min(self.options.parallel, limit or self.options.parallel))

        kill_now = self.kill_now = asyncio.Event()

        def on_signal(sig: signal.Signals) -> None:
            if self.interrupted is None:
                self.interrupted = sig.name
                grace = format_seconds(KILL_GRACE_SECONDS)
                self.reporter.note(
                    f"{sig.name}: stopping every running step (SIGTERM, SIGKILL after {grace}; "
                    "again to kill at once)"
                )
                main.cancel()
            elif self.killed is None:
                self.killed = sig.name
                self.reporter.note(f"{sig.name} again: killing every running step at once")
                kill_now.set()

        # asyncio puts back the default handlers, not those it found: so do we ourselves.
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in previous:
            loop.add_signal_handler(sig, on_signal, sig)
        timeout = self.pipeline.spec.timeout
        deadline = None
        if timeout is not None:

            def on_deadline() -> None:
                if self.interrupted is None:
                    self.timed_out = f"exceeded spec.timeout of {timeout}"
                    self.reporter.note(f"the run {self.timed_out}: stopping every running step")
                    main.cancel()

            deadline = loop.call_later(timeout_seconds(timeout), on_deadline)
        try:
            try:
                async with asyncio.TaskGroup() as group:
                    for plan in self.plans:
                        group.create_task(self._run_step(plan))
                    group.create_task(self._promotion_task())
            except asyncio.CancelledError:
                if self.timed_out is None or self.interrupted is not None:
                    raise
                main.uncancel()
                self._end_timed_out()
            finally:
                if deadline is not None:
                    deadline.cancel()
            self._judge_last_steps()
            if self.exit_plan is not None:
                await self._run_exit_step(self.exit_plan)
        except asyncio.CancelledError:
            if self.interrupted is None:
                raise
            main.uncancel()
            for result in self._every_result():
                if result.phase in (StepPhase.RUNNING, StepPhase.RETRYING):
                    result.phase = StepPhase.INTERRUPTED
                    result.message = f"stopped by {self.interrupted}"
                    if result.name in self.stopped:
                        result.message += f": {self.stopped[result.name]}"
                    result.finished = time.monotonic()
                elif result.phase is StepPhase.PENDING:
                    result.phase, result.message = StepPhase.SKIPPED, "not started: run interrupted"
        finally:
            for sig, handler in previous.items():
                loop.remove_signal_handler(sig)
                signal.signal(sig, signal.SIG_DFL if handler is None else handler)

    def _end_timed_out(self) -> None:
        """After spec.timeout: the stopped steps Failed, the others Skipped (the exit step runs
        next: Argo runs the exit handler after the workflow's deadline too)."""
        for result in self._every_result():
            if result.phase in (StepPhase.RUNNING, StepPhase.RETRYING):
                result.phase = StepPhase.FAILED
                result.message = f"stopped: the run {self.timed_out}"
                if result.name in self.stopped:
                    result.message += f" ({self.stopped[result.name]})"
                result.finished = time.monotonic()
                self._log_line(result, result.message)
            elif result.phase is StepPhase.PENDING:
                result.phase = StepPhase.SKIPPED
                result.message = f"not started: the run {self.timed_out}"

    def _every_result(self) -> Iterator[StepResult]:
        """Every step's result, and those of the iterations of the steps with forEach."""
        for result in self.results.values():
            yield from result.iterations
            yield result

    def _promotion_values(self) -> dict[str, str]:
        """`{{promotion.*}}`: the decision files, "" when there was no decision."""
        result = self.results.get(PROMOTION_TASK)
        outputs = result.outputs if result is not None else {}
        if not outputs.get("decision"):
            outputs = {}
        return {name: outputs.get(name, "") for name in placeholders.NAMED_FORMS["promotion"]}

    def _exit_values(self) -> dict[str, str]:
        """`{{pipeline.status}}` and `{{pipeline.failures}}`, in the shape Argo gives them."""
        failed = [r for r in self._every_result() if r.phase.failed and r.name != EXIT_STEP]
        failures = [
            {
                "displayName": r.name,
                "message": r.message,
                "templateName": r.name,
                "phase": str(r.phase),
                "podName": "",
                "finishedAt": wall_clock(r.finished),
            }
            for r in failed
        ]
        fails_run = any(r.fails_run for r in self.results.values() if r.name != EXIT_STEP)
        return {
            "status": "Failed" if fails_run else "Succeeded",
            "failures": json.dumps(failures, separators=(",", ":")),
        }

    async def _run_exit_step(self, plan: StepPlan) -> None:
        result = StepResult(plan.name, plan.max_attempts, self.layout.log(plan.name))
        self.results[plan.name] = result
        self.exit_values = self._exit_values()
        await self._attempts(plan, result)

    def _skip(self, result: StepResult, why: str) -> None:
        result.phase, result.message = StepPhase.SKIPPED, why
        self.reporter.step(result, why)

    def _parents(self, name: str) -> list[str]:
        """The steps (and promotion) that `name` came after, among those of the run."""
        promotion = self.pipeline.spec.promotion
        if name == PROMOTION_TASK:
            assert promotion is not None
            before = [p for p in self.plans if p.name not in self.after_promotion]
            depended_on = {d for p in before for d in p.dependencies}
            sinks = [p.name for p in before if p.name not in depended_on]
            return list(dict.fromkeys([promotion.from_.step, *sinks]))
        step = self.steps[name]
        parents = list(step_dependencies(step))
        if reads_promotion(step) and PROMOTION_TASK in self.results:
            parents.append(PROMOTION_TASK)
        return parents

    def _judge_last_steps(self) -> None:
        """Mark the skipped last steps that fail the run as Argo's DAG would: a skipped step
        takes the phase of the nearest steps before it that ran, Failed or Error first."""
        if any(r.fails_run for r in self.results.values()):
            return  # failed already, by a step of its own
        parents = {name: self._parents(name) for name in self.results}
        branch: dict[str, StepPhase] = {}
        # Depth first without recursion: a chain of skipped steps can be 1,000 long.
        for root in self.results:
            stack = [root]
            while stack:
                name = stack[-1]
                phase = self.results[name].phase
                if phase in (StepPhase.SUCCEEDED, StepPhase.FAILED, StepPhase.ERROR):
                    branch[name] = phase
                elif waiting := [p for p in parents[name] if p not in branch]:
                    stack += waiting
                    continue
                else:
                    inherited = (branch[p] for p in parents[name])
                    branch[name] = next((p for p in inherited if p.failed), StepPhase.SUCCEEDED)
                stack.pop()
        depended_on = {p for names in parents.values() for p in names}
        for name, result in self.results.items():
            if name in depended_on or result.phase is not StepPhase.SKIPPED:
                continue
            if branch[name].failed and not result.continue_on_failure:
                result.failed_branch = True

    def _stop_after(self, step: Step) -> None:
        """A step failed for good: no step starts any more (failFast), unless it may fail."""
        if not step.continue_on_failure:
            self.failed_step = self.failed_step or step.name

    def _went_on(self, name: str) -> bool:
        """Whether the steps after `name` may start, as far as `name` goes."""
        result = self.results[name]
        return result.phase in (StepPhase.SUCCEEDED, StepPhase.SKIPPED) or (
            result.phase.failed and result.continue_on_failure
        )

    async def _promotion_task(self) -> None:
        """The promotion, once the steps before it are done; then the steps after it may go."""
        assert self.promotion_done is not None
        try:
            for name, event in self.done.items():
                if name not in self.after_promotion:
                    await event.wait()
            promotion = self.pipeline.spec.promotion
            if promotion is None or self.options.skip_promotion or self.failed_step is not None:
                return
            source = self.results[promotion.from_.step]
            if source.phase is not StepPhase.SUCCEEDED:
                result = StepResult(PROMOTION_TASK, 1, self.layout.log(PROMOTION_TASK))
                self.results[PROMOTION_TASK] = result
                self._skip(result, f"no model: step {source.name} {source.phase}")
                return
            await self._promote()
        finally:
            self.promotion_done.set()

    async def _run_step(self, plan: StepPlan) -> None:
        result = self.results[plan.name]
        try:
            for dependency in plan.dependencies:
                await self.done[dependency].wait()
            if plan.name in self.after_promotion:
                assert self.promotion_done is not None
                await self.promotion_done.wait()
            unmet = [d for d in plan.dependencies if not self._went_on(d)]
            if unmet:
                self._skip(result, f"{unmet[0]} {str(self.results[unmet[0]].phase).lower()}")
                return
            if plan.name in self.needs_decision:
                promoted = self.results.get(PROMOTION_TASK)
                if promoted is None or promoted.phase is not StepPhase.SUCCEEDED:
                    why = "did not run" if promoted is None else str(promoted.phase).lower()
                    self._skip(result, f"{PROMOTION_TASK} {why}")
                    return
            if self.failed_step is None and not self._condition_holds(plan.step, result):
                return
            if plan.step.for_each is not None:
                await self._fan_out(plan, result)
                return
            if self._from_cache(plan, result):
                return
            await self._attempts(plan, result)
            if result.phase is StepPhase.SUCCEEDED:
                self._keep_in_cache(plan, result)
        finally:
            self.done[plan.name].set()

    def _max_age(self, step: Step) -> str | None:
        """The step's maxAge when this run has a cache and the step is cached."""
        if self.options.cache is None:
            return None
        return step_max_age(step, self.pipeline.spec)

    def _from_cache(self, plan: StepPlan, result: StepResult) -> bool:
        """Serve the step from the cache (as Argo's memoization does); False on a miss."""
        cache, max_age = self.options.cache, self._max_age(plan.step)
        if cache is None or max_age is None or self.failed_step is not None:
            return False
        now = time.time()
        try:
            entry = cache.lookup(self.cache_keys[plan.name], max_age, now)
            if entry is None:
                return False
            cache.restore(entry, plan.step, self.layout)
        except CacheError as error:
            self.reporter.note(f"{plan.name}: {error}: the step runs")
            return False
        result.outputs = dict(entry.outputs)
        result.cached = True
        result.phase = StepPhase.SUCCEEDED
        result.message = f"from the cache (kept {format_seconds(now - entry.created)} ago)"
        result.started = result.finished = time.monotonic()
        self._log_line(result, f"{result.message}: {entry.path}")
        self.reporter.step(result, result.message)
        return True

    def _keep_in_cache(self, plan: StepPlan, result: StepResult) -> None:
        cache = self.options.cache
        if cache is None or self._max_age(plan.step) is None:
            return
        key = self.cache_keys[plan.name]
        try:
            cache.store(key, plan.step, self.layout, result.outputs, time.time())
        except CacheError as error:
            self.reporter.note(f"{plan.name}: {error}")

    def _condition_holds(self, step: Step, result: StepResult) -> bool:
        """Whether the step may run: the steps it takes outputs from succeeded, and its `when`
        holds. Otherwise the step ends Skipped, or Error when its condition cannot be decided."""
        sources = step_producers(step)
        if reads_promotion(step):
            sources.append(PROMOTION_TASK)
        for source in sources:
            phase = self.results[source].phase if source in self.results else None
            if phase is not StepPhase.SUCCEEDED:
                shown = "did not run" if phase is None else str(phase).lower()
                self._skip(result, f"takes the outputs of {source}, which {shown}")
                return False
        if step.when is None:
            return True
        produced = {name: r.outputs for name, r in self.results.items()}
        inputs = input_parameter_values(step, self.values, produced, run=self.run_values)
        promotion = self.results.get(PROMOTION_TASK)

        def value_of(ref: conditions.Reference) -> str:
            kind, name = ref.placeholder.kind, ref.placeholder.name
            if kind == "pipeline.parameters":
                return self.values[name]
            if kind == "inputs.parameters":
                return inputs[name]
            assert promotion is not None  # a source checked above
            return promotion.outputs.get(name, "")

        try:
            holds = conditions.evaluate(conditions.parse(step.when), value_of)
        except conditions.ConditionError as error:
            result.phase, result.message = StepPhase.ERROR, f"when: {error}"
            self._stop_after(step)
            self.reporter.step(result, result.message)
            return False
        if not holds:
            self._skip(result, f"when is false: {step.when}")
        return holds

    async def _attempts(self, plan: StepPlan, result: StepResult) -> None:
        assert self.slots is not None
        while True:
            async with self.slots:
                # After a failure no step starts, but the exit step, which runs whatever happened.
                not_started = result.attempts == 0 and plan.name != EXIT_STEP
                if self.failed_step is not None and not_started:
                    self._skip(result, f"not started: step {self.failed_step} failed")
                    return
                result.attempts += 1
                now = time.monotonic()
                if result.started is None:
                    result.started = now
                result.phase, result.message = StepPhase.RUNNING, ""
                self.reporter.step(result)
                outcome, message = await self._attempt(plan, result)
                result.finished = time.monotonic()
            if outcome is retry.Outcome.SUCCEEDED:
                result.phase = StepPhase.SUCCEEDED
                self.reporter.step(result)
                return
            decision = retry.decide(
                plan.retry,
                attempts=result.attempts,
                outcome=outcome,
                message=message,
                first_started=result.started,
                last_finished=result.finished,
                now=time.monotonic(),
                backoff_scale=self.options.backoff_scale,
            )
            if not decision.retry:
                result.phase = (
                    StepPhase.FAILED if outcome is retry.Outcome.FAILED else StepPhase.ERROR
                )
                result.message = message
                self._stop_after(plan.step)
                detail = message if result.max_attempts == 1 else f"{message}; {decision.reason}"
                self.reporter.step(result, detail)
                return
            result.phase, result.message = StepPhase.RETRYING, message
            self.reporter.step(result, f"{message}; retrying in {format_seconds(decision.wait)}")
            await asyncio.sleep(decision.wait)

    async def _fan_out(self, plan: StepPlan, result: StepResult) -> None:
        """Every iteration of a step with forEach, then the step's outcome and fan-in values."""
        for_each = plan.step.for_each
        assert for_each is not None
        if self.failed_step is not None:
            self._skip(result, f"not started: step {self.failed_step} failed")
            return
        try:
            items = fan_out.items_of(plan.step, {n: r.outputs for n, r in self.results.items()})
        except fan_out.FanOutError as error:
            result.phase, result.message = StepPhase.ERROR, str(error)
            self._stop_after(plan.step)
            self.reporter.step(result, result.message)
            return
        if not items:
            self._skip(result, f"forEach.from {for_each.from_}: an empty list, no iteration")
            return
        result.started = time.monotonic()
        result.phase = StepPhase.RUNNING
        self.reporter.step(result, f"{len(items)} iterations")
        for index, item in enumerate(items):
            # "STEP.N": a step name has no ".", so an iteration never shares a step's files.
            name = f"{plan.name}.{index}"
            iteration = StepResult(name, plan.max_attempts, self.layout.log(name))
            iteration.item = fan_out.item_label(item)
            result.iterations.append(iteration)
        running = asyncio.Semaphore(for_each.max_parallel or len(items))

        async def run_iteration(item: object, iteration: StepResult) -> None:
            step = plan.step.model_copy(update={"name": iteration.name})
            async with running:
                await self._attempts(replace(plan, step=step, item=item), iteration)

        async with asyncio.TaskGroup() as group:
            for item, iteration in zip(items, result.iterations, strict=True):
                group.create_task(run_iteration(item, iteration))
        result.finished = time.monotonic()
        failed = [(i, r) for i, r in enumerate(result.iterations) if r.phase.failed]
        if failed:
            index, first = failed[0]
            result.phase, result.log = first.phase, first.log
            result.message = f"iteration {index} ({first.item}) {first.phase}: {first.message}"
            self._stop_after(plan.step)
        elif any(r.phase is not StepPhase.SUCCEEDED for r in result.iterations):
            result.phase = StepPhase.SKIPPED
            result.message = next(
                r.message for r in result.iterations if r.phase is not StepPhase.SUCCEEDED
            )
        else:
            result.phase = StepPhase.SUCCEEDED
            result.outputs = {
                p.name: fan_out.aggregate([r.outputs[p.name] for r in result.iterations])
                for p in plan.step.outputs.parameters
            }
        self.reporter.step(result, result.message)

    # --- one attempt -----------------------------------------------------------------------

    async def _attempt(self, plan: StepPlan, result: StepResult) -> tuple[retry.Outcome, str]:
        """Prepare a fresh filesystem for the step, run it, collect its outputs."""
        step, layout = plan.step, self.layout
        try:
            await self._prepare_filesystem(step)
        except StepSetupError as error:
            message = str(error)
            self._log_line(result, f"attempt {result.attempts} {retry.Outcome.ERROR}: {message}")
            return retry.Outcome.ERROR, message

        produced = {name: r.outputs for name, r in self.results.items()}
        inputs = input_parameter_values(step, self.values, produced, plan.item, self.run_values)
        named = {
            "promotion": self._promotion_values(),
            "pipeline": self.exit_values,
            "run": self.run_values,
        }
        resolved = resolve(step, layout, self.values, inputs, plan.item, named)
        env = {
            **self.base_env,
            **resolved.env,
            **self._lineage_env(),
            **self._mlflow_env(resolved.env),
        }

        timeout: float | None = plan.timeout_seconds
        deadline = retry.attempt_deadline(plan.retry, result.started or time.monotonic())
        if result.attempts > 1 and deadline is not None:
            left = deadline - time.monotonic()
            timeout = left if timeout is None else min(timeout, left)
        exit_ = await self._run_logged(result, resolved.argv, env, timeout)
        result.exit_code = exit_.returncode
        outcome, message = self._judge(plan, exit_, timeout)
        if outcome is retry.Outcome.SUCCEEDED:
            outcome, message = self._collect_outputs(step, result)
        ended = f"{outcome}: {message}" if message else str(outcome)
        self._log_line(result, f"attempt {result.attempts} {ended}")
        return outcome, message

    async def _prepare_filesystem(self, step: Step) -> None:
        """A clean slate for an attempt, as a new pod has: fresh directories, the inputs copied,
        the parents of the outputs made. Raises StepSetupError."""
        layout = self.layout
        try:
            for directory in (layout.work_dir(step.name), layout.fs_root(step.name)):
                if directory.exists():
                    await asyncio.to_thread(shutil.rmtree, directory)
                directory.mkdir(parents=True)
        except OSError as error:
            where = f"{error.filename}: " if error.filename else ""
            raise StepSetupError(
                f"cannot make fresh directories for the step: {where}{error.strerror or error}"
            ) from None
        try:
            await asyncio.to_thread(mount, step, layout, self.options.volumes)
        except OSError as error:
            where = f"{error.filename}: " if error.filename else ""
            raise StepSetupError(
                f"cannot mount the step's volumes: {where}{error.strerror or error}"
            ) from None
        await self._place_inputs(step)
        declared = [(f'output artifact "{a.name}"', a.path) for a in step.outputs.artifacts]
        declared += [(f'output parameter "{p.name}"', p.path) for p in step.outputs.parameters]
        for what, path in declared:
            try:
                layout.container_path(step.name, path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise StepSetupError(
                    f"{what}: cannot make the directory of {path}: {error.strerror or error}"
                ) from None

    async def _run_logged(
        self, result: StepResult, argv: list[str], env: dict[str, str], timeout: float | None
    ) -> Exit:
        work = self.layout.work_dir(result.name)
        try:
            work.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            return Exit(None, start_error=f"{work}: {error.strerror or error}")
        shown = " ".join(argv)
        self._log_line(result, f"attempt {result.attempts}/{result.max_attempts}: {shown}")

        def on_stopped(how: str) -> None:
            self.stopped[result.name] = how

        return await run_attempt(
            argv,
            cwd=work,
            env=env,
            log=result.log,
            timeout=timeout,
            kill=self.kill_now,
            on_stopped=on_stopped,
        )

    def _log_line(self, result: StepResult, text: str) -> None:
        """A line of the runner's own in the step's log (said on the terminal if it cannot be)."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        try:
            result.log.parent.mkdir(parents=True, exist_ok=True)
            with result.log.open("a", encoding="utf-8") as log:
                log.write(f"=== {stamp} {text} ===\n")
        except OSError as error:
            self.reporter.note(f"cannot write {result.log}: {error.strerror or error}: {text}")

    @staticmethod
    def _judge(plan: StepPlan, exit_: Exit, timeout: float | None) -> tuple[retry.Outcome, str]:
        if exit_.start_error is not None:
            return retry.Outcome.ERROR, f"could not start: {exit_.start_error}"
        if exit_.timed_out:
            limit = plan.timeout or "backoff maxDuration"
            shown = format_seconds(timeout) if timeout is not None else "?"
            return retry.Outcome.FAILED, f"timed out after {shown} (timeout {limit}): killed"
        code = exit_.returncode
        if code == 0:
            return retry.Outcome.SUCCEEDED, ""
        if code is not None and code < 0:
            return retry.Outcome.FAILED, f"killed by signal {signal.Signals(-code).name}"
        return retry.Outcome.FAILED, f"exit code {code}"

    def _collect_outputs(self, step: Step, result: StepResult) -> tuple[retry.Outcome, str]:
        """Read output parameters and check output artifacts, as Argo's wait container does."""
        values: dict[str, str] = {}
        for param in step.outputs.parameters:
            path = self.layout.container_path(step.name, param.path)
            try:
                values[param.name] = outputs.read_parameter(path, param.path)
            except outputs.OutputError as error:
                return retry.Outcome.ERROR, f'output parameter "{param.name}": {error} ({path})'
        for artifact in step.outputs.artifacts:
            path = self.layout.container_path(step.name, artifact.path)
            try:
                outputs.check_artifact(path, artifact.path)
            except outputs.OutputError as error:
                return retry.Outcome.ERROR, f'output artifact "{artifact.name}": {error} ({path})'
        result.outputs = values
        return retry.Outcome.SUCCEEDED, ""

    async def _place_inputs(self, step: Step) -> None:
        """Copy each input artifact from the step that produced it to where this step reads it.

        Raises StepSetupError when an artifact is missing or cannot be copied.
        """
        for artifact in step.inputs.artifacts:
            target = self.layout.container_path(step.name, artifact.path)
            what = f'input artifact "{artifact.name}"'
            if artifact.source is not None:
                await self._place_source(artifact.source, target, what)
                continue
            assert artifact.from_ is not None  # validated: from or source
            source_step, name = split_ref(artifact.from_)
            declared = {a.name: a.path for a in self.steps[source_step].outputs.artifacts}
            source = self.layout.container_path(source_step, declared[name])
            if not source.exists():
                raise StepSetupError(f"{what}: {source} is missing")
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                if source.is_dir():
                    await asyncio.to_thread(shutil.copytree, source, target, dirs_exist_ok=True)
                else:
                    await asyncio.to_thread(shutil.copy2, source, target)
            except shutil.Error as error:  # copytree's: one (source, target, why) per file
                first_source, _, why = error.args[0][0]
                raise StepSetupError(
                    f"{what}: cannot copy {first_source} to {artifact.path}: {why}"
                ) from None
            except OSError as error:
                raise StepSetupError(
                    f"{what}: cannot copy {source} to {artifact.path}: {error.strerror or error}"
                ) from None

    async def _place_source(self, source: ArtifactSource, target: Path, what: str) -> None:
        """An input artifact from outside the pipeline (`local.external`)."""
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StepSetupError(
                f"{what}: cannot make the directory of {target}: {error.strerror or error}"
            ) from None
        try:
            await external.place(source, target, self.values, self.options.source_dir)
        except external.SourceError as error:
            raise StepSetupError(f"{what}: {error}") from None

    def _lineage_env(self) -> dict[str, str]:
        """The variables the compiler adds to every step, with this run's values: the run is
        the run directory's name, the namespace "local" unless metadata.namespace is set (the
        values the promotion records)."""
        return lineage.injected_environment(
            self.pipeline,
            namespace=self.pipeline.metadata.namespace or LOCAL_NAMESPACE,
            run=self.layout.root.name,
            tracking_uri=None,  # the store's, from _mlflow_env
        )

    def _mlflow_env(self, step_env: Mapping[str, str]) -> dict[str, str]:
        """The local store replaces any tracking URI; the step's own experiment name wins."""
        store = self.options.store
        if store is None:
            return {}
        env = {"MLFLOW_TRACKING_URI": store.uri}
        if self.options.experiment and "MLFLOW_EXPERIMENT_NAME" not in step_env:
            env["MLFLOW_EXPERIMENT_NAME"] = self.options.experiment
        return env

    # --- promotion -------------------------------------------------------------------------

    def promotion_request(self, run_id: str, output_dir: Path) -> PromotionRequest:
        """The request the compiler's promote-model task makes, with local values."""
        store = self.options.store
        assert store is not None
        return request_for(
            self.pipeline,
            tracking_uri=store.uri,
            run_id=run_id,
            namespace=self.pipeline.metadata.namespace or LOCAL_NAMESPACE,
            workflow=self.layout.root.name,
            output_dir=str(output_dir),
        )

    async def _promote(self) -> None:
        promotion = self.pipeline.spec.promotion
        assert promotion is not None and self.options.store is not None
        name = PROMOTION_TASK
        result = StepResult(name, 1, self.layout.log(name))
        self.results[name] = result
        source = self.results[promotion.from_.step]
        run_id = source.outputs[promotion.from_.parameter]
        output_dir = self.layout.container_path(name, OUTPUT_DIR)
        output_dir.mkdir(parents=True, exist_ok=True)
        request = self.promotion_request(run_id, output_dir)
        argv = [sys.executable, "-m", "mlpipeline_operator", "promote", *request.to_args()]
        env = {**self.base_env, **self._mlflow_env({})}

        result.attempts, result.started = 1, time.monotonic()
        result.phase = StepPhase.RUNNING
        self.reporter.step(result, f"run {run_id}")
        assert self.slots is not None
        async with self.slots:  # a pod of its own in Argo, counted by spec.parallelism
            exit_ = await self._run_logged(result, argv, env, None)
        result.finished, result.exit_code = time.monotonic(), exit_.returncode
        files = {
            key: (output_dir / key).read_text(encoding="utf-8").strip()
            if (output_dir / key).is_file()
            else ""
            for key in OUTPUT_NAMES
        }
        result.outputs = files
        outcome, message = self._judge_promotion(exit_)
        result.phase, result.message = outcome, message
        self._log_line(result, f"promotion {outcome}{': ' if message else ''}{message}")
        holder = await asyncio.to_thread(
            mlflow_store.alias_version, self.options.store, promotion.model, promotion.alias
        )
        self.promotion = PromotionResult(
            model=promotion.model,
            alias=promotion.alias,
            decision=files["decision"],
            version=files["version"],
            reason=files["reason"],
            metrics=files["metrics"],
            holder=holder,
            lineage=files["lineage"],
        )
        self.reporter.step(result, files["decision"] or message)

    @staticmethod
    def _judge_promotion(exit_: Exit) -> tuple[StepPhase, str]:
        if exit_.start_error is not None:
            return StepPhase.ERROR, f"could not start: {exit_.start_error}"
        if exit_.returncode != 0:
            return StepPhase.FAILED, f"exit code {exit_.returncode}"
        return StepPhase.SUCCEEDED, ""
