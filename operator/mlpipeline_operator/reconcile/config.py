"""The operator's configuration: command-line flags of `mlpipeline operator`, defaulted from
environment variables (which the Helm chart sets). Every attribute is documented in place.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mlpipeline_operator.api.constants import DEFAULT_ARGO_NAMESPACE, DEFAULT_PROMOTION_IMAGE
from mlpipeline_operator.cli_types import (
    EnvDefault,
    comma_list,
    config_map_ref,
    http_endpoint,
    integer,
    one_of,
    positive_int,
    positive_seconds,
)

PEERING_NAME = "mlpipeline-operator"


@dataclass(frozen=True)
class OperatorConfig:
    namespaces: tuple[str, ...] = ()
    """Namespaces to watch (`--namespace`, repeatable; env `MLPIPELINE_NAMESPACES`, comma
    separated). Empty: every namespace (cluster-wide)."""

    promotion_image: str = DEFAULT_PROMOTION_IMAGE
    """Image of the promotion step (`--promotion-image`; env `MLPIPELINE_PROMOTION_IMAGE`):
    the operator's own image, which has `mlpipeline promote`."""

    argo_namespace: str = DEFAULT_ARGO_NAMESPACE
    """Namespace of Argo's workflow-controller (`--argo-namespace`; env
    `MLPIPELINE_ARGO_NAMESPACE`), where Argo keeps the memoization caches: the operator creates
    each caching pipeline's cache ConfigMap there, and deletes it with the pipeline."""

    peering: str | None = PEERING_NAME
    """kopf peering object used for leader election between replicas (`--peering`; env
    `MLPIPELINE_PEERING`). None (`--standalone`, or env `MLPIPELINE_PEERING=""`): no peering;
    only for a single replica. With peering, the operator creates the KopfPeering (namespaced
    mode, one per namespace) or ClusterKopfPeering (cluster-wide) object of that name."""

    peering_retry_interval: float = 60.0
    """Seconds between attempts to create a missing peering object, each failure logged with
    what would fix it (env `MLPIPELINE_PEERING_RETRY_INTERVAL`)."""

    peering_lifetime: int = 10
    """Seconds a replica's record in the peering object stays valid (env
    `MLPIPELINE_PEERING_LIFETIME`). kopf renews it 5 to 10 seconds before it expires (at least
    every second); when the leader dies, the others take over once its record has expired, so
    this bounds the failover. kopf's own default, 60 s, would leave pipelines unhandled for up
    to a minute."""

    priority: int = 0
    """Peering priority (`--priority`; env `MLPIPELINE_PRIORITY`). Replicas must differ: the one
    with the highest priority acts and the others pause. Default: random in 1..32767."""

    liveness: str | None = "http://0.0.0.0:8080/healthz"
    """Liveness endpoint URL (`--liveness`; env `MLPIPELINE_LIVENESS`); empty to disable."""

    metrics: str | None = "http://0.0.0.0:9090/metrics"
    """Prometheus metrics endpoint URL (`--metrics`; env `MLPIPELINE_METRICS`), on a port of
    its own; empty to disable. docs/metrics.md lists the series."""

    watch_timeout: int = 300
    """Seconds after which the API server ends a watch and kopf starts a new one
    (`--watch-timeout`; env `MLPIPELINE_WATCH_TIMEOUT`)."""

    inactivity_timeout: float = 70.0
    """Seconds without any watch event (bookmarks included) before a watch is considered dead
    and restarted (env `MLPIPELINE_INACTIVITY_TIMEOUT`)."""

    log_format: str = "full"
    """`full` (time, logger, level, message), `plain` or `json` (`--log-format`; env
    `MLPIPELINE_LOG_FORMAT`). Messages about an MLPipeline are prefixed with its namespace/name
    (in JSON: the `object` key)."""

    policy: tuple[str, str] | None = None
    """The ConfigMap of the tenancy policy, `NAMESPACE/NAME` (`--policy`; env
    `MLPIPELINE_POLICY`), read from its key `policy.yaml` (docs/tenancy.md). Unset: no policy
    (single-tenant mode)."""

    policy_interval: float = 10.0
    """Seconds between two reads of the tenancy policy's ConfigMap; each change checks every
    pipeline again (env `MLPIPELINE_POLICY_INTERVAL`)."""

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces


LOG_FORMATS = ("full", "plain", "json")


