"""The operator under Argo's real status churn, on the single-node cluster.

Run: `make benchmark-churn` (`python -m benchmarks.churn`; needs root, `make binaries` and
`make images`). It starts the cluster of the end-to-end tier (the operator installed by its
chart, two replicas; the API server audits the operator's requests, as `benchmarks.e2e_bench`
does) and applies --pipelines MLPipelines at once, in one `kubectl apply`. Each has --steps
steps that fan out and in (the first, then the others but the last side by side, then the
last); a step sleeps between --min-sleep and --max-sleep seconds in the example's image (the
step image of the tier) and asks for --step-cpu of CPU.

The default of 12 pipelines: the node has no reserved resources, so its allocatable CPU is the
machine's (2 cores here) and its pod limit kubelet's default (110); the operator's replicas ask
for 100m each, Argo's controller runs outside the node, and Argo's executor containers ask for
nothing. 12 pipelines of 4 steps run at most 2 steps each at a time: 24 pods asking for 50m,
1.2 of the 1.8 free cores and far below the pod limit, so every run is admitted at once and
the node's real CPU (shared by the pods, the control plane, Argo and the operator) is the
limit. The benchmark prints the node's allocatable resources and refuses a load whose requests
do not fit.

While the runs go, two watches (opened before the apply, resumed from their last
resourceVersion when the server ends them) record:

- every update of a Workflow in the pipeline namespace (Argo's status churn: each node's
  progress, its outputs, its labels), and when each Workflow's `status.phase` changed (no phase
  yet counts as Pending, as the operator reads it);
- when each MLPipeline's `status.lastRun` showed each phase of its run.

Figures: Argo's Workflow updates (total and per run); the status lag after each phase change of
a run (the Workflow seen in a phase, until its MLPipeline's `status.lastRun` shows that phase or
a later one): median, p95 and worst, and by phase; the operator's CPU seconds during the churn
(both replicas, cgroup v1 `cpuacct.usage` of their pods); each replica's peak memory during the
churn (cgroup v1 `memory.max_usage_in_bytes` of its pod's cgroup, reset when the pipelines are
applied; the kernel counts page cache in it); the operator's API requests by kind (audit log),
per run and per Workflow update. Every run must end Succeeded, or the benchmark exits non-zero.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3
import yaml
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from benchmarks.e2e_bench import (
    audited_apiserver_args,
    now_rfc3339,
    operator_cpu_seconds,
    operator_pod_cgroup_files,
    operator_requests,
)
from benchmarks.operator_bench import percentile
from benchmarks.scale import KINDS
from mlpipeline_operator.api.constants import LABEL_PIPELINE
from tests.e2e.cluster import NODE_NAME, PIPELINE_NAMESPACE, NodeCluster
from tests.e2e.pipelines import FINISHED, pipeline

NAME_PREFIX = "churn"
# A run's phases in the order they come; a status may skip one (Argo moved on before the
# operator wrote it), which counts as showing it.
PHASE_ORDER = {"Pending": 0, "Running": 1, "Succeeded": 2, "Failed": 2, "Error": 2}


def millicores(quantity: str) -> int:
    """A CPU quantity ("2", "1500m", "0.5") in millicores."""
    if quantity.endswith("m"):
        return int(quantity[:-1])
    return round(float(quantity) * 1000)


def churn_pipeline(
    cluster: NodeCluster, index: int, steps: int, sleeps: tuple[float, float], cpu: str
) -> dict[str, Any]:
    """Pipeline ``index``: its first step, then the others but the last side by side, then the
    last; the sleeps spread over the range, shifted by the index."""
    low, high = sleeps
    names = [f"s{i}" for i in range(steps)]
    docs: list[dict[str, Any]] = []
    for i, name in enumerate(names):
        seconds = low + (high - low) * ((index + i) % 3) / 2
        step: dict[str, Any] = {
            "name": name,
            "command": ["python", "-c", f"import time; time.sleep({seconds:g})"],
            "resources": {"requests": {"cpu": cpu}},
        }
        if i and (i < steps - 1 or steps <= 2):
            step["dependsOn"] = [names[0]]
        elif i:
            step["dependsOn"] = names[1:-1]
        docs.append(step)
    return pipeline(cluster, f"{NAME_PREFIX}-{index}", docs)


def side_by_side(steps: int) -> int:
    """The most steps of a pipeline running at once."""
    return max(1, steps - 2)


def check_fits(cluster: NodeCluster, pods: int, cpu: int) -> str:
    """A line on the node's room for ``pods`` more pods asking for ``cpu`` millicores in all;
    exit when they do not fit."""
    assert cluster.control_plane is not None
    kube = cluster.control_plane.kube
    allocatable = kube.get("v1", "Node", NODE_NAME)["status"]["allocatable"]
    running = [
        pod
        for pod in kube.request("GET", "/api/v1/pods")["items"]
        if pod["status"].get("phase") not in ("Succeeded", "Failed")
    ]
    requested = sum(
        millicores(container.get("resources", {}).get("requests", {}).get("cpu", "0"))
        for pod in running
        for container in pod["spec"]["containers"]
    )
    free_cpu = millicores(allocatable["cpu"]) - requested
    free_pods = int(allocatable["pods"]) - len(running)
    line = (
        f"node: allocatable {allocatable['cpu']} CPU, {allocatable['pods']} pods; "
        f"{requested}m CPU and {len(running)} pods taken; the load asks for {cpu}m in {pods} pods"
    )
    if cpu > free_cpu or pods > free_pods:
        sys.exit(f"{line}: it does not fit (fewer --pipelines, or a smaller --step-cpu)")
    return line


class Watched:
    """A watch on a collection of custom objects of the pipeline namespace: each event (but
    bookmarks) goes to ``on_event`` with its type, the object and the monotonic time it
    arrived. Resumed from the last resourceVersion when the server ends it; listed again (as
    ADDED events) when that version is gone, which ``relists`` counts."""

    def __init__(
        self,
        cluster: NodeCluster,
        resource: tuple[str, str, str],
        on_event: Callable[[str, Mapping[str, Any], float], None],
    ) -> None:
        assert cluster.control_plane is not None
        self.api = client.CustomObjectsApi(cluster.control_plane.kube.api_client)
        self.resource = resource
        self.on_event = on_event
        self.relists = 0
        self.error: BaseException | None = None
        self.stopping = threading.Event()
        self.version = self._list()
        self.thread = threading.Thread(target=self._run, name=f"watch-{resource[2]}", daemon=True)
        self.thread.start()

    def _list(self) -> str:
        group, version, plural = self.resource
        listing = self.api.list_namespaced_custom_object(group, version, PIPELINE_NAMESPACE, plural)
        now = time.monotonic()
        for item in listing["items"]:
            self.on_event("ADDED", item, now)
        return str(listing["metadata"]["resourceVersion"])

    def _run(self) -> None:
        group, version, plural = self.resource
        while not self.stopping.is_set():
            try:
                for event in watch.Watch().stream(
                    self.api.list_namespaced_custom_object,
                    group,
                    version,
                    PIPELINE_NAMESPACE,
                    plural,
                    resource_version=self.version,
                    allow_watch_bookmarks=True,
                    timeout_seconds=20,
                ):
                    obj = event["object"]
                    self.version = obj["metadata"]["resourceVersion"]
                    if event["type"] != "BOOKMARK":
                        self.on_event(event["type"], obj, time.monotonic())
                    if self.stopping.is_set():
                        return
            except ApiException as error:
                if error.status != 410:
                    self.error = error
                    return
                self.relists += 1
                self.version = self._list()
            except urllib3.exceptions.HTTPError:
                continue  # the connection ended: watch again from the last version
            except Exception as error:  # reported by the main thread
                self.error = error
                return

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=30)


@dataclass
class Churn:
    """What the two watches saw, under one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    # By Workflow: the resourceVersions of its updates (a relist may repeat one).
    updates: dict[str, set[str]] = field(default_factory=lambda: collections.defaultdict(set))
    # By Workflow: when it was first seen in each phase.
    run_phases: dict[str, dict[str, float]] = field(
        default_factory=lambda: collections.defaultdict(dict)
    )
    # By Workflow: when its MLPipeline's status.lastRun first showed each phase.
    status_phases: dict[str, dict[str, float]] = field(
        default_factory=lambda: collections.defaultdict(dict)
    )
    # By MLPipeline: its last status.
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    status_writes: int = 0

    def workflow_event(self, kind: str, obj: Mapping[str, Any], at: float) -> None:
        meta = obj["metadata"]
        if LABEL_PIPELINE not in (meta.get("labels") or {}):
            return
        phase = (obj.get("status") or {}).get("phase") or "Pending"
        with self.lock:
            if kind == "MODIFIED":
                self.updates[meta["name"]].add(meta["resourceVersion"])
            if kind != "DELETED":
                self.run_phases[meta["name"]].setdefault(phase, at)

    def pipeline_event(self, kind: str, obj: Mapping[str, Any], at: float) -> None:
        status = obj.get("status") or {}
        run = status.get("lastRun") or {}
        with self.lock:
            if kind == "MODIFIED":
                self.status_writes += 1
            self.statuses[obj["metadata"]["name"]] = dict(status)
            if run.get("name") and run.get("phase"):
                self.status_phases[run["name"]].setdefault(run["phase"], at)

    def lags(self) -> dict[str, list[float]]:
        """By phase, the seconds from a run seen in it to its status showing it or a later one."""
        lags: dict[str, list[float]] = collections.defaultdict(list)
        with self.lock:
            for run, phases in self.run_phases.items():
                shown = self.status_phases.get(run, {})
                for phase, seen in phases.items():
                    later = [at for p, at in shown.items() if PHASE_ORDER[p] >= PHASE_ORDER[phase]]
                    if not later:
                        sys.exit(f"run {run} was {phase}, its status never showed it")
                    lags[phase].append(min(later) - seen)
        return lags


