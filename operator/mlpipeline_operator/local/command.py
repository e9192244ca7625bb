"""`mlpipeline run FILE`: validate, plan, run the steps locally, report.

Exit codes: 0 success; 1 a step failed, or the pipeline is invalid; 2 bad usage (an unknown `-p`
name, a file with several pipelines, a run directory in use); 130 interrupted (SIGINT, SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import time
from pathlib import Path

from mlpipeline_operator.api.models import MLPipeline
from mlpipeline_operator.core import PROMOTION_TASK, InvalidPipeline
from mlpipeline_operator.loading import load_pipelines
from mlpipeline_operator.local import mlflow_store
from mlpipeline_operator.local.plan import RunLayout, build_plan, pipeline_values
from mlpipeline_operator.local.report import Reporter, shown_path
from mlpipeline_operator.local.runner import LocalRun, RunOptions

DEFAULT_RUNS_DIR = Path(".mlpipeline") / "runs"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(ValueError):
    """A problem with how the command was called (exit 2)."""


def new_run_dir(given: str | None, pipeline: str) -> Path:
    """The run directory: the one given (new or empty), else a new one under .mlpipeline/runs."""
    if given is not None:
        path = Path(given)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise UsageError(f"--run-dir {given}: exists and is not an empty directory")
        path.mkdir(parents=True, exist_ok=True)
        return path
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        path = DEFAULT_RUNS_DIR / (f"{pipeline}-{stamp}" + (f"-{n}" if n > 1 else ""))
        try:
            path.mkdir(parents=True)
        except FileExistsError:
            continue
        return path
    raise UsageError(f"cannot make a new run directory under {DEFAULT_RUNS_DIR}")


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
    if overrides:
        shown = ", ".join(f"{k}={v}" for k, v in overrides.items())
        notes.append(f"parameters overridden: {shown}")
    if spec.promotion is not None and run.options.skip_promotion:
        notes.append("--skip-promotion: the promotion step will not run")
    return notes


def _write_summary(run: LocalRun, path: Path, exit_code: int) -> None:
    phase = {EXIT_OK: "Succeeded", EXIT_INTERRUPTED: "Interrupted"}.get(exit_code, "Failed")
    summary = {
        "pipeline": run.pipeline.metadata.name,
        "phase": phase,
        "exitCode": exit_code,
        "runDir": str(run.layout.root.resolve()),
        "parameters": run.values,
        "mlflowTrackingUri": None if run.options.store is None else run.options.store.uri,
        "steps": [r.to_json() for r in run.all_results],
        "promotion": None if run.promotion is None else run.promotion.to_json(),
    }
    path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


def run_command(args: argparse.Namespace) -> int:
    """The `mlpipeline run` command."""
    try:
        return _run(args)
    except UsageError as error:
        print(f"mlpipeline run: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # before the steps start, or after they ended
        print("mlpipeline run: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _run(args: argparse.Namespace) -> int:
    loaded = load_pipelines(args.file)
    if loaded.problems:
        print("\n".join(loaded.problems), file=sys.stderr)
        return EXIT_FAILED
    if len(loaded.pipelines) != 1:
        raise UsageError(f"{loaded.label} holds {len(loaded.pipelines)} pipelines; run takes one")
    pipeline = loaded.pipelines[0]
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
    except KeyError as error:
        known = ", ".join(p.name for p in pipeline.spec.parameters) or "none"
        raise UsageError(
            f"-p {error.args[0]}: unknown pipeline parameter (known: {known})"
        ) from None

    spec = pipeline.spec
    name = pipeline.metadata.name
    layout = RunLayout(new_run_dir(args.run_dir, name).resolve())
    plans = build_plan(pipeline)
    needs_store = spec.promotion is not None or spec.mlflow is not None or bool(args.mlflow_uri)
    store = mlflow_store.local_store(layout.root, args.mlflow_uri) if needs_store else None
    options = RunOptions(
        parallel=args.parallel or os.cpu_count() or 1,
        backoff_scale=args.backoff_scale,
        skip_promotion=args.skip_promotion,
        store=store,
        experiment=name if store is not None else None,
    )
    names = [p.name for p in plans]
    if spec.promotion is not None and not args.skip_promotion:
        names.append(PROMOTION_TASK)
    reporter = Reporter(names)
    run = LocalRun(pipeline, plans, layout, values, options, reporter)
    promotion = " + promotion" if names[-1] == PROMOTION_TASK else ""
    reporter.header(
        f"mlpipeline run {name}: {len(plans)} steps{promotion}, in {shown_path(layout.root)}"
    )
    for note in _notes(pipeline, run, overrides):
        reporter.note(note)
    if store is not None:
        try:
            mlflow_store.prepare(store, name)
        except mlflow_store.StoreError as error:
            print(f"mlpipeline run: {error}", file=sys.stderr)
            return EXIT_FAILED
    reporter.restart_clock()

    asyncio.run(run.run())
    if run.interrupted is not None:
        code = EXIT_INTERRUPTED
    elif any(r.phase.failed for r in run.all_results):
        code = EXIT_FAILED
    else:
        code = EXIT_OK
    reporter.summary(run.all_results, run.promotion, layout.root, run.interrupted)
    _write_summary(run, layout.root / "run.json", code)
    return code
