"""The promotion request survives the trip through command-line flags."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from hack.golden import SAMPLES
from mlpipeline_operator.api.models import Gate, MustBeat
from mlpipeline_operator.cli import main
from mlpipeline_operator.promotion.request import (
    PromotionRequest,
    format_gate,
    parse_args,
    parse_gate,
)


def test_round_trip() -> None:
    request = PromotionRequest(
        tracking_uri="http://mlflow:5000",
        model="fraud",
        run_id="abc",
        artifact_path="model",
        alias="champion",
        gates=(
            Gate(metric="auc", op=">=", value=0.95),
            Gate(metric="loss", op="<", value=0.2),
            # Every character MLflow allows in a metric name: letters, digits, _ - . / : space.
            Gate(metric="val/top-1 acc:é_2", op="==", value=1),
        ),
        must_beat=MustBeat(alias="champion", metric="rmse", higher_is_better=False),
        fail_on_reject=True,
        lineage={"namespace": "ml", "pipeline": "fraud", "note": "a=b"},
        output_dir="/tmp/out",
    )
    assert parse_args(request.to_args()) == request


def test_bad_gate_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        parse_args(["--tracking-uri", "x", "--model", "m", "--run-id", "r", "--gate", "auc~1"])
    assert caught.value.code == 2
    assert 'bad gate "auc~1"' in capsys.readouterr().err


@pytest.mark.parametrize("value", [0.95, 200.0, 0.9512345678, 1e-9, 123456789.0])
def test_thresholds_survive_exactly(value: float) -> None:
    gate = Gate(metric="auc", op=">=", value=value)
    assert parse_gate(format_gate(gate)) == gate


def test_short_thresholds_stay_short() -> None:
    assert format_gate(Gate(metric="auc", op=">=", value=0.95)) == "auc>=0.95"
    assert format_gate(Gate(metric="n", op="==", value=200)) == "n==200"


def test_promote_flags_and_validate_do_not_import_mlflow() -> None:
    sample = sorted(SAMPLES.glob("*.yaml"))[0]
    code = (
        "import sys\nfrom mlpipeline_operator.cli import build_parser, main\n"
        "build_parser().parse_args(['promote', '--tracking-uri', 'x', '--model', 'm',"
        " '--run-id', 'r'])\n"
        f"assert main(['validate', '-q', {str(sample)!r}]) == 0\n"
        "assert not any(m.startswith('mlflow') for m in sys.modules), 'mlflow imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


_GRAMMAR = (
    "write METRIC OP VALUE with OP one of >=, >, <=, <, == and VALUE a number, e.g. auc>=0.95"
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("auc>>0.9", f'bad gate "auc>>0.9": {_GRAMMAR}'),
        ("auc=>0.9", f'bad gate "auc=>0.9": {_GRAMMAR}'),
        ("auc>=nan", f'bad gate "auc>=nan": {_GRAMMAR}'),
        ("auc>=inf", f'bad gate "auc>=inf": {_GRAMMAR}'),
        ("auc>=0x1", f'bad gate "auc>=0x1": {_GRAMMAR}'),
        ("auc>=", f'bad gate "auc>=": {_GRAMMAR}'),
        (">=0.9", 'bad gate ">=0.9": metric: must not be empty'),
        (" >= 0.9", 'bad gate " >= 0.9": metric: must not be empty'),
        (
            "auc>=1e999",
            'bad gate "auc>=1e999": value: expected a finite number, got the number inf',
        ),
    ],
)
def test_bad_gates_are_refused(text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as caught:
        parse_gate(text)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("text", "gate"),
    [
        ("auc >= 0.9", Gate(metric="auc", op=">=", value=0.9)),
        ("  loss<  -1.5e-3 ", Gate(metric="loss", op="<", value=-0.0015)),
        ("val/top 1 == 1", Gate(metric="val/top 1", op="==", value=1)),
    ],
)
def test_gates_read_as_written(text: str, gate: Gate) -> None:
    assert parse_gate(text) == gate


def test_bad_gate_flag_is_a_usage_error_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["promote", "--tracking-uri", "x", "--model", "m", "--run-id", "r", "--gate", "auc>>1"]
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f'mlpipeline promote: error: argument --gate: bad gate "auc>>1": {_GRAMMAR}'
    )