def wait_finished(churn: Churn, names: list[str], watches: list[Watched], timeout: float) -> None:
    """Until every pipeline's status reports its run finished; exit on a timeout, a failed run
    or a broken watch."""
    deadline = time.monotonic() + timeout
    while True:
        for watched in watches:
            if watched.error is not None:
                sys.exit(f"the watch of {watched.resource[2]} failed: {watched.error}")
        with churn.lock:
            statuses = {name: churn.statuses.get(name, {}) for name in names}
        unfinished = [n for n, s in statuses.items() if s.get("phase") not in FINISHED]
        if not unfinished:
            break
        if time.monotonic() > deadline:
            phases = collections.Counter(statuses[n].get("phase") for n in unfinished)
            sys.exit(f"{len(unfinished)} runs unfinished after {timeout:g}s: {dict(phases)}")
        time.sleep(0.5)
    failed = {n: s for n, s in statuses.items() if s["phase"] != "Succeeded"}
    if failed:
        lines = [f"  {n}: {s['phase']}: {s.get('message')}" for n, s in sorted(failed.items())]
        sys.exit(f"{len(failed)} of {len(names)} runs did not succeed:\n" + "\n".join(lines))


def reset_peak_memory(cluster: NodeCluster) -> None:
    for path in operator_pod_cgroup_files(cluster, "memory", "memory.max_usage_in_bytes").values():
        path.write_text("0")


