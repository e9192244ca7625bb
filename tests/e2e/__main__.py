"""`python -m tests.e2e`: the single-node cluster in the foreground (`make e2e-cluster`).

Prints each of KUBECONFIG, MLFLOW_TRACKING_URI, MLFLOW_CLUSTER_URI, STEP_IMAGE,
PROMOTION_IMAGE and PIPELINE_NAMESPACE once as NAME=VALUE, then READY. SIGINT or SIGTERM
stops everything and undoes every change to this machine.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

from tests.controlplane.harness import ControlPlaneError
from tests.e2e.cluster import NodeCluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.e2e",
        description="Start a single-node cluster (kubelet, containerd, Argo's controller, an S3 "
        "store, mlflow server) on this machine; SIGINT or SIGTERM stops it. Needs root.",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the working directory (logs) after stopping"
    )
    args = parser.parse_args(argv)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    cluster = NodeCluster(keep_workdir=args.keep)
    try:
        started = time.monotonic()
        cluster.start()
        print(
            f"cluster ready in {time.monotonic() - started:.0f}s; logs in {cluster.workdir}",
            file=sys.stderr,
            flush=True,
        )
        for line in cluster.env_lines():
            print(line, flush=True)
        print("READY", flush=True)
        while not stop.wait(1.0):
            cluster.check_alive()
    except ControlPlaneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        print("stopping the cluster ...", file=sys.stderr, flush=True)
        cluster.stop()
    print("stopped.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
