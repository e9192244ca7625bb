"""The promotion decision as pure functions: gates, the champion/challenger comparison, the verdict.

Nothing here talks to MLflow: the caller reads the metrics and the alias holder, these functions
decide, and `Decision` says what to write back (tags, alias, output files).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from mlpipeline_operator.api.models import Gate, GateOp, MustBeat
from mlpipeline_operator.lineage import ENV_GENERATION, ENV_NAME, ENV_NAMESPACE, RUN_TAGS

DecisionName = Literal["Promoted", "Rejected", "Failed"]
LineageName = Literal["Matched", "Mismatched", "Unknown"]
# The run tags that say which pipeline logged a run; the generation is informational (a cached
# step's run comes from an earlier generation of the same pipeline).
_IDENTITY_TAGS = (RUN_TAGS[ENV_NAMESPACE], RUN_TAGS[ENV_NAME])
_GENERATION_TAG = RUN_TAGS[ENV_GENERATION]

_OPS: dict[GateOp, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
}
# What to write when a gate fails: the negation of its operator ("auc 0.91 < 0.95").
_NEGATION: dict[GateOp, str] = {">=": "<", ">": "<=", "<=": ">", "<": ">=", "==": "!="}


def fmt(value: float, other: float | None = None) -> str:
    """A metric for people: 6 significant digits, unless that would print two different values
    the same ("0.95 < 0.95"), then every digit."""
    short = f"{value:g}"
    if other is not None and value != other and short == f"{other:g}":
        return repr(value)
    return short


def describe_gate(gate: Gate) -> str:
    return f"{gate.metric} {gate.op} {fmt(gate.value)}"


@dataclass(frozen=True)
class GateResult:
    """One gate against the run's metrics; `actual` is None when the run lacks the metric."""

    gate: Gate
    actual: float | None

    @property
    def passed(self) -> bool:
        return self.actual is not None and _OPS[self.gate.op](self.actual, self.gate.value)

    def describe(self) -> str:
        """`auc 0.97 >= 0.95` when it passes, `auc 0.91 < 0.95 (gate auc >= 0.95)` when not."""
        gate = self.gate
        if self.actual is None:
            return f"metric {gate.metric} is missing from the run (gate {describe_gate(gate)})"
        value, threshold = fmt(self.actual, gate.value), fmt(gate.value, self.actual)
        if self.passed:
            return f"{gate.metric} {value} {gate.op} {threshold}"
        return (
            f"{gate.metric} {value} {_NEGATION[gate.op]} {threshold} (gate {describe_gate(gate)})"
        )


def evaluate_gates(gates: Sequence[Gate], metrics: Mapping[str, float]) -> list[GateResult]:
    """Every gate, in order, against the run's latest metric values."""
    return [GateResult(gate, metrics.get(gate.metric)) for gate in gates]


@dataclass(frozen=True)
class Holder:
    """The version that holds the alias to beat, and its metric (from its source run)."""

    version: str
    run_id: str | None
    value: float | None


@dataclass(frozen=True)
class Comparison:
    """Champion/challenger: the challenger's metric against the holder of `must_beat.alias`."""

    must_beat: MustBeat
    challenger: float | None
    holder: Holder | None
    # The challenger already holds the alias (a re-run): nothing to beat.
    holder_is_challenger: bool = False

    @property
    def passed(self) -> bool:
        if self.holder is None or self.holder_is_challenger:
            return self.challenger is not None
        if self.challenger is None or self.holder.value is None:
            return False
        if self.must_beat.higher_is_better:
            return self.challenger > self.holder.value
        return self.challenger < self.holder.value

    def describe(self) -> str:
        rule = self.must_beat
        direction = "higher" if rule.higher_is_better else "lower"
        if self.challenger is None:
            return (
                f"metric {rule.metric} is missing from the run "
                f"(needed to compare with the holder of alias {rule.alias})"
            )
        if self.holder is None:
            return f"no version holds alias {rule.alias} yet: nothing to beat"
        holder = f"{rule.alias} (version {self.holder.version})"
        if self.holder_is_challenger:
            return f"this version already holds alias {rule.alias}"
        if self.holder.value is None:
            run = f"run {self.holder.run_id}" if self.holder.run_id else "no source run"
            return (
                f"cannot compare with {holder}: it has no metric {rule.metric} ({run}); "
                f"move or delete alias {rule.alias} to let a challenger take it"
            )
        mine = fmt(self.challenger, self.holder.value)
        theirs = fmt(self.holder.value, self.challenger)
        if self.passed:
            return f"{rule.metric} {mine} beats {holder} {theirs} ({direction} is better)"
        return f"{rule.metric} {mine} does not beat {holder} {theirs} ({direction} is better)"


