"""What the local runner runs: steps with their effective settings, laid out in a run directory.

The settings come from the same places as the compiler's: dependencies from
`validation.step_dependencies`, retry and timeout from the step or else `spec.defaults`, the
timeout in whole seconds as `activeDeadlineSeconds`. Placeholders resolve to local values and
paths through `placeholders.substitute`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlpipeline_operator import placeholders
from mlpipeline_operator.api.models import MLPipeline, Retry, Step
from mlpipeline_operator.core import split_ref, step_dependencies, timeout_seconds


@dataclass(frozen=True)
class StepPlan:
    """One step with the settings that apply to it."""

    step: Step
    dependencies: tuple[str, ...]
    retry: Retry | None
    timeout: str | None
    timeout_seconds: int | None

    @property
    def name(self) -> str:
        return self.step.name

    @property
    def max_attempts(self) -> int:
        return 1 + (self.retry.limit if self.retry is not None else 0)


def build_plan(pipeline: MLPipeline) -> list[StepPlan]:
    """Every step of a valid pipeline, in spec order."""
    defaults = pipeline.spec.defaults
    plans = []
    for step in pipeline.spec.steps:
        timeout = step.timeout or defaults.timeout
        plans.append(
            StepPlan(
                step=step,
                dependencies=tuple(step_dependencies(step)),
                retry=step.retry or defaults.retry,
                timeout=timeout,
                timeout_seconds=None if timeout is None else timeout_seconds(timeout),
            )
        )
    return plans


def pipeline_values(pipeline: MLPipeline, overrides: Mapping[str, str]) -> dict[str, str]:
    """Parameter values with `-p NAME=VALUE` overrides; KeyError names an unknown parameter."""
    declared = {p.name: p.value for p in pipeline.spec.parameters}
    for name in overrides:
        if name not in declared:
            raise KeyError(name)
    raw = {**declared, **overrides}

    # A parameter's value may itself use {{pipeline.parameters.NAME}} (one level, as validated).
    def replace(ref: placeholders.Placeholder) -> str:
        return raw[ref.name]

    return {name: placeholders.substitute(value, replace) for name, value in raw.items()}


@dataclass(frozen=True)
class RunLayout:
    """Where everything of a run lives.

    RUN/steps/STEP/step.log   stdout and stderr of every attempt
    RUN/steps/STEP/work/      the step's working directory
    RUN/steps/STEP/root/      the step's absolute paths: /data/raw.csv is root/data/raw.csv
    RUN/run.json              the outcome of the run
    """

    root: Path

    def step_dir(self, step: str) -> Path:
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
    step: Step, pipeline: Mapping[str, str], outputs: Mapping[str, Mapping[str, str]]
) -> dict[str, str]:
    """Values of the step's input parameters: literals, or outputs of the steps they come from."""
    values: dict[str, str] = {}
    for param in step.inputs.parameters:
        if param.from_ is not None:
            source, name = split_ref(param.from_)
            values[param.name] = outputs[source][name]
        else:
            values[param.name] = placeholders.substitute(
                param.value or "", lambda ref: pipeline[ref.name]
            )
    return values


def resolve(
    step: Step,
    layout: RunLayout,
    pipeline: Mapping[str, str],
    inputs: Mapping[str, str],
) -> Resolved:
    """The command line and literal environment of a step of a validated pipeline."""
    paths = {
        "inputs.artifacts": {a.name: a.path for a in step.inputs.artifacts},
        "outputs.artifacts": {a.name: a.path for a in step.outputs.artifacts},
        "outputs.parameters": {p.name: p.path for p in step.outputs.parameters},
    }

    def replace(ref: placeholders.Placeholder) -> str:
        if ref.kind == "pipeline.parameters":
            return pipeline[ref.name]
        if ref.kind == "inputs.parameters":
            return inputs[ref.name]
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
