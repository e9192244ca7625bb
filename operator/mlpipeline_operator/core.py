"""The pipeline core: what validation, the compiler, the reconciler and the local runner share.

Names of the compiler's own templates, problems with a pipeline, the DAG's edges, Go durations,
the deterministic name of a run and the descriptor of a compiled run. It depends on the API
models only, so that every layer above can depend on it without depending on each other.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlpipeline_operator import placeholders
from mlpipeline_operator.api.constants import MAX_NAME
from mlpipeline_operator.api.models import (
    ExitStep,
    Inputs,
    MLPipeline,
    Outputs,
    Step,
    duration_nanoseconds,
)

# Names of the compiler's own templates (the DAG, the task added for `spec.promotion`, and the
# exit handler of `spec.onExit`, which is also its name among the run's steps).
ENTRY_TEMPLATE = "mlpipeline"
PROMOTION_TASK = "promote-model"
# The input parameter that carries the item into a fanned-out step's template; `{{item.KEY}}`
# is carried by "item-KEY" (Argo's parameter names have no ".").
ITEM_PARAMETER = "item"
EXIT_STEP = "on-exit"
# The input parameters that carry `{{promotion.NAME}}` into a step's container.
PROMOTION_INPUTS = {
    name: f"mlpipeline-promotion-{name}" for name in placeholders.NAMED_FORMS["promotion"]
}

Manifest = dict[str, Any]


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a document, at a field path such as `spec.steps[2].dependsOn[0]`."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class InvalidPipeline(ValueError):
    """A pipeline with problems; `problems` lists all of them."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


def split_ref(ref: str) -> tuple[str, str]:
    """ "STEP.NAME" → (STEP, NAME); the models guarantee one dot."""
    step, name = ref.split(".", 1)
    return step, name


def step_dependencies(step: Step) -> list[str]:
    """Explicit dependencies, then those implied by inputs `from` other steps and by
    `forEach.from`, without repeats."""
    deps = dict.fromkeys(step.depends_on)
    refs = [p.from_ for p in step.inputs.parameters] + [a.from_ for a in step.inputs.artifacts]
    if step.for_each is not None and step.for_each.from_ is not None:
        refs.append(step.for_each.from_)
    for ref in refs:
        if ref is not None:
            deps.setdefault(split_ref(ref)[0])
    return list(deps)


def step_producers(step: Step) -> list[str]:
    """The steps whose outputs a step takes (its inputs and its `forEach.from` name them),
    without repeats."""
    refs = [p.from_ for p in step.inputs.parameters] + [a.from_ for a in step.inputs.artifacts]
    if step.for_each is not None:
        refs.append(step.for_each.from_)
    return list(dict.fromkeys(split_ref(ref)[0] for ref in refs if ref is not None))


def reads_promotion(step: Step) -> bool:
    """Whether a step's condition reads the promotion's outputs (`{{promotion.decision}}`...)."""
    return step.when is not None and any(
        e.strip().startswith("promotion.") for e in placeholders.find(step.when)
    )


def step_texts(step: Step) -> list[str]:
    """The texts of a step that may use its placeholders: command, args and env values."""
    return [*step.command, *step.args, *(e.value for e in step.env if e.value is not None)]


def uses_promotion(step: Step) -> bool:
    """Whether a step uses `{{promotion.*}}`, and so runs after the promotion."""
    # Most texts name no promotion at all: a substring test spares parsing their placeholders.
    texts = [text for text in step_texts(step) if "promotion." in text]
    return bool(texts) and placeholders.uses(texts, "promotion")


def after_promotion(steps: Sequence[Step]) -> set[str]:
    """The steps that run after the promotion: those whose condition reads it or that use
    `{{promotion.*}}`, and every step that depends on one of them."""
    seeds = {s.name for s in steps if reads_promotion(s) or uses_promotion(s)}
    return downstream(steps, seeds, step_dependencies)


