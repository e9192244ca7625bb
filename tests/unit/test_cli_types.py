"""Flag value types and defaults from MLPIPELINE_* variables, shared by every command."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import pytest

from hack.golden import SAMPLES
from mlpipeline_operator import cli
from mlpipeline_operator.cli_types import (
    ArgumentParser,
    EnvDefault,
    integer,
    non_negative_number,
    one_of,
    positive_int,
    positive_seconds,
    seconds,
)


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (integer, "abc", '"abc": expected an integer'),
        (positive_int, "0", '"0": expected a positive integer'),
        (positive_int, "1.5", '"1.5": expected a positive integer'),
        (non_negative_number, "nan", '"nan": expected a finite number >= 0'),
        (non_negative_number, "inf", '"inf": expected a finite number >= 0'),
        (non_negative_number, "-1", '"-1": expected a finite number >= 0'),
        (seconds, "10s", '"10s": expected a number of seconds >= 0, e.g. 30 or 0.5'),
        (positive_seconds, "0", '"0": expected a number of seconds > 0, e.g. 30 or 0.5'),
        (one_of(("a", "b")), "c", '"c": expected one of a, b'),
    ],
)
def test_types_name_the_text_and_what_is_valid(
    parse: Callable[[str], object], text: str, message: str
) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as caught:
        parse(text)
    assert str(caught.value) == message


def test_types_accept_their_values() -> None:
    assert (integer("-3"), positive_int("7"), non_negative_number("0")) == (-3, 7, 0.0)
    assert (seconds("0.5"), positive_seconds("30")) == (0.5, 30.0)


def _parser(env: dict[str, str]) -> ArgumentParser:
    parser = ArgumentParser(prog="tool")
    parser.add_argument(
        "--count", type=positive_int, default=EnvDefault("X_COUNT", positive_int, 3, env=env)
    )
    parser.add_argument("--name", default=EnvDefault("X_NAME", str, "n", keep_empty=True, env=env))
    return parser


def test_a_variable_is_the_default_and_a_flag_wins() -> None:
    assert vars(_parser({}).parse_args([])) == {"count": 3, "name": "n"}
    env = {"X_COUNT": "5", "X_NAME": ""}
    assert vars(_parser(env).parse_args([])) == {"count": 5, "name": ""}
    assert _parser({"X_COUNT": "bad"}).parse_args(["--count", "2"]).count == 2
    assert _parser({"X_COUNT": ""}).parse_args([]).count == 3  # empty: unset


def test_a_bad_variable_is_a_usage_error_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        _parser({"X_COUNT": "-1"}).parse_args([])
    assert caught.value.code == 2
    assert capsys.readouterr().err == 'tool: X_COUNT="-1": expected a positive integer\n'


def test_a_bad_operator_variable_stops_only_the_operator(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLPIPELINE_PRIORITY", "abc")
    sample = sorted(SAMPLES.glob("*.yaml"))[0]
    assert cli.main(["validate", str(sample)]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as caught:
        cli.main(["operator"])
    assert caught.value.code == 2
    assert capsys.readouterr().err == (
        'mlpipeline operator: MLPIPELINE_PRIORITY="abc": expected an integer\n'
    )


def test_a_bad_operator_flag_keeps_argparse_s_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["operator", "--priority", "abc"])
    assert caught.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        'mlpipeline operator: error: argument --priority: "abc": expected an integer'
    )
