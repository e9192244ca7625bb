"""The operator SIGKILLed at random moments during a burst of creations and spec changes, and
restarted each time (tests/integration/kill_loop.py): nothing lost, nothing done twice."""

from __future__ import annotations

import random
from pathlib import Path

from tests.controlplane.harness import ControlPlane
from tests.integration.kill_loop import KillLoop


def test_kill_loop_leaves_one_run_per_generation_and_right_statuses(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    seed = random.randrange(2**32)
    print(f"kill loop seed: {seed}")  # shown on failure, to replay the same moments
    result = KillLoop(
        control_plane, namespace, tmp_path, seed=seed, pipelines=100, kills=10, updates=40
    ).run()
    assert result.restarts == 10
    assert result.duplicated == [], f"seed {seed}"
    assert result.missing_current == [], f"seed {seed}"
    assert result.wrong == [], f"seed {seed}"
    assert result.invalid_events == [], f"seed {seed}"
    assert result.statuses_right == 100
