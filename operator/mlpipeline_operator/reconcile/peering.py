"""The peering objects that kopf's leader election needs, created by the operator itself.

kopf waits, without a word, for a peering object that does not exist. The operator creates it
at start-up (one ClusterKopfPeering, or a KopfPeering per watched namespace), so that a
bundle applied in one pass works; when it cannot, it says so and what would fix it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from kubernetes_asyncio.client.exceptions import ApiException

from mlpipeline_operator.reconcile.kube import Kube, Retryable


async def create_peerings(
    kube: Kube,
    name: str,
    namespaces: Sequence[str],
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
) -> None:
    """Create the peering object(s) ``name`` where missing; log what blocks leader election."""
    for namespace in namespaces or (None,):
        kind = "ClusterKopfPeering" if namespace is None else f"KopfPeering in {namespace}"
        try:
            if await kube.create_peering(name, namespace):
                logger.info("created the %s %r for leader election", kind, name)
        except (ApiException, Retryable) as error:
            status = getattr(error, "status", None)
            hint = {
                403: "grant create on it to the operator's service account (the chart does)",
                404: "install kopf's peering CRDs (crds/peerings.kopf.dev.yaml)",
            }.get(status or 0, "check the API server")
            logger.error(
                "leader election waits for the %s %r, which could not be created (%s): %s, "
                "or run with --standalone (one replica only)",
                kind,
                name,
                error,
                hint,
            )
