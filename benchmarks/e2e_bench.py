"""The example on the real single-node cluster, side by side with the local runner.

Run: `make benchmark-e2e` (`python -m benchmarks.e2e_bench`; needs root, `make binaries` and
`make images`). It starts the cluster of the end-to-end tier (the operator installed by its
chart) and, --rounds times, alternately:

- applies the fraud-detection example (a new generation each round) and measures the wall
  time from `kubectl apply` until the MLPipeline reports the run Succeeded;
- runs the same pipeline with `mlpipeline run` on this machine (fresh run directory, a local
  MLflow store), and measures its wall time.

It also reports, per cluster run: the CPU seconds the operator's pods used (their cgroups'
`cpuacct.usage`, both replicas); and the lag from Argo's `finishedAt` on the Workflow to the
moment the MLPipeline's status says so (sampled every 0.2 s, so ±0.2 s).
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.controlplane.harness import REPO_ROOT
from tests.e2e.cluster import PIPELINE_NAMESPACE, NodeCluster
from tests.e2e.pipelines import MLPIPELINE, apply_pipeline
from tests.e2e.test_example import EXAMPLE, example_for
from tests.e2e.workflows import WORKFLOW


def operator_cpu_seconds(cluster: NodeCluster) -> float:
    """CPU seconds used so far by the containers of the operator's pods."""
    assert cluster.control_plane is not None
    pods = cluster.control_plane.kube.list_objects("v1", "Pod", "mlpipeline-system")
    total = 0
    for pod in pods:
        uid = pod["metadata"]["uid"]
        for usage in Path("/sys/fs/cgroup/cpuacct").glob(f"**/pod{uid}/cpuacct.usage"):
            total += int(usage.read_text())
    return total / 1e9


def cluster_round(cluster: NodeCluster, n_estimators: str) -> dict[str, float]:
    assert cluster.control_plane is not None
    kube = cluster.control_plane.kube
    cpu_before = operator_cpu_seconds(cluster)
    started = time.monotonic()
    apply_pipeline(cluster, example_for(cluster, n_estimators=n_estimators))
    generation = int(
        kube.get(*MLPIPELINE, "fraud-detection", PIPELINE_NAMESPACE)["metadata"]["generation"]
    )
    while True:
        status = kube.get(*MLPIPELINE, "fraud-detection", PIPELINE_NAMESPACE).get("status") or {}
        if status.get("observedGeneration") == generation and status.get("phase") in (
            "Succeeded",
            "Failed",
        ):
            seen = datetime.datetime.now(datetime.UTC)
            break
        time.sleep(0.2)
    wall = time.monotonic() - started
    if status["phase"] != "Succeeded":
        sys.exit(f"the run failed: {status.get('message')}")
    workflow = kube.get(*WORKFLOW, status["lastRun"]["name"], PIPELINE_NAMESPACE)
    finished = datetime.datetime.fromisoformat(workflow["status"]["finishedAt"])
    return {
        "wall": wall,
        "lag": (seen - finished).total_seconds(),
        "cpu": operator_cpu_seconds(cluster) - cpu_before,
    }


def local_round(n_estimators: str) -> float:
    with tempfile.TemporaryDirectory(prefix="e2e-bench-local-") as tmp:
        started = time.monotonic()
        subprocess.run(
            [
                str(Path(sys.executable).parent / "mlpipeline"),
                "run",
                str(EXAMPLE),
                "--run-dir",
                f"{tmp}/run",
                "--mlflow-uri",
                f"sqlite:///{tmp}/mlflow.db",
                "-p",
                f"n_estimators={n_estimators}",
            ],
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "examples" / "fraud-detection")},
            check=True,
            capture_output=True,
        )
        return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.e2e_bench")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each kind (default 3)")
    args = parser.parse_args()
    cluster_runs: list[dict[str, Any]] = []
    local_runs: list[float] = []
    started = time.monotonic()
    with NodeCluster() as cluster:
        print(f"cluster started in {time.monotonic() - started:.1f} s", flush=True)
        for index in range(args.rounds):
            n_estimators = str(100 + index)  # a new generation each round
            cluster_runs.append(cluster_round(cluster, n_estimators))
            local_runs.append(local_round(n_estimators))
            print(
                f"round {index + 1}: cluster {cluster_runs[-1]['wall']:.1f} s, "
                f"local {local_runs[-1]:.1f} s",
                flush=True,
            )
    cluster_wall = statistics.median(r["wall"] for r in cluster_runs)
    local_wall = statistics.median(local_runs)
    lags = sorted(r["lag"] for r in cluster_runs)
    print(
        f"example, median of {args.rounds}: cluster {cluster_wall:.1f} s, local {local_wall:.1f} s "
        f"(ratio {cluster_wall / local_wall:.2f})"
    )
    cpu = statistics.median(r["cpu"] for r in cluster_runs)
    print(f"operator CPU per cluster run: median {cpu:.2f} s (both replicas)")
    print(
        f"status lag after Argo's finishedAt: median {statistics.median(lags):.2f} s, "
        f"worst {lags[-1]:.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
