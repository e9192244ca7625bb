"""Leader failover (tests/integration/failover.py): the follower takes over from a SIGKILLed
leader only once the leader's peering record has expired, and promptly after; no pipeline gets a
second run or loses a status write while both replicas are up."""

from __future__ import annotations

from pathlib import Path

from mlpipeline_operator.reconcile.config import OperatorConfig
from tests.controlplane.harness import ControlPlane
from tests.integration.failover import Failover

# From the leader's record expiring to the follower's Workflow: kopf's re-evaluation at the
# deadline, its watches started again, the new pipeline listed and reconciled, and this test's
# polling (docs/testing.md, "Leader failover": well under a second when measured).
MARGIN = 5.0
TRIES = 3


def test_follower_takes_over_once_the_dead_leaders_record_expires(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    lifetime = OperatorConfig.peering_lifetime  # what ships: the default
    failover = Failover(control_plane, namespace, tmp_path, lifetime, log=print)
    failover.start()
    try:
        for index in range(TRIES):
            t = failover.take_over(index)
            # Not before the record expired (log times have millisecond precision, creation
            # timestamps whole seconds)...
            assert t.resumed >= t.record_expired - 0.001, t
            assert t.workflow_created >= int(t.record_expired), t
            # ...and promptly after: the failover is bounded by the lifetime plus the margin.
            assert t.killed >= t.last_renewal, t
            assert t.acted - t.record_expired <= MARGIN, t
            assert t.failover <= lifetime + MARGIN, t
        failover.check_no_duplicate_effect()
    finally:
        failover.stop()
