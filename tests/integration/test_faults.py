"""The operator survives API faults: a real `mlpipeline operator` process talks to the real
kube-apiserver through a fault-injecting proxy (tests/controlplane/faultproxy.py).

Each test runs one scenario — N pipelines created, some of them updated (a second generation),
their runs moved Running and then to a final phase as Argo would — with one kind of fault, or
all of them mixed. Afterwards every pipeline's status is right, there is exactly one Workflow
per (pipeline, generation), and the operator backed off: its requests stay within a bound of
those of the fault-free scenario, measured first in the same session.

The operator runs as its Deployment runs it: a process that exits is started again. It may exit
only as documented (docs/operator.md): with `EXIT_STOPPED` and its log line, once per watch
answered 410 Gone.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlpipeline_operator.core import run_name
from mlpipeline_operator.reconcile.handlers import EXIT_STOPPED
from tests.controlplane.faultproxy import FaultProxy, GoneEvent, Reply, Reset, Rule, Stall
from tests.controlplane.harness import ControlPlane, Kube
from tests.integration.operator_process import (
    PIPELINE_API,
    OperatorProcess,
    make_pipeline,
    pipeline_status,
    set_run_status,
)
from tests.integration.operator_process import wait as poll
from tests.unit.argo_runs import StepRun, workflow_status

PIPELINES = 6
UPDATED = range(0, PIPELINES, 2)  # these get a second generation
TIMEOUT = 120
# Low, so that a stalled watch is given up quickly; the same in every scenario, fault-free too.
INACTIVITY_TIMEOUT = "4"
READS = frozenset({"get", "list"})
WRITES = frozenset({"create", "update", "patch", "delete"})
ANY = READS | WRITES | {"watch"}
# The bound on the requests under faults (docs/testing.md): twice those of the fault-free
# scenario (the same work, whose events batch differently from run to run), plus one pass made
# again per injected fault (a pass makes at most PASS_REQUESTS: the pipeline read, its runs
# listed, its last run read, a run created, the status written, kopf's annotations patched),
# plus one whole start per exit (a new process lists and resumes every pipeline: at most the
# fault-free scenario).
PASS_REQUESTS = 6


GONE_ANSWER = "410 answering a watch"
# The line the operator logs when kopf stopped on a watch answered 410 (handlers.run).
STOPPED_LINE = re.compile(
    r"\[CRITICAL\] the operator stopped on APIClientError: \('injected by the fault proxy: "
    rf"{GONE_ANSWER}'.*\); exiting with code {EXIT_STOPPED} to be started again$",
    re.MULTILINE,
)


@dataclass(frozen=True)
class Outcome:
    requests: Counter[tuple[str, str]]
    faults: Counter[str]
    exits: int

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    @property
    def injected(self) -> int:
        return sum(self.faults.values())


def generation(index: int) -> int:
    return 2 if index in UPDATED else 1


def final_phase(index: int) -> str:
    return "Failed" if index % 3 == 0 else "Succeeded"


class Supervised:
    """The operator process as a Deployment runs it: started again whenever it exits. Every
    exit is checked: the code `EXIT_STOPPED` and its log line, nothing else."""

    def __init__(self, op: OperatorProcess) -> None:
        self.op = op
        self.exits = 0

    def restart_if_exited(self) -> None:
        code = self.op.exit_code()
        if code is None:
            return
        log = self.op.current_log()
        assert code == EXIT_STOPPED, f"the operator exited with {code}:\n{log[-6000:]}"
        assert STOPPED_LINE.search(log), log[-6000:]
        self.exits += 1
        self.op.start(wait_healthy=False)  # a watch may fail before /healthz answers


def wait(check: Callable[[], Any], what: str, supervised: Supervised) -> None:
    """Poll `check`, starting the operator again whenever it exits."""

    def supervised_check() -> Any:
        supervised.restart_if_exited()
        return check()

    poll(supervised_check, TIMEOUT, what, supervised.op)


def wait_statuses(kube: Kube, namespace: str, op: Supervised, phase: str) -> None:
    """Every pipeline's status names its current generation's run, in `phase` ("final": the
    pipeline's own final phase)."""

    def done(index: int) -> bool:
        name = f"p{index}"
        status = pipeline_status(kube, namespace, name)
        expected = run_name(namespace, name, generation(index))
        wanted = final_phase(index) if phase == "final" else phase
        return (
            status.get("observedGeneration") == generation(index)
            and (status.get("lastRun") or {}).get("name") == expected
            and status.get("phase") == wanted
        )

    wait(
        lambda: all(done(i) for i in range(PIPELINES)),
        f"every pipeline's status with its current run {phase}",
        op,
    )


def scenario(kube: Kube, namespace: str, op: Supervised) -> None:
    for index in range(PIPELINES):
        kube.create(make_pipeline(namespace, f"p{index}"))
    wait(lambda: len(runs_of(kube, namespace)) == PIPELINES, "a run of every pipeline", op)
    for index in UPDATED:
        kube.patch(
            PIPELINE_API,
            "MLPipeline",
            f"p{index}",
            {"spec": {"parameters": [{"name": "lr", "value": "0.2"}]}},
            namespace,
        )
    wait_statuses(kube, namespace, op, "Pending")
    for index in range(PIPELINES):
        name = run_name(namespace, f"p{index}", generation(index))
        steps = {"extract": StepRun("Succeeded"), "train": StepRun("Running")}
        set_run_status(kube, namespace, name, workflow_status(name, "Running", steps))
    wait_statuses(kube, namespace, op, "Running")
    for index in range(PIPELINES):
        name = run_name(namespace, f"p{index}", generation(index))
        phase = final_phase(index)
        steps = {"extract": StepRun("Succeeded"), "train": StepRun(phase, message="exit 1")}
        status = workflow_status(name, phase, steps, finished="2026-01-01T01:00:00Z")
        set_run_status(kube, namespace, name, status)
    wait_statuses(kube, namespace, op, "final")


def runs_of(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    return kube.list_objects(
        "argoproj.io/v1alpha1",
        "Workflow",
        namespace,
        label_selector="mlops.gitops.dev/pipeline",
    )


def check_end_state(kube: Kube, namespace: str) -> None:
    """Right statuses; one Workflow per (pipeline, generation), none of a later generation."""
    per_generation = Counter(
        (
            w["metadata"]["labels"]["mlops.gitops.dev/pipeline"],
            w["metadata"]["labels"]["mlops.gitops.dev/generation"],
        )
        for w in runs_of(kube, namespace)
    )
    expected = Counter(
        {(f"p{i}", str(g)): 1 for i in range(PIPELINES) for g in range(1, generation(i) + 1)}
    )
    assert per_generation == expected
    for index in range(PIPELINES):
        name = f"p{index}"
        status = pipeline_status(kube, namespace, name)
        current = run_name(namespace, name, generation(index))
        assert (status["phase"], status["observedGeneration"]) == (
            final_phase(index),
            generation(index),
        ), name
        assert (status["lastRun"]["name"], status["lastRun"]["phase"]) == (
            current,
            final_phase(index),
        ), name
        assert status["history"][0]["name"] == current, name


def run_scenario(
    plane: ControlPlane, kube: Kube, namespace: str, workdir: Path, rules: list[Rule]
) -> Outcome:
    """The scenario through a proxy with `rules`; what the operator asked of the API."""
    with FaultProxy(plane, rules, seed=1) as proxy:
        op = OperatorProcess(
            plane,
            workdir,
            ["--standalone", "--namespace", namespace],
            kubeconfig=proxy.kubeconfig(workdir / "kubeconfig-proxy"),
            env={"MLPIPELINE_INACTIVITY_TIMEOUT": INACTIVITY_TIMEOUT},
        )
        supervised = Supervised(op.start(wait_healthy=False))
        try:
            scenario(kube, namespace, supervised)
            outcome = Outcome(proxy.requests(), proxy.faults(), supervised.exits)
            check_end_state(kube, namespace)
        finally:
            op.stop()
    print(
        f"\nrequests {outcome.total}, exits {outcome.exits}, faults {dict(outcome.faults)}: "
        f"{dict(outcome.requests)}"
    )
    return outcome


@pytest.fixture(scope="module")
def fault_free(
    control_plane: ControlPlane, kube: Kube, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Outcome]:
    """The scenario without faults, once for the module: the requests to compare with."""
    namespace = f"t-faults-none-{uuid.uuid4().hex[:6]}"
    kube.create_namespace(namespace, labels={"mlpipeline-tests": "true"})
    workdir = tmp_path_factory.mktemp("fault-free")
    yield run_scenario(control_plane, kube, namespace, workdir, [])
    kube.delete_namespace(namespace)


FAULTS: dict[str, list[Rule]] = {
    "conflict": [
        Rule("409 on status writes", Reply(409), frozenset({"update"}), r".*/status", 0.5),
    ],
    "gone-status": [
        Rule(GONE_ANSWER, Reply(410), frozenset({"watch"}), "mlpipelines", limit=3),
    ],
    "gone-event": [
        Rule("410 event in a watch", GoneEvent(after=1), frozenset({"watch"}), limit=6),
    ],
    "throttled": [
        Rule("429 Retry-After 1", Reply(429, retry_after=1), ANY - {"watch"}, probability=0.15),
    ],
    "server-errors": [
        Rule("500", Reply(500), ANY - {"watch"}, probability=0.07),
        Rule("503", Reply(503), ANY - {"watch"}, probability=0.07),
    ],
    "watch-server-errors": [
        Rule("500 answering a watch", Reply(500), frozenset({"watch"}), limit=2),
        Rule("503 answering a watch", Reply(503), frozenset({"watch"}), limit=2),
    ],
    "resets": [
        Rule("connection reset", Reset(), ANY, probability=0.05),
        Rule("connection closed", Reset(graceful=True), ANY, probability=0.05),
    ],
    "stalled-watch": [
        Rule("stalled watch", Stall(), frozenset({"watch"}), limit=3),
    ],
}
FAULTS["mixed"] = [
    Rule("409 on status writes", Reply(409), frozenset({"update"}), r".*/status", 0.2),
    # The first process's watch: it exits, and the next one meets every other fault.
    Rule(GONE_ANSWER, Reply(410), frozenset({"watch"}), "mlpipelines", limit=1),
    Rule(
        "410 event in a watch", GoneEvent(after=1), frozenset({"watch"}), probability=0.2, limit=3
    ),
    Rule("429 Retry-After 1", Reply(429, retry_after=1), ANY - {"watch"}, probability=0.05),
    Rule("500", Reply(500), ANY - {"watch"}, probability=0.03),
    Rule("503", Reply(503), ANY - {"watch"}, probability=0.03),
    Rule("connection reset", Reset(), ANY, probability=0.02),
    Rule("connection closed", Reset(graceful=True), ANY, probability=0.02),
    Rule("stalled watch", Stall(), frozenset({"watch"}), probability=0.2, limit=2),
]


@pytest.mark.parametrize("fault", list(FAULTS))
def test_operator_survives(
    fault: str,
    fault_free: Outcome,
    control_plane: ControlPlane,
    kube: Kube,
    namespace: str,
    tmp_path: Path,
) -> None:
    outcome = run_scenario(control_plane, kube, namespace, tmp_path, FAULTS[fault])
    assert outcome.injected > 0, "no fault was injected: the scenario proves nothing"
    # kopf stops for good on a watch answered 410 (one watch of MLPipelines in each process),
    # and on nothing else here: each such answer is one exit, and one start more.
    assert outcome.exits == outcome.faults[GONE_ANSWER]
    bound = (
        2 * fault_free.total + PASS_REQUESTS * outcome.injected + fault_free.total * outcome.exits
    )
    assert outcome.total <= bound, (
        f"{outcome.total} requests under {fault} (fault-free: {fault_free.total}, "
        f"{outcome.injected} faults injected, {outcome.exits} exits): a retry loop?"
    )