def downstream(
    steps: Sequence[Step], seeds: set[str], upstream: Callable[[Step], list[str]]
) -> set[str]:
    """The seeds and every step that reaches one of them through `upstream` (a step's
    dependencies, or the producers of its inputs), transitively."""
    found = set(seeds)
    changed = bool(found)
    while changed:
        changed = False
        for step in steps:
            if step.name not in found and any(u in found for u in upstream(step)):
                found.add(step.name)
                changed = True
    return found


def exit_as_step(exit_step: ExitStep) -> Step:
    """`spec.onExit` as the step named `on-exit`: no dependencies, inputs or outputs."""
    fields = {name: getattr(exit_step, name) for name in type(exit_step).model_fields}
    # Built from an already validated ExitStep, whose fields are a subset of a Step's.
    return Step.model_construct(
        **fields, name=EXIT_STEP, depends_on=[], inputs=Inputs(), outputs=Outputs()
    )


def duration_seconds(duration: str) -> float:
    """A Go duration ("1h30m", "500ms") in seconds, as Argo reads it; the models guarantee
    its shape."""
    return duration_nanoseconds(duration) / 10**9


def timeout_seconds(duration: str) -> int:
    """A step's timeout in whole seconds, rounded up: Argo's `activeDeadlineSeconds` (the
    models refuse "0s", and anything over its 32 bits)."""
    return -(-duration_nanoseconds(duration) // 10**9)


def run_name(namespace: str, name: str, generation: int, rerun: str | None = None) -> str:
    """The deterministic name of a generation's run: `<pipeline>-g<generation>-<hash>`.

    The hash covers namespace, name, generation and re-run token, so two pipelines whose names
    are cut to fit 63 characters still get different runs.
    """
    key = f"{namespace}/{name}/{generation}/{rerun or ''}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:6]
    suffix = f"-g{generation}-{digest}"
    return name[: MAX_NAME - len(suffix)].rstrip("-.") + suffix


# RFC 3339 as Go's time.Parse(time.RFC3339) reads it (Argo's parser of scheduled times): a
# date, "T", a time with optional fraction, and "Z" or an offset.
_RFC3339_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
RFC3339_EXAMPLE = "2026-01-31T00:00:00Z"


def parse_rfc3339(text: str) -> datetime | None:
    """An RFC 3339 time as an aware datetime, or None when the text is not one."""
    if _RFC3339_RE.match(text) is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:  # a day, hour... out of range
        return None


def rfc3339_error(text: str) -> str | None:
    """Why a text is not an RFC 3339 time, or None when it is one."""
    if parse_rfc3339(text) is not None:
        return None
    return (
        f'"{text}" is not an RFC 3339 time; write a date, "T", a time and "Z" or an offset, '
        f'such as "{RFC3339_EXAMPLE}" or "2026-01-31T02:00:00+02:00"'
    )


def run_at_name(namespace: str, name: str, at: datetime) -> str:
    """The deterministic name of the run for one scheduled time (the run-at annotation):
    `<pipeline>-at-<UTC time>-<hash>`. The same instant, however written, names the same run."""
    instant = at.astimezone(UTC)
    stamp = instant.strftime("%Y%m%dt%H%M%S")
    key = f"{namespace}/{name}/at/{instant.isoformat()}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:6]
    suffix = f"-at-{stamp}-{digest}"
    return name[: MAX_NAME - len(suffix)].rstrip("-.") + suffix


@dataclass(frozen=True)
class CompiledRun:
    """One generation of a pipeline, validated and compiled: the Argo object to create."""

    pipeline: MLPipeline
    manifest: Manifest  # an Argo Workflow, or a CronWorkflow for a scheduled pipeline

    @property
    def scheduled(self) -> bool:
        return bool(self.manifest["kind"] == "CronWorkflow")

    @property
    def name(self) -> str:
        """The object's name: the run's, or the CronWorkflow's (which names its own runs)."""
        return str(self.manifest["metadata"]["name"])
