"""The promotion decision, without MLflow: gates, champion/challenger, reasons, metrics."""

from __future__ import annotations

import math

import pytest

from mlpipeline_operator.api.models import Gate, GateOp, MustBeat
from mlpipeline_operator.promotion.decision import (
    Decision,
    Holder,
    LineageCheck,
    check_lineage,
    compare,
    decide,
    evaluate_gates,
    fmt,
)

AUC = MustBeat(alias="champion", metric="auc", higher_is_better=True)
LOSS = MustBeat(alias="champion", metric="loss", higher_is_better=False)


def gate(metric: str, op: GateOp, value: float) -> Gate:
    return Gate(metric=metric, op=op, value=value)


@pytest.mark.parametrize(
    ("op", "actual", "passed"),
    [
        (">=", 0.95, True),
        (">=", 0.94, False),
        (">", 0.95, False),
        (">", 0.96, True),
        ("<=", 0.95, True),
        ("<=", 0.96, False),
        ("<", 0.95, False),
        ("<", 0.5, True),
        ("==", 0.95, True),
        ("==", 0.9500001, False),
    ],
)
def test_every_operator(op: GateOp, actual: float, passed: bool) -> None:
    (result,) = evaluate_gates([gate("auc", op, 0.95)], {"auc": actual})
    assert result.passed is passed


def test_failing_gate_names_the_gate_and_the_actual_value() -> None:
    decision = decide(
        "fraud", "3", "champion", evaluate_gates([gate("auc", ">=", 0.95)], {"auc": 0.91}), None
    )
    assert decision.decision == "Rejected"
    assert decision.reason == "auc 0.91 < 0.95 (gate auc >= 0.95)"
    assert decision.alias is None
    assert decision.version == "3"
    assert decision.metrics == {"auc": 0.91}


def test_every_failure_is_reported() -> None:
    gates = [gate("auc", ">=", 0.95), gate("accuracy", ">", 0.9), gate("loss", "<", 0.2)]
    decision = decide("m", "1", "champion", evaluate_gates(gates, {"auc": 0.9, "loss": 0.3}), None)
    assert decision.reason == (
        "auc 0.9 < 0.95 (gate auc >= 0.95); "
        "metric accuracy is missing from the run (gate accuracy > 0.9); "
        "loss 0.3 >= 0.2 (gate loss < 0.2)"
    )


def test_values_that_print_alike_are_printed_in_full() -> None:
    assert fmt(0.9499999, 0.95) == "0.9499999"
    assert fmt(0.95, 0.9499999) == "0.95"
    assert fmt(0.912345678) == "0.912346"
    result = evaluate_gates([gate("auc", ">=", 0.95)], {"auc": 0.94999999})[0]
    assert result.describe() == "auc 0.94999999 < 0.95 (gate auc >= 0.95)"


def test_all_gates_pass() -> None:
    gates = [gate("auc", ">=", 0.95), gate("accuracy", ">=", 0.9)]
    decision = decide(
        "fraud", "12", "champion", evaluate_gates(gates, {"auc": 0.97, "accuracy": 0.93}), None
    )
    assert decision.promoted
    assert decision.alias == "champion"
    assert decision.reason == "all gates passed: auc 0.97 >= 0.95, accuracy 0.93 >= 0.9"
    assert decision.summary("champion") == (
        "Promoted: fraud version 12 holds alias champion: " + decision.reason
    )


def test_no_gates_promotes() -> None:
    decision = decide("m", "1", "champion", [], None)
    assert decision.promoted
    assert decision.reason == "no gates"


def test_nan_metric_fails_a_gate() -> None:
    (result,) = evaluate_gates([gate("auc", ">=", 0.5)], {"auc": math.nan})
    assert not result.passed
    decision = decide("m", "1", "champion", [result], None)
    assert decision.reason == "auc nan < 0.5 (gate auc >= 0.5)"
    assert decision.metrics == {}  # JSON has no NaN


def test_better_challenger_wins() -> None:
    comparison = compare(AUC, {"auc": 0.97}, Holder("3", "r3", 0.95), "4")
    assert comparison.passed
    decision = decide("m", "4", "champion", [], comparison)
    assert decision.promoted
    assert decision.reason == (
        "no gates; auc 0.97 beats champion (version 3) 0.95 (higher is better)"
    )
    assert decision.metrics == {"auc": 0.97, "auc@champion": 0.95}


@pytest.mark.parametrize("challenger", [0.93, 0.95])
def test_worse_or_equal_challenger_loses(challenger: float) -> None:
    comparison = compare(AUC, {"auc": challenger}, Holder("3", "r3", 0.95), "4")
    decision = decide("m", "4", "champion", [], comparison)
    assert decision.decision == "Rejected"
    assert decision.reason == (
        f"auc {challenger:g} does not beat champion (version 3) 0.95 (higher is better)"
    )


