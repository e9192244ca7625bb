"""`mlpipeline run FILE`: validate, plan, run the steps locally, report.

Exit codes: 0 success; 1 a step failed, the pipeline is invalid, or the MLflow store cannot be
used; 2 bad usage (a bad flag value, an unknown `-p` name or a bad placeholder in its value, a
file with several pipelines, a suspended pipeline without --ignore-suspend, a run directory in
use or that cannot be made or written); 130
interrupted (SIGINT, SIGTERM). Once the run directory is made, run.json says how the run ended,
whatever ends it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from mlpipeline_operator.api.models import MLPipeline
from mlpipeline_operator.caching import uses_cache
from mlpipeline_operator.core import EXIT_STEP, PROMOTION_TASK, InvalidPipeline, after_promotion
from mlpipeline_operator.loading import load_pipelines
from mlpipeline_operator.local import external, mlflow_store
from mlpipeline_operator.local.cache import LocalCache
from mlpipeline_operator.local.plan import (
    OverrideError,
    RunLayout,
    build_plan,
    file_name,
    pipeline_values,
)
from mlpipeline_operator.local.report import Reporter, shown_path
from mlpipeline_operator.local.runner import LocalRun, RunOptions
from mlpipeline_operator.local.volumes import VolumeUsageError, check_volumes, local_volumes

DEFAULT_RUNS_DIR = Path(".mlpipeline") / "runs"
# Results of cached steps, one directory per pipeline (local/cache.py).
DEFAULT_CACHE_DIR = Path(".mlpipeline") / "cache"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(ValueError):
    """A problem with how the command was called (exit 2)."""


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


def new_run_dir(given: str | None, pipeline: str) -> Path:
    """The run directory, made: the one given (new or empty), else a new one under
    .mlpipeline/runs named after the pipeline (made a safe file name, so never outside)."""
    if given is not None:
        path = Path(given)
        try:
            in_use = path.exists() and (not path.is_dir() or any(path.iterdir()))
        except OSError as error:
            raise UsageError(f"--run-dir {given}: cannot be read: {_reason(error)}") from None
        if in_use:
            raise UsageError(f"--run-dir {given}: exists and is not an empty directory")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UsageError(f"--run-dir {given}: cannot be created: {_reason(error)}") from None
        return path
    base = DEFAULT_RUNS_DIR
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(
            f"cannot make the directory of runs {base}: {_reason(error)} (or give --run-dir)"
        ) from None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        path = base / (f"{file_name(pipeline)}-{stamp}" + (f"-{n}" if n > 1 else ""))
        if not path.resolve().is_relative_to(base.resolve()):  # file_name() makes sure of it
            raise UsageError(f"{path}: not inside {base}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as error:
            raise UsageError(
                f"cannot make a run directory in {base}: {_reason(error)} (or give --run-dir)"
            ) from None
        return path
    raise UsageError(f"cannot make a new run directory in {base}: too many runs this second")


def _notes(pipeline: MLPipeline, run: LocalRun, overrides: dict[str, str]) -> list[str]:
    spec = pipeline.spec
    python = shutil.which("python", path=run.base_env["PATH"]) or "not found"
    notes = [
        f"images are ignored: each step runs its command as a local process (python is {python})"
    ]
    store = run.options.store
    if store is not None:
        notes.append(f"MLflow store: {store.uri} (every step's MLFLOW_TRACKING_URI)")
    external = [
        f"{s.name}: {v.name}" for s in spec.steps for v in s.env if v.value_from is not None
    ]
    if external:
        notes.append(
            "variables that come from a Secret, ConfigMap or the pod in the cluster are "
            f"taken from your environment here: {', '.join(external)}"
        )
    if spec.schedule is not None:
        notes.append(f'schedule "{spec.schedule.cron}" ignored: the pipeline runs once, now')
    if spec.suspend:
        notes.append("spec.suspend ignored (--ignore-suspend): the pipeline runs")
    if overrides:
        shown = ", ".join(f"{k}={v}" for k, v in overrides.items())
        notes.append(f"parameters overridden: {shown}")
    if run.options.cache is not None:
        notes.append(f"cached steps keep their results in {shown_path(run.options.cache.root)}")
    if spec.promotion is not None and run.options.skip_promotion:
        notes.append("--skip-promotion: the promotion step will not run")
        if after_promotion(spec.steps):
            notes.append("--skip-promotion: the steps after the promotion will not run either")
    return notes


@dataclass(frozen=True)
class Ending:
    """How the run ended: the exit code and, unless it succeeded, why."""

    code: int
    message: str = ""

    @property
    def phase(self) -> str:
        return {EXIT_OK: "Succeeded", EXIT_INTERRUPTED: "Interrupted"}.get(self.code, "Failed")


def _write_summary(run: LocalRun, ending: Ending | None) -> None:
    """run.json; `ending` None while the run goes on (what stays if the runner is SIGKILLed)."""
    summary = {
        "pipeline": run.pipeline.metadata.name,
        "phase": "Running" if ending is None else ending.phase,
        "exitCode": None if ending is None else ending.code,
        "message": "" if ending is None else ending.message,
        "runDir": str(run.layout.root),
        "parameters": run.values,
        "mlflowTrackingUri": None if run.options.store is None else run.options.store.uri,
        "steps": [r.to_json() for r in run.all_results],
        "promotion": None if run.promotion is None else run.promotion.to_json(),
    }
    run.layout.summary.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


class Interrupted(BaseException):
    """SIGTERM outside the steps (where SIGINT raises KeyboardInterrupt): the run ends, run.json
    says so. A BaseException, as KeyboardInterrupt, so that no `except Exception` stops it."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal = signal_name


