"""What the local runner runs: steps with their effective settings, laid out in a run directory.

The settings come from the same places as the compiler's: dependencies from
`validation.step_dependencies`, retry and timeout from the step or else `spec.defaults`, the
timeout in whole seconds as `activeDeadlineSeconds`. Placeholders resolve to local values and
paths through `placeholders.substitute`.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpipeline_operator import placeholders
from mlpipeline_operator.api.models import Defaults, MLPipeline, Retry, Step
from mlpipeline_operator.core import split_ref, step_dependencies, timeout_seconds
from mlpipeline_operator.local import fan_out
from mlpipeline_operator.messages import quoted
from mlpipeline_operator.validation import check_spec


@dataclass(frozen=True)
class StepPlan:
    """One step with the settings that apply to it."""

    step: Step
    dependencies: tuple[str, ...]
    retry: Retry | None
    timeout: str | None
    timeout_seconds: int | None
    # The item of one iteration of a step with forEach (the plan of the step itself has none).
    item: Any = None

    @property
    def name(self) -> str:
        return self.step.name

    @property
    def max_attempts(self) -> int:
        return 1 + (self.retry.limit if self.retry is not None else 0)


def build_plan(pipeline: MLPipeline) -> list[StepPlan]:
    """Every step of a valid pipeline, in spec order."""
    return [step_plan(step, pipeline.spec.defaults) for step in pipeline.spec.steps]


def step_plan(step: Step, defaults: Defaults) -> StepPlan:
    """One step with the settings that apply to it."""
    timeout = step.timeout or defaults.timeout
    return StepPlan(
        step=step,
        dependencies=tuple(step_dependencies(step)),
        retry=step.retry or defaults.retry,
        timeout=timeout,
        timeout_seconds=None if timeout is None else timeout_seconds(timeout),
    )


class OverrideError(ValueError):
    """A `-p NAME=VALUE` that names no parameter, or whose value has a bad placeholder."""


def pipeline_values(pipeline: MLPipeline, overrides: Mapping[str, str]) -> dict[str, str]:
    """Parameter values with `-p NAME=VALUE` overrides, whose placeholders are checked by the same
    rules as the values of `spec.parameters` (OverrideError otherwise)."""
    spec = pipeline.spec
    declared = {p.name: p.value for p in spec.parameters}
    for name in overrides:
        if name not in declared:
            known = ", ".join(declared) or "none"
            raise OverrideError(f"-p {name}: unknown pipeline parameter (known: {known})")
    overridden = spec.model_copy(
        update={
            "parameters": [
                p.model_copy(update={"value": overrides[p.name]}) if p.name in overrides else p
                for p in spec.parameters
            ]
        }
    )
    where = {
        f"spec.parameters[{i}].value": p.name
        for i, p in enumerate(spec.parameters)
        if p.name in overrides
    }
    for problem in check_spec(overridden):
        if problem.path in where:
            name = where[problem.path]
            raise OverrideError(f"-p {name}={quoted(overrides[name])}: {problem.message}")
    raw = {**declared, **overrides}

    # A parameter's value may itself use {{pipeline.parameters.NAME}} (one level, as validated).
    def replace(ref: placeholders.Placeholder) -> str:
        return raw[ref.name]

    return {name: placeholders.substitute(value, replace) for name, value in raw.items()}


_UNSAFE_IN_FILE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def file_name(name: str) -> str:
    """A name made one safe file name: every run of characters other than letters, digits, ".",
    "_" and "-" (a "/" among them) becomes "-", and leading and trailing dots and dashes go, so
    that ".." and hidden names cannot occur."""
    return _UNSAFE_IN_FILE_NAME.sub("-", name).strip(".-") or "pipeline"


@dataclass(frozen=True)
class RunLayout:
    """Where everything of a run lives.

    RUN/steps/STEP/step.log   stdout and stderr of every attempt
    RUN/steps/STEP/work/      the step's working directory
    RUN/steps/STEP/root/      the step's absolute paths: /data/raw.csv is root/data/raw.csv
    RUN/run.json              the outcome of the run
    """

    root: Path

    @property
    def summary(self) -> Path:
        return self.root / "run.json"

    def step_dir(self, step: str) -> Path:
        # Step names are DNS labels (the models check it): never a path of their own.
        if file_name(step) != step:
            raise ValueError(f'step name "{step}" cannot be a directory name')
        return self.root / "steps" / step

    def log(self, step: str) -> Path:
        return self.step_dir(step) / "step.log"

    def work_dir(self, step: str) -> Path:
        return self.step_dir(step) / "work"

    def fs_root(self, step: str) -> Path:
        return self.step_dir(step) / "root"

    def container_path(self, step: str, path: str) -> Path:
        """Where an absolute path of the step's container is on this machine (never outside)."""
        relative = posixpath.normpath("/" + path).lstrip("/")
        return self.fs_root(step) / relative if relative else self.fs_root(step)


