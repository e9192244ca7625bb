"""Ingest: card transactions, of which a few percent are fraud.

The data set is generated, deterministically from `--seed`, with scikit-learn's
`make_classification`: nothing is downloaded, and every run on every machine sees the same rows.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.datasets import make_classification

from fraud_detection.data import write_table

FEATURES = 16


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="fraud_detection.ingest", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="CSV file to write")
    parser.add_argument("--rows", type=int, default=6000, help="number of transactions")
    parser.add_argument("--fraud-rate", type=float, default=0.08, help="share of fraud")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the data")
    args = parser.parse_args(argv)

    features, labels = make_classification(
        n_samples=args.rows,
        n_features=FEATURES,
        n_informative=8,
        n_redundant=4,
        weights=[1 - args.fraud_rate],
        flip_y=0.01,
        class_sep=1.2,
        random_state=args.seed,
    )
    columns = [f"v{i:02d}" for i in range(FEATURES)]
    write_table(args.out, features.astype(np.float64), labels.astype(np.int64), columns)
    print(f"ingest: {args.rows} transactions, {int(labels.sum())} fraudulent -> {args.out}")


if __name__ == "__main__":
    main()
