"""MLPipelines on the end-to-end cluster: applied as a user does, waited on through status."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.chart.health_lua import health
from tests.controlplane.harness import find_binary
from tests.e2e.cluster import PIPELINE_NAMESPACE, NodeCluster
from tests.e2e.workflows import WORKFLOW

MLPIPELINE = ("mlops.gitops.dev/v1alpha1", "MLPipeline")
RECORD_RUNS = "MLPIPELINE_RECORD_RUNS"
FINISHED = ("Succeeded", "Failed", "Invalid")


def apply_pipeline(cluster: NodeCluster, doc: dict[str, Any]) -> None:
    """`kubectl apply --server-side` of an MLPipeline, as from a file in git."""
    cluster.kubectl("apply", "--server-side", "-f", "-", input_text=yaml.safe_dump(doc))


def condition(pipeline: dict[str, Any], kind: str) -> dict[str, Any]:
    conditions = pipeline.get("status", {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == kind), {})


def wait_status(
    cluster: NodeCluster, name: str, *, generation: int, timeout: float
) -> dict[str, Any]:
    """The MLPipeline once the operator reports a finished phase for ``generation``; on a
    timeout, an error that shows its status."""
    assert cluster.control_plane is not None
    kube = cluster.control_plane.kube

    def finished(pipeline: dict[str, Any] | None) -> bool:
        status = (pipeline or {}).get("status") or {}
        return status.get("observedGeneration") == generation and status.get("phase") in FINISHED

    try:
        pipeline = kube.wait_for(
            *MLPIPELINE, name, PIPELINE_NAMESPACE, finished, timeout=timeout, interval=2
        )
    except TimeoutError:
        status = kube.get(*MLPIPELINE, name, PIPELINE_NAMESPACE).get("status")
        message = f"MLPipeline {name} generation {generation} unfinished after {timeout:g}s"
        raise AssertionError(f"{message}: {status}") from None
    assert pipeline is not None
    record_run(cluster, pipeline)
    return pipeline


def record_run(cluster: NodeCluster, pipeline: dict[str, Any]) -> None:
    """With $MLPIPELINE_RECORD_RUNS set (`make record-runs`), keep the Workflow of the
    pipeline's last run as Argo wrote it, in that directory as <pipeline>-g<generation>.json:
    the unit tier's fixtures of real statuses (tests/unit/test_status.py)."""
    directory = os.environ.get(RECORD_RUNS)
    if not directory:
        return
    assert cluster.control_plane is not None
    run = pipeline["status"]["lastRun"]
    workflow = cluster.control_plane.kube.get(*WORKFLOW, run["name"], PIPELINE_NAMESPACE)
    name = f"{pipeline['metadata']['name']}-g{run['generation']}.json"
    _write_run(Path(directory, name), workflow)


def _write_run(path: Path, workflow: dict[str, Any]) -> None:
    meta = workflow["metadata"]
    kept = {
        "apiVersion": workflow["apiVersion"],
        "kind": workflow["kind"],
        "metadata": {
            key: meta[key]
            for key in ("name", "namespace", "labels", "annotations", "creationTimestamp")
            if key in meta
        },
        "spec": workflow["spec"],
        "status": workflow["status"],
    }
    path.write_text(json.dumps(kept, indent=1, sort_keys=True) + "\n")


def _midway(workflow: dict[str, Any]) -> bool:
    """Running, with a step done and a step under way: what a user sees mid-run."""
    nodes = (workflow.get("status") or {}).get("nodes") or {}
    pods = {node["phase"] for node in nodes.values() if node.get("type") == "Pod"}
    return (
        workflow.get("status", {}).get("phase") == "Running"
        and {
            "Succeeded",
            "Running",
        }
        <= pods
    )


