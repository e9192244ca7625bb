"""The operator at scale on the real control plane, optionally side by side with another checkout.

Run: `make benchmark-scale` (`python -m benchmarks.scale [--ref DIR]`; needs `make binaries`).
For each tree (this one, and the checkout at --ref when given, each on a fresh control plane):

1. --pipelines MLPipelines of --steps steps, each with --history finished runs: Workflows of
   that many steps written by the benchmark with a finished status (as Argo leaves them), with
   the operator's labels and owner references, and Argo's phase labels; the newest is the run
   of generation 1. Each pipeline has kopf's record of its handled spec and the status the
   operator writes for these runs (computed by its own code) while the newest still ran: the
   start is a restart after the operator was down while the last runs finished;
2. the operator starts (one process, `--standalone`, the image's packages only) and settles:
   every pipeline's status says its last run Succeeded;
3. a burst: every pipeline gets a new generation at once (16 client threads), so --pipelines
   fresh runs are submitted: time until every Workflow exists and every status names its run;
4. status lag: for --lag-samples of the new runs, one after the other, the benchmark writes the
   Workflow's status the way Argo does (Running, then Succeeded) and times until the
   pipeline's status shows the phase.

Figures: those times, the operator's peak RSS (VmHWM: once settled, and at the end) and CPU
seconds, the API server's peak RSS, and the operator's API requests from the API server's
audit log (the operator runs as a user of its own, the only one audited), by kind, per
pipeline at the start, per fresh run of the burst and per status change of step 4. Last, the
operator stopped, the benchmark itself creates as many Workflows like the burst's from 16
threads: the time the API server alone needs for them.
"""

from __future__ import annotations

import argparse
import base64
import copy
import datetime
import json
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import kopf
import urllib3
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from benchmarks.e2e_bench import audited_apiserver_args, now_rfc3339, operator_requests
from benchmarks.operator_bench import hide_sync_client, peak_rss_mib, percentile
from mlpipeline_operator.api.status import MLPipelineStatus
from mlpipeline_operator.compiler.workflow import compile_run
from mlpipeline_operator.core import run_name
from mlpipeline_operator.reconcile.handlers import KOPF_PREFIX, SpecDigestStorage
from mlpipeline_operator.reconcile.status import build_status, status_patch
from mlpipeline_operator.validation import validate_document
from tests.controlplane.harness import (
    ControlPlane,
    issue_client_certificate,
    running_control_plane,
    write_kubeconfig,
)
from tests.integration.operator_process import OperatorProcess
from tests.unit.argo_runs import StepRun, argo_labels, workflow_status
from tests.unit.pipelines import chain

NAMESPACE = "scale"
OPERATOR_USER = "mlpipeline-operator"
PIPELINE = ("mlops.gitops.dev", "v1alpha1", "mlpipelines")
# kopf's record of the spec handled, as the operator configures it.
DIFF_BASE = SpecDigestStorage(prefix=KOPF_PREFIX, key="last-handled-configuration")
WORKFLOW = ("argoproj.io", "v1alpha1", "workflows")
# Requests by kind, in the order they are printed.
KINDS = {
    "create workflows": "Workflow create",
    "update mlpipelines/status": "status write",
    "create events": "Event",
    "patch mlpipelines": "kopf's patch",
    "get mlpipelines": "get MLPipeline",
    "get workflows": "get Workflow",
    "list workflows": "list Workflows",
    "list mlpipelines": "list MLPipelines",
    "delete workflows": "delete Workflow",
}