def test_lower_is_better_for_losses() -> None:
    assert compare(LOSS, {"loss": 0.1}, Holder("3", "r3", 0.2), "4").passed
    lost = compare(LOSS, {"loss": 0.3}, Holder("3", "r3", 0.2), "4")
    assert not lost.passed
    assert lost.describe() == "loss 0.3 does not beat champion (version 3) 0.2 (lower is better)"


def test_no_holder_means_nothing_to_beat() -> None:
    comparison = compare(AUC, {"auc": 0.5}, None, "1")
    assert comparison.passed
    assert comparison.describe() == "no version holds alias champion yet: nothing to beat"


def test_the_holder_itself_is_not_beaten_again() -> None:
    comparison = compare(AUC, {"auc": 0.9}, Holder("4", "r4", 0.9), "4")
    assert comparison.passed
    assert comparison.describe() == "this version already holds alias champion"
    assert decide("m", "4", "champion", [], comparison).metrics == {"auc": 0.9}


def test_challenger_without_the_metric_loses() -> None:
    comparison = compare(AUC, {}, None, "1")
    assert not comparison.passed
    assert "metric auc is missing from the run" in comparison.describe()


def test_holder_without_the_metric_cannot_be_beaten() -> None:
    comparison = compare(AUC, {"auc": 0.99}, Holder("3", "r3", None), "4")
    assert not comparison.passed
    assert comparison.describe() == (
        "cannot compare with champion (version 3): it has no metric auc (run r3); "
        "move or delete alias champion to let a challenger take it"
    )


def test_gate_and_comparison_failures_together() -> None:
    gates = evaluate_gates([gate("auc", ">=", 0.95)], {"auc": 0.94})
    comparison = compare(AUC, {"auc": 0.94}, Holder("3", "r3", 0.96), "4")
    decision = decide("m", "4", "champion", gates, comparison)
    assert decision.reason == (
        "auc 0.94 < 0.95 (gate auc >= 0.95); "
        "auc 0.94 does not beat champion (version 3) 0.96 (higher is better)"
    )
    assert decision.summary("champion") == (
        "Rejected: m version 4 (alias champion not moved): " + decision.reason
    )


OURS = {
    "mlpipeline.namespace": "ml",
    "mlpipeline.pipeline": "fraud",
    "mlpipeline.generation": "7",
    "mlpipeline.workflow": "fraud-g7-1a2b3c",
}


@pytest.mark.parametrize(
    ("run_tags", "expected"),
    [
        pytest.param({}, LineageCheck("Unknown"), id="no lineage tags"),
        pytest.param(
            {"other": "x", "mlpipeline.generation": "7"},
            LineageCheck("Unknown"),
            id="a generation alone names no pipeline",
        ),
        pytest.param(
            dict(OURS, **{"mlpipeline.workflow": "fraud-g7-9z"}),
            LineageCheck("Matched"),
            id="another run of the same generation",
        ),
        pytest.param(
            dict(OURS, **{"mlpipeline.generation": "5"}),
            LineageCheck("Matched", "the run was logged by generation 5"),
            id="an earlier generation (a cached step)",
        ),
        pytest.param(
            dict(OURS, **{"mlpipeline.pipeline": "churn"}),
            LineageCheck(
                "Mismatched",
                "the run was logged by pipeline ml/churn, not ml/fraud (its tags "
                "mlpipeline.namespace and mlpipeline.pipeline): promote a run of this pipeline",
            ),
            id="another pipeline",
        ),
        pytest.param(
            {"mlpipeline.namespace": "staging"},
            LineageCheck(
                "Mismatched",
                "the run was logged by pipeline staging/?, not ml/fraud (its tags "
                "mlpipeline.namespace and mlpipeline.pipeline): promote a run of this pipeline",
            ),
            id="another namespace",
        ),
    ],
)
def test_lineage_check(run_tags: dict[str, str], expected: LineageCheck) -> None:
    assert check_lineage(run_tags, OURS) == expected


def test_a_mismatched_lineage_rejects_what_would_pass_and_a_match_notes_the_generation() -> None:
    gates = evaluate_gates([Gate(metric="auc", op=">=", value=0.9)], {"auc": 0.95})
    mismatched = check_lineage({"mlpipeline.pipeline": "churn"}, OURS)
    assert decide("fraud", "3", "champion", gates, None, mismatched) == Decision(
        "Rejected", "fraud", "3", None, mismatched.note, {"auc": 0.95}, "Mismatched"
    )
    earlier = check_lineage(dict(OURS, **{"mlpipeline.generation": "5"}), OURS)
    assert decide("fraud", "3", "champion", gates, None, earlier) == Decision(
        "Promoted",
        "fraud",
        "3",
        "champion",
        "gate passed: auc 0.95 >= 0.9; the run was logged by generation 5",
        {"auc": 0.95},
        "Matched",
    )
