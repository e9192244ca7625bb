"""The reconciler's decisions, against an in-memory API.

The integration tier runs the same code against a real kube-apiserver. This in-memory API is
here for faults the real one cannot be made to produce on demand: a status write that loses
the race against another writer (409) at an exact moment, and the count of writes per pass.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping
from typing import Any

import pytest

from mlpipeline_operator.compiler.workflow import CompileOptions
from mlpipeline_operator.core import InvalidPipeline, run_name
from mlpipeline_operator.reconcile.kube import Conflict
from mlpipeline_operator.reconcile.reconciler import Reconciler
from mlpipeline_operator.reconcile.status import Event
from tests.unit.pipelines import pipeline

Obj = dict[str, Any]


class MemoryKube:
    """Just enough of reconcile.kube.Kube, in memory, counting writes."""

    def __init__(self, conflicts: int = 0) -> None:
        self.children: dict[tuple[str, str], Obj] = {}
        self.pipelines: dict[str, Obj] = {}
        self.writes: list[str] = []
        self.conflicts = conflicts

    async def create_child(self, manifest: Mapping[str, Any]) -> Obj | None:
        key = (manifest["kind"], manifest["metadata"]["name"])
        if key in self.children:
            return None
        self.writes.append(f"create {key}")
        self.children[key] = copy.deepcopy(dict(manifest))
        self.children[key]["metadata"]["resourceVersion"] = "1"
        return self.children[key]

    async def get_child(self, kind: str, namespace: str, name: str) -> Obj | None:
        return copy.deepcopy(self.children.get((kind, name)))

    async def replace_child(self, manifest: Mapping[str, Any]) -> None:
        self.writes.append(f"replace {manifest['metadata']['name']}")
        self.children[(manifest["kind"], manifest["metadata"]["name"])] = dict(manifest)

    async def delete_child(self, kind: str, namespace: str, name: str) -> None:
        self.writes.append(f"delete {name}")
        self.children.pop((kind, name), None)

    async def list_runs(self, namespace: str, pipeline: str) -> list[Obj]:
        return [copy.deepcopy(o) for (k, _), o in self.children.items() if k == "Workflow"]

    async def get_pipeline(self, namespace: str, name: str) -> Obj | None:
        return copy.deepcopy(self.pipelines.get(name))

    async def replace_pipeline_status(self, body: Mapping[str, Any]) -> None:
        name = body["metadata"]["name"]
        stored = self.pipelines[name]
        if self.conflicts:
            # Another writer got there first: the stored object moved on.
            self.conflicts -= 1
            stored["metadata"]["resourceVersion"] = str(
                int(stored["metadata"]["resourceVersion"]) + 1
            )
        if body["metadata"]["resourceVersion"] != stored["metadata"]["resourceVersion"]:
            raise Conflict("conflict")
        self.writes.append("status")
        stored["status"] = copy.deepcopy(body["status"])
        stored["metadata"]["resourceVersion"] = str(int(stored["metadata"]["resourceVersion"]) + 1)


def setup(conflicts: int = 0, **changes: Any) -> tuple[MemoryKube, Reconciler, Obj, list[Event]]:
    kube = MemoryKube(conflicts)
    doc = pipeline()
    doc["metadata"].update(uid="uid-1", resourceVersion="1", generation=1)
    doc["spec"].update(changes)
    kube.pipelines["demo"] = doc
    reconciler = Reconciler(
        kube=kube,  # type: ignore[arg-type]
        options=CompileOptions(),
        clock=lambda: "2026-01-01T00:00:00Z",
    )
    events: list[Event] = []
    return kube, reconciler, doc, events


def run(reconciler: Reconciler, body: Obj, events: list[Event]) -> None:
    async def emit(_: Mapping[str, Any], event: Event) -> None:
        events.append(event)

    asyncio.run(reconciler.reconcile(body, emit))


def test_first_pass_submits_and_writes_status_then_nothing_more() -> None:
    kube, reconciler, doc, events = setup()
    run(reconciler, copy.deepcopy(doc), events)
    name = run_name("ml", "demo", 1)
    assert kube.writes == [f"create ('Workflow', '{name}')", "status"]
    owner = kube.children[("Workflow", name)]["metadata"]["ownerReferences"][0]
    assert owner["uid"] == "uid-1" and owner["blockOwnerDeletion"] is True
    assert [e.reason for e in events] == ["Submitted"]
    kube.writes.clear()
    run(reconciler, kube.pipelines["demo"], events)  # the object as it is now
    assert kube.writes == []


def test_status_conflict_is_reread_and_written() -> None:
    kube, reconciler, doc, events = setup(conflicts=2)
    run(reconciler, copy.deepcopy(doc), events)
    assert kube.writes[-1] == "status"
    assert kube.pipelines["demo"]["status"]["phase"] == "Pending"


def test_an_existing_run_is_adopted_not_duplicated() -> None:
    kube, reconciler, doc, events = setup()
    run(reconciler, copy.deepcopy(doc), events)
    del kube.pipelines["demo"]["status"]  # as if the status write had been lost
    kube.writes.clear()
    run(reconciler, copy.deepcopy(kube.pipelines["demo"]), events)
    assert kube.writes == ["status"]
    assert len(kube.children) == 1


def test_invalid_spec_writes_invalid_status_and_raises() -> None:
    kube, reconciler, doc, events = setup()
    doc["spec"]["steps"][1]["dependsOn"] = ["trian"]
    kube.pipelines["demo"] = copy.deepcopy(doc)
    with pytest.raises(InvalidPipeline) as caught:
        run(reconciler, doc, events)
    assert [p.path for p in caught.value.problems] == ["spec.steps[1].dependsOn[0]"]
    status = kube.pipelines["demo"]["status"]
    assert status["phase"] == "Invalid"
    assert [e.reason for e in events] == ["Invalid"]
    assert kube.children == {}


def test_schedule_updates_the_cronworkflow_only_when_it_differs() -> None:
    kube, reconciler, doc, events = setup(schedule={"cron": "0 1 * * *"})
    run(reconciler, copy.deepcopy(doc), events)
    kube.writes.clear()
    run(reconciler, copy.deepcopy(kube.pipelines["demo"]), events)
    assert kube.writes == []
    changed = copy.deepcopy(kube.pipelines["demo"])
    changed["spec"]["schedule"]["cron"] = "0 3 * * *"
    changed["metadata"]["generation"] = 2
    kube.pipelines["demo"] = copy.deepcopy(changed)
    run(reconciler, changed, events)
    assert kube.writes[0] == "replace demo"
    assert kube.children[("CronWorkflow", "demo")]["spec"]["schedules"] == ["0 3 * * *"]
