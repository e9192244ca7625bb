"""The promotion request survives the trip through command-line flags."""

from __future__ import annotations

import pytest

from mlpipeline_operator.api.models import Gate, MustBeat
from mlpipeline_operator.promotion.request import PromotionRequest, parse_args


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
            Gate(metric="a>b", op="==", value=1),
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
