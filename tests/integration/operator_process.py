"""The operator as a separate process (`mlpipeline operator`) against the test control plane."""

from __future__ import annotations

import http.client
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.controlplane.harness import ApiException, ControlPlane, Kube, ManagedProcess, free_port
from tests.unit.argo_runs import argo_labels
from tests.unit.pipelines import pipeline

PIPELINE_API = "mlops.gitops.dev/v1alpha1"
ARGO_API = "argoproj.io/v1alpha1"


class OperatorProcess:
    """One `mlpipeline operator` process; stop() and start() again to simulate a restart."""

    def __init__(
        self,
        plane: ControlPlane,
        workdir: Path,
        args: Sequence[str],
        name: str = "operator",
        kubeconfig: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """`kubeconfig`: the identity to run as (default: the control plane's admin); `env`:
        variables added to the environment."""
        self.plane = plane
        self.kubeconfig = kubeconfig or plane.kubeconfig
        self.workdir = workdir
        self.args = list(args)
        self.name = name
        self.port = free_port()
        self.metrics_port = free_port()
        self.process: ManagedProcess | None = None
        self.starts = 0
        self.env = dict(env or {})

    def start(self, wait_healthy: bool = True) -> OperatorProcess:
        """Start the process; unless told not to, wait until it answers on /healthz."""
        self.starts += 1
        env = {
            **os.environ,
            **self.env,
            "KUBECONFIG": str(self.kubeconfig),
            "PYTHONUNBUFFERED": "1",
        }
        argv = [
            sys.executable,
            "-m",
            "mlpipeline_operator",
            "operator",
            "--liveness",
            f"http://127.0.0.1:{self.port}/healthz",
            "--metrics",
            f"http://127.0.0.1:{self.metrics_port}/metrics",
            "--promotion-image",
            "example.com/mlpipeline-operator:test",
            *self.args,
        ]
        log = self.workdir / f"{self.name}-{self.starts}.log"
        self.process = ManagedProcess(self.name, argv, log, env=env)
        if wait_healthy:
            wait(lambda: self._healthy(), 60, f"{self.name} to answer on /healthz", self)
        return self

    def exit_code(self) -> int | None:
        """The exit code of the current process, None while it runs."""
        assert self.process is not None
        return self.process.proc.poll()

    def current_log(self) -> str:
        """The log of the current process only."""
        return (self.workdir / f"{self.name}-{self.starts}.log").read_text(errors="replace")

    def _healthy(self) -> bool:
        assert self.process is not None
        if not self.process.running():
            raise AssertionError(f"{self.name} exited:\n{self.process.log_tail(80)}")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
        try:
            conn.request("GET", "/healthz")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def metrics(self) -> dict[str, float]:
        """The operator's series now, as `name{label="value",...}` (labels sorted): value."""
        conn = http.client.HTTPConnection("127.0.0.1", self.metrics_port, timeout=5)
        try:
            conn.request("GET", "/metrics")
            response = conn.getresponse()
            assert response.status == 200, response.status
            text = response.read().decode()
        finally:
            conn.close()
        samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return samples

    def kill(self) -> None:
        """SIGKILL: no chance to finish anything."""
        assert self.process is not None
        os.killpg(self.process.pid, 9)
        self.process.proc.wait(timeout=10)
        self.process.stop()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def log(self) -> str:
        return "\n".join(
            p.read_text(errors="replace") for p in sorted(self.workdir.glob(f"{self.name}-*.log"))
        )


def wait(
    check: Callable[[], Any], timeout: float, what: str, operator: OperatorProcess | None = None
) -> Any:
    """Poll until check() returns something truthy (tests poll; the operator never does)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            tail = f"\noperator log:\n{operator.log()[-6000:]}" if operator else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{tail}")
        time.sleep(0.1)


def make_pipeline(namespace: str, name: str = "demo", **spec: Any) -> dict[str, Any]:
    """The unit tests' small valid pipeline, in a namespace, with spec fields replaced."""
    doc = pipeline()
    doc["metadata"] = {"name": name, "namespace": namespace}
    doc["spec"].update(spec)
    return doc


def set_run_status(kube: Kube, namespace: str, name: str, status: dict[str, Any]) -> None:
    """What Argo's controller does: Workflows have no status subresource, and the phase goes
    in labels too."""
    patch = {"metadata": {"labels": argo_labels(status)}, "status": status}
    kube.patch(ARGO_API, "Workflow", name, patch, namespace)


def wait_status(
    kube: Kube, namespace: str, name: str, op: OperatorProcess, timeout: float = 30, **expected: Any
) -> dict[str, Any]:
    """Wait until the MLPipeline's status has every expected field value; return it."""

    def matches() -> dict[str, Any] | None:
        status = pipeline_status(kube, namespace, name)
        return status if all(status.get(k) == v for k, v in expected.items()) else None

    result: dict[str, Any] = wait(matches, timeout, f"status {expected} of {name}", op)
    return result


def get_or_none(
    kube: Kube, kind: str, namespace: str, name: str, api: str = ARGO_API
) -> dict[str, Any] | None:
    try:
        return kube.get(api, kind, name, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def pipeline_status(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    obj = kube.get(PIPELINE_API, "MLPipeline", name, namespace)
    status: dict[str, Any] = obj.get("status") or {}
    return status


def runs(kube: Kube, namespace: str, pipeline: str) -> list[dict[str, Any]]:
    return kube.list_objects(
        ARGO_API, "Workflow", namespace, label_selector=f"mlops.gitops.dev/pipeline={pipeline}"
    )


def watches_ended(audit_log: Path, namespace: str, resource: str) -> int:
    """How many watches of `resource` (a plural) in `namespace` the API server has ended so far,
    from its audit log (one line per ended watch: see tests/integration/conftest.py)."""
    text = audit_log.read_text() if audit_log.exists() else ""
    count = 0
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            break  # the line being written
        event = json.loads(line)
        ref = event.get("objectRef") or {}
        if (
            event["verb"] == "watch"
            and event["stage"] == "ResponseComplete"
            and (ref.get("namespace"), ref.get("resource")) == (namespace, resource)
        ):
            count += 1
    return count
