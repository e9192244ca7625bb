"""The few Kubernetes API calls the operator makes, over kubernetes_asyncio.

Errors become three kinds the reconciler understands: `Conflict` (someone else changed the
object: re-read and recompute), `Retryable` (the API server is busy or unreachable: try later) and
`Refused` (forbidden, missing, invalid: a one-line reason for the log, then a slow retry).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from mlpipeline_operator.api.constants import (
    ARGO_CACHE_LABEL,
    ARGO_CACHE_LABEL_VALUE,
    ARGO_GROUP,
    ARGO_VERSION,
    GROUP,
    LABEL_MANAGED_BY,
    LABEL_PIPELINE,
    MANAGER,
    PLURAL,
    VERSION,
)

Obj = dict[str, Any]
_PLURALS = {"Workflow": "workflows", "CronWorkflow": "cronworkflows"}
PEERING_GROUP, PEERING_VERSION = "kopf.dev", "v1"  # kopf's leader election
_WEBHOOK_CONFIGURATIONS = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
_METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
# Seconds before retrying a request the API server could not answer, unless it said how long.
RETRY_DELAY = 5.0


class Retryable(Exception):
    """A failure worth retrying after a delay (API server busy, unreachable, throttling)."""

    def __init__(self, message: str, delay: float = RETRY_DELAY) -> None:
        super().__init__(message)
        self.delay = delay


class Conflict(Exception):
    """The object changed since it was read."""


class ClientClosed(Retryable):
    """The API client is closed: the operator is stopping (a pass is retried after 1 s by the
    next start, which resumes every pipeline anyway)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, delay=1)


class Refused(Exception):
    """The API server refused the request (forbidden, not found, invalid): one line saying
    what was asked and the server's own reason."""

    def __init__(self, what: str, status: int, reason: str) -> None:
        super().__init__(f"{what}: API server answered {status}: {reason}")
        self.status = status


def _translate(error: ApiException, what: str) -> Exception:
    if error.status == 409:
        return Conflict(f"{what}: conflict")
    if error.status in (429, 500, 502, 503, 504) or error.status == 0:
        message = f"{what}: API server answered {error.status} {error.reason}"
        retry_after = _retry_after(error)
        return Retryable(message, delay=RETRY_DELAY if retry_after is None else retry_after)
    try:  # a Status object says why: "... cannot create resource ..."
        reason = str(json.loads(error.body or b"")["message"])
    except (TypeError, ValueError, KeyError):
        reason = str(error.reason)
    return Refused(what, error.status, reason)


def _retry_after(error: ApiException) -> float | None:
    """The seconds to wait that the API server asked for (`Retry-After`, sent with 429 and
    some 503 answers), if any."""
    value = error.headers.get("Retry-After") if error.headers is not None else None
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


class KubeApi(Protocol):
    """The API calls that reconciliation makes: `Kube` against the API server, or a stand-in
    in memory. Both raise the same errors for the same situations: `Conflict` for a write
    carrying a stale resourceVersion, `Refused` (status 404) for writing an object that does not
    exist, `Retryable` when the server cannot answer now."""

    async def create_child(self, manifest: Mapping[str, Any]) -> Obj | None:
        """Create a Workflow or CronWorkflow; None when it already exists."""
        ...

    async def get_child(self, kind: str, namespace: str, name: str) -> Obj | None:
        """A Workflow or CronWorkflow; None when it does not exist."""
        ...

    async def replace_child(self, manifest: Mapping[str, Any]) -> None:
        """Replace a Workflow or CronWorkflow as of `metadata.resourceVersion`."""
        ...

    async def delete_child(self, kind: str, namespace: str, name: str) -> None:
        """Delete a Workflow or CronWorkflow; nothing when it is already gone."""
        ...

    async def patch_child(self, kind: str, namespace: str, name: str, patch: Obj) -> None:
        """Apply a JSON merge patch to a Workflow or CronWorkflow (a `metadata.resourceVersion`
        in the patch makes it conditional: Conflict if the object changed since)."""
        ...

    async def list_runs(self, namespace: str, pipeline: str) -> list[Obj]:
        """Every Workflow of the namespace labelled with the pipeline's name, as its metadata
        only (`{"metadata": ...}`): a finished run of 100 steps weighs 80 KB whole."""
        ...

    async def get_pipeline(self, namespace: str, name: str) -> Obj | None:
        """An MLPipeline; None when it does not exist."""
        ...

    async def create_config_map(self, manifest: Mapping[str, Any]) -> bool:
        """Create a ConfigMap; False when it already exists."""
        ...

    async def get_config_map(self, namespace: str, name: str) -> Obj | None:
        """A ConfigMap; None when it does not exist."""
        ...

    async def patch_config_map(self, namespace: str, name: str, patch: Obj) -> None:
        """Apply a JSON merge patch to a ConfigMap (a `metadata.resourceVersion` in the patch
        makes it conditional: Conflict if the object changed since)."""
        ...

    async def delete_config_map(self, namespace: str, name: str) -> None:
        """Delete a ConfigMap; nothing when it is already gone."""
        ...

    async def list_cache_metadata(self, namespace: str) -> list[Obj]:
        """The metadata of the ConfigMaps of a namespace that Argo uses as caches (label
        `workflows.argoproj.io/configmap-type: Cache`), without their data."""
        ...

    async def replace_pipeline_status(self, pipeline: Mapping[str, Any]) -> None:
        """Write the whole status as of `metadata.resourceVersion`."""
        ...


