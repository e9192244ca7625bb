"""Train: a random forest, logged to MLflow with its parameters; writes the MLflow run id.

MLflow is found through the environment (MLFLOW_TRACKING_URI, MLFLOW_EXPERIMENT_NAME), so the
same command logs to the cluster's tracking server or to a local run's store. The run is tagged
with the pipeline's lineage, which the operator and `mlpipeline run` give every step as
MLPIPELINE_* variables; the promotion checks these tags name the pipeline that promotes the model.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import mlflow
from mlflow.models import infer_signature
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import roc_auc_score

from fraud_detection.data import TRAIN, read_table

TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]
# The run tag of each lineage variable (docs/compiler.md, "Lineage and MLflow in every step").
LINEAGE_TAGS = {
    "MLPIPELINE_NAMESPACE": "mlpipeline.namespace",
    "MLPIPELINE_NAME": "mlpipeline.pipeline",
    "MLPIPELINE_GENERATION": "mlpipeline.generation",
    "MLPIPELINE_RUN": "mlpipeline.workflow",
    "MLPIPELINE_GIT_REVISION": "mlpipeline.git-revision",
}


def lineage_tags(environ: Mapping[str, str]) -> dict[str, str]:
    """The lineage variables that are set, as MLflow run tags."""
    return {tag: environ[name] for name, tag in LINEAGE_TAGS.items() if environ.get(name)}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="fraud_detection.train", description=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="directory from preprocess")
    parser.add_argument("--run-id-file", type=Path, required=True, help="file for the run id")
    parser.add_argument("--n-estimators", type=int, default=100, help="number of trees")
    parser.add_argument("--max-depth", type=int, default=12, help="depth of each tree")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the forest")
    args = parser.parse_args(argv)

    features, labels, _ = read_table(args.data / TRAIN)
    model = RandomForestClassifier(
        n_estimators=args.n_estimators,
        max_depth=args.max_depth,
        class_weight="balanced",
        random_state=args.seed,
        n_jobs=1,
    ).fit(features, labels)
    train_auc = float(roc_auc_score(labels, model.predict_proba(features)[:, 1]))

    with mlflow.start_run(tags=lineage_tags(os.environ)) as run:
        mlflow.log_params(
            {"n_estimators": args.n_estimators, "max_depth": args.max_depth, "seed": args.seed}
        )
        mlflow.log_metric("train_auc", train_auc)
        signature = infer_signature(features[:5], model.predict(features[:5]))
        # skops (MLflow's safe format) refuses types it does not know; these trees are ours.
        mlflow.sklearn.log_model(
            model, name="model", signature=signature, skops_trusted_types=TRUSTED_TYPES
        )
        run_id: str = run.info.run_id
    args.run_id_file.parent.mkdir(parents=True, exist_ok=True)
    args.run_id_file.write_text(run_id + "\n", encoding="utf-8")
    print(f"train: {args.n_estimators} trees, train AUC {train_auc:.4f}, MLflow run {run_id}")


if __name__ == "__main__":
    main()