@dataclass
class Figures:
    settle: float = 0.0
    all_workflows: float = 0.0
    all_status: float = 0.0
    lag_p50: float = 0.0
    lag_p95: float = 0.0
    rss_start: float = 0.0
    rss: float = 0.0
    apiserver_rss: float = 0.0
    api_alone: float = 0.0
    cpu_start: float = 0.0
    cpu_burst: float = 0.0
    cpu_lag: float = 0.0
    per_start: dict[str, float] = field(default_factory=dict)
    per_run: dict[str, float] = field(default_factory=dict)
    per_change: dict[str, float] = field(default_factory=dict)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class FirstSeen:
    """Records when each object of a watched collection first satisfies a predicate."""

    def __init__(
        self,
        plane: ControlPlane,
        resource: tuple[str, str, str],
        key: Callable[[Mapping[str, Any]], str | None],
        label_selector: str = "",
    ) -> None:
        self.api = client.CustomObjectsApi(plane.kube.api_client)
        self.resource = resource
        self.key = key
        self.label_selector = label_selector
        self.seen: dict[str, float] = {}
        self.lock = threading.Lock()
        self.stop = False
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        group, version, plural = self.resource
        # Each watch goes on from the last event seen: started afresh, a watch first sends every
        # object again, which takes longer than a watch lasts once there are 1,000 runs.
        since: str | None = None
        while not self.stop:
            stream = watch.Watch().stream(
                self.api.list_namespaced_custom_object,
                group,
                version,
                NAMESPACE,
                plural,
                label_selector=self.label_selector,
                timeout_seconds=30,
                resource_version=since,
            )
            try:
                for event in stream:
                    since = (event["object"].get("metadata") or {}).get("resourceVersion", since)
                    name = self.key(event["object"])
                    if name is not None:
                        with self.lock:
                            self.seen.setdefault(name, time.perf_counter())
                    if self.stop:
                        break
            except ApiException as error:
                if error.status == 410:
                    since = None  # too old: every object again (events are keyed by name)
                time.sleep(0.5)  # the API server's cache may be (re)initializing
            except urllib3.exceptions.HTTPError:
                time.sleep(0.5)  # the server ended the watch: go on from the last event

    def wait_all(self, names: set[str], timeout: float) -> float:
        """The time the last of `names` was seen."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if names <= self.seen.keys():
                    return max(self.seen[n] for n in names)
            time.sleep(0.01)
        with self.lock:
            missing = len(names - self.seen.keys())
        raise TimeoutError(f"{missing} of {len(names)} {self.resource[2]} not seen")


def pipeline_doc(name: str, steps: int, generation_marker: str) -> dict[str, Any]:
    """The pipeline, with the annotations kopf writes once it has handled this spec."""
    doc = chain(steps)
    doc["metadata"] = {"name": name, "namespace": NAMESPACE}
    doc["spec"]["parameters"] = [{"name": "marker", "value": generation_marker}]
    body = kopf.Body(cast(kopf.RawBody, doc))
    patch = kopf.Patch()
    DIFF_BASE.store(body=body, patch=patch, essence=DIFF_BASE.build(body=body))
    doc["metadata"]["annotations"] = dict(patch["metadata"]["annotations"])
    return doc


def history_workflows(body: Mapping[str, Any], history: int) -> list[dict[str, Any]]:
    """The pipeline's finished runs: the compiled run, named and labelled as the operator
    names them, with the status Argo leaves on a run whose every step succeeded. The newest is
    the run of generation 1; the older ones have names of their own."""
    meta = body["metadata"]
    pipeline, problems = validate_document(copy.deepcopy(dict(body)))
    assert pipeline is not None, problems
    manifest = compile_run(pipeline).manifest
    steps = {s["name"]: StepRun("Succeeded") for s in body["spec"]["steps"]}
    owner = {
        "apiVersion": "mlops.gitops.dev/v1alpha1",
        "kind": "MLPipeline",
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    runs = []
    for index in range(history):
        newest = index == history - 1
        name = run_name(NAMESPACE, meta["name"], 1) if newest else f"{meta['name']}-old-{index}"
        wf = copy.deepcopy(manifest)
        wf["metadata"].update(name=name, namespace=NAMESPACE, ownerReferences=[owner])
        started = f"2026-01-01T0{index}:00:00Z"
        finished = f"2026-01-01T0{index}:30:00Z"
        wf["metadata"]["creationTimestamp"] = started
        wf["status"] = workflow_status(name, "Succeeded", steps, started=started, finished=finished)
        wf["metadata"]["labels"].update(argo_labels(wf["status"]))
        runs.append(wf)
    return runs


def operator_status(body: Mapping[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The status the operator writes for generation 1 while its newest run still runs:
    computed by the operator's own code, so that its start is a restart (it resumes pipelines
    whose status records their runs, and finds the last one finished), not the adoption of
    runs it never saw."""
    newest = copy.deepcopy(runs[-1])
    newest["status"] = workflow_status(
        newest["metadata"]["name"],
        "Running",
        {s["name"]: StepRun("Running") for s in body["spec"]["steps"]},
        started=newest["status"]["startedAt"],
    )
    status = build_status(
        generation=1,
        expected_run=run_name(NAMESPACE, body["metadata"]["name"], 1),
        workflows=[*runs[:-1], newest],
        previous=MLPipelineStatus(),
        now="2026-01-01T05:00:00Z",
    )
    return status_patch(status)


def write_status(kube: Any, body: Mapping[str, Any], status: dict[str, Any]) -> None:
    api = client.CustomObjectsApi(kube.api_client)
    meta = body["metadata"]
    whole = {**body, "status": status}
    busy_retried(
        lambda: api.replace_namespaced_custom_object_status(
            *PIPELINE[:2], NAMESPACE, PIPELINE[2], meta["name"], whole
        )
    )


