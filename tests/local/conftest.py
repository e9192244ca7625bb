"""Markers of the local runner's tests."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "example: runs the fraud-detection example end to end (scikit-learn, a local MLflow "
        "store and `mlpipeline promote`); about two minutes",
    )
