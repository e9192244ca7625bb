"""Bounded retries of MLflow calls: how many attempts, how long between them, how long each waits.

MLflow's own HTTP client retries a failed request 7 times with a backoff that adds up to minutes
(and waits up to 120 s for each answer). The promotion step turns that off and retries here
instead, with a bound that is small, documented and configurable: flags of `mlpipeline promote`,
or environment variables (a flag wins over the variable, the variable over the default).

Pure code: the clock and the sleep are parameters, so the loop is tested without waiting.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from mlpipeline_operator.cli_types import EnvDefault, positive_int, seconds

ENV_ATTEMPTS = "MLPIPELINE_PROMOTE_ATTEMPTS"
ENV_BACKOFF = "MLPIPELINE_PROMOTE_BACKOFF"
ENV_REQUEST_TIMEOUT = "MLPIPELINE_PROMOTE_REQUEST_TIMEOUT"

DEFAULT_ATTEMPTS = 5
DEFAULT_BACKOFF = 1.0
DEFAULT_REQUEST_TIMEOUT = 30
MAX_BACKOFF = 30.0

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` tries of each MLflow call; waits of `backoff`, 2x, 4x... seconds in between
    (each at most MAX_BACKOFF); each HTTP request waits at most `request_timeout` seconds."""

    attempts: int = DEFAULT_ATTEMPTS
    backoff: float = DEFAULT_BACKOFF
    request_timeout: int = DEFAULT_REQUEST_TIMEOUT

    def delays(self) -> Iterator[float]:
        """The waits between attempts (one fewer than the attempts)."""
        for retry in range(self.attempts - 1):
            yield min(self.backoff * 2**retry, MAX_BACKOFF)

    def worst_case_seconds(self) -> float:
        """The longest one call can take before giving up: every attempt times out."""
        return self.attempts * self.request_timeout + sum(self.delays())


class RetriesExhausted(Exception):
    """Every attempt failed with a transient error; `last` is the last one."""

    def __init__(self, attempts: int, elapsed: float, last: BaseException) -> None:
        super().__init__(f"{attempts} attempts in {elapsed:.1f}s: {last}")
        self.attempts = attempts
        self.elapsed = elapsed
        self.last = last


def call_with_retries(
    fn: Callable[[], T],
    policy: RetryPolicy,
    is_transient: Callable[[BaseException], bool],
    *,
    on_retry: Callable[[int, float, BaseException], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """`fn()`, tried again after a transient error until the policy's attempts are spent.

    A non-transient error propagates at once; when every attempt failed transiently,
    `RetriesExhausted` carries the last error. `on_retry(next_attempt, delay, error)` is told
    before each wait.
    """
    start = clock()
    delays = policy.delays()
    attempt = 1
    while True:
        try:
            return fn()
        except Exception as error:
            if not is_transient(error):
                raise
            delay = next(delays, None)
            if delay is None:
                raise RetriesExhausted(attempt, clock() - start, error) from error
            attempt += 1
            if on_retry is not None:
                on_retry(attempt, delay, error)
            sleep(delay)


def add_retry_arguments(parser: argparse.ArgumentParser) -> None:
    """`--attempts`, `--backoff`, `--request-timeout`, defaulting to the environment variables.

    A variable is read only when its flag is not given; a bad one is a usage error (exit 2)
    naming the variable (see cli_types).
    """
    group = parser.add_argument_group("MLflow connection")
    group.add_argument(
        "--attempts",
        type=positive_int,
        default=EnvDefault(ENV_ATTEMPTS, positive_int, DEFAULT_ATTEMPTS),
        metavar="N",
        help=f"tries of each MLflow call before giving up (${ENV_ATTEMPTS}, "
        f"default {DEFAULT_ATTEMPTS})",
    )
    group.add_argument(
        "--backoff",
        type=seconds,
        default=EnvDefault(ENV_BACKOFF, seconds, DEFAULT_BACKOFF),
        metavar="SECONDS",
        help=f"first wait between tries, doubled each time up to {MAX_BACKOFF:g}s "
        f"(${ENV_BACKOFF}, default {DEFAULT_BACKOFF:g})",
    )
    group.add_argument(
        "--request-timeout",
        type=positive_int,
        default=EnvDefault(ENV_REQUEST_TIMEOUT, positive_int, DEFAULT_REQUEST_TIMEOUT),
        metavar="SECONDS",
        help=f"longest wait for one MLflow answer (${ENV_REQUEST_TIMEOUT}, "
        f"default {DEFAULT_REQUEST_TIMEOUT})",
    )


def retry_from_namespace(ns: argparse.Namespace) -> RetryPolicy:
    """The policy that `add_retry_arguments` parsed."""
    return RetryPolicy(attempts=ns.attempts, backoff=ns.backoff, request_timeout=ns.request_timeout)