def store(plane: ControlPlane, obj: dict[str, Any]) -> None:
    """Write an object straight into etcd, as the API server stores a custom resource (JSON;
    the resourceVersion is etcd's revision). Through the API server, the validation of 5,000
    such Workflows against Argo's full CRD takes about half an hour on a 2-core machine."""
    meta = obj["metadata"]
    meta.update(uid=str(uuid.uuid4()), generation=1)
    group = obj["apiVersion"].split("/")[0]
    plural = obj["kind"].lower() + "s"
    key = f"/registry/{group}/{plural}/{meta['namespace']}/{meta['name']}"
    body = {
        "key": base64.b64encode(key.encode()).decode(),
        "value": base64.b64encode(json.dumps(obj).encode()).decode(),
    }
    response = urllib3.request("POST", f"{plane.etcd_url}/v3/kv/put", json=body)
    if response.status != 200:
        raise RuntimeError(f"etcd refused {key}: {response.status} {response.data[:200]!r}")


def served(plane: ControlPlane, count: int) -> None:
    """Wait until a list of the Workflows counts `count` of them (read from etcd; the API
    server's watch cache may still be filling, answering other lists 429, "storage is
    (re)initializing", for a while: that time is part of the operator's settling)."""
    api = client.CustomObjectsApi(plane.kube.api_client)
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        try:
            page = api.list_namespaced_custom_object(*WORKFLOW[:2], NAMESPACE, WORKFLOW[2], limit=1)
        except ApiException as error:
            if error.status != 429:
                raise
        else:
            items = len(page.get("items", [])) + (page["metadata"].get("remainingItemCount") or 0)
            if items >= count:
                return
        time.sleep(1)
    raise TimeoutError(f"the API server does not serve the {count} Workflows written")


def busy_retried(call: Callable[[], Any], attempts: int = 30) -> Any:
    """The call, made again a second later while the API server is too busy to answer it (a
    shared machine's API server answers 429, 500, 503 or 504 under the burst)."""
    for _ in range(attempts - 1):
        try:
            return call()
        except ApiException as error:
            if error.status not in (429, 500, 503, 504):
                raise
        time.sleep(1)
    return call()


def argo_status(kube: Any, name: str, phase: str) -> None:
    """Write a Workflow's status as Argo's controller does: the whole object, replaced, with
    the phase in its labels."""
    api = client.CustomObjectsApi(kube.api_client)
    wf = api.get_namespaced_custom_object(*WORKFLOW[:2], NAMESPACE, WORKFLOW[2], name)
    steps = {t["name"]: StepRun(phase) for t in _tasks(wf)}
    finished = "2026-01-02T00:30:00Z" if phase != "Running" else None
    wf["status"] = workflow_status(
        name, phase, steps, started="2026-01-02T00:00:00Z", finished=finished
    )
    wf["metadata"]["labels"].update(argo_labels(wf["status"]))
    api.replace_namespaced_custom_object(*WORKFLOW[:2], NAMESPACE, WORKFLOW[2], name, wf)


def _tasks(wf: Mapping[str, Any]) -> list[dict[str, Any]]:
    for template in wf["spec"]["templates"]:
        if "dag" in template:
            tasks: list[dict[str, Any]] = template["dag"]["tasks"]
            return tasks
    return []


@contextmanager
def operator_running(
    plane: ControlPlane, tree: Path | None, work: Path
) -> Iterator[OperatorProcess]:
    """The operator of `tree` (None: this checkout) as the audited user."""
    assert plane.pki is not None
    cert, key = issue_client_certificate(plane.pki, "operator", OPERATOR_USER, "system:masters")
    kubeconfig = write_kubeconfig(
        work / "operator.kubeconfig", plane.server, plane.pki.ca_cert, cert, key
    )
    env = {}
    if tree is not None:  # its package first on the path
        env["PYTHONPATH"] = os.pathsep.join([str(tree / "operator"), os.environ["PYTHONPATH"]])
    operator = OperatorProcess(
        plane,
        work,
        ["--standalone", "--namespace", NAMESPACE],
        kubeconfig=kubeconfig,
        env=env,
    )
    operator.start()
    try:
        yield operator
    finally:
        operator.stop()


