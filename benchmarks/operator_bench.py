"""The operator on the real control plane: latency, burst throughput, API calls and memory.

Run: `make benchmark-operator` (`python -m benchmarks.operator_bench`; needs `make binaries`).
It starts etcd + kube-apiserver and one `mlpipeline operator` process, and measures:

- latency from creating one MLPipeline to its Workflow existing, over --sequential creations
  (p50 / p99; the Workflow's arrival is seen on a watch opened beforehand);
- a burst of --burst MLPipelines created at once: time until every one has its Workflow and a
  written status;
- API requests per reconciled pipeline, from the API server's own request counters
  (`apiserver_request_total`), minus the benchmark's own requests;
- the operator's peak resident memory (VmHWM), with only the image's packages importable.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, watch

from tests.controlplane.harness import ControlPlane, Kube, running_control_plane
from tests.integration.operator_process import OperatorProcess
from tests.unit.pipelines import pipeline

_REQUESTS = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+]+)$")


class Arrivals:
    """Records when each Workflow is first seen on a watch."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.seen: dict[str, float] = {}
        self.lock = threading.Lock()
        self.kube = kube
        self.namespace = namespace
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.stop = False

    def start(self) -> None:
        self.thread.start()
        time.sleep(0.5)

    def _watch(self) -> None:
        custom = client.CustomObjectsApi(self.kube.api_client)
        while not self.stop:
            stream = watch.Watch().stream(
                custom.list_namespaced_custom_object,
                "argoproj.io",
                "v1alpha1",
                self.namespace,
                "workflows",
                timeout_seconds=30,
            )
            try:
                for event in stream:
                    labels = event["object"]["metadata"]["labels"]
                    with self.lock:
                        self.seen.setdefault(
                            labels["mlops.gitops.dev/pipeline"], time.perf_counter()
                        )
                    if self.stop:
                        break
            except urllib3.exceptions.HTTPError:
                continue  # the server ended the watch: watch again (events are keyed by name)

    def wait_for(self, name: str, timeout: float = 60) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if name in self.seen:
                    return self.seen[name]
            time.sleep(0.001)
        raise TimeoutError(f"no Workflow for {name}")


def request_total(kube: Kube) -> float:
    """Every non-watch request the API server has answered so far."""
    config = kube.api_client.configuration
    http = urllib3.PoolManager(
        cert_reqs="CERT_REQUIRED",
        ca_certs=config.ssl_ca_cert,
        cert_file=config.cert_file,
        key_file=config.key_file,
    )
    text = http.request("GET", f"{config.host}/metrics").data.decode()
    total = 0.0
    for line in text.splitlines():
        match = _REQUESTS.match(line)
        if match and 'verb="WATCH"' not in match["labels"]:
            total += float(match["value"])
    return total


def doc(namespace: str, name: str) -> dict[str, Any]:
    d = pipeline()
    d["metadata"] = {"name": name, "namespace": namespace}
    return d


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def hide_sync_client(directory: Path) -> None:
    """Make `import kubernetes` fail in the operator process, as in the operator's image.

    The synchronous `kubernetes` client is a development dependency (of the test harness);
    when kopf finds it, it loads it (about 45 MiB) although the image does not have it.
    """
    shadow = directory / "kubernetes"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise ImportError('not in the operator image')\n")
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(directory), os.environ.get("PYTHONPATH")])
    )


def run(plane: ControlPlane, sequential: int, burst: int) -> None:
    kube = plane.kube
    namespace = "bench"
    kube.create_namespace(namespace)
    with tempfile.TemporaryDirectory() as tmp:
        hide_sync_client(Path(tmp))
        operator = OperatorProcess(plane, Path(tmp), ["--standalone", "--namespace", namespace])
        operator.start()
        arrivals = Arrivals(kube, namespace)
        arrivals.start()
        try:
            latencies = []
            for i in range(sequential):
                name = f"seq-{i}"
                start = time.perf_counter()
                kube.create(doc(namespace, name))
                latencies.append((arrivals.wait_for(name) - start) * 1000)
            p50, p99 = statistics.median(latencies), percentile(latencies, 0.99)
            print(
                f"create → Workflow, {sequential} sequential: p50 {p50:.0f} ms, "
                f"p99 {p99:.0f} ms, max {max(latencies):.0f} ms"
            )

            time.sleep(2)  # let the sequential pipelines' status writes settle
            before = request_total(kube)
            start = time.perf_counter()
            # Created from 16 client threads at once, as a `kubectl apply` of a folder would.
            with ThreadPoolExecutor(16) as pool:
                list(pool.map(lambda i: kube.create(doc(namespace, f"burst-{i}")), range(burst)))
            created = time.perf_counter() - start
            for i in range(burst):
                arrivals.wait_for(f"burst-{i}", timeout=300)
            all_runs = time.perf_counter() - start
            pending = {f"burst-{i}" for i in range(burst)}
            lists = 0
            while pending:
                lists += 1
                items = kube.list_objects("mlops.gitops.dev/v1alpha1", "MLPipeline", namespace)
                pending -= {
                    o["metadata"]["name"]
                    for o in items
                    if (o.get("status") or {}).get("observedGeneration") == 1
                }
                if time.perf_counter() - start > 300:
                    raise TimeoutError(f"{len(pending)} pipelines without status")
                time.sleep(0.05)
            all_status = time.perf_counter() - start
            time.sleep(2)
            # Minus the benchmark's own requests: the creates and the lists of its wait loop.
            calls = request_total(kube) - before - burst - lists
            print(
                f"burst of {burst}: created in {created:.1f} s; every Workflow at {all_runs:.1f} s;"
                f" every status written at {all_status:.1f} s"
            )
            print(
                f"API requests per reconciled pipeline (server-side count, burst): "
                f"{calls / burst:.1f}"
            )
            assert operator.process is not None
            print(f"operator peak RSS: {peak_rss_mib(operator.process.pid):.0f} MiB")
        finally:
            arrivals.stop = True
            operator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sequential", type=int, default=50)
    parser.add_argument("--burst", type=int, default=200)
    args = parser.parse_args()
    with running_control_plane() as plane:
        run(plane, args.sequential, args.burst)


if __name__ == "__main__":
    main()
