"""Fixtures of the end-to-end tier: one single-node cluster for the whole session.

Every test under tests/e2e/ is marked ``e2e``. The cluster needs root and Linux; where it
cannot run, the fixture fails with the reason (`make test` says so before it starts), it
never skips.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.cluster import NodeCluster

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark this tier's tests and run them last, so that its cluster (a session fixture, up
    until the session ends) does not load the machine while the other tiers run."""
    ours = [item for item in items if _HERE in item.path.resolve().parents]
    for item in ours:
        item.add_marker(pytest.mark.e2e)
    items[:] = [item for item in items if item not in ours] + ours


@pytest.fixture(scope="session")
def cluster() -> Iterator[NodeCluster]:
    """The single-node cluster, started once, stopped at the end of the session."""
    with NodeCluster() as started:
        yield started
