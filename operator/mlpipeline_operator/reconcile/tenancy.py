"""The tenancy policy as the operator holds it: read from its ConfigMap at start, then again
every few seconds; every pipeline is checked again when what it says changes.

A ConfigMap that is missing, lacks the policy key or holds a policy that does not parse makes
a `Tenancy` that refuses every pipeline with the reason (fail closed): neither a crash loop
nor a silent fallback to allowing everything. While the API server cannot answer, the policy
in force stays.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from mlpipeline_operator.api.constants import ANNOTATION_POLICY
from mlpipeline_operator.policy import POLICY_KEY, PolicyError, Tenancy, parse_policy
from mlpipeline_operator.reconcile.kube import Refused, Retryable

ReadConfigMap = Callable[[], Awaitable[dict[str, Any] | None]]
Annotate = Callable[[str, str, str, str], Awaitable[None]]
LOGGER = logging.getLogger("mlpipeline_operator")


def tenancy_of(config_map: dict[str, Any] | None, source: str) -> Tenancy:
    """The policy a ConfigMap holds (None: the ConfigMap does not exist)."""
    if config_map is None:
        return Tenancy(broken=f"ConfigMap {source} not found")
    text = (config_map.get("data") or {}).get(POLICY_KEY)
    if text is None:
        return Tenancy(broken=f"ConfigMap {source} has no key {POLICY_KEY}")
    try:
        return Tenancy(policy=parse_policy(text, f"ConfigMap {source} key {POLICY_KEY}"))
    except PolicyError as error:
        return Tenancy(broken=str(error))


async def read_tenancy(read: ReadConfigMap, source: str) -> Tenancy:
    """The policy now; a refusal (no right to read the ConfigMap) refuses every pipeline."""
    try:
        return tenancy_of(await read(), source)
    except Refused as error:
        return Tenancy(broken=f"ConfigMap {source} cannot be read: {error}")


async def follow_tenancy(
    read: ReadConfigMap,
    source: str,
    current: Tenancy,
    changed: Callable[[Tenancy], Awaitable[None]],
    interval: float,
    logger: logging.Logger = LOGGER,
) -> None:
    """Read the policy every `interval` seconds for ever (cancelled at shutdown); call
    `changed` with each new one."""
    while True:
        await asyncio.sleep(interval)
        try:
            tenancy = await read_tenancy(read, source)
        except Retryable as error:
            logger.warning("tenancy policy not read, the one in force stays: %s", error)
            continue
        if tenancy == current:
            continue
        if tenancy.broken is not None:
            logger.error("tenancy policy refuses every pipeline: %s", tenancy.broken)
        else:
            logger.info("tenancy policy changed: checking every pipeline again")
        current = tenancy
        await changed(tenancy)


async def check_again(
    tenancy: Tenancy,
    pipelines: Iterable[tuple[str, str]],
    annotate: Annotate,
    logger: logging.Logger = LOGGER,
) -> None:
    """Mark every pipeline with the new policy's digest: the change of annotation makes the
    operator reconcile it, checked against that policy, in its own turn (and by the acting
    replica only)."""
    for namespace, name in list(pipelines):
        try:
            await annotate(namespace, name, ANNOTATION_POLICY, tenancy.digest)
        except (Retryable, Refused) as error:
            logger.warning(
                "%s/%s: not checked again against the policy: %s", namespace, name, error
            )
