"""The promotion step's output files, and `status.promotion` made from them."""

from __future__ import annotations

import json
from pathlib import Path

from mlpipeline_operator.api.status import PromotionStatus
from mlpipeline_operator.promotion.decision import Decision
from mlpipeline_operator.promotion.outputs import read_outputs, status_from_outputs, write_outputs
from mlpipeline_operator.promotion.request import OUTPUT_NAMES

PROMOTED = Decision(
    "Promoted",
    "fraud",
    "12",
    "champion",
    "all gates passed",
    {"auc": 0.97, "auc@champion": 0.95},
    "Matched",
)


def test_every_output_file_is_written(tmp_path: Path) -> None:
    write_outputs(PROMOTED, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(OUTPUT_NAMES)
    assert read_outputs(tmp_path / "out") == {
        "decision": "Promoted",
        "version": "12",
        "alias": "champion",
        "reason": "all gates passed",
        "metrics": '{"auc": 0.97, "auc@champion": 0.95}',
        "lineage": "Matched",
    }


def test_rejection_has_no_alias(tmp_path: Path) -> None:
    write_outputs(Decision("Rejected", "fraud", "13", None, "auc 0.9 < 0.95"), tmp_path)
    outputs = read_outputs(tmp_path)
    assert outputs["alias"] == ""
    assert outputs["metrics"] == "{}"
    assert outputs["lineage"] == ""  # not checked
    assert status_from_outputs(outputs) == PromotionStatus(
        decision="Rejected", version="13", reason="auc 0.9 < 0.95"
    )


def test_round_trip_to_status(tmp_path: Path) -> None:
    write_outputs(PROMOTED, tmp_path)
    status = status_from_outputs(read_outputs(tmp_path), model="fraud", run="fraud-g7-1a2b3c")
    assert status == PromotionStatus(
        decision="Promoted",
        model="fraud",
        version="12",
        alias="champion",
        reason="all gates passed",
        metrics={"auc": 0.97, "auc@champion": 0.95},
        run="fraud-g7-1a2b3c",
        lineage="Matched",
    )
    assert status.model_dump(by_alias=True, exclude_none=True)["decision"] == "Promoted"


def test_nothing_written_is_no_status(tmp_path: Path) -> None:
    assert status_from_outputs(read_outputs(tmp_path)) is None
    assert status_from_outputs({}) is None
    assert status_from_outputs(dict.fromkeys(OUTPUT_NAMES, "")) is None
    assert status_from_outputs({"decision": "Maybe"}) is None


def test_argo_values_are_trimmed_and_empty_means_none() -> None:
    status = status_from_outputs(
        {"decision": "Rejected\n", "version": " 4\n", "alias": "", "reason": "", "metrics": ""}
    )
    assert status == PromotionStatus(decision="Rejected", version="4")


def test_failed_step_reports_failed() -> None:
    status = status_from_outputs(
        {"decision": "Failed", "reason": "MLflow at http://m:5000 is unavailable"}
    )
    assert status is not None
    assert status.decision == "Failed"
    assert status.version is None


def test_bad_metrics_and_oversize_values_never_break_the_status() -> None:
    metrics = {f"m{i}": i for i in range(100)} | {"flag": True, "name": "x"}
    status = status_from_outputs(
        {
            "decision": "Promoted",
            "version": "9" * 100,
            "alias": "a" * 100,
            "reason": "r" * 40000,
            "metrics": json.dumps(metrics),
        },
        model="m" * 300,
    )
    assert status is not None
    assert len(status.version or "") == 32
    assert len(status.alias or "") == 63
    assert len(status.reason or "") == 32768
    assert len(status.model or "") == 250
    assert len(status.metrics) == 64
    assert "flag" not in status.metrics
    for text in ("not json", "[1, 2]", '{"auc": NaN, "acc": 1}'):
        parsed = status_from_outputs({"decision": "Rejected", "metrics": text})
        assert parsed is not None
        assert parsed.metrics == ({"acc": 1.0} if "acc" in text else {})
