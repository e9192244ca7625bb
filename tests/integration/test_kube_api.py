"""The operator's API calls (`reconcile.kube.Kube`, over kubernetes_asyncio) against the real
kube-apiserver, and the in-memory stand-in of the reconciler's unit tests
(tests/unit/memory_kube.py) through the same checks: both answer every situation the
reconciler meets the same way (None, Conflict, Refused with status 404).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import pytest
from kubernetes_asyncio import config

from mlpipeline_operator.api.constants import API_VERSION, KIND
from mlpipeline_operator.caching import cache_config_map, cache_trim_patch
from mlpipeline_operator.compiler.workflow import CompileOptions, compile_document
from mlpipeline_operator.reconcile.kube import Conflict, Kube, KubeApi, Refused
from tests.controlplane.harness import ControlPlane
from tests.controlplane.harness import Kube as AdminKube
from tests.integration.operator_process import make_pipeline
from tests.unit.memory_kube import MemoryKube

Obj = dict[str, Any]
# Stores an MLPipeline as another client would create it; returns it as stored.
Seed = Callable[[Mapping[str, Any]], Obj]
Check = Callable[[KubeApi, Seed], Awaitable[None]]


@pytest.fixture(params=["kube-apiserver", "memory"])
def against(
    request: pytest.FixtureRequest, control_plane: ControlPlane, kube: AdminKube
) -> Callable[[Check], None]:
    """Runs a check with the real API or with the stand-in."""

    def run(check: Check) -> None:
        async def real() -> None:
            api = await config.new_client_from_config(config_file=str(control_plane.kubeconfig))
            try:
                await check(Kube(api), kube.create)
            finally:
                await api.close()

        async def memory() -> None:
            stand_in = MemoryKube()
            await check(stand_in, stand_in.add)

        asyncio.run(real() if request.param == "kube-apiserver" else memory())

    return run


def workflow(pipeline: Mapping[str, Any]) -> Obj:
    manifest = compile_document(pipeline, CompileOptions())
    manifest["metadata"]["namespace"] = pipeline["metadata"]["namespace"]
    return manifest


def test_create_child_then_again(against: Callable[[Check], None], namespace: str) -> None:
    async def check(api: KubeApi, seed: Seed) -> None:
        manifest = workflow(make_pipeline(namespace))
        name = manifest["metadata"]["name"]
        assert await api.get_child("Workflow", namespace, name) is None
        created = await api.create_child(manifest)
        assert created is not None and created["metadata"]["name"] == name
        assert await api.create_child(manifest) is None  # already exists
        found = await api.get_child("Workflow", namespace, name)
        assert found is not None and found["metadata"]["uid"] == created["metadata"]["uid"]

    against(check)


def test_replace_child_as_of_its_resource_version(
    against: Callable[[Check], None], namespace: str
) -> None:
    async def check(api: KubeApi, seed: Seed) -> None:
        manifest = workflow(make_pipeline(namespace))
        created = await api.create_child(manifest)
        assert created is not None
        stale = copy.deepcopy(created)
        created["spec"]["arguments"]["parameters"][0]["value"] = "0.5"
        await api.replace_child(created)
        with pytest.raises(Conflict):
            await api.replace_child(stale)
        replaced = await api.get_child("Workflow", namespace, manifest["metadata"]["name"])
        assert replaced is not None
        assert replaced["spec"]["arguments"]["parameters"][0]["value"] == "0.5"
        gone = copy.deepcopy(replaced)
        gone["metadata"]["name"] = "never-created"
        with pytest.raises(Refused) as refused:
            await api.replace_child(gone)
        assert refused.value.status == 404

    against(check)


def test_patch_child_merges_as_of_its_resource_version(
    against: Callable[[Check], None], namespace: str
) -> None:
    async def check(api: KubeApi, seed: Seed) -> None:
        manifest = workflow(make_pipeline(namespace))
        name = manifest["metadata"]["name"]
        created = await api.create_child(manifest)
        assert created is not None
        version = created["metadata"]["resourceVersion"]
        patch: Obj = {
            "metadata": {"resourceVersion": version, "annotations": {"example.com/a": "1"}},
            "spec": {"shutdown": "Stop"},
        }
        await api.patch_child("Workflow", namespace, name, patch)
        patched = await api.get_child("Workflow", namespace, name)
        assert patched is not None
        assert patched["spec"]["shutdown"] == "Stop"
        assert patched["metadata"]["annotations"]["example.com/a"] == "1"
        assert patched["spec"]["templates"] == created["spec"]["templates"]  # merged, not replaced
        with pytest.raises(Conflict):
            await api.patch_child("Workflow", namespace, name, patch)  # stale resourceVersion
        with pytest.raises(Refused) as refused:
            await api.patch_child("Workflow", namespace, "never-created", {"spec": {}})
        assert refused.value.status == 404

    against(check)


def test_list_runs_of_one_pipeline(against: Callable[[Check], None], namespace: str) -> None:
    async def check(api: KubeApi, seed: Seed) -> None:
        demo = workflow(make_pipeline(namespace, "demo"))
        other = workflow(make_pipeline(namespace, "other"))
        # An owner that exists: the garbage collector deletes a run whose owner does not.
        uid = seed(make_pipeline(namespace, "demo"))["metadata"]["uid"]
        owner = {"apiVersion": API_VERSION, "kind": KIND, "name": "demo", "uid": uid}
        demo["metadata"]["ownerReferences"] = [owner]
        for manifest in (demo, other):
            await api.create_child(manifest)
        runs = await api.list_runs(namespace, "demo")
        assert [r["metadata"]["name"] for r in runs] == [demo["metadata"]["name"]]
        # The metadata only: no spec, no status (a run of 100 steps is 80 KB whole).
        assert list(runs[0]) == ["metadata"]
        meta = runs[0]["metadata"]
        assert meta["labels"] == demo["metadata"]["labels"]
        assert meta["ownerReferences"] == [owner]
        assert await api.list_runs("default", "demo") == []

    against(check)


def test_delete_child_also_when_gone(against: Callable[[Check], None], namespace: str) -> None:
    async def check(api: KubeApi, seed: Seed) -> None:
        manifest = workflow(make_pipeline(namespace))
        name = manifest["metadata"]["name"]
        await api.create_child(manifest)
        await api.delete_child("Workflow", namespace, name)
        assert await api.get_child("Workflow", namespace, name) is None
        await api.delete_child("Workflow", namespace, name)  # nothing to do, no error

    against(check)


def test_pipeline_status_as_of_its_resource_version(
    against: Callable[[Check], None], namespace: str
) -> None:
    async def check(api: KubeApi, seed: Seed) -> None:
        assert await api.get_pipeline(namespace, "demo") is None
        stored = seed(make_pipeline(namespace))
        stale = copy.deepcopy(stored)
        stored["status"] = {"observedGeneration": 1, "phase": "Pending"}
        await api.replace_pipeline_status(stored)
        found = await api.get_pipeline(namespace, "demo")
        assert found is not None and found["status"] == stored["status"]
        stale["status"] = {"observedGeneration": 1, "phase": "Running"}
        with pytest.raises(Conflict):
            await api.replace_pipeline_status(stale)
        found["metadata"]["name"] = "never-created"
        with pytest.raises(Refused) as refused:
            await api.replace_pipeline_status(found)
        assert refused.value.status == 404

    against(check)


def test_create_config_map_then_again_and_delete_twice(
    against: Callable[[Check], None], namespace: str
) -> None:
    async def check(api: KubeApi, seed: Seed) -> None:
        manifest = cache_config_map(namespace, "demo", namespace)
        assert await api.create_config_map(manifest) is True
        assert await api.create_config_map(manifest) is False  # already exists
        name = manifest["metadata"]["name"]
        await api.delete_config_map(namespace, name)
        await api.delete_config_map(namespace, name)  # already gone: nothing
        assert await api.create_config_map(manifest) is True  # it was gone

    against(check)


def test_a_cache_trim_patch_removes_exactly_its_keys_as_of_the_version_read(
    against: Callable[[Check], None], namespace: str
) -> None:
    async def check(api: KubeApi, seed: Seed) -> None:
        manifest = cache_config_map(namespace, "demo", namespace)
        name = manifest["metadata"]["name"]
        assert await api.get_config_map(namespace, name) is None
        manifest["data"] = {"extract-0": "a", "train-0": "b", "train-1": "c"}
        await api.create_config_map(manifest)
        read = await api.get_config_map(namespace, name)
        assert read is not None and read["data"] == manifest["data"]
        version = read["metadata"]["resourceVersion"]
        await api.patch_config_map(
            namespace, name, cache_trim_patch(version, ["extract-0", "train-0"])
        )
        trimmed = await api.get_config_map(namespace, name)
        assert trimmed is not None and trimmed["data"] == {"train-1": "c"}
        assert trimmed["metadata"]["labels"] == manifest["metadata"]["labels"]
        # The version read before that patch is stale now: refused, nothing removed.
        with pytest.raises(Conflict):
            await api.patch_config_map(namespace, name, cache_trim_patch(version, ["train-1"]))
        after = await api.get_config_map(namespace, name)
        assert after is not None and after["data"] == {"train-1": "c"}
        with pytest.raises(Refused) as refused:
            await api.patch_config_map(namespace, "never-created", cache_trim_patch("1", ["a"]))
        assert refused.value.status == 404

    against(check)


def test_list_cache_metadata_gives_the_caches_metadata_only(
    against: Callable[[Check], None], namespace: str
) -> None:
    async def check(api: KubeApi, seed: Seed) -> None:
        manifest = cache_config_map(namespace, "demo", namespace)
        manifest["data"] = {"entry": "x" * 1000}
        await api.create_config_map(manifest)
        # A ConfigMap that is not a cache (no Argo cache label) is not listed.
        plain = {"metadata": {"name": "plain", "namespace": namespace}}
        await api.create_config_map({"apiVersion": "v1", "kind": "ConfigMap", **plain})
        found = await api.list_cache_metadata(namespace)
        assert [m["name"] for m in found] == [manifest["metadata"]["name"]]
        assert found[0]["annotations"] == {"mlops.gitops.dev/cache-of": f"{namespace}/demo"}

    against(check)
