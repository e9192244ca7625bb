"""The promotion request survives the trip through command-line flags."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hack.golden import SAMPLES
from mlpipeline_operator.api.models import Gate, MustBeat
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
