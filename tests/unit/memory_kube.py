"""An in-memory stand-in for the operator's API (`reconcile.kube.Kube`), for the reconciler's
unit tests: it keeps Workflows, CronWorkflows and MLPipelines in dictionaries, counts writes, and
can make the next status writes lose the race against another writer.

It satisfies `KubeApi` (mypy checks it in test_reconciler.py) and answers the situations of
the real API as `Kube` does: an existing child is None from `create_child`, a write carrying a
stale resourceVersion raises `Conflict`, a write to an object that does not exist raises
`Refused` with status 404. tests/integration/test_kube_api.py runs the same checks against
both.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from typing import Any

from mlpipeline_operator.api.constants import (
    ARGO_CACHE_LABEL,
    ARGO_CACHE_LABEL_VALUE,
    LABEL_PIPELINE,
)
from mlpipeline_operator.reconcile.kube import Conflict, Refused

Obj = dict[str, Any]
# (kind, namespace, name)
Key = tuple[str, str, str]


def _key(obj: Mapping[str, Any]) -> Key:
    meta = obj["metadata"]
    return (obj["kind"], meta["namespace"], meta["name"])


def _not_found(what: str, key: Key) -> Refused:
    kind, namespace, name = key
    return Refused(f"{what} {kind} {namespace}/{name}", 404, f'{kind} "{name}" not found')


def _merge(target: Obj, patch: Mapping[str, Any]) -> None:
    """JSON merge patch (RFC 7386): objects merge, null deletes, anything else replaces."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


