"""The reconciler's decisions, against an in-memory API.

The integration tier runs the same code against a real kube-apiserver. This in-memory API is
here for faults the real one cannot be made to produce on demand: a status write that loses
the race against another writer (409) at an exact moment, and the count of writes per pass.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException
from multidict import CIMultiDict, CIMultiDictProxy

from mlpipeline_operator.caching import (
    CACHE_TRIM_THRESHOLD,
    cache_config_map,
    cache_config_map_name,
    memoize_keys,
)
from mlpipeline_operator.compiler.workflow import CompileOptions
from mlpipeline_operator.core import InvalidPipeline, run_name
from mlpipeline_operator.policy import Tenancy, parse_policy
from mlpipeline_operator.reconcile.kube import (
    RETRY_DELAY,
    ClientClosed,
    Kube,
    KubeApi,
    Refused,
    Retryable,
    _translate,
)
from mlpipeline_operator.reconcile.reconciler import (
    REFUSED_RETRY_DELAY,
    STATUS_ATTEMPTS,
    Emit,
    Reconciler,
    RefusedByPolicy,
    Target,
    sweep_caches_periodically,
)
from mlpipeline_operator.reconcile.status import Event
from tests.unit.argo_runs import StepRun, workflow_status
from tests.unit.memory_kube import MemoryKube
from tests.unit.pipelines import pipeline

Obj = dict[str, Any]


# mypy checks that the API and its in-memory stand-in offer what the reconciler uses.
_API: type[KubeApi] = Kube
_STAND_IN: KubeApi = MemoryKube()


def setup(conflicts: int = 0, **changes: Any) -> tuple[MemoryKube, Reconciler, Obj, list[Event]]:
    kube = MemoryKube(conflicts)
    doc = pipeline()
    doc["metadata"].update(uid="uid-1", generation=1)
    doc["spec"].update(changes)
    doc = kube.add(doc)
    reconciler = Reconciler(
        kube=kube,
        options=CompileOptions(),
        clock=lambda: "2026-01-01T00:00:00Z",
    )
    events: list[Event] = []
    return kube, reconciler, doc, events


def record(events: list[Event]) -> Emit:
    async def emit(_: Mapping[str, Any], event: Event) -> None:
        events.append(event)

    return emit


def run(reconciler: Reconciler, body: Obj, events: list[Event]) -> None:
    asyncio.run(reconciler.reconcile(body, record(events)))


def children(kube: MemoryKube) -> list[tuple[str, str, str]]:
    return [key for key in kube.objects if key[0] != "MLPipeline"]


def test_first_pass_submits_and_writes_status_then_nothing_more() -> None:
    kube, reconciler, doc, events = setup()
    run(reconciler, copy.deepcopy(doc), events)
    name = run_name("ml", "demo", 1)
    assert kube.writes == [f"create Workflow {name}", "status"]
    owner = kube.child("Workflow", name)["metadata"]["ownerReferences"][0]
    assert owner["uid"] == "uid-1" and owner["blockOwnerDeletion"] is True
    assert [e.reason for e in events] == ["Submitted"]
    assert kube.reads == []  # the status comes from the run just created, not from a list
    kube.writes.clear()
    run(reconciler, kube.pipeline(), events)  # the object as it is now
    assert kube.writes == []


def submit_a_second_generation(
    kube: MemoryKube, reconciler: Reconciler, doc: Obj, events: list[Event]
) -> tuple[str, str]:
    """Generation 1 submitted and finished, then generation 2 submitted with the API calls
    recorded from there on; the names of both runs."""
    run(reconciler, copy.deepcopy(doc), events)
    first = run_name("ml", "demo", 1)
    kube.child("Workflow", first)["status"] = workflow_status(
        first, "Succeeded", {"train": StepRun("Succeeded")}, finished="2026-01-01T00:10:00Z"
    )
    asyncio.run(reconciler.refresh(Target.of(kube.pipeline()), record(events)))
    changed = copy.deepcopy(kube.pipeline())
    changed["spec"]["parameters"][0]["value"] = "0.2"
    changed["metadata"]["generation"] = 2
    changed = kube.add(changed)
    kube.writes.clear()
    kube.reads.clear()
    run(reconciler, changed, events)
    return first, run_name("ml", "demo", 2)


def test_the_status_after_a_submit_is_the_one_a_list_of_the_runs_gives() -> None:
    kube, reconciler, doc, events = setup()
    first, second = submit_a_second_generation(kube, reconciler, doc, events)
    assert kube.writes == [f"create Workflow {second}", "status"]
    assert kube.reads == []
    status = kube.pipeline()["status"]
    assert [(h["name"], h["phase"]) for h in status["history"]] == [
        (second, "Pending"),
        (first, "Succeeded"),
    ]
    # Recomputed from a list of the runs: the same status, so nothing is written. Only the
    # last run is read whole: the first, finished, is as the status records it.
    asyncio.run(reconciler.refresh(Target.of(kube.pipeline()), record(events)))
    assert kube.reads == ["list runs of demo", f"get Workflow {second}"]
    assert kube.writes == [f"create Workflow {second}", "status"]


def test_status_conflict_is_reread_and_written() -> None:
    kube, reconciler, doc, events = setup(conflicts=STATUS_ATTEMPTS - 1)
    run(reconciler, copy.deepcopy(doc), events)
    assert kube.writes == [f"create Workflow {run_name('ml', 'demo', 1)}", "status"]
    assert kube.pipeline()["status"]["phase"] == "Pending"


def test_a_status_that_keeps_conflicting_is_retried_later() -> None:
    kube, reconciler, doc, events = setup(conflicts=STATUS_ATTEMPTS)
    with pytest.raises(Retryable, match="kept changing while its status was written"):
        run(reconciler, copy.deepcopy(doc), events)
    assert "status" not in kube.pipeline()


def test_an_existing_run_is_adopted_not_duplicated() -> None:
    kube, reconciler, doc, events = setup()
    run(reconciler, copy.deepcopy(doc), events)
    del kube.pipeline()["status"]  # as if the status write had been lost
    kube.writes.clear()
    run(reconciler, copy.deepcopy(kube.pipeline()), events)
    assert kube.writes == ["status"]
    assert children(kube) == [("Workflow", "ml", run_name("ml", "demo", 1))]


def test_invalid_spec_writes_invalid_status_and_raises() -> None:
    kube, reconciler, doc, events = setup()
    doc["spec"]["steps"][1]["dependsOn"] = ["trian"]
    doc = kube.add(doc)
    with pytest.raises(InvalidPipeline) as caught:
        run(reconciler, doc, events)
    assert [p.path for p in caught.value.problems] == ["spec.steps[1].dependsOn[0]"]
    status = kube.pipeline()["status"]
    assert status["phase"] == "Invalid"
    assert [e.reason for e in events] == ["Invalid"]
    assert children(kube) == []


def test_schedule_updates_the_cronworkflow_only_when_it_differs() -> None:
    kube, reconciler, doc, events = setup(schedule={"cron": "0 1 * * *"})
    run(reconciler, copy.deepcopy(doc), events)
    kube.writes.clear()
    run(reconciler, copy.deepcopy(kube.pipeline()), events)
    assert kube.writes == []
    changed = copy.deepcopy(kube.pipeline())
    changed["spec"]["schedule"]["cron"] = "0 3 * * *"
    changed["metadata"]["generation"] = 2
    changed = kube.add(changed)
    run(reconciler, changed, events)
    assert kube.writes == ["replace CronWorkflow demo", "status"]
    assert kube.child("CronWorkflow", "demo")["spec"]["schedules"] == ["0 3 * * *"]


def test_a_policy_that_forbids_a_scheduled_pipeline_removes_its_cronworkflow() -> None:
    kube, reconciler, doc, events = setup(schedule={"cron": "0 1 * * *"})
    run(reconciler, copy.deepcopy(doc), events)
    assert children(kube) == [("CronWorkflow", "ml", "demo")]
    reconciler.tenancy = Tenancy(
        policy=parse_policy("apiVersion: mlops.gitops.dev/v1alpha1\nkind: TenancyPolicy\n", "p")
    )
    with pytest.raises(RefusedByPolicy):
        run(reconciler, copy.deepcopy(kube.pipeline()), events)
    assert children(kube) == []
    status = kube.pipeline()["status"]
    assert status["phase"] == "Invalid"
    assert status["message"] == (
        'spec.mlflow.credentialsSecret: Secret "mlflow" is not allowed in namespace ml; '
        'allowed: none; spec.mlflow.trackingUri: "http://mlflow:5000" is not allowed in '
        'namespace ml; allowed: none; spec.promotion.model: "demo" is not allowed in namespace '
        "ml; allowed: none"
    )


def test_a_cronworkflow_changed_meanwhile_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    kube, reconciler, doc, events = setup(schedule={"cron": "0 1 * * *"})
    run(reconciler, copy.deepcopy(doc), events)
    changed = copy.deepcopy(kube.pipeline())
    changed["spec"]["schedule"]["cron"] = "0 3 * * *"
    changed["metadata"]["generation"] = 2
    changed = kube.add(changed)
    kube.writes.clear()

    real_get = kube.get_child

    async def get_then_someone_writes(kind: str, namespace: str, name: str) -> Obj | None:
        found = await real_get(kind, namespace, name)
        kube.add(kube.child(kind, name))  # another writer: a new resourceVersion
        return found

    monkeypatch.setattr(kube, "get_child", get_then_someone_writes)
    with pytest.raises(Retryable, match="CronWorkflow demo changed while being updated"):
        run(reconciler, changed, events)
    assert kube.writes == []


def test_a_submit_past_the_history_limits_lists_the_runs_and_deletes_the_oldest() -> None:
    kube, reconciler, doc, events = setup(history={"succeeded": 0})
    first, second = submit_a_second_generation(kube, reconciler, doc, events)
    assert kube.reads == ["list runs of demo", f"get Workflow {second}"]
    assert kube.writes == [f"create Workflow {second}", "status", f"delete Workflow {first}"]


def test_a_caching_pipeline_gets_its_cache_before_its_run_and_loses_it_with_it() -> None:
    kube, reconciler, doc, events = setup(defaults={"cache": {"maxAge": "24h"}})
    run(reconciler, copy.deepcopy(doc), events)
    cache = cache_config_map_name("ml", "demo")
    name = run_name("ml", "demo", 1)
    assert kube.writes == [f"create ConfigMap argo/{cache}", f"create Workflow {name}", "status"]
    config_map = kube.child("ConfigMap", cache, namespace="argo")
    assert config_map["metadata"]["labels"] == {
        "workflows.argoproj.io/configmap-type": "Cache",
        "app.kubernetes.io/managed-by": "mlpipeline-operator",
        "mlops.gitops.dev/pipeline": "demo",
    }
    assert config_map["metadata"]["annotations"] == {"mlops.gitops.dev/cache-of": "ml/demo"}
    assert "ownerReferences" not in config_map["metadata"]  # none can reach across namespaces
    # A rerun of a pipeline whose cache is there: created once, the run submitted.
    kube.writes.clear()
    rerun = kube.pipeline()
    rerun["metadata"]["annotations"] = {"mlops.gitops.dev/rerun": "1"}
    run(reconciler, rerun, events)
    assert kube.writes == [f"create Workflow {run_name('ml', 'demo', 1, '1')}", "status"]
    kube.writes.clear()
    asyncio.run(reconciler.forget(kube.pipeline()))
    assert kube.writes == [f"delete ConfigMap argo/{cache}"]


def test_a_scheduled_caching_pipeline_reads_its_cache_only_when_its_cronworkflow_changes() -> None:
    kube, reconciler, doc, events = setup(
        schedule={"cron": "0 1 * * *"}, defaults={"cache": {"maxAge": "24h"}}
    )
    cache = cache_config_map_name("ml", "demo")
    run(reconciler, copy.deepcopy(doc), events)
    assert kube.writes[:2] == [f"create ConfigMap argo/{cache}", "create CronWorkflow demo"]
    assert f"get ConfigMap argo/{cache}" in kube.reads
    kube.reads.clear()
    run(reconciler, kube.pipeline(), events)  # a resume: the CronWorkflow is as compiled
    assert f"get ConfigMap argo/{cache}" not in kube.reads
    changed = kube.pipeline()
    changed["spec"]["schedule"]["cron"] = "0 3 * * *"
    changed["metadata"]["generation"] = 2
    changed = kube.add(changed)
    kube.reads.clear()
    kube.writes.clear()
    run(reconciler, changed, events)
    assert "replace CronWorkflow demo" in kube.writes
    assert kube.reads.count(f"get ConfigMap argo/{cache}") == 1


def cached_and_rerun(
    kube: MemoryKube, reconciler: Reconciler, doc: Obj, data: Callable[[set[str]], dict[str, str]]
) -> tuple[str, set[str], str]:
    """A caching pipeline's first run submitted, its cache then holding `data(current keys)`,
    then a rerun with the API calls recorded from there on; the cache's name, the keys, and
    the resourceVersion of the cache before the rerun."""
    run(reconciler, copy.deepcopy(doc), [])
    cache = cache_config_map_name("ml", "demo")
    current = memoize_keys(kube.child("Workflow", run_name("ml", "demo", 1)))
    stored = kube.child("ConfigMap", cache, namespace="argo")
    stored["data"] = data(current)
    version = str(stored["metadata"]["resourceVersion"])
    kube.writes.clear()
    kube.reads.clear()
    rerun = kube.pipeline()
    rerun["metadata"]["annotations"] = {"mlops.gitops.dev/rerun": "1"}
    run(reconciler, rerun, [])
    return cache, current, version


def test_a_cache_above_the_threshold_loses_the_entries_the_run_does_not_use(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kube, reconciler, doc, _ = setup(defaults={"cache": {"maxAge": "24h"}})

    def full(current: set[str]) -> dict[str, str]:
        stale = {f"train-{i:032x}": "s" * 200_000 for i in range(3)}
        return {**stale, **{key: '{"nodeID":"n"}' for key in current}}

    with caplog.at_level(logging.INFO, logger="mlpipeline_operator"):
        cache, current, version = cached_and_rerun(kube, reconciler, doc, full)
    assert len(current) == 3
    stale = [f"train-{i:032x}" for i in range(3)]
    patch = {"metadata": {"resourceVersion": version}, "data": dict.fromkeys(stale)}
    rerun = run_name("ml", "demo", 1, "1")
    assert kube.writes == [
        f"patch ConfigMap argo/{cache} {patch}",
        f"create Workflow {rerun}",
        "status",
    ]
    assert kube.child("ConfigMap", cache, namespace="argo")["data"] == {
        key: '{"nodeID":"n"}' for key in current
    }
    before = 3 * (len(stale[0]) + 200_000) + sum(len(k) + 14 for k in current)
    after = sum(len(k) + 14 for k in current)
    assert (
        f"ml/demo: trimmed cache ConfigMap argo/{cache}: 3 stale entries removed, "
        f"{before} bytes -> {after} bytes"
    ) in caplog.messages


def test_a_cache_within_the_threshold_is_only_read() -> None:
    kube, reconciler, doc, _ = setup(defaults={"cache": {"maxAge": "24h"}})

    def half(current: set[str]) -> dict[str, str]:
        entries = {key: "" for key in current}
        room = CACHE_TRIM_THRESHOLD - sum(len(k) for k in entries) - len("train-old")
        return {**entries, "train-old": "s" * room}

    cache, _, _ = cached_and_rerun(kube, reconciler, doc, half)
    assert kube.reads == [f"get ConfigMap argo/{cache}"]
    assert kube.writes == [f"create Workflow {run_name('ml', 'demo', 1, '1')}", "status"]
    assert "train-old" in kube.child("ConfigMap", cache, namespace="argo")["data"]


def test_a_cache_changed_while_being_trimmed_is_left_and_the_run_submitted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kube, reconciler, doc, _ = setup(defaults={"cache": {"maxAge": "24h"}})
    kube.config_map_conflicts = 1  # Argo saves an entry between the read and the patch

    def full(current: set[str]) -> dict[str, str]:
        return {"train-old": "s" * (CACHE_TRIM_THRESHOLD + 1)}

    with caplog.at_level(logging.INFO, logger="mlpipeline_operator"):
        cache, _, _ = cached_and_rerun(kube, reconciler, doc, full)
    assert kube.writes == [f"create Workflow {run_name('ml', 'demo', 1, '1')}", "status"]
    assert list(kube.child("ConfigMap", cache, namespace="argo")["data"]) == ["train-old"]
    assert (
        f"ml/demo: cache ConfigMap argo/{cache} changed while being trimmed: left as it is"
        in caplog.messages
    )


def test_the_cache_lives_in_the_namespace_of_argo_given() -> None:
    kube, _, doc, events = setup(defaults={"cache": {"maxAge": "1h"}})
    reconciler = Reconciler(kube=kube, options=CompileOptions(), cache_namespace="workflows")
    run(reconciler, copy.deepcopy(doc), events)
    assert ("ConfigMap", "workflows", cache_config_map_name("ml", "demo")) in kube.objects


def test_a_pipeline_without_cached_steps_has_no_cache() -> None:
    kube, reconciler, doc, events = setup(defaults={"cache": {"maxAge": "1h"}})
    doc["spec"]["defaults"] = {}
    run(reconciler, copy.deepcopy(doc), events)
    assert [k for k in kube.objects if k[0] == "ConfigMap"] == []


def test_the_sweep_deletes_only_the_caches_of_watched_pipelines_that_are_gone() -> None:
    kube, reconciler, _, _ = setup()  # the pipeline ml/demo exists
    owners = [("ml", "demo"), ("ml", "gone"), ("other", "gone")]
    caches = {f"{ns}/{name}": cache_config_map_name(ns, name) for ns, name in owners}
    for ns, name in owners:
        kube.add(cache_config_map(ns, name, "argo"))
    # Argo's cache of some other workflow; and one whose annotation names another pipeline.
    kube.add(
        {
            "kind": "ConfigMap",
            "metadata": {
                "name": "argo-cache",
                "namespace": "argo",
                "labels": {"workflows.argoproj.io/configmap-type": "Cache"},
            },
        }
    )
    forged = cache_config_map("ml", "gone-too", "argo")
    forged["metadata"]["annotations"]["mlops.gitops.dev/cache-of"] = "ml/gone"
    kube.add(forged)

    deleted = asyncio.run(reconciler.sweep_caches(lambda namespace: namespace == "ml"))

    assert deleted == [caches["ml/gone"]]
    assert kube.writes == [f"delete ConfigMap argo/{caches['ml/gone']}"]
    left = sorted(name for kind, _, name in kube.objects if kind == "ConfigMap")
    assert left == sorted(
        [caches["ml/demo"], caches["other/gone"], "argo-cache", forged["metadata"]["name"]]
    )
    # The same sweep again finds nothing more to delete.
    assert asyncio.run(reconciler.sweep_caches(lambda namespace: namespace == "ml")) == []


def test_a_sweep_the_api_server_cannot_answer_is_tried_again_soon() -> None:
    kube, reconciler, _, _ = setup()
    kube.add(cache_config_map("ml", "gone", "argo"))
    answers: list[str] = []

    async def failing_once(namespace: str) -> list[Obj]:
        answers.append(namespace)
        if len(answers) == 1:
            raise Retryable("list cache ConfigMaps in argo: API server answered 503")
        return await MemoryKube.list_cache_metadata(kube, namespace)

    kube.list_cache_metadata = failing_once  # type: ignore[method-assign]
    waits: list[float] = []

    async def sweep() -> None:
        task = asyncio.create_task(
            sweep_caches_periodically(reconciler, lambda _: True, interval=3600, retry_interval=60)
        )
        # Each sweep ends in a wait; the second wait is the long one.
        while len(waits) < 2:
            await asyncio.sleep(0)
        task.cancel()

    real_sleep = asyncio.sleep

    async def recorded_sleep(delay: float) -> None:
        if delay:
            waits.append(delay)
        await real_sleep(0)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(asyncio, "sleep", recorded_sleep)
        asyncio.run(sweep())

    assert waits[:2] == [60, 3600]
    assert ("ConfigMap", "argo", cache_config_map_name("ml", "gone")) not in kube.objects


class Unavailable(MemoryKube):
    """Lists of runs fail `failures` times with `error` (the API server busy)."""

    def __init__(self, failures: int, error: Callable[[str], Retryable]) -> None:
        super().__init__()
        self.failures = failures
        self.error = error

    async def list_runs(self, namespace: str, pipeline: str) -> list[Obj]:
        if self.failures:
            self.failures -= 1
            raise self.error(f"list runs of {namespace}/{pipeline}")
        return await super().list_runs(namespace, pipeline)


def waiting_reconciler(kube: MemoryKube) -> tuple[Reconciler, list[float]]:
    """Pipeline ml/demo in `kube`, and a reconciler that records its waits instead of waiting."""
    doc = pipeline()
    doc["metadata"].update(uid="uid-1", generation=1)
    kube.add(doc)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    return Reconciler(kube=kube, options=CompileOptions(), sleep=sleep), waits


def refresh_for_a_running_run(kube: MemoryKube) -> list[float]:
    """A run's event on an unfinished run of pipeline ml/demo; the waits between attempts."""
    reconciler, waits = waiting_reconciler(kube)
    run_obj = kube.add(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {
                "name": run_name("ml", "demo", 1),
                "namespace": "ml",
                "labels": {"mlops.gitops.dev/pipeline": "demo"},
                "ownerReferences": [{"kind": "MLPipeline", "name": "demo", "uid": "uid-1"}],
            },
            "status": {"phase": "Running"},
        }
    )

    async def emit(_: Mapping[str, Any], event: Event) -> None:
        pass

    asyncio.run(reconciler.refresh_for_run(run_obj, emit, "MODIFIED"))
    return waits


