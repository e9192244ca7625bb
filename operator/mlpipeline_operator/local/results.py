"""What happened to each step of a local run, and to the promotion."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any


class StepPhase(StrEnum):
    """A step's state, named as Argo names its nodes' phases (plus Interrupted)."""

    PENDING = "Pending"
    RUNNING = "Running"
    RETRYING = "Retrying"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    ERROR = "Error"
    SKIPPED = "Skipped"
    INTERRUPTED = "Interrupted"

    @property
    def failed(self) -> bool:
        return self in (StepPhase.FAILED, StepPhase.ERROR)


@dataclass
class StepResult:
    """The state of one step (or of the promotion task) as the run goes."""

    name: str
    max_attempts: int
    log: Path
    phase: StepPhase = StepPhase.PENDING
    attempts: int = 0
    started: float | None = None  # time.monotonic() of the first attempt's start
    finished: float | None = None
    exit_code: int | None = None
    message: str = ""
    outputs: dict[str, str] = field(default_factory=dict)  # output parameter values
    cached: bool = False  # served from the cache, not run
    # A step with forEach: its iterations, in item order; an iteration: its item, as Argo
    # names it.
    iterations: list[StepResult] = field(default_factory=list)
    item: str | None = None
    # steps[].continueOnFailure: a failure of this step lets the run go on.
    continue_on_failure: bool = False
    # A last step that was skipped after the failure of a step with continueOnFailure, which
    # fails the run as Argo's DAG judges it (see LocalRun._judge_last_steps).
    failed_branch: bool = False

    @property
    def fails_run(self) -> bool:
        return (self.phase.failed and not self.continue_on_failure) or self.failed_branch

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        return (self.finished if self.finished is not None else self.started) - self.started

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "phase": str(self.phase),
            "attempts": self.attempts,
            "maxAttempts": self.max_attempts,
            "durationSeconds": None if self.duration is None else round(self.duration, 3),
            "exitCode": self.exit_code,
            "message": self.message,
            "log": str(self.log),
            "outputs": self.outputs,
            "cached": self.cached,
            **({"item": self.item} if self.item is not None else {}),
            **({"iterations": [i.to_json() for i in self.iterations]} if self.iterations else {}),
        }


@dataclass(frozen=True)
class PromotionResult:
    """The promotion step's decision files, and who holds the alias afterwards."""

    model: str
    alias: str
    decision: str
    version: str
    reason: str
    metrics: str
    # The version that holds the alias once the promotion step is done (None: no version does).
    holder: str | None
    # Matched, Mismatched or Unknown: the run's lineage tags against the pipeline's ("": none).
    lineage: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "alias": self.alias,
            "decision": self.decision,
            "version": self.version,
            "reason": self.reason,
            "metrics": self.metrics,
            "aliasVersion": self.holder,
            "lineage": self.lineage,
        }
