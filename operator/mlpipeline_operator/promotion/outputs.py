"""The promotion step's output files, and what the operator makes of them.

The step writes one file per name in `OUTPUT_NAMES` into its output directory; the Workflow exposes
them as the `promote-model` task's output parameters (an absent file reads as ""), and the
operator turns those parameters back into `status.promotion` with `status_from_outputs`.

| file     | content                                                                  |
|----------|--------------------------------------------------------------------------|
| decision | Promoted, Rejected or Failed                                             |
| version  | the model version decided on ("" when the step failed before it)          |
| alias    | the alias the version holds after the step ("" unless Promoted)          |
| reason   | one line: the gates and the comparison, or what failed                   |
| metrics  | JSON object of the metrics compared, e.g. {"auc": 0.97, "auc@champion": 0.95} |
| lineage  | Matched, Mismatched or Unknown (the run's lineage tags); "" on a failure |
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, get_args

from mlpipeline_operator.api.status import PromotionStatus
from mlpipeline_operator.promotion.decision import Decision, DecisionName, LineageName
from mlpipeline_operator.promotion.errors import PromotionFailure
from mlpipeline_operator.promotion.request import OUTPUT_NAMES, PromotionRequest

# Bounds of PromotionStatus's fields: longer values are cut rather than rejected.
_MAX = {"model": 250, "version": 32, "alias": 63, "reason": 32768, "run": 63}
_MAX_METRICS = 64
_DECISIONS: tuple[str, ...] = get_args(DecisionName)
_LINEAGES: tuple[str, ...] = get_args(LineageName)


def output_values(decision: Decision) -> dict[str, str]:
    """The decision as the text of each output file."""
    values = {
        "decision": decision.decision,
        "version": decision.version or "",
        "alias": decision.alias or "",
        "reason": decision.reason,
        "metrics": json.dumps(
            {k: v for k, v in decision.metrics.items() if math.isfinite(v)},
            sort_keys=True,
            allow_nan=False,
        ),
        "lineage": decision.lineage or "",
    }
    assert tuple(values) == OUTPUT_NAMES
    return values


def write_outputs(decision: Decision, directory: str | Path) -> None:
    """Write every output file; each is replaced atomically, `decision` last (so a present
    `decision` means the other files are this decision's)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    values = output_values(decision)
    for name in (*[n for n in OUTPUT_NAMES if n != "decision"], "decision"):
        tmp = out / f".{name}.tmp"
        tmp.write_text(values[name], encoding="utf-8")
        tmp.replace(out / name)


def write_decision(
    request: PromotionRequest, decision: Decision, log: Callable[[str], None]
) -> bool:
    """The decision's files in the request's output directory, if it has one; False (and a
    logged error) when they cannot be written."""
    if request.output_dir is None:
        return True
    try:
        write_outputs(decision, request.output_dir)
    except OSError as error:
        log(f"error: cannot write the output files in {request.output_dir}: {error}")
        return False
    return True


def record_failure(
    request: PromotionRequest, failure: PromotionFailure, log: Callable[[str], None]
) -> int:
    """A failure as one logged line and a `Failed` decision; returns its exit code."""
    log(f"error: {failure.message}")
    failed = Decision("Failed", request.model, failure.version, None, failure.message)
    write_decision(request, failed, log)
    return int(failure.code)


def read_outputs(directory: str | Path) -> dict[str, str]:
    """The output files as the Workflow sees them: an absent file reads as ""."""
    out = Path(directory)
    return {
        name: (out / name).read_text(encoding="utf-8") if (out / name).is_file() else ""
        for name in OUTPUT_NAMES
    }


def _text(value: str | None, limit: int) -> str | None:
    value = (value or "").strip()
    return value[:limit] if value else None


def _metrics(text: str) -> dict[str, float]:
    try:
        raw: Any = json.loads(text) if text.strip() else {}
    except ValueError:
        return {}
    if not isinstance(raw, dict):
        return {}
    metrics: dict[str, float] = {}
    for key, value in raw.items():
        if len(metrics) == _MAX_METRICS:
            break
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(value):
            metrics[str(key)] = float(value)
    return metrics


def status_from_outputs(
    outputs: Mapping[str, str], *, model: str | None = None, run: str | None = None
) -> PromotionStatus | None:
    """`status.promotion` from the promotion task's output parameters (names in `OUTPUT_NAMES`).

    None when the step wrote no decision (it did not run, or died before deciding) or wrote
    something that is not a decision. `model` and `run` (the Workflow's name) come from the
    operator, which knows them; the other fields are cut to the status schema's bounds and a
    `metrics` that is not a JSON object of numbers becomes {}.
    """
    decision = (outputs.get("decision") or "").strip()
    if decision not in _DECISIONS:
        return None
    lineage = (outputs.get("lineage") or "").strip()
    return PromotionStatus(
        decision=decision,  # type: ignore[arg-type]  # checked against DecisionName above
        model=_text(model, _MAX["model"]),
        version=_text(outputs.get("version"), _MAX["version"]),
        alias=_text(outputs.get("alias"), _MAX["alias"]),
        reason=_text(outputs.get("reason"), _MAX["reason"]),
        metrics=_metrics(outputs.get("metrics") or ""),
        run=_text(run, _MAX["run"]),
        lineage=lineage if lineage in _LINEAGES else None,  # type: ignore[arg-type]  # checked
    )
