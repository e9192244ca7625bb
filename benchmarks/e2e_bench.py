"""The example on the real single-node cluster, side by side with the local runner.

Run: `make benchmark-e2e` (`python -m benchmarks.e2e_bench`; needs root, `make binaries` and
`make images`). It starts the cluster of the end-to-end tier (the operator installed by its
chart) and, --rounds times, alternately:

- applies the fraud-detection example (a new generation each round) and measures the wall
  time from `kubectl apply` until the MLPipeline reports the run Succeeded;
- runs the same pipeline with `mlpipeline run` on this machine (fresh run directory, a local
  MLflow store), and measures its wall time.

It also reports, per cluster run: the CPU seconds the operator's pods used (their cgroups'
`cpuacct.usage`, both replicas); the operator's API requests, by verb and resource, from the
API server's audit log (only the operator's service account is audited); and the lag from
Argo's `finishedAt` on the Workflow to the moment the MLPipeline's status says so (sampled every
0.2 s; `finishedAt` has whole seconds).
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
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

OPERATOR_USER = "system:serviceaccount:mlpipeline-system:mlpipeline-operator"


def operator_requests(audit_log: Path, since: str, until: str) -> collections.Counter[str]:
    """The operator's requests received between two RFC 3339 times, by verb and resource
    (a watch counts once, when it starts)."""
    counts: collections.Counter[str] = collections.Counter()
    with audit_log.open() as lines:  # streamed: the log of a scale run is large
        for line in lines:
            event = json.loads(line)
            watch = event["verb"] == "watch"
            if event["stage"] != ("ResponseStarted" if watch else "ResponseComplete"):
                continue
            if not since <= event["requestReceivedTimestamp"] < until:
                continue
            ref = event.get("objectRef") or {}
            resource = ref.get("resource", "?") + (
                f"/{ref['subresource']}" if "subresource" in ref else ""
            )
            counts[f"{event['verb']} {resource}"] += 1
    return counts


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def audited_apiserver_args(directory: Path, user: str = OPERATOR_USER) -> tuple[list[str], Path]:
    """kube-apiserver's flags that write the requests of ``user`` (the operator), and no
    other, to a JSON audit log in ``directory``; and the log's path."""
    policy = {
        "apiVersion": "audit.k8s.io/v1",
        "kind": "Policy",
        "omitStages": ["RequestReceived"],
        "rules": [{"level": "Metadata", "users": [user]}, {"level": "None"}],
    }
    (directory / "policy.yaml").write_text(json.dumps(policy))
    audit_log = directory / "audit.log"
    args = [
        f"--audit-policy-file={directory / 'policy.yaml'}",
        f"--audit-log-path={audit_log}",
        "--audit-log-format=json",
    ]
    return args, audit_log


def operator_pod_cgroup_files(cluster: NodeCluster, hierarchy: str, name: str) -> dict[str, Path]:
    """By the operator's pod name, the file ``name`` of the pod's cgroup in the cgroup v1
    ``hierarchy`` (the pod's cgroup: its containers together)."""
    assert cluster.control_plane is not None
    pods = cluster.control_plane.kube.list_objects("v1", "Pod", "mlpipeline-system")
    files: dict[str, Path] = {}
    for pod in pods:
        uid = pod["metadata"]["uid"]
        for found in Path("/sys/fs/cgroup", hierarchy).glob(f"**/pod{uid}/{name}"):
            files[pod["metadata"]["name"]] = found
    return files


def operator_cpu_seconds(cluster: NodeCluster) -> float:
    """CPU seconds used so far by the containers of the operator's pods."""
    usages = operator_pod_cgroup_files(cluster, "cpuacct", "cpuacct.usage")
    return sum(int(usage.read_text()) for usage in usages.values()) / 1e9


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
    requests: list[collections.Counter[str]] = []
    audit_args, audit_log = audited_apiserver_args(
        Path(tempfile.mkdtemp(prefix="e2e-bench-audit-"))
    )
    started = time.monotonic()
    with NodeCluster(extra_apiserver_args=audit_args) as cluster:
        print(f"cluster started in {time.monotonic() - started:.1f} s", flush=True)
        for index in range(args.rounds):
            n_estimators = str(100 + index)  # a new generation each round
            since = now_rfc3339()
            cluster_runs.append(cluster_round(cluster, n_estimators))
            requests.append(operator_requests(audit_log, since, now_rfc3339()))
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
    print("operator API requests per cluster run (median; a run of 5 steps and the promotion):")
    for kind in sorted(set().union(*requests)):
        print(f"  {kind:<40} {statistics.median(r[kind] for r in requests):g}")
    print(f"  {'all':<40} {statistics.median(sum(r.values()) for r in requests):g}")
    print(
        f"status lag after Argo's finishedAt: median {statistics.median(lags):.2f} s, "
        f"worst {lags[-1]:.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
