"""Preprocess: a stratified train/test split, features standardised with the train set's scale."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from fraud_detection.data import TEST, TRAIN, read_table, write_table


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="fraud_detection.preprocess", description=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="CSV from the ingest step")
    parser.add_argument("--out", type=Path, required=True, help="directory to write")
    parser.add_argument("--test-size", type=float, default=0.25, help="share kept for testing")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the split")
    args = parser.parse_args(argv)

    features, labels, columns = read_table(args.data)
    x_train, x_test, y_train, y_test = train_test_split(
        features, labels, test_size=args.test_size, stratify=labels, random_state=args.seed
    )
    scaler = StandardScaler().fit(x_train)
    args.out.mkdir(parents=True, exist_ok=True)
    write_table(args.out / TRAIN, scaler.transform(x_train), y_train, columns)
    write_table(args.out / TEST, scaler.transform(x_test), y_test, columns)
    scale = {"columns": columns, "mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist()}
    (args.out / "scaler.json").write_text(json.dumps(scale, indent=2) + "\n", encoding="utf-8")
    print(f"preprocess: {len(y_train)} rows to train, {len(y_test)} to test -> {args.out}")


if __name__ == "__main__":
    main()