def _on_sigterm(signum: int, frame: object) -> None:
    raise Interrupted(signal.Signals(signum).name)


def run_command(args: argparse.Namespace) -> int:
    """The `mlpipeline run` command."""
    # Signal handlers belong to the main thread; elsewhere SIGTERM keeps its default.
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None
    try:
        return _run(args)
    except UsageError as error:
        print(f"mlpipeline run: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (KeyboardInterrupt, Interrupted) as error:  # before the steps start, or after them
        name = error.signal if isinstance(error, Interrupted) else signal.SIGINT.name
        print(f"mlpipeline run: interrupted by {name}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _run(args: argparse.Namespace) -> int:
    loaded = load_pipelines(args.file)
    if loaded.problems:
        print("\n".join(loaded.problems), file=sys.stderr)
        return EXIT_FAILED
    if len(loaded.pipelines) != 1:
        raise UsageError(f"{loaded.label} holds {len(loaded.pipelines)} pipelines; run takes one")
    pipeline = loaded.pipelines[0]
    if pipeline.spec.suspend and not args.ignore_suspend:
        # The operator submits no run of a suspended pipeline: neither do we, unless told.
        raise UsageError(
            f"{loaded.label}: spec.suspend is true: no run is started "
            "(--ignore-suspend runs it anyway)"
        )
    # The operator would refuse a pipeline that does not compile (too large, for one): so do we.
    from mlpipeline_operator.compiler.workflow import compile_pipeline

    try:
        compile_pipeline(pipeline)
    except InvalidPipeline as error:
        print("\n".join(f"{loaded.label}: {p}" for p in error.problems), file=sys.stderr)
        return EXIT_FAILED
    overrides = dict(args.parameters)
    try:
        values = pipeline_values(pipeline, overrides)
    except OverrideError as error:
        raise UsageError(str(error)) from None

    try:
        check_volumes(pipeline.spec, dict(args.volumes))
    except VolumeUsageError as error:
        raise UsageError(str(error)) from None
    source_dir = _source_dir(pipeline, args.source_dir)

    # From here on there is a run directory, and run.json in it says how the run ended.
    run = _new_run(pipeline, args, values, source_dir)
    try:
        _write_summary(run, None)
    except OSError as error:
        raise UsageError(
            f"{shown_path(run.layout.root)}: cannot write in the run directory: {_reason(error)}"
        ) from None
    ending = Ending(EXIT_FAILED, "the runner stopped on an unexpected error")
    try:
        ending = _execute(run, overrides)
    except KeyboardInterrupt:
        ending = Ending(EXIT_INTERRUPTED, f"interrupted by {signal.SIGINT.name}")
        raise
    except Interrupted as error:
        ending = Ending(EXIT_INTERRUPTED, f"interrupted by {error.signal}")
        raise
    finally:
        try:
            _write_summary(run, ending)
        except OSError as error:
            print(
                f"mlpipeline run: cannot write {run.layout.summary}: {_reason(error)}",
                file=sys.stderr,
            )
    return ending.code


def _new_run(
    pipeline: MLPipeline, args: argparse.Namespace, values: dict[str, str], source_dir: Path | None
) -> LocalRun:
    spec = pipeline.spec
    name = pipeline.metadata.name
    layout = RunLayout(new_run_dir(args.run_dir, name).resolve())
    plans = build_plan(pipeline)
    needs_store = spec.promotion is not None or spec.mlflow is not None or bool(args.mlflow_uri)
    store = mlflow_store.local_store(layout.root, args.mlflow_uri) if needs_store else None
    cache = None
    if uses_cache(spec) and not args.no_cache:
        cache_dir = Path(args.cache_dir) if args.cache_dir else DEFAULT_CACHE_DIR / file_name(name)
        cache = LocalCache(cache_dir.resolve())
    volumes = local_volumes(spec, layout, dict(args.volumes))
    options = RunOptions(
        parallel=args.parallel or os.cpu_count() or 1,
        backoff_scale=args.backoff_scale,
        skip_promotion=args.skip_promotion,
        store=store,
        experiment=name if store is not None else None,
        cache=cache,
        scheduled_time=args.scheduled_time,
        volumes=volumes,
        source_dir=source_dir,
    )
    names = [p.name for p in plans]
    if spec.promotion is not None and not args.skip_promotion:
        names.append(PROMOTION_TASK)
    if spec.on_exit is not None:
        names.append(EXIT_STEP)
    return LocalRun(pipeline, plans, layout, values, options, Reporter(names))


def _source_dir(pipeline: MLPipeline, given: str | None) -> Path | None:
    """`--source-dir`, required (an existing directory) when a step reads an S3 key or a git
    repository; UsageError otherwise."""
    needed = external.needs_source_dir(pipeline)
    if given is None:
        if needed:
            raise UsageError(
                f"{needed[0]}: the local runner reads S3 keys and git repositories from a "
                "directory: give --source-dir DIR (DIR/s3/KEY, DIR/git/HOST/PATH)"
            )
        return None
    source_dir = Path(given).resolve()
    if not source_dir.is_dir():
        raise UsageError(f"--source-dir {given}: not a directory")
    return source_dir


def _execute(run: LocalRun, overrides: dict[str, str]) -> Ending:
    """Run the steps; say how the run ended."""
    name, layout, reporter = run.pipeline.metadata.name, run.layout, run.reporter
    promotion = " + promotion" if PROMOTION_TASK in reporter.names else ""
    reporter.header(
        f"mlpipeline run {name}: {len(run.plans)} steps{promotion}, in {shown_path(layout.root)}"
    )
    for note in _notes(run.pipeline, run, overrides):
        reporter.note(note)
    store = run.options.store
    if store is not None:
        try:
            mlflow_store.prepare(store, name)
        except mlflow_store.StoreError as error:
            print(f"mlpipeline run: {error}", file=sys.stderr)
            return Ending(EXIT_FAILED, str(error))
    reporter.restart_clock()

    asyncio.run(run.run())
    reporter.summary(run.all_results, run.promotion, layout.root, run.interrupted)
    failed = [r for r in run.all_results if r.fails_run]
    if run.interrupted is not None:
        message = f"interrupted by {run.interrupted}"
        if run.killed is not None:
            message += f"; a second {run.killed} killed the steps still running at once"
        return Ending(EXIT_INTERRUPTED, message)
    if run.timed_out is not None:
        return Ending(EXIT_FAILED, f"the run {run.timed_out}")
    if failed:
        return Ending(EXIT_FAILED, f"step {failed[0].name} {failed[0].phase}: {failed[0].message}")
    return Ending(EXIT_OK)
