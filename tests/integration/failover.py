"""Leader failover between two replicas with kopf peering: the leader is SIGKILLed, and the time
until the follower handles a new pipeline (its Workflow created) is measured, with what the
peering protocol says it must be: the follower acts only once the dead leader's record has
expired (its last renewal + the peering lifetime), and then at once.

Shared by `tests/integration/test_failover.py` (a few tries) and `benchmarks/failover.py` (ten,
with figures). One follower (lowest priority) lives through every try; each try starts a new
leader with a higher priority, waits until the follower has paused in its favour and the leader
acts, kills it, and creates a pipeline.
"""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.controlplane.harness import ControlPlane, Kube
from tests.integration.operator_process import (
    ARGO_API,
    OperatorProcess,
    make_pipeline,
    runs,
    set_run_status,
    wait,
    wait_status,
)
from tests.unit.argo_runs import workflow_status

PEERING = "mlpipeline-operator"
PEERING_API = "kopf.dev/v1"
PAUSED = "Pausing operations in favour of"
RESUMED = "Resuming operations after the pause"
# A guard against a hung try, not a measurement.
TIMEOUT = 120.0
_LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\] ")


@dataclass(frozen=True)
class Takeover:
    """One failover, in seconds since the epoch (the API server's and kopf's clocks are this
    machine's)."""

    killed: float  # the leader's SIGKILL
    last_renewal: float  # the dead leader's last `lastseen` in the peering object
    record_expired: float  # last_renewal + lifetime: from here the follower may act
    resumed: float  # the follower's "Resuming operations" log line
    acted: float  # the new pipeline's Workflow seen by the test
    workflow_created: float  # its creationTimestamp (whole seconds, truncated by the server)

    @property
    def failover(self) -> float:
        """From the kill to the follower's first effect."""
        return self.acted - self.killed


class Failover:
    def __init__(
        self,
        plane: ControlPlane,
        namespace: str,
        workdir: Path,
        lifetime: int,
        log: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.plane = plane
        self.kube: Kube = plane.kube
        self.namespace = namespace
        self.workdir = workdir
        self.lifetime = lifetime
        self.log = log
        self.pipelines: list[str] = []
        self.follower = self._replica("follower", 1)
        self.leader: OperatorProcess | None = None

    def _replica(self, name: str, priority: int) -> OperatorProcess:
        return OperatorProcess(
            self.plane,
            self.workdir,
            ["--namespace", self.namespace, "--peering", PEERING, "--priority", str(priority)],
            name,
            # POD_ID: kopf's identity in the peering object, as the chart sets it.
            env={"POD_ID": name, "MLPIPELINE_PEERING_LIFETIME": str(self.lifetime)},
        )

    def start(self) -> None:
        """The follower, alone: acting once it has found no other replica."""
        self.follower.start()
        wait(lambda: RESUMED in self.follower.log(), TIMEOUT, "the follower to act", self.follower)

    def stop(self) -> None:
        for replica in (self.leader, self.follower):
            if replica is not None:
                replica.stop()

    def _record(self, identity: str) -> dict[str, Any] | None:
        peering = self.kube.get(PEERING_API, "KopfPeering", PEERING, self.namespace)
        record: dict[str, Any] | None = (peering.get("status") or {}).get(identity)
        return record

    def _create_and_wait_run(self, name: str, replica: OperatorProcess) -> dict[str, Any]:
        self.kube.create(make_pipeline(self.namespace, name=name))
        self.pipelines.append(name)
        found: list[dict[str, Any]] = wait(
            lambda: runs(self.kube, self.namespace, name), TIMEOUT, f"the run of {name}", replica
        )
        return found[0]

    def take_over(self, index: int, kill_after: Callable[[], None] | None = None) -> Takeover:
        """Try `index`: a new leader that the follower pauses for, which acts; `kill_after` (if
        given) runs before the kill, else the kill follows the leader's next renewal of its
        record (the latest moment of its renewal cycle, the longest failover)."""
        leader = self.leader = self._replica(f"leader-{index}", 100 + index)
        paused_before = self.follower.log().count(PAUSED)
        resumed_before = self.follower.log().count(RESUMED)
        leader.start()
        wait(
            lambda: self.follower.log().count(PAUSED) > paused_before,
            TIMEOUT,
            "the follower to pause for the new leader",
            self.follower,
        )
        # Both up: only the leader acts.
        warm = self._create_and_wait_run(f"before-{index}", leader)["metadata"]["name"]
        wait(lambda: warm in _submitted(leader.log()), TIMEOUT, "the leader's log line", leader)
        assert warm not in _submitted(self.follower.log())
        if kill_after is not None:
            kill_after()
        else:
            seen = (self._record(leader.name) or {}).get("lastseen")
            wait(
                lambda: (self._record(leader.name) or {}).get("lastseen") != seen,
                TIMEOUT,
                "the leader's next renewal",
                leader,
            )
        leader.kill()
        killed = time.time()
        record = self._record(leader.name)  # final: a dead leader writes no more
        assert record is not None, "the dead leader's record, before it expires"
        last_renewal = datetime.datetime.fromisoformat(record["lastseen"]).timestamp()
        name = f"after-{index}"
        workflow = self._create_and_wait_run(name, self.follower)
        acted = time.time()
        resumes = [_log_time(line) for line in self.follower.log().splitlines() if RESUMED in line]
        assert len(resumes) == resumed_before + 1, self.follower.log()[-3000:]
        created = datetime.datetime.fromisoformat(
            workflow["metadata"]["creationTimestamp"].replace("Z", "+00:00")
        ).timestamp()
        takeover = Takeover(
            killed=killed,
            last_renewal=last_renewal,
            record_expired=last_renewal + int(record["lifetime"]),
            resumed=resumes[-1],
            acted=acted,
            workflow_created=created,
        )
        self.log(
            f"try {index}: failover {takeover.failover:.1f} s (killed "
            f"{killed - last_renewal:.1f} s after the leader's last renewal; the follower "
            f"resumed {takeover.resumed - takeover.record_expired:+.2f} s from its expiry)"
        )
        return takeover

    def check_no_duplicate_effect(self) -> None:
        """Every pipeline of every try has one run, and a right status once it finishes: no
        second run and no status write lost while both replicas were up."""
        for name in self.pipelines:
            (run,) = runs(self.kube, self.namespace, name)
            run_name = run["metadata"]["name"]
            set_run_status(
                self.kube, self.namespace, run_name, workflow_status(run_name, "Succeeded", {})
            )
        for name in self.pipelines:
            status = wait_status(
                self.kube, self.namespace, name, self.follower, TIMEOUT, phase="Succeeded"
            )
            (run,) = runs(self.kube, self.namespace, name)
            assert status["lastRun"]["name"] == run["metadata"]["name"]
            assert status["observedGeneration"] == 1
        assert all(
            w["metadata"]["labels"]["mlops.gitops.dev/generation"] == "1"
            for w in self.kube.list_objects(ARGO_API, "Workflow", self.namespace)
        )


def _submitted(log: str) -> str:
    return "\n".join(line for line in log.splitlines() if ": submitted run " in line)


def _log_time(line: str) -> float:
    """A kopf log line's time (local time, milliseconds), in seconds since the epoch."""
    match = _LOG_TIME.match(line)
    assert match, line
    return datetime.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