def _count_nothing(_: int | None) -> None:
    pass


async def connect() -> client.ApiClient:
    """An API client from the pod's service account, else from the kubeconfig."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        await config.load_kube_config()
    return client.ApiClient()


class Kube:
    """Typed access to MLPipelines and the Argo objects they own."""

    def __init__(
        self, api: client.ApiClient, count_error: Callable[[int | None], None] | None = None
    ) -> None:
        """`count_error`: told the HTTP status of every failed request (None: no answer)."""
        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.count_error = count_error or _count_nothing

    async def _call(self, what: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await method(*args, **kwargs)
        except ApiException as error:
            self.count_error(error.status)
            raise _translate(error, what) from None
        # Connection refused, reset or closed by the server, DNS, timeout (kubernetes_asyncio
        # raises aiohttp's errors, and not all of them are OSErrors).
        except (OSError, aiohttp.ClientError, TimeoutError) as error:
            self.count_error(None)
            raise Retryable(f"{what}: {type(error).__name__}: {error}") from None
        except RuntimeError as error:  # "Session is closed": the operator is stopping
            raise ClientClosed(f"{what}: {error}") from None

    async def create_child(self, manifest: Mapping[str, Any]) -> Obj | None:
        """Create a Workflow or CronWorkflow; None when it already exists."""
        meta = manifest["metadata"]
        what = f"create {manifest['kind']} {meta['namespace']}/{meta['name']}"
        try:
            created: Obj = await self._call(
                what,
                self.custom.create_namespaced_custom_object,
                ARGO_GROUP,
                ARGO_VERSION,
                meta["namespace"],
                _PLURALS[manifest["kind"]],
                dict(manifest),
            )
        except Conflict:
            return None
        return created

    async def _get(
        self, group: str, version: str, plural: str, namespace: str, name: str
    ) -> Obj | None:
        """One object, or None when it does not exist."""
        try:
            found: Obj = await self._call(
                f"get {plural} {namespace}/{name}",
                self.custom.get_namespaced_custom_object,
                group,
                version,
                namespace,
                plural,
                name,
            )
        except Refused as error:
            if error.status == 404:
                return None
            raise
        return found

    async def get_child(self, kind: str, namespace: str, name: str) -> Obj | None:
        return await self._get(ARGO_GROUP, ARGO_VERSION, _PLURALS[kind], namespace, name)

    async def replace_child(self, manifest: Mapping[str, Any]) -> None:
        meta = manifest["metadata"]
        await self._call(
            f"update {manifest['kind']} {meta['namespace']}/{meta['name']}",
            self.custom.replace_namespaced_custom_object,
            ARGO_GROUP,
            ARGO_VERSION,
            meta["namespace"],
            _PLURALS[manifest["kind"]],
            meta["name"],
            dict(manifest),
        )

    async def delete_child(self, kind: str, namespace: str, name: str) -> None:
        try:
            await self._call(
                f"delete {kind} {namespace}/{name}",
                self.custom.delete_namespaced_custom_object,
                ARGO_GROUP,
                ARGO_VERSION,
                namespace,
                _PLURALS[kind],
                name,
            )
        except Refused as error:
            if error.status != 404:
                raise

    async def patch_child(self, kind: str, namespace: str, name: str, patch: Obj) -> None:
        await self._call(
            f"patch {kind} {namespace}/{name}",
            self.custom.patch_namespaced_custom_object,
            ARGO_GROUP,
            ARGO_VERSION,
            namespace,
            _PLURALS[kind],
            name,
            patch,
            _content_type="application/merge-patch+json",
        )

    async def list_runs(self, namespace: str, pipeline: str) -> list[Obj]:
        response = await self._call(
            f"list runs of {namespace}/{pipeline}",
            self.api.call_api,
            f"/apis/{ARGO_GROUP}/{ARGO_VERSION}/namespaces/{namespace}/workflows",
            "GET",
            query_params=[("labelSelector", f"{LABEL_PIPELINE}={pipeline}")],
            header_params={"Accept": _METADATA_LIST},
            auth_settings=["BearerToken"],
            response_types_map={200: "object"},
            _return_http_data_only=True,
        )
        return [{"metadata": item["metadata"]} for item in response.get("items") or []]

    async def create_peering(self, name: str, namespace: str | None) -> bool:
        """Create kopf's peering object for leader election (a ClusterKopfPeering, or a
        KopfPeering in ``namespace``); False when it already exists. A create alone: the
        operator's rights hold no get on peering objects."""
        kind = "ClusterKopfPeering" if namespace is None else "KopfPeering"
        body: Obj = {
            "apiVersion": f"{PEERING_GROUP}/{PEERING_VERSION}",
            "kind": kind,
            "metadata": {"name": name, "labels": {LABEL_MANAGED_BY: MANAGER}},
        }
        where = name if namespace is None else f"{namespace}/{name}"
        try:
            if namespace is None:
                await self._call(
                    f"create {kind} {where}",
                    self.custom.create_cluster_custom_object,
                    PEERING_GROUP,
                    PEERING_VERSION,
                    "clusterkopfpeerings",
                    body,
                )
            else:
                await self._call(
                    f"create {kind} {where}",
                    self.custom.create_namespaced_custom_object,
                    PEERING_GROUP,
                    PEERING_VERSION,
                    namespace,
                    "kopfpeerings",
                    body,
                )
        except Conflict:  # 409 AlreadyExists
            return False
        return True

    async def get_pipeline(self, namespace: str, name: str) -> Obj | None:
        return await self._get(GROUP, VERSION, PLURAL, namespace, name)

    async def annotate_pipeline(self, namespace: str, name: str, key: str, value: str) -> None:
        """Set one annotation of an MLPipeline; nothing when it is gone."""
        try:
            await self._call(
                f"annotate MLPipeline {namespace}/{name}",
                self.custom.patch_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                {"metadata": {"annotations": {key: value}}},
                _content_type="application/merge-patch+json",
            )
        except Refused as error:
            if error.status != 404:
                raise

    async def create_config_map(self, manifest: Mapping[str, Any]) -> bool:
        meta = manifest["metadata"]
        try:
            await self._call(
                f"create ConfigMap {meta['namespace']}/{meta['name']}",
                self.core.create_namespaced_config_map,
                meta["namespace"],
                dict(manifest),
            )
        except Conflict:  # 409 AlreadyExists
            return False
        return True

    async def get_config_map(self, namespace: str, name: str) -> Obj | None:
        """One ConfigMap, or None when it does not exist."""
        try:
            found = await self._call(
                f"get ConfigMap {namespace}/{name}",
                self.api.call_api,
                f"/api/v1/namespaces/{namespace}/configmaps/{name}",
                "GET",
                auth_settings=["BearerToken"],
                response_types_map={200: "object"},
                _return_http_data_only=True,
            )
        except Refused as error:
            if error.status == 404:
                return None
            raise
        config_map: Obj = found
        return config_map

    async def patch_config_map(self, namespace: str, name: str, patch: Obj) -> None:
        await self._raw(
            f"patch ConfigMap {namespace}/{name}",
            "PATCH",
            f"/api/v1/namespaces/{namespace}/configmaps/{name}",
            patch,
            content_type="application/merge-patch+json",
        )

    async def delete_config_map(self, namespace: str, name: str) -> None:
        try:
            await self._call(
                f"delete ConfigMap {namespace}/{name}",
                self.core.delete_namespaced_config_map,
                name,
                namespace,
            )
        except Refused as error:
            if error.status != 404:
                raise

    async def list_cache_metadata(self, namespace: str) -> list[Obj]:
        # Metadata only (a PartialObjectMetadataList): a cache holds up to 1 MiB of entries.
        response = await self._call(
            f"list cache ConfigMaps in {namespace}",
            self.api.call_api,
            f"/api/v1/namespaces/{namespace}/configmaps",
            "GET",
            query_params=[("labelSelector", f"{ARGO_CACHE_LABEL}={ARGO_CACHE_LABEL_VALUE}")],
            header_params={"Accept": _METADATA_LIST},
            auth_settings=["BearerToken"],
            response_types_map={200: "object"},
            _return_http_data_only=True,
        )
        return [item["metadata"] for item in response.get("items") or []]

    async def replace_pipeline_status(self, pipeline: Mapping[str, Any]) -> None:
        """Write the whole status through the status subresource.

        A replace (not a merge patch) so that fields which disappear are removed, carrying the
        resourceVersion the status was computed from: Conflict if the object changed since.
        """
        meta = pipeline["metadata"]
        await self._call(
            f"write status of MLPipeline {meta['namespace']}/{meta['name']}",
            self.custom.replace_namespaced_custom_object_status,
            GROUP,
            VERSION,
            meta["namespace"],
            PLURAL,
            meta["name"],
            dict(pipeline),
        )

    async def _raw(
        self, what: str, method: str, path: str, body: Any = None, content_type: str | None = None
    ) -> Obj:
        """A request answered as a plain dict (the generated models of core objects are not)."""
        headers = {"Accept": "application/json"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        response: Obj = await self._call(
            what,
            self.api.call_api,
            path,
            method,
            body=body,
            header_params=headers,
            auth_settings=["BearerToken"],
            response_types_map={200: "object", 201: "object"},
            _return_http_data_only=True,
        )
        return response

    async def get_secret(self, namespace: str, name: str) -> Obj | None:
        """A Secret; None when it does not exist."""
        try:
            return await self._raw(
                f"get Secret {namespace}/{name}",
                "GET",
                f"/api/v1/namespaces/{namespace}/secrets/{name}",
            )
        except Refused as error:
            if error.status == 404:
                return None
            raise

    async def create_secret(self, manifest: Mapping[str, Any]) -> bool:
        """Create a Secret; False when it already exists."""
        meta = manifest["metadata"]
        try:
            await self._raw(
                f"create Secret {meta['namespace']}/{meta['name']}",
                "POST",
                f"/api/v1/namespaces/{meta['namespace']}/secrets",
                dict(manifest),
            )
        except Conflict:  # 409 AlreadyExists
            return False
        return True

    async def replace_secret(self, manifest: Mapping[str, Any]) -> None:
        """Replace a Secret as of `metadata.resourceVersion` (Conflict if it changed since)."""
        meta = manifest["metadata"]
        await self._raw(
            f"update Secret {meta['namespace']}/{meta['name']}",
            "PUT",
            f"/api/v1/namespaces/{meta['namespace']}/secrets/{meta['name']}",
            dict(manifest),
        )

    async def get_webhook_configuration(self, name: str) -> Obj:
        """A ValidatingWebhookConfiguration (Refused, status 404, when it does not exist)."""
        return await self._raw(
            f"get ValidatingWebhookConfiguration {name}",
            "GET",
            f"{_WEBHOOK_CONFIGURATIONS}/{name}",
        )

    async def patch_webhook_configuration(self, name: str, patch: Obj) -> None:
        """A JSON merge patch of a ValidatingWebhookConfiguration (a `metadata.resourceVersion`
        in the patch makes it conditional)."""
        await self._raw(
            f"patch ValidatingWebhookConfiguration {name}",
            "PATCH",
            f"{_WEBHOOK_CONFIGURATIONS}/{name}",
            patch,
            content_type="application/merge-patch+json",
        )