def test_a_run_event_is_retried_with_a_doubling_wait_until_the_status_is_written() -> None:
    kube = Unavailable(7, lambda what: Retryable(f"{what}: API server answered 503", 1.5))
    waits = refresh_for_a_running_run(kube)
    assert waits == [1.5, 3.0, 6.0, 12.0, 20.0, 20.0, 20.0]
    assert kube.writes == ["status"]
    assert kube.pipeline()["status"]["lastRun"]["name"] == run_name("ml", "demo", 1)


def test_a_run_event_ends_at_once_when_the_api_client_is_closed() -> None:
    kube = Unavailable(1, lambda what: ClientClosed(f"{what}: Session is closed"))
    with pytest.raises(ClientClosed, match=r"^list runs of ml/demo: Session is closed$"):
        refresh_for_a_running_run(kube)
    assert kube.writes == []


@pytest.mark.parametrize(
    ("status", "headers", "delay"),
    [(429, {"Retry-After": "2"}, 2.0), (503, {"Retry-After": "0"}, 0.0), (500, {}, RETRY_DELAY)],
)
def test_the_api_servers_retry_after_sets_the_delay(
    status: int, headers: dict[str, str], delay: float
) -> None:
    error = ApiException(status=status, reason="busy")
    error.headers = CIMultiDictProxy(CIMultiDict(headers))
    translated = _translate(error, "list runs of ml/demo")
    assert isinstance(translated, Retryable)
    assert translated.delay == delay
    assert str(translated) == f"list runs of ml/demo: API server answered {status} busy"


