"""The files the steps exchange: CSV tables with feature columns and the label `is_fraud`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

LABEL = "is_fraud"
TRAIN = "train.csv"
TEST = "test.csv"

Matrix = npt.NDArray[np.float64]
Labels = npt.NDArray[np.int64]


def write_table(path: Path, features: Matrix, labels: Labels, columns: list[str]) -> None:
    """Features and labels as one CSV file with a header line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = np.column_stack([features, labels])
    header = ",".join([*columns, LABEL])
    fmt = ["%.6f"] * len(columns) + ["%d"]
    np.savetxt(path, table, delimiter=",", header=header, comments="", fmt=fmt)


def read_table(path: Path) -> tuple[Matrix, Labels, list[str]]:
    """The inverse of `write_table`: features, labels, feature column names."""
    with path.open(encoding="utf-8") as f:
        columns = f.readline().strip().split(",")
    table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    if columns[-1] != LABEL:
        raise ValueError(f"{path}: the last column must be {LABEL}, got {columns[-1]}")
    return table[:, :-1], table[:, -1].astype(np.int64), columns[:-1]