@dataclass(frozen=True)
class Resolved:
    """A step's command line and environment with every placeholder replaced."""

    argv: list[str]
    env: dict[str, str]
    # Environment variables that come from a Secret, ConfigMap or the pod in the cluster.
    external_env: list[str]


def input_parameter_values(
    step: Step,
    pipeline: Mapping[str, str],
    outputs: Mapping[str, Mapping[str, str]],
    item: Any = None,
    run: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Values of the step's input parameters: literals, or outputs of the steps they come from
    (for a step with forEach, a JSON list: see `fan_out.aggregate`); `run`: the values of
    `{{pipeline.scheduledTime}}`, `{{pipeline.runName}}` and `{{pipeline.generation}}`."""

    def replace(ref: placeholders.Placeholder) -> str:
        if ref.kind == "item":
            return fan_out.item_text(item, ref.name)
        if ref.kind == "run":
            return (run or {})[ref.name]
        return pipeline[ref.name]

    values: dict[str, str] = {}
    for param in step.inputs.parameters:
        if param.from_ is not None:
            source, name = split_ref(param.from_)
            values[param.name] = outputs[source][name]
        else:
            values[param.name] = placeholders.substitute(param.value or "", replace)
    return values


def resolve(
    step: Step,
    layout: RunLayout,
    pipeline: Mapping[str, str],
    inputs: Mapping[str, str],
    item: Any = None,
    named: Mapping[str, Mapping[str, str]] | None = None,
) -> Resolved:
    """The command line and literal environment of a step of a validated pipeline (`item`: the
    item of an iteration of a step with forEach; `named`: the values of `{{promotion.*}}` and
    `{{pipeline.status}}`, `{{pipeline.scheduledTime}}`... by kind ("run" for the run's time and
    identity), then name)."""
    paths = {
        "inputs.artifacts": {a.name: a.path for a in step.inputs.artifacts},
        "outputs.artifacts": {a.name: a.path for a in step.outputs.artifacts},
        "outputs.parameters": {p.name: p.path for p in step.outputs.parameters},
        "volumes": {m.name: m.mount_path for m in step.volume_mounts},
    }

    def replace(ref: placeholders.Placeholder) -> str:
        if ref.kind == "pipeline.parameters":
            return pipeline[ref.name]
        if ref.kind == "inputs.parameters":
            return inputs[ref.name]
        if ref.kind == "item":
            return fan_out.item_text(item, ref.name)
        if ref.kind in ("promotion", "pipeline", "run"):
            return (named or {})[ref.kind][ref.name]
        return str(layout.container_path(step.name, paths[ref.kind][ref.name]))

    argv = [placeholders.substitute(text, replace) for text in [*step.command, *step.args]]
    env: dict[str, str] = {}
    external: list[str] = []
    for var in step.env:
        if var.value_from is not None:
            external.append(var.name)
        else:
            env[var.name] = placeholders.substitute(var.value or "", replace)
    return Resolved(argv, env, external)