@pytest.mark.parametrize(
    "error",
    [
        aiohttp.ServerDisconnectedError(),
        ConnectionResetError(104, "reset"),
        TimeoutError(),
        RuntimeError("Session is closed"),
    ],
    ids=["server-disconnected", "reset", "timeout", "client-closed"],
)
def test_a_broken_connection_is_retryable(error: Exception) -> None:
    async def call() -> None:
        async def broken() -> None:
            raise error

        async with ApiClient() as api:
            await Kube(api)._call("list runs of ml/demo", broken)

    with pytest.raises(Retryable, match=r"^list runs of ml/demo: \w+"):
        asyncio.run(call())


def test_a_finished_run_the_status_records_is_read_again_when_argo_runs_it_again() -> None:
    kube, reconciler, doc, events = setup()
    first, second = submit_a_second_generation(kube, reconciler, doc, events)
    kube.reads.clear()
    # `argo retry` of the first run: Argo's labels say it runs again.
    retried = kube.child("Workflow", first)
    retried["metadata"].setdefault("labels", {}).update(
        {"workflows.argoproj.io/phase": "Running", "workflows.argoproj.io/completed": "false"}
    )
    retried["status"] = workflow_status(first, "Running", {"train": StepRun("Running")})
    asyncio.run(reconciler.refresh(Target.of(kube.pipeline()), record(events)))
    assert kube.reads == ["list runs of demo", f"get Workflow {second}", f"get Workflow {first}"]
    history = kube.pipeline()["status"]["history"]
    assert [(h["name"], h["phase"]) for h in history] == [(second, "Pending"), (first, "Running")]


