"""The operator SIGKILLed at random moments during a burst of pipeline creations and spec changes,
restarted each time, on the real control plane (tests/integration/kill_loop.py does the loop).

Run: `make benchmark-kill-loop` (`python -m benchmarks.kill_loop`; needs `make binaries`).
Prints the seed (`--seed` replays the same plan and kill moments), then: the operator's
restarts, the time from the last kill until every pipeline has its current generation's run and
a status that names it, Workflows per (pipeline, generation), generations superseded before the
operator saw them, and statuses right or wrong once every run is marked Succeeded.
"""

from __future__ import annotations

import argparse
import random
import tempfile
from collections import Counter
from pathlib import Path

from tests.controlplane.harness import running_control_plane
from tests.integration.kill_loop import KillLoop


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pipelines", type=int, default=200)
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--updates", type=int, default=100, help="spec changes in the burst")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    print(f"seed {seed}", flush=True)
    with running_control_plane() as plane, tempfile.TemporaryDirectory() as workdir:
        namespace = "kill-loop"
        plane.kube.create_namespace(namespace)
        result = KillLoop(
            plane,
            namespace,
            Path(workdir),
            seed=seed,
            pipelines=args.pipelines,
            kills=args.kills,
            updates=args.updates,
        ).run()
    per_generation = Counter(len(names) for names in result.runs.values())
    print(
        f"{result.pipelines} pipelines, {sum(result.generations.values())} generations, "
        f"{result.kills} kills ({dict(result.triggers)}), {result.restarts} operator restarts"
    )
    print(f"converged {result.converge_seconds:.1f} s after the last kill")
    print(
        "Workflows per (pipeline, generation): "
        + ", ".join(f"{n}: {count}" for n, count in sorted(per_generation.items()))
        + f"; generations superseded before the operator saw them (no run): "
        f"{result.skipped_generations}; pipelines without their current run: "
        f"{len(result.missing_current)}"
    )
    print(
        f"statuses right: {result.statuses_right}, wrong: {len(result.wrong)} "
        f"(every run marked Succeeded; all Succeeded {result.finish_seconds:.1f} s later); "
        f"Invalid events: {len(result.invalid_events)}"
    )
    for line in result.wrong[:20]:
        print(f"  wrong: {line}")
    if result.duplicated or result.missing_current or result.wrong or result.invalid_events:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
