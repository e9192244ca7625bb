"""Bounded retries of MLflow calls, and their flags and environment variables."""

from __future__ import annotations

import pytest

from mlpipeline_operator.cli_types import ArgumentParser
from mlpipeline_operator.promotion.request import add_arguments
from mlpipeline_operator.promotion.retry import (
    ENV_ATTEMPTS,
    ENV_BACKOFF,
    ENV_REQUEST_TIMEOUT,
    RetriesExhausted,
    RetryPolicy,
    call_with_retries,
    retry_from_namespace,
)

REQUIRED = ["--tracking-uri", "http://m:5000", "--model", "m", "--run-id", "r"]


class Flaky:
    """Fails with `error` the first `failures` calls, then answers "ok"."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "ok"


def transient(error: BaseException) -> bool:
    return isinstance(error, ConnectionError)


def test_delays_double_up_to_the_cap() -> None:
    assert list(RetryPolicy(attempts=1).delays()) == []
    assert list(RetryPolicy(attempts=4, backoff=0.5).delays()) == [0.5, 1.0, 2.0]
    assert list(RetryPolicy(attempts=9, backoff=4).delays())[-3:] == [30.0, 30.0, 30.0]
    assert RetryPolicy(attempts=3, backoff=1, request_timeout=10).worst_case_seconds() == 33


def test_transient_errors_are_retried_until_success() -> None:
    slept: list[float] = []
    retried: list[int] = []
    flaky = Flaky(2, ConnectionError("refused"))
    result = call_with_retries(
        flaky,
        RetryPolicy(attempts=3, backoff=0.25),
        transient,
        on_retry=lambda attempt, _delay, _error: retried.append(attempt),
        sleep=slept.append,
    )
    assert result == "ok"
    assert flaky.calls == 3
    assert slept == [0.25, 0.5]
    assert retried == [2, 3]


def test_attempts_are_bounded() -> None:
    slept: list[float] = []
    flaky = Flaky(10, ConnectionError("refused"))
    with pytest.raises(RetriesExhausted) as caught:
        call_with_retries(flaky, RetryPolicy(attempts=3, backoff=1), transient, sleep=slept.append)
    assert flaky.calls == 3
    assert slept == [1, 2]
    assert caught.value.attempts == 3
    assert isinstance(caught.value.last, ConnectionError)


def test_other_errors_are_not_retried() -> None:
    flaky = Flaky(1, ValueError("bad request"))
    with pytest.raises(ValueError):
        call_with_retries(flaky, RetryPolicy(attempts=5), transient, sleep=lambda _: None)
    assert flaky.calls == 1


def parse(argv: list[str]) -> RetryPolicy:
    parser = ArgumentParser(prog="mlpipeline promote")
    add_arguments(parser)
    return retry_from_namespace(parser.parse_args([*REQUIRED, *argv]))


def test_flags_then_environment_then_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (ENV_ATTEMPTS, ENV_BACKOFF, ENV_REQUEST_TIMEOUT):
        monkeypatch.delenv(name, raising=False)
    assert parse([]) == RetryPolicy()
    monkeypatch.setenv(ENV_ATTEMPTS, "2")
    monkeypatch.setenv(ENV_BACKOFF, "0.1")
    monkeypatch.setenv(ENV_REQUEST_TIMEOUT, "3")
    assert parse([]) == RetryPolicy(attempts=2, backoff=0.1, request_timeout=3)
    assert parse(["--attempts", "7", "--backoff", "0", "--request-timeout", "1"]) == RetryPolicy(
        attempts=7, backoff=0, request_timeout=1
    )


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (
            ["--attempts", "0"],
            {},
            'mlpipeline promote: error: argument --attempts: "0": expected a positive integer',
        ),
        (
            ["--backoff", "-1"],
            {},
            'mlpipeline promote: error: argument --backoff: "-1": '
            "expected a number of seconds >= 0, e.g. 30 or 0.5",
        ),
        (
            [],
            {ENV_REQUEST_TIMEOUT: "soon"},
            'mlpipeline promote: MLPIPELINE_PROMOTE_REQUEST_TIMEOUT="soon": '
            "expected a positive integer",
        ),
    ],
)
def test_bad_values_are_usage_errors(
    argv: list[str],
    env: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as caught:
        parse(argv)
    assert caught.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == message


def test_a_flag_wins_over_a_bad_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_REQUEST_TIMEOUT, "soon")
    assert parse(["--request-timeout", "3"]).request_timeout == 3
