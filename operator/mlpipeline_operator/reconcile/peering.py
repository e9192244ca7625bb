"""The peering objects that kopf's leader election needs, created by the operator itself.

kopf waits, without a word, for a peering object that does not exist. The operator creates it
(one ClusterKopfPeering, or a KopfPeering per watched namespace), so that a bundle applied in
one pass works; while it cannot, it says so and what would fix it, at once and then at every
retry, until the object exists.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from mlpipeline_operator.reconcile.kube import Kube, Refused, Retryable

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]


async def ensure_peerings(
    kube: Kube, name: str, namespaces: Sequence[str], retry_interval: float, logger: Logger
) -> None:
    """Create the peering object(s) ``name`` where missing; until all exist, log what blocks
    leader election every ``retry_interval`` seconds."""
    missing: list[str | None] = list(namespaces) or [None]
    while True:
        missing = [
            namespace
            for namespace in missing
            if not await _create(kube, name, namespace, retry_interval, logger)
        ]
        if not missing:
            return
        await asyncio.sleep(retry_interval)


async def _create(
    kube: Kube, name: str, namespace: str | None, retry_interval: float, logger: Logger
) -> bool:
    """Create one peering object; True when it exists now."""
    kind = "ClusterKopfPeering" if namespace is None else f"KopfPeering in {namespace}"
    try:
        if await kube.create_peering(name, namespace):
            logger.info("created the %s %r for leader election", kind, name)
        return True
    except (Refused, Retryable) as error:
        status = getattr(error, "status", None)
        hint = {
            403: "grant create on it to the operator's service account (the chart does)",
            404: "install kopf's peering CRDs (crds/peerings.kopf.dev.yaml)",
        }.get(status or 0, "check the API server")
        logger.error(
            "leader election waits for the %s %r, which could not be created (%s): %s, "
            "or run with --standalone (one replica only); retrying every %g s",
            kind,
            name,
            error,
            hint,
            retry_interval,
        )
        return False