def measure(tree: Path | None, pipelines: int, history: int, steps: int, samples: int) -> Figures:
    figures = Figures()
    with tempfile.TemporaryDirectory(prefix="scale-") as tmp:
        work = Path(tmp)
        audit_args, audit_log = audited_apiserver_args(work, OPERATOR_USER)
        hide_sync_client(work)
        with running_control_plane(extra_apiserver_args=audit_args) as plane:
            kube = plane.kube
            kube.create_namespace(NAMESPACE)
            names = [f"p{i:04d}" for i in range(pipelines)]
            started = time.perf_counter()
            with ThreadPoolExecutor(16) as pool:
                bodies = list(pool.map(lambda n: kube.create(pipeline_doc(n, steps, "1")), names))
            statuses = []
            for body in bodies:
                runs = history_workflows(body, history)
                for wf in runs:
                    store(plane, wf)
                statuses.append((body, operator_status(body, runs)))
            served(plane, pipelines * history)
            with ThreadPoolExecutor(16) as pool:
                list(pool.map(lambda item: write_status(kube, *item), statuses))
            print(
                f"  {pipelines} pipelines and {pipelines * history} finished runs of {steps} "
                f"steps written in {time.perf_counter() - started:.0f} s",
                flush=True,
            )

            def settled(generation: int) -> Callable[[Mapping[str, Any]], str | None]:
                def key(obj: Mapping[str, Any]) -> str | None:
                    name: str = obj["metadata"]["name"]
                    last = ((obj.get("status") or {}).get("lastRun") or {}).get("name")
                    return name if last == run_name(NAMESPACE, name, generation) else None

                return key

            def finished(obj: Mapping[str, Any]) -> str | None:
                last = (obj.get("status") or {}).get("lastRun") or {}
                return obj["metadata"]["name"] if last.get("phase") == "Succeeded" else None

            everyone = set(names)
            finished_1 = FirstSeen(plane, PIPELINE, finished)
            since = now_rfc3339()
            started = time.perf_counter()
            with operator_running(plane, tree, work) as operator:
                assert operator.process is not None
                pid = operator.process.pid
                figures.settle = finished_1.wait_all(everyone, 1800) - started
                finished_1.stop = True
                time.sleep(3)  # the resume's last requests
                counts = operator_requests(audit_log, since, now_rfc3339())
                figures.per_start = {k: v / pipelines for k, v in counts.items()}
                cpu = cpu_seconds(pid)
                figures.cpu_start = cpu
                figures.rss_start = peak_rss_mib(pid)
                print(
                    f"  operator settled in {figures.settle:.1f} s, "
                    f"peak RSS so far {figures.rss_start:.0f} MiB",
                    flush=True,
                )

                new_runs = FirstSeen(
                    plane,
                    WORKFLOW,
                    lambda o: o["metadata"]["labels"]["mlops.gitops.dev/pipeline"],
                    label_selector="mlops.gitops.dev/generation=2",
                )
                status_2 = FirstSeen(plane, PIPELINE, settled(2))
                time.sleep(1)
                since = now_rfc3339()
                started = time.perf_counter()
                with ThreadPoolExecutor(16) as pool:
                    list(
                        pool.map(
                            lambda n: busy_retried(
                                lambda: kube.patch(
                                    "mlops.gitops.dev/v1alpha1",
                                    "MLPipeline",
                                    n,
                                    {"spec": {"parameters": [{"name": "marker", "value": "2"}]}},
                                    NAMESPACE,
                                )
                            ),
                            names,
                        )
                    )
                figures.all_workflows = new_runs.wait_all(everyone, 900) - started
                figures.all_status = status_2.wait_all(everyone, 900) - started
                new_runs.stop = status_2.stop = True
                time.sleep(3)  # requests still under way
                counts = operator_requests(audit_log, since, now_rfc3339())
                figures.per_run = {k: v / pipelines for k, v in counts.items()}
                figures.cpu_burst = cpu_seconds(pid) - cpu
                cpu = cpu_seconds(pid)

                lags = []
                since = now_rfc3339()
                api = client.CustomObjectsApi(kube.api_client)
                for name in names[:samples]:
                    run = run_name(NAMESPACE, name, 2)
                    for phase in ("Running", "Succeeded"):
                        start = time.perf_counter()
                        argo_status(kube, run, phase)
                        while True:
                            body = api.get_namespaced_custom_object(
                                *PIPELINE[:2], NAMESPACE, PIPELINE[2], name
                            )
                            last = (body.get("status") or {}).get("lastRun") or {}
                            if last.get("name") == run and last.get("phase") == phase:
                                break
                            time.sleep(0.005)
                        lags.append(time.perf_counter() - start)
                time.sleep(3)
                counts = operator_requests(audit_log, since, now_rfc3339())
                figures.per_change = {k: v / len(lags) for k, v in counts.items()} if lags else {}
                figures.cpu_lag = cpu_seconds(pid) - cpu
                if lags:
                    figures.lag_p50 = statistics.median(lags)
                    figures.lag_p95 = percentile(lags, 0.95)
                figures.rss = peak_rss_mib(pid)
            figures.api_alone = api_server_alone(kube, pipelines, steps)
            figures.apiserver_rss = peak_rss_mib(plane.processes["kube-apiserver"].proc.pid)
    return figures