def compare(
    must_beat: MustBeat,
    metrics: Mapping[str, float],
    holder: Holder | None,
    version: str,
) -> Comparison:
    """The challenger (`version`, with the run's `metrics`) against the alias holder."""
    return Comparison(
        must_beat=must_beat,
        challenger=metrics.get(must_beat.metric),
        holder=holder,
        holder_is_challenger=holder is not None and holder.version == version,
    )


@dataclass(frozen=True)
class LineageCheck:
    """Whether the run was logged by this pipeline, as its lineage tags say."""

    outcome: LineageName
    # Why it does not match, or what differs without mattering ("" when nothing).
    note: str = ""


def check_lineage(run_tags: Mapping[str, str], expected: Mapping[str, str]) -> LineageCheck:
    """The run's lineage tags against the pipeline's (`expected`, the same tag names).

    Unknown when the run has neither mlpipeline.namespace nor mlpipeline.pipeline (a model
    logged without lineage); Mismatched when one of them names another namespace or pipeline;
    else Matched, with a note when the run comes from another generation."""
    logged = {tag: run_tags[tag] for tag in _IDENTITY_TAGS if tag in run_tags}
    if not logged:
        return LineageCheck("Unknown")
    if any(value != expected.get(tag) for tag, value in logged.items()):
        theirs = "/".join(logged.get(tag, "?") for tag in _IDENTITY_TAGS)
        ours = "/".join(expected.get(tag, "?") for tag in _IDENTITY_TAGS)
        return LineageCheck(
            "Mismatched",
            f"the run was logged by pipeline {theirs}, not {ours} (its tags "
            f"{' and '.join(_IDENTITY_TAGS)}): promote a run of this pipeline",
        )
    generation = run_tags.get(_GENERATION_TAG)
    if generation and generation != expected.get(_GENERATION_TAG):
        return LineageCheck("Matched", f"the run was logged by generation {generation}")
    return LineageCheck("Matched")


@dataclass(frozen=True)
class Decision:
    """What the promotion step decided, as it lands in the output files and `status.promotion`."""

    decision: DecisionName
    model: str
    version: str | None = None
    # The alias the version holds after the step (None when it was not promoted).
    alias: str | None = None
    reason: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    # Whether the run's lineage tags name this pipeline (None: not checked, the step failed).
    lineage: LineageName | None = None

    @property
    def promoted(self) -> bool:
        return self.decision == "Promoted"

    def summary(self, target_alias: str) -> str:
        """One line for people: what happened, and why."""
        if self.decision == "Promoted":
            head = f"Promoted: {self.model} version {self.version} holds alias {self.alias}"
        elif self.decision == "Rejected":
            head = f"Rejected: {self.model} version {self.version} (alias {target_alias} not moved)"
        else:
            head = f"Failed: {self.model}" + (f" version {self.version}" if self.version else "")
        return f"{head}: {self.reason}" if self.reason else head


def compared_metrics(
    gates: Sequence[GateResult], comparison: Comparison | None
) -> dict[str, float]:
    """The metrics the decision looked at: the run's, by name, and the holder's as
    `METRIC@ALIAS` (for example `auc@champion`). Non-finite values are left out (JSON has none)."""
    metrics: dict[str, float] = {}
    for result in gates:
        if result.actual is not None:
            metrics[result.gate.metric] = result.actual
    if comparison is not None:
        rule = comparison.must_beat
        if comparison.challenger is not None:
            metrics[rule.metric] = comparison.challenger
        holder = comparison.holder
        if holder is not None and not comparison.holder_is_challenger and holder.value is not None:
            metrics[f"{rule.metric}@{rule.alias}"] = holder.value
    return {k: v for k, v in metrics.items() if math.isfinite(v)}


def decide(
    model: str,
    version: str,
    alias: str,
    gates: Sequence[GateResult],
    comparison: Comparison | None,
    lineage: LineageCheck | None = None,
) -> Decision:
    """Promoted when the run's lineage does not name another pipeline, every gate passes and
    (if asked) the challenger beats the holder."""
    outcome = None if lineage is None else lineage.outcome
    failed = [g.describe() for g in gates if not g.passed]
    if comparison is not None and not comparison.passed:
        failed.append(comparison.describe())
    if lineage is not None and lineage.outcome == "Mismatched":
        failed.insert(0, lineage.note)
    metrics = compared_metrics(gates, comparison)
    if failed:
        return Decision("Rejected", model, version, None, "; ".join(failed), metrics, outcome)
    passed = [g.describe() for g in gates]
    reason = (
        f"{'gate' if len(passed) == 1 else 'all gates'} passed: {', '.join(passed)}"
        if passed
        else "no gates"
    )
    if comparison is not None:
        reason += f"; {comparison.describe()}"
    if lineage is not None and lineage.note:
        reason += f"; {lineage.note}"
    return Decision("Promoted", model, version, alias, reason, metrics, outcome)
