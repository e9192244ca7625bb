"""Evaluate: the logged model on the held-out set; metrics go to its MLflow run and a report.

The promotion step's gates read these metrics from the run (auc, accuracy, precision, recall, f1).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import mlflow
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from fraud_detection.data import TEST, read_table


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="fraud_detection.evaluate", description=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="directory from preprocess")
    parser.add_argument("--run-id", required=True, help="MLflow run of the trained model")
    parser.add_argument("--report", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args(argv)

    features, labels, _ = read_table(args.data / TEST)
    model = mlflow.sklearn.load_model(f"runs:/{args.run_id}/model")
    scores = model.predict_proba(features)[:, 1]
    predicted = (scores >= 0.5).astype(int)
    metrics = {
        "auc": float(roc_auc_score(labels, scores)),
        "accuracy": float(accuracy_score(labels, predicted)),
        "precision": float(precision_score(labels, predicted, zero_division=0)),
        "recall": float(recall_score(labels, predicted)),
        "f1": float(f1_score(labels, predicted)),
    }
    with mlflow.start_run(run_id=args.run_id):
        mlflow.log_metrics(metrics)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    report = {"run_id": args.run_id, "test_rows": len(labels), "metrics": metrics}
    args.report.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
    print(f"evaluate: {shown}")


if __name__ == "__main__":
    main()
