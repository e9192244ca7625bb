"""The operator killed (SIGKILL) at random moments during a burst of pipeline creations and spec
changes, restarted each time; then what it must have left: one run per (pipeline, generation),
the current generation's run for every pipeline, and statuses right once the runs finish.

Shared by `tests/integration/test_kill_loop.py` (a short loop) and `benchmarks/kill_loop.py` (the
full one, with figures). The moments are drawn from a seeded RNG relative to the operator's own
activity: after k lines of its log, or after the next Workflow it creates.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlpipeline_operator.core import run_name
from tests.controlplane.harness import ControlPlane, Kube
from tests.integration.operator_process import (
    ARGO_API,
    PIPELINE_API,
    OperatorProcess,
    make_pipeline,
    set_run_status,
    wait,
)
from tests.unit.argo_runs import workflow_status

GENERATION_LABEL = "mlops.gitops.dev/generation"
PIPELINE_LABEL = "mlops.gitops.dev/pipeline"
# A guard against a hung loop, not a measurement: every wait ends on what it observes.
TIMEOUT = 120.0


@dataclass(frozen=True)
class Operation:
    """Create pipeline `name`, or change its spec (a new generation)."""

    kind: str  # "create" or "update"
    name: str


@dataclass
class KillLoopResult:
    seed: int
    pipelines: int
    kills: int
    restarts: int
    triggers: Counter[str] = field(default_factory=Counter)
    generations: dict[str, int] = field(default_factory=dict)
    # (pipeline, generation) -> names of its Workflows
    runs: dict[tuple[str, int], list[str]] = field(default_factory=dict)
    converge_seconds: float = 0.0
    finish_seconds: float = 0.0
    statuses_right: int = 0
    wrong: list[str] = field(default_factory=list)
    invalid_events: list[str] = field(default_factory=list)

    @property
    def duplicated(self) -> list[tuple[str, int]]:
        return sorted(key for key, names in self.runs.items() if len(names) > 1)

    @property
    def missing_current(self) -> list[str]:
        return sorted(
            name
            for name, generation in self.generations.items()
            if (name, generation) not in self.runs
        )

    @property
    def skipped_generations(self) -> int:
        """Generations superseded before the operator saw them (no run: allowed)."""
        return sum(self.generations.values()) - len(self.runs)


def plan(rng: random.Random, pipelines: int, updates: int) -> list[Operation]:
    """Every pipeline created, and `updates` spec changes of already-created ones, shuffled in
    so that changes arrive while creations go on."""
    names = [f"p{i:03d}" for i in range(pipelines)]
    operations = [Operation("create", name) for name in names]
    for _ in range(updates):
        # After its creation: somewhere later than the create of a random pipeline.
        name = rng.choice(names)
        created = operations.index(Operation("create", name))
        operations.insert(rng.randint(created + 1, len(operations)), Operation("update", name))
    return operations


class KillLoop:
    def __init__(
        self,
        plane: ControlPlane,
        namespace: str,
        workdir: Path,
        *,
        seed: int,
        pipelines: int,
        kills: int,
        updates: int,
        log: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.kube: Kube = plane.kube
        self.namespace = namespace
        self.rng = random.Random(seed)
        self.operations = plan(self.rng, pipelines, updates)
        self.kills = kills
        self.log = log
        self.result = KillLoopResult(seed=seed, pipelines=pipelines, kills=kills, restarts=0)
        self.operator = OperatorProcess(
            plane, workdir, ["--standalone", "--namespace", namespace], "operator"
        )
        self.changes: Counter[str] = Counter()
        self.workflows_seen = 0  # Workflows that existed at the last kill
        self.started_lines = 0  # lines in the log of the running operator when it answered

    def _apply(self, operation: Operation) -> None:
        if operation.kind == "create":
            self.kube.create(make_pipeline(self.namespace, name=operation.name))
        else:
            self.changes[operation.name] += 1
            value = f"0.{100 + self.changes[operation.name]}"  # never the base value, 0.1
            self.kube.patch(
                PIPELINE_API,
                "MLPipeline",
                operation.name,
                {"spec": {"parameters": [{"name": "lr", "value": value}]}},
                self.namespace,
            )

    def _workflows(self) -> list[dict[str, Any]]:
        return self.kube.list_objects(ARGO_API, "Workflow", self.namespace)

    def _log_lines(self) -> int:
        path = self.operator.workdir / f"{self.operator.name}-{self.operator.starts}.log"
        return path.read_text(errors="replace").count("\n") if path.exists() else 0

    def run(self) -> KillLoopResult:
        """The loop, convergence, the runs finished, and the checks (in `result`)."""
        chunks = _split(self.operations, self.kills + 1)
        try:
            for chunk in chunks[:-1]:
                self._start_during(chunk)
                self._kill(chunk)
            last_kill = time.monotonic()
            self._start_during(chunks[-1])
            self._wait_converged()
            self.result.converge_seconds = time.monotonic() - last_kill
            self._collect_runs()
            finished_from = time.monotonic()
            self._finish_runs_and_wait()
            self.result.finish_seconds = time.monotonic() - finished_from
            self.result.invalid_events = [
                e["message"]
                for e in self.kube.list_objects("v1", "Event", self.namespace)
                if e["reason"] == "Invalid"
            ]
        finally:
            self.operator.stop()
        self.result.restarts = self.operator.starts - 1
        return self.result

    def _start_during(self, chunk: list[Operation]) -> None:
        """Half the chunk while the operator is down, the start, the other half while it starts
        handling the first."""
        half = len(chunk) // 2
        for operation in chunk[:half]:
            self._apply(operation)
        self.operator.start()
        self.started_lines = self._log_lines()
        for operation in chunk[half:]:
            self._apply(operation)

    def _kill(self, chunk: list[Operation]) -> None:
        """SIGKILL at a moment drawn relative to what the operator does."""
        if self.rng.random() < 0.5:
            # After k lines past the start-up: each operation applied since the start logs at
            # least three once handled (submitted, handler succeeded, processed), and half the
            # chunk (rounded up) was applied since, so k <= len(chunk) lines always come.
            lines = self.rng.randint(1, len(chunk))
            self.result.triggers["after k log lines"] += 1
            self.log(f"kill {self.operator.starts}: after {lines} log lines")
            wait(
                lambda: self._log_lines() - self.started_lines >= lines,
                TIMEOUT,
                f"{lines} log lines",
                self.operator,
            )
        else:
            # The chunk held a creation or a spec change, whose run the operator has not yet
            # created (it was down): a new Workflow always comes.
            self.result.triggers["after the next Workflow"] += 1
            self.log(f"kill {self.operator.starts}: after the next Workflow")
            before = self.workflows_seen
            wait(
                lambda: len(self._workflows()) > before,
                TIMEOUT,
                "the next Workflow",
                self.operator,
            )
        self.operator.kill()
        self.workflows_seen = len(self._workflows())

    def _generations(self) -> dict[str, int]:
        return {
            p["metadata"]["name"]: p["metadata"]["generation"]
            for p in self.kube.list_objects(PIPELINE_API, "MLPipeline", self.namespace)
        }

    def _wait_converged(self) -> None:
        """Every pipeline has its current generation's run and a status that names it."""

        def converged() -> bool:
            have = {
                (w["metadata"]["labels"][PIPELINE_LABEL], w["metadata"]["labels"][GENERATION_LABEL])
                for w in self._workflows()
            }
            for p in self.kube.list_objects(PIPELINE_API, "MLPipeline", self.namespace):
                generation = p["metadata"]["generation"]
                status = p.get("status") or {}
                if (p["metadata"]["name"], str(generation)) not in have:
                    return False
                if status.get("observedGeneration") != generation:
                    return False
            return True

        wait(converged, TIMEOUT, "every pipeline's current run", self.operator)

    def _collect_runs(self) -> None:
        self.result.generations = self._generations()
        runs: dict[tuple[str, int], list[str]] = {}
        for w in self._workflows():
            labels = w["metadata"]["labels"]
            key = (labels[PIPELINE_LABEL], int(labels[GENERATION_LABEL]))
            runs.setdefault(key, []).append(w["metadata"]["name"])
        self.result.runs = runs

    def _finish_runs_and_wait(self) -> None:
        """Play Argo: every run succeeds. Then every status must say so of the current run."""
        for w in self._workflows():
            name = w["metadata"]["name"]
            set_run_status(
                self.kube,
                self.namespace,
                name,
                workflow_status(name, "Succeeded", {}, finished="2026-01-01T01:00:00Z"),
            )
        expected = {
            name: run_name(self.namespace, name, generation)
            for name, generation in self.result.generations.items()
        }

        def wrong() -> list[str]:
            found = []
            for p in self.kube.list_objects(PIPELINE_API, "MLPipeline", self.namespace):
                name = p["metadata"]["name"]
                problem = status_problem(p, expected[name])
                if problem:
                    found.append(f"{name}: {problem}")
            return found

        # Statuses settle on their own; a wrong one that stays is reported, not waited on past
        # the guard.
        with contextlib.suppress(AssertionError):
            wait(lambda: not wrong(), TIMEOUT, "every status Succeeded", self.operator)
        self.result.wrong = wrong()
        self.result.statuses_right = len(expected) - len(self.result.wrong)


def status_problem(pipeline: dict[str, Any], expected_run: str) -> str | None:
    """What is wrong with a finished pipeline's status (an Invalid one included), or None."""
    status = pipeline.get("status") or {}
    got = (
        status.get("phase"),
        status.get("observedGeneration"),
        (status.get("lastRun") or {}).get("name"),
    )
    want = ("Succeeded", pipeline["metadata"]["generation"], expected_run)
    return None if got == want else f"(phase, observedGeneration, lastRun) = {got}, not {want}"


def _split(items: list[Operation], parts: int) -> list[list[Operation]]:
    """`parts` consecutive chunks, as even as can be, each with at least one operation."""
    size, extra = divmod(len(items), parts)
    chunks, start = [], 0
    for index in range(parts):
        end = start + size + (1 if index < extra else 0)
        chunks.append(items[start:end])
        start = end
    return chunks
