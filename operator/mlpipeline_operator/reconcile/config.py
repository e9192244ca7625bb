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
    https_endpoint,
    integer,
    one_of,
    positive_int,
    positive_seconds,
)

PEERING_NAME = "mlpipeline-operator"
WEBHOOK_NAME = "mlpipeline-operator-webhook"


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

    webhook: str | None = None
    """URL of the validating admission webhook to serve, `https://HOST:PORT/PATH` (`--webhook`;
    env `MLPIPELINE_WEBHOOK`); empty: none. Every replica serves it. docs/admission.md."""

    webhook_cert_dir: str | None = None
    """Directory of the webhook's serving certificate, `tls.crt` and `tls.key`
    (`--webhook-cert-dir`; env `MLPIPELINE_WEBHOOK_CERT_DIR`), e.g. cert-manager's Secret
    mounted; read again every minute. Empty: the operator issues its own (`webhook_secret`)."""

    webhook_namespace: str | None = None
    """Namespace of `webhook_secret` and `webhook_service`: the operator's own
    (`--webhook-namespace`; env `MLPIPELINE_WEBHOOK_NAMESPACE`)."""

    webhook_secret: str = WEBHOOK_NAME
    """The Secret that keeps the webhook's own CA and serving certificate, issued by the first
    replica that finds it missing or empty (`--webhook-secret`; env
    `MLPIPELINE_WEBHOOK_SECRET`)."""

    webhook_service: str = WEBHOOK_NAME
    """The Service in front of the webhook, whose DNS names the serving certificate carries
    (`--webhook-service`; env `MLPIPELINE_WEBHOOK_SERVICE`)."""

    webhook_configuration: str | None = WEBHOOK_NAME
    """The ValidatingWebhookConfiguration whose caBundle the operator sets to its own CA
    (`--webhook-configuration`; env `MLPIPELINE_WEBHOOK_CONFIGURATION`); empty: none."""

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
        "--webhook",
        type=https_endpoint,
        default=EnvDefault("MLPIPELINE_WEBHOOK", https_endpoint, None, env=env),
        help="serve the validating admission webhook at https://HOST:PORT/PATH",
    )
    parser.add_argument(
        "--webhook-cert-dir",
        default=EnvDefault("MLPIPELINE_WEBHOOK_CERT_DIR", str, None, env=env),
        help="directory of the webhook's tls.crt and tls.key (default: issue its own)",
    )
    parser.add_argument(
        "--webhook-namespace",
        default=EnvDefault("MLPIPELINE_WEBHOOK_NAMESPACE", str, None, env=env),
        help="the operator's namespace, of the webhook's Secret and Service",
    )
    parser.add_argument(
        "--webhook-secret",
        default=EnvDefault("MLPIPELINE_WEBHOOK_SECRET", str, WEBHOOK_NAME, env=env),
        help="Secret keeping the webhook's own CA and certificate",
    )
    parser.add_argument(
        "--webhook-service",
        default=EnvDefault("MLPIPELINE_WEBHOOK_SERVICE", str, WEBHOOK_NAME, env=env),
        help="Service in front of the webhook (the certificate's DNS names)",
    )
    parser.add_argument(
        "--webhook-configuration",
        # Empty: the caBundle is someone else's business.
        default=EnvDefault(
            "MLPIPELINE_WEBHOOK_CONFIGURATION", str, WEBHOOK_NAME, keep_empty=True, env=env
        ),
        help="ValidatingWebhookConfiguration whose caBundle the operator sets",
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


def config_error(config: OperatorConfig) -> str | None:
    """What makes the flags unusable together, in one line; None when they are fine."""
    if config.webhook and not config.webhook_cert_dir and not config.webhook_namespace:
        return (
            "--webhook without --webhook-cert-dir needs --webhook-namespace (env "
            "MLPIPELINE_WEBHOOK_NAMESPACE): the operator's namespace, where it keeps its "
            "certificates in the Secret --webhook-secret"
        )
    return None


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
        webhook=args.webhook or None,
        webhook_cert_dir=args.webhook_cert_dir or None,
        webhook_namespace=args.webhook_namespace or None,
        webhook_secret=args.webhook_secret,
        webhook_service=args.webhook_service,
        webhook_configuration=args.webhook_configuration or None,
        log_format=args.log_format,
        policy=args.policy,
        policy_interval=args.policy_interval,
    )