class MemoryKube:
    """Objects in memory; `writes` lists every change made, in order; `reads` every list and
    get."""

    def __init__(self, conflicts: int = 0, config_map_conflicts: int = 0) -> None:
        """`conflicts`: how many status writes in a row find the MLPipeline changed by
        someone else (its resourceVersion moved on) and fail with Conflict;
        `config_map_conflicts`: the same for ConfigMap patches (Argo saving an entry)."""
        self.objects: dict[Key, Obj] = {}
        self.writes: list[str] = []
        self.reads: list[str] = []
        self.conflicts = conflicts
        self.config_map_conflicts = config_map_conflicts
        self._version = 0

    def _next_version(self) -> str:
        self._version += 1
        return str(self._version)

    def add(self, obj: Mapping[str, Any]) -> Obj:
        """Store an object as it would be after its creation by someone else (not a write)."""
        stored = copy.deepcopy(dict(obj))
        stored["metadata"].setdefault("uid", str(uuid.uuid4()))
        stored["metadata"]["resourceVersion"] = self._next_version()
        self.objects[_key(stored)] = stored
        return copy.deepcopy(stored)

    def child(self, kind: str, name: str, namespace: str = "ml") -> Obj:
        return self.objects[(kind, namespace, name)]

    def pipeline(self, name: str = "demo", namespace: str = "ml") -> Obj:
        return self.objects[("MLPipeline", namespace, name)]

    def _replace(self, what: str, body: Mapping[str, Any]) -> Obj:
        key = _key(body)
        stored = self.objects.get(key)
        if stored is None:
            raise _not_found(what, key)
        if body["metadata"].get("resourceVersion") != stored["metadata"]["resourceVersion"]:
            raise Conflict(f"{what} {key[0]} {key[1]}/{key[2]}: conflict")
        return stored

    async def create_child(self, manifest: Mapping[str, Any]) -> Obj | None:
        key = _key(manifest)
        if key in self.objects:
            return None
        self.writes.append(f"create {manifest['kind']} {key[2]}")
        return self.add(manifest)

    async def get_child(self, kind: str, namespace: str, name: str) -> Obj | None:
        self.reads.append(f"get {kind} {name}")
        return copy.deepcopy(self.objects.get((kind, namespace, name)))

    async def replace_child(self, manifest: Mapping[str, Any]) -> None:
        self._replace("update", manifest)
        self.writes.append(f"replace {manifest['kind']} {manifest['metadata']['name']}")
        self.add(manifest)

    async def delete_child(self, kind: str, namespace: str, name: str) -> None:
        if self.objects.pop((kind, namespace, name), None) is not None:
            self.writes.append(f"delete {kind} {name}")

    def _patch(self, key: Key, patch: Obj, write: str) -> None:
        """A JSON merge patch, conditional on the resourceVersion it carries, if any."""
        stored = self.objects.get(key)
        if stored is None:
            raise _not_found("patch", key)
        version = (patch.get("metadata") or {}).get("resourceVersion")
        if version is not None and version != stored["metadata"]["resourceVersion"]:
            raise Conflict(f"patch {key[0]} {key[1]}/{key[2]}: conflict")
        self.writes.append(write)
        _merge(stored, patch)
        stored["metadata"]["resourceVersion"] = self._next_version()

    async def patch_child(self, kind: str, namespace: str, name: str, patch: Obj) -> None:
        self._patch((kind, namespace, name), patch, f"patch {kind} {name}")

    async def list_runs(self, namespace: str, pipeline: str) -> list[Obj]:
        self.reads.append(f"list runs of {pipeline}")
        return [
            {"metadata": copy.deepcopy(obj["metadata"])}
            for (kind, ns, _), obj in self.objects.items()
            if kind == "Workflow"
            and ns == namespace
            and (obj["metadata"].get("labels") or {}).get(LABEL_PIPELINE) == pipeline
        ]

    async def create_config_map(self, manifest: Mapping[str, Any]) -> bool:
        key = _key(manifest)
        if key in self.objects:
            return False
        self.writes.append(f"create ConfigMap {key[1]}/{key[2]}")
        self.add(manifest)
        return True

    async def get_config_map(self, namespace: str, name: str) -> Obj | None:
        self.reads.append(f"get ConfigMap {namespace}/{name}")
        return copy.deepcopy(self.objects.get(("ConfigMap", namespace, name)))

    async def patch_config_map(self, namespace: str, name: str, patch: Obj) -> None:
        key = ("ConfigMap", namespace, name)
        stored = self.objects.get(key)
        if stored is not None and self.config_map_conflicts:
            self.config_map_conflicts -= 1  # Argo saved an entry since it was read
            stored["metadata"]["resourceVersion"] = self._next_version()
        self._patch(key, patch, f"patch ConfigMap {namespace}/{name} {patch}")

    async def delete_config_map(self, namespace: str, name: str) -> None:
        if self.objects.pop(("ConfigMap", namespace, name), None) is not None:
            self.writes.append(f"delete ConfigMap {namespace}/{name}")

    async def list_cache_metadata(self, namespace: str) -> list[Obj]:
        self.reads.append(f"list cache ConfigMaps in {namespace}")
        return [
            copy.deepcopy(obj["metadata"])
            for (kind, ns, _), obj in self.objects.items()
            if kind == "ConfigMap"
            and ns == namespace
            and (obj["metadata"].get("labels") or {}).get(ARGO_CACHE_LABEL)
            == ARGO_CACHE_LABEL_VALUE
        ]

    async def get_pipeline(self, namespace: str, name: str) -> Obj | None:
        self.reads.append(f"get MLPipeline {name}")
        return copy.deepcopy(self.objects.get(("MLPipeline", namespace, name)))

    async def replace_pipeline_status(self, pipeline: Mapping[str, Any]) -> None:
        stored = self.objects.get(_key(pipeline))
        if stored is not None and self.conflicts:
            # Another writer got there first: the stored object moved on.
            self.conflicts -= 1
            stored["metadata"]["resourceVersion"] = self._next_version()
        stored = self._replace("write status of", pipeline)
        self.writes.append("status")
        stored["status"] = copy.deepcopy(pipeline["status"])
        stored["metadata"]["resourceVersion"] = self._next_version()