@contextlib.contextmanager
def recording_midway(cluster: NodeCluster, name: str, generation: int) -> Iterator[None]:
    """With $MLPIPELINE_RECORD_RUNS set, sample the Workflow of generation ``generation`` of
    the pipeline twice a second while the block runs, and keep the last sample taken midway
    (see `_midway`) as <pipeline>-g<generation>-running.json; fail if there was none."""
    directory = os.environ.get(RECORD_RUNS)
    if not directory:
        yield
        return
    assert cluster.control_plane is not None
    kube = cluster.control_plane.kube
    selector = f"mlops.gitops.dev/pipeline={name},mlops.gitops.dev/generation={generation}"
    kept: list[dict[str, Any]] = []
    stop = threading.Event()

    def keep_sampling() -> None:
        while not stop.wait(0.5):
            with contextlib.suppress(Exception):  # not created yet, or a transient error
                runs = kube.list_objects(*WORKFLOW, PIPELINE_NAMESPACE, label_selector=selector)
                kept[:] = [run for run in runs if _midway(run)] or kept

    sampler = threading.Thread(target=keep_sampling, name="record-midway", daemon=True)
    sampler.start()
    try:
        yield
    finally:
        stop.set()
        sampler.join(timeout=10)
    assert kept, f"no sample of {name} generation {generation} midway"
    _write_run(Path(directory, f"{name}-g{generation}-running.json"), kept[-1])


def pipeline(
    cluster: NodeCluster, name: str, steps: list[dict[str, Any]], **spec: Any
) -> dict[str, Any]:
    """An MLPipeline in the pipeline namespace whose steps run in the cluster's step image."""
    return {
        "apiVersion": MLPIPELINE[0],
        "kind": MLPIPELINE[1],
        "metadata": {"name": name, "namespace": PIPELINE_NAMESPACE},
        "spec": {"image": cluster.images["STEP_IMAGE"], "steps": steps, **spec},
    }


def labelled(cluster: NodeCluster, kind: str, selector: str) -> list[str]:
    """The names of the Workflows, CronWorkflows or Pods of the pipeline namespace that match
    a label selector."""
    assert cluster.control_plane is not None
    api_version = "v1" if kind == "Pod" else "argoproj.io/v1alpha1"
    items = cluster.control_plane.kube.list_objects(
        api_version, kind, PIPELINE_NAMESPACE, label_selector=selector
    )
    return [item["metadata"]["name"] for item in items]


def eventually(check: Callable[[], bool], what: str, timeout: float) -> None:
    """Poll ``check`` every second until it holds; an error naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g}s: {what}")
        time.sleep(1)


@contextlib.contextmanager
def health_log(cluster: NodeCluster, names: list[str]) -> Iterator[dict[str, list[str]]]:
    """Argo CD's health of each named pipeline (health.lua on the live object), sampled twice a
    second in the background while the block runs: every change, in order."""
    assert cluster.control_plane is not None
    kube = cluster.control_plane.kube
    seen: dict[str, list[str]] = {name: [] for name in names}
    stop = threading.Event()

    def sample() -> None:
        for name in names:
            with contextlib.suppress(Exception):  # not created yet, or a transient error
                status = health(kube.get(*MLPIPELINE, name, PIPELINE_NAMESPACE))["status"]
                if not seen[name] or seen[name][-1] != status:
                    seen[name].append(status)

    def keep_sampling() -> None:
        while not stop.wait(0.5):
            sample()

    sampler = threading.Thread(target=keep_sampling, name="health-log", daemon=True)
    sampler.start()
    try:
        yield seen
    finally:
        stop.set()
        sampler.join(timeout=10)
        sample()  # the state the block ended on


def healths_until(seen: list[str], pipeline: dict[str, Any]) -> list[str]:
    """The health changes sampled so far, ending with that of ``pipeline`` (the state a wait
    returned, which the sampler may not have caught yet)."""
    final = health(pipeline)["status"]
    return seen if seen and seen[-1] == final else [*seen, final]


def kubectl_apply(
    cluster: NodeCluster, doc: dict[str, Any], *flags: str
) -> subprocess.CompletedProcess[str]:
    """`kubectl apply --server-side` of one object, with more flags; the result, failed or not."""
    return subprocess.run(
        [
            str(find_binary("kubectl")),
            f"--kubeconfig={cluster.kubeconfig}",
            *("apply", "--server-side", *flags, "-f", "-"),
        ],
        input=yaml.safe_dump(doc),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