def add_arguments(parser: argparse.ArgumentParser, env: Mapping[str, str] | None = None) -> None:
    """The flags of `mlpipeline operator`, with defaults from the environment (`env`, else
    os.environ), read only when this command's arguments are parsed (see cli_types)."""
    parser.add_argument(
        "-n",
        "--namespace",
        dest="namespaces",
        action="append",
        default=None,
        metavar="NAMESPACE",
        help="watch this namespace (repeatable; default: all namespaces)",
    )
    parser.add_argument(
        "--promotion-image",
        default=EnvDefault("MLPIPELINE_PROMOTION_IMAGE", str, DEFAULT_PROMOTION_IMAGE, env=env),
    )
    parser.add_argument(
        "--argo-namespace",
        default=EnvDefault("MLPIPELINE_ARGO_NAMESPACE", str, DEFAULT_ARGO_NAMESPACE, env=env),
        help="namespace of Argo's workflow-controller, where step caches are kept",
    )
    parser.add_argument(
        "--peering",
        # Empty: no peering, as --standalone.
        default=EnvDefault("MLPIPELINE_PEERING", str, PEERING_NAME, keep_empty=True, env=env),
        help="peering object for leader election",
    )
    parser.add_argument("--standalone", action="store_true", help="no peering (one replica only)")
    parser.add_argument(
        "--priority",
        type=integer,
        default=EnvDefault("MLPIPELINE_PRIORITY", integer, None, env=env),
    )
    parser.add_argument(
        "--liveness",
        # Empty: no liveness endpoint.
        default=EnvDefault(
            "MLPIPELINE_LIVENESS", str, OperatorConfig.liveness, keep_empty=True, env=env
        ),
    )
    parser.add_argument(
        "--metrics",
        # Empty: no metrics endpoint.
        type=http_endpoint,
        default=EnvDefault(
            "MLPIPELINE_METRICS", http_endpoint, OperatorConfig.metrics, keep_empty=True, env=env
        ),
    )
    parser.add_argument(
        "--watch-timeout",
        type=positive_int,
        default=EnvDefault(
            "MLPIPELINE_WATCH_TIMEOUT", positive_int, OperatorConfig.watch_timeout, env=env
        ),
    )
    parser.add_argument(
        "--policy",
        type=config_map_ref,
        default=EnvDefault("MLPIPELINE_POLICY", config_map_ref, None, env=env),
        metavar="NAMESPACE/NAME",
        help="ConfigMap of the tenancy policy (default: none, single-tenant mode)",
    )
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=EnvDefault(
            "MLPIPELINE_LOG_FORMAT", one_of(LOG_FORMATS), OperatorConfig.log_format, env=env
        ),
    )
    parser.set_defaults(
        env_namespaces=EnvDefault("MLPIPELINE_NAMESPACES", comma_list, (), env=env),
        inactivity_timeout=EnvDefault(
            "MLPIPELINE_INACTIVITY_TIMEOUT",
            positive_seconds,
            OperatorConfig.inactivity_timeout,
            env=env,
        ),
        peering_retry_interval=EnvDefault(
            "MLPIPELINE_PEERING_RETRY_INTERVAL",
            positive_seconds,
            OperatorConfig.peering_retry_interval,
            env=env,
        ),
        policy_interval=EnvDefault(
            "MLPIPELINE_POLICY_INTERVAL",
            positive_seconds,
            OperatorConfig.policy_interval,
            env=env,
        ),
        peering_lifetime=EnvDefault(
            "MLPIPELINE_PEERING_LIFETIME", positive_int, OperatorConfig.peering_lifetime, env=env
        ),
    )


def from_arguments(args: argparse.Namespace) -> OperatorConfig:
    namespaces: Sequence[str] = args.namespaces or args.env_namespaces
    peering = None if args.standalone or not args.peering else args.peering
    return OperatorConfig(
        namespaces=tuple(namespaces),
        promotion_image=args.promotion_image,
        argo_namespace=args.argo_namespace,
        peering=peering,
        peering_retry_interval=args.peering_retry_interval,
        peering_lifetime=args.peering_lifetime,
        priority=args.priority if args.priority is not None else random.randint(1, 32767),
        liveness=args.liveness or None,
        metrics=args.metrics or None,
        watch_timeout=args.watch_timeout,
        inactivity_timeout=args.inactivity_timeout,
        log_format=args.log_format,
        policy=args.policy,
        policy_interval=args.policy_interval,
    )