def test_queued_run_events_refresh_a_pipeline_once_and_once_more_after_a_change_meanwhile() -> None:
    kube, reconciler, doc, events = setup()
    run(reconciler, copy.deepcopy(doc), events)
    run_1 = run_name("ml", "demo", 1)
    workflow = kube.child("Workflow", run_1)
    workflow["status"] = workflow_status(run_1, "Running", {"train": StepRun("Running")})
    kube.reads.clear()
    real_get = kube.get_pipeline
    changes_meanwhile = [workflow]

    async def get_while_the_run_changes(namespace: str, name: str) -> Obj | None:
        found = await real_get(namespace, name)
        while changes_meanwhile:  # an event during the first refresh
            reconciler.queue_refresh_for_run(changes_meanwhile.pop(), record(events), "MODIFIED")
        return found

    kube.get_pipeline = get_while_the_run_changes  # type: ignore[method-assign]

    async def three_events_then_wait() -> None:
        for _ in range(3):
            reconciler.queue_refresh_for_run(workflow, record(events), "MODIFIED")
        while reconciler.background:
            await asyncio.gather(*reconciler.background)

    asyncio.run(three_events_then_wait())
    assert kube.reads.count("get MLPipeline demo") == 2
    assert reconciler.queued == set() and reconciler.refreshing == set()
    assert kube.pipeline()["status"]["phase"] == "Running"