def peak_memory_mib(cluster: NodeCluster) -> dict[str, float]:
    files = operator_pod_cgroup_files(cluster, "memory", "memory.max_usage_in_bytes")
    return {pod: int(path.read_text()) / 2**20 for pod, path in sorted(files.items())}


def describe(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):.2f} s, p95 {percentile(values, 0.95):.2f} s, "
        f"worst {max(values):.2f} s ({len(values)} changes)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.churn")
    parser.add_argument("--pipelines", type=int, default=12, help="runs at once (default 12)")
    parser.add_argument("--steps", type=int, default=4, help="steps of each (default 4)")
    parser.add_argument("--min-sleep", type=float, default=1.0, help="a step's least seconds")
    parser.add_argument("--max-sleep", type=float, default=3.0, help="a step's most seconds")
    parser.add_argument("--step-cpu", default="50m", help="a step's CPU request (default 50m)")
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="seconds for every run to finish"
    )
    args = parser.parse_args()
    if args.pipelines < 1 or args.steps < 1 or not 0 <= args.min_sleep <= args.max_sleep:
        parser.error("--pipelines and --steps are at least 1, 0 <= --min-sleep <= --max-sleep")
    audit_args, audit_log = audited_apiserver_args(Path(tempfile.mkdtemp(prefix="churn-audit-")))
    started = time.monotonic()
    with NodeCluster(extra_apiserver_args=audit_args) as cluster:
        print(f"cluster started in {time.monotonic() - started:.1f} s", flush=True)
        pods = args.pipelines * side_by_side(args.steps)
        print(check_fits(cluster, pods, pods * millicores(args.step_cpu)), flush=True)
        docs = [
            churn_pipeline(cluster, i, args.steps, (args.min_sleep, args.max_sleep), args.step_cpu)
            for i in range(args.pipelines)
        ]
        churn = Churn()
        watches = [
            Watched(cluster, ("argoproj.io", "v1alpha1", "workflows"), churn.workflow_event),
            Watched(cluster, ("mlops.gitops.dev", "v1alpha1", "mlpipelines"), churn.pipeline_event),
        ]
        reset_peak_memory(cluster)
        cpu_before = operator_cpu_seconds(cluster)
        since = now_rfc3339()
        applied = time.monotonic()
        cluster.kubectl("apply", "--server-side", "-f", "-", input_text=yaml.safe_dump_all(docs))
        wait_finished(churn, [d["metadata"]["name"] for d in docs], watches, args.timeout)
        wall = time.monotonic() - applied
        until = now_rfc3339()
        cpu = operator_cpu_seconds(cluster) - cpu_before
        memory = peak_memory_mib(cluster)
        for watched in watches:
            watched.stop()
        requests = operator_requests(audit_log, since, until)
    runs = len(churn.run_phases)
    if runs != args.pipelines:
        sys.exit(f"{runs} Workflows seen for {args.pipelines} pipelines")
    updates = sum(len(versions) for versions in churn.updates.values())
    lags = churn.lags()
    print(
        f"{args.pipelines} runs of {args.steps} steps, all Succeeded, "
        f"{wall:.1f} s from the apply to the last status"
    )
    per_run = sorted(len(churn.updates[run]) for run in churn.run_phases)
    print(
        f"Argo's Workflow updates: {updates} ({updates / runs:.1f} per run; "
        f"fewest {per_run[0]}, most {per_run[-1]}); MLPipeline updates seen: {churn.status_writes}"
    )
    every_lag = [lag for each in lags.values() for lag in each]
    print(f"status lag after a run's phase change: {describe(every_lag)}")
    for phase in sorted(lags, key=lambda p: PHASE_ORDER[p]):
        print(f"  {phase:<10} {describe(lags[phase])}")
    print(f"operator CPU during the churn: {cpu:.2f} s (both replicas)")
    print(
        "operator peak memory during the churn (memory.max_usage_in_bytes of the pod cgroup): "
        + ", ".join(f"{pod} {mib:.0f} MiB" for pod, mib in memory.items())
    )
    print(f"operator API requests: {'per run':>10} {'per Workflow update':>20}")
    ordered = [k for k in KINDS if k in requests] + sorted(requests.keys() - KINDS.keys())
    for kind in [*ordered, "all"]:
        count = sum(requests.values()) if kind == "all" else requests[kind]
        print(f"  {kind:<36} {count / runs:>6.2f} {count / max(updates, 1):>20.3f}")
    relists = sum(w.relists for w in watches)
    if relists:
        print(f"(the watches were listed again {relists} times: updates may be missing)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
