"""Argo's retry rules, as its controller applies them to a step after a failed attempt.

After attempt n failed (Argo's `processNodeRetries`):

- with `backoff.maxDuration`, no retry once that much time has passed since the first attempt
  started, nor when the next wait would end past that deadline;
- the wait before attempt n+1 is `duration * factor^(n-1)`;
- the policy decides which failures are retried: `Always` (all), `OnFailure` (Argo's default:
  the step's process failed), `OnError` (errors around the process: it could not start, or its
  outputs could not be collected), `OnTransientError` (failures whose message matches a
  transient pattern; locally only `$TRANSIENT_ERROR_PATTERN`, as for Argo's controller);
- at most `limit` retries after the first attempt.

Locally every wait is multiplied by `--backoff-scale`; `maxDuration` is not.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from enum import StrEnum

from mlpipeline_operator.api.models import Retry
from mlpipeline_operator.core import duration_seconds


class Outcome(StrEnum):
    """How an attempt ended, in Argo's node phases."""

    SUCCEEDED = "Succeeded"
    # The step's process ran and failed: non-zero exit, or killed at its timeout.
    FAILED = "Failed"
    # Something around the process failed: it could not start, or an output was missing.
    ERROR = "Error"


@dataclass(frozen=True)
class RetryDecision:
    """Whether to try again, after how long (already scaled), and why not when not."""

    retry: bool
    wait: float = 0.0
    reason: str = ""


def _policy_retries(policy: str, outcome: Outcome, message: str) -> bool:
    if policy == "Always":
        return True
    if policy == "OnFailure":
        return outcome is Outcome.FAILED
    if policy == "OnError":
        return outcome is Outcome.ERROR
    # OnTransientError: no Kubernetes here, so only the user's pattern can make a failure transient.
    pattern = os.environ.get("TRANSIENT_ERROR_PATTERN")
    return pattern is not None and pattern != "" and re.search(pattern, message) is not None


def decide(
    retry: Retry | None,
    *,
    attempts: int,
    outcome: Outcome,
    message: str,
    first_started: float,
    last_finished: float,
    now: float,
    backoff_scale: float = 1.0,
) -> RetryDecision:
    """What to do after attempt number `attempts` ended with `outcome` (times in seconds)."""
    if outcome is Outcome.SUCCEEDED:
        return RetryDecision(False, reason="succeeded")
    if retry is None or retry.limit == 0:
        return RetryDecision(False, reason="no retry policy")
    policy = retry.policy or "OnFailure"
    if not _policy_retries(policy, outcome, message):
        return RetryDecision(
            False, reason=f"retry policy {policy} does not retry a step that {outcome}"
        )
    if attempts > retry.limit:
        return RetryDecision(False, reason=f"no more retries left (limit {retry.limit})")
    backoff = retry.backoff
    if backoff is None:
        return RetryDecision(True)
    wait = (
        duration_seconds(backoff.duration) * (backoff.factor or 1) ** (attempts - 1) * backoff_scale
    )
    if backoff.max_duration is not None:
        deadline = first_started + duration_seconds(backoff.max_duration)
        if now > deadline:
            return RetryDecision(
                False, reason=f"backoff maxDuration {backoff.max_duration} exceeded"
            )
        if last_finished + wait > deadline:
            return RetryDecision(
                False, reason=f"the next backoff would exceed maxDuration {backoff.max_duration}"
            )
    return RetryDecision(True, wait=wait)


def attempt_deadline(retry: Retry | None, first_started: float) -> float | None:
    """Argo also stops any attempt at the backoff's maxDuration deadline, when there is one."""
    if retry is None or retry.backoff is None or retry.backoff.max_duration is None:
        return None
    return first_started + duration_seconds(retry.backoff.max_duration)