def drain(reconciler: Reconciler, queue: Callable[[], None]) -> None:
    """Queue passes, then wait for every one, including those queued by passes."""

    async def wait() -> None:
        queue()
        while reconciler.background:
            await asyncio.gather(*reconciler.background)

    asyncio.run(wait())


def test_a_queued_resume_reads_the_pipeline_when_its_turn_comes_and_submits_its_run() -> None:
    kube, reconciler, _, events = setup()
    counted: list[str] = []

    @contextmanager
    def count() -> Iterator[None]:
        counted.append("reconcile")
        yield

    reconciler.counted = count

    def queue_twice() -> None:
        reconciler.queue_reconcile("ml", "demo", record(events))
        reconciler.queue_reconcile("ml", "demo", record(events))  # one pass for both

    drain(reconciler, queue_twice)
    assert kube.reads == ["get MLPipeline demo"]
    assert kube.writes == [f"create Workflow {run_name('ml', 'demo', 1)}", "status"]
    assert [e.reason for e in events] == ["Submitted"] and counted == ["reconcile"]
    assert reconciler.queued == reconciler.to_reconcile == reconciler.refreshing == set()


def test_a_resume_queued_during_a_refresh_runs_after_it_whole() -> None:
    kube, reconciler, _, events = setup()
    real_get = kube.get_pipeline
    resumed: list[str] = []

    async def get_while_resumed(namespace: str, name: str) -> Obj | None:
        found = await real_get(namespace, name)
        if not resumed:  # the operator's start, during a run event's refresh
            resumed.append(name)
            reconciler.queue_reconcile(namespace, name, record(events))
        return found

    kube.get_pipeline = get_while_resumed  # type: ignore[method-assign]
    run_event = {
        "metadata": {
            "name": "r",
            "namespace": "ml",
            "labels": {"mlops.gitops.dev/pipeline": "demo"},
        },
        "status": {"phase": "Running"},
    }
    drain(
        reconciler, lambda: reconciler.queue_refresh_for_run(run_event, record(events), "MODIFIED")
    )
    # The refresh wrote the status it found (no run yet); the resume then submitted the run.
    assert kube.writes == ["status", f"create Workflow {run_name('ml', 'demo', 1)}", "status"]
    assert kube.reads.count("get MLPipeline demo") == 2


