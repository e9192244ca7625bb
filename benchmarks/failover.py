"""Leader failover between two replicas with kopf peering, on the real control plane
(tests/integration/failover.py does each try).

Run: `make benchmark-failover` (`python -m benchmarks.failover`; needs `make binaries`).
Each try starts a new leader (the follower pauses in its favour), waits until the leader has
handled a pipeline, then kills it with SIGKILL at a random moment of its renewal cycle (the
seed is printed; `--seed` replays it) and creates a pipeline: the failover is the time from the
kill until that pipeline's Workflow exists. Prints each try, then p50 and worst; `--lifetime`
sets MLPIPELINE_PEERING_LIFETIME (kopf's own default was 60).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from mlpipeline_operator.reconcile.config import OperatorConfig
from tests.controlplane.harness import running_control_plane
from tests.integration.failover import Failover


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tries", type=int, default=10)
    parser.add_argument("--lifetime", type=int, default=OperatorConfig.peering_lifetime)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    print(f"seed {seed}; peering lifetime {args.lifetime} s", flush=True)
    # kopf renews a record 5 to 10 s before it expires (at least every second): a moment drawn
    # over that interval's longest span, after the leader has acted.
    renewal = max(1, args.lifetime - 5)
    with running_control_plane() as plane, tempfile.TemporaryDirectory() as workdir:
        namespace = "failover"
        plane.kube.create_namespace(namespace)
        failover = Failover(plane, namespace, Path(workdir), args.lifetime, log=print)
        failover.start()
        try:
            takeovers = [
                failover.take_over(index, lambda: time.sleep(rng.uniform(0, renewal)))
                for index in range(args.tries)
            ]
            failover.check_no_duplicate_effect()
        finally:
            failover.stop()
    times = sorted(t.failover for t in takeovers)
    early = [t for t in takeovers if t.resumed < t.record_expired - 0.001]
    print(
        f"failover over {len(times)} tries: p50 {statistics.median(times):.1f} s, "
        f"worst {times[-1]:.1f} s, best {times[0]:.1f} s; from the record's expiry to the "
        f"follower's Workflow: worst {max(t.acted - t.record_expired for t in takeovers):.2f} s; "
        f"takeovers before the record expired: {len(early)}; one run per pipeline, statuses "
        "right after both were up: yes"
    )


if __name__ == "__main__":
    main()
