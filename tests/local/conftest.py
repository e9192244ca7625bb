"""The local runner's tier: every test under tests/local/ is marked ``local`` (`make local`;
`make unit` leaves them out): they start real step processes, and those marked ``example`` run
the fraud-detection example end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.local)