def api_server_alone(kube: Any, count: int, steps: int) -> float:
    """Seconds the API server takes to create `count` Workflows like the burst's (the compiled
    run of a pipeline of `steps` steps, named apart) from 16 client threads, the operator
    stopped: the burst's floor on this machine (Argo's full CRD validates each one)."""
    namespace = f"{NAMESPACE}-alone"
    kube.create_namespace(namespace)
    pipeline, problems = validate_document(pipeline_doc("alone", steps, "2"))
    assert pipeline is not None, problems
    manifest = compile_run(pipeline).manifest
    api = client.CustomObjectsApi(kube.api_client)

    def create(index: int) -> None:
        wf = copy.deepcopy(manifest)
        wf["metadata"].update(name=f"alone-{index:04d}", namespace=namespace)
        busy_retried(
            lambda: api.create_namespaced_custom_object(*WORKFLOW[:2], namespace, WORKFLOW[2], wf)
        )

    started = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(create, range(count)))
    return time.perf_counter() - started


def report(results: dict[str, Figures]) -> None:
    labels = list(results)
    width = 34

    def row(what: str, values: list[str]) -> None:
        print(f"  {what:<{width}}" + "".join(f"{v:>12}" for v in values))

    row("", labels + (["this/ref"] if len(labels) == 2 else []))

    def figure(what: str, values: list[float], unit: str) -> None:
        cells = [f"{v:.1f}{unit}" if unit else f"{v:.2f}" for v in values]
        if len(values) == 2:
            cells.append(f"{values[0] / values[1]:.2f}" if values[1] else "-")
        row(what, cells)

    def get(attr: str) -> list[float]:
        return [float(getattr(results[label], attr)) for label in labels]

    figure("operator settled after start", get("settle"), " s")
    figure("burst: every Workflow", get("all_workflows"), " s")
    figure("burst: every status", get("all_status"), " s")
    figure("API server alone: as many creates", get("api_alone"), " s")
    figure("status lag p50", [v * 1000 for v in get("lag_p50")], " ms")
    figure("status lag p95", [v * 1000 for v in get("lag_p95")], " ms")
    figure("peak RSS once settled (VmHWM)", get("rss_start"), " MiB")
    figure("peak RSS (VmHWM)", get("rss"), " MiB")
    figure("API server's peak RSS", get("apiserver_rss"), " MiB")
    figure("CPU: start and settle", get("cpu_start"), " s")
    figure("CPU: burst", get("cpu_burst"), " s")
    figure("CPU: status changes", get("cpu_lag"), " s")
    for title, attr in (
        ("per pipeline at the start", "per_start"),
        ("per fresh run", "per_run"),
        ("per status change", "per_change"),
    ):
        print(f"  API requests {title}:")
        tables: list[dict[str, float]] = [getattr(results[label], attr) for label in labels]
        kinds = sorted(
            set().union(*tables), key=lambda k: list(KINDS).index(k) if k in KINDS else 99
        )
        for kind in kinds:
            figure(f"  {KINDS.get(kind, kind)}", [t.get(kind, 0.0) for t in tables], "")
        figure("  all", [sum(t.values()) for t in tables], "")


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--pipelines", type=int, default=1000)
    parser.add_argument("--history", type=int, default=5, help="finished runs per pipeline")
    parser.add_argument("--steps", type=int, default=100, help="steps per pipeline")
    parser.add_argument("--lag-samples", type=int, default=50)
    parser.add_argument("--ref", type=Path, help="another checkout to compare with")
    args = parser.parse_args()
    trees: dict[str, Path | None] = {"this": None}
    if args.ref is not None:
        trees["ref"] = args.ref.resolve()
    results: dict[str, Figures] = {}
    for label, tree in trees.items():
        print(f"{label}: {tree or 'this checkout'}", flush=True)
        results[label] = measure(tree, args.pipelines, args.history, args.steps, args.lag_samples)
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    print(
        f"{args.pipelines} pipelines x {args.history} finished runs of {args.steps} steps, "
        f"burst of {args.pipelines} fresh runs ({started}):"
    )
    report(results)


if __name__ == "__main__":
    main()