class RefusesCreates(MemoryKube):
    """Refuses the first `refusals` creates of a run (rights missing, as a 403 says)."""

    def __init__(self, refusals: int) -> None:
        super().__init__()
        self.refusals = refusals

    async def create_child(self, manifest: Mapping[str, Any]) -> Obj | None:
        if self.refusals:
            self.refusals -= 1
            raise Refused("create Workflow", 403, "forbidden")
        return await super().create_child(manifest)


def test_a_queued_resume_refused_is_tried_again_after_a_minute() -> None:
    kube = RefusesCreates(1)
    reconciler, waits = waiting_reconciler(kube)
    drain(reconciler, lambda: reconciler.queue_reconcile("ml", "demo", record([])))
    assert waits == [REFUSED_RETRY_DELAY]
    assert kube.reads.count("get MLPipeline demo") == 2
    assert children(kube) == [("Workflow", "ml", run_name("ml", "demo", 1))]


def test_a_queued_resume_of_an_invalid_spec_writes_its_status_and_ends() -> None:
    kube, reconciler, doc, events = setup()
    doc["spec"]["steps"][1]["dependsOn"] = ["trian"]
    kube.add(doc)
    drain(reconciler, lambda: reconciler.queue_reconcile("ml", "demo", record(events)))
    assert kube.pipeline()["status"]["phase"] == "Invalid"
    assert [e.reason for e in events] == ["Invalid"] and children(kube) == []
