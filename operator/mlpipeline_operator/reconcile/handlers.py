"""Every kopf handler of the operator, in one place. Each is a docstring and one delegating call:
the work is done by `Reconciler` (reconciler.py), which does not know kopf.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Collection, Mapping
from typing import Any, cast

import kopf

from mlpipeline_operator.api.constants import (
    ANNOTATION_STOP,
    ARGO_GROUP,
    ARGO_LABEL_COMPLETED,
    ARGO_VERSION,
    GROUP,
    LABEL_MANAGED_BY,
    MANAGER,
    PLURAL,
    VERSION,
)
from mlpipeline_operator.compiler.workflow import CompileOptions
from mlpipeline_operator.core import InvalidPipeline
from mlpipeline_operator.policy import Tenancy
from mlpipeline_operator.reconcile.config import OperatorConfig
from mlpipeline_operator.reconcile.kube import Kube, Refused, Retryable, connect
from mlpipeline_operator.reconcile.metrics import Metrics, MetricsServer
from mlpipeline_operator.reconcile.peering import ensure_peerings
from mlpipeline_operator.reconcile.reconciler import (
    REFUSED_RETRY_DELAY,
    Emit,
    Reconciler,
    sweep_caches_periodically,
)
from mlpipeline_operator.reconcile.status import Event
from mlpipeline_operator.reconcile.tenancy import check_again, follow_tenancy, read_tenancy
from mlpipeline_operator.reconcile.webhook import WebhookServer, serve_webhook

# Objects per page of kopf's first list of a kind (a finished run of 100 steps is 80 KB of JSON,
# about ten times that once parsed): every run at once would be hundreds of MiB at a start.
WATCH_CHUNK_SIZE = 50
# Seconds kopf keeps an object's worker (and with it the object's last event, a whole run)
# waiting for another event: little, as a start sees every run once, and few of them again soon
# (kopf still waits for the echo of its own patches of a pipeline). Not 0: a worker given no
# time at all never gets its first event.
WORKER_IDLE_TIMEOUT = 0.1
# The runs watched, selected by the API server: the operator's, until Argo marks them completed.
# A run that finishes leaves the selection, and the watch says so with a DELETED event that
# carries its final status; the finished runs kept in history (thousands, each tens of KB) are
# never sent, not even at a start (each pipeline's resume reads its own runs' metadata).
RUN_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGER},{ARGO_LABEL_COMPLETED}!=true"
# Objects of one kind kopf handles at once. Each holds its event and kopf's copies of it while it
# waits for the reconciler (8 passes at once): unbounded, a start of 1,000 pipelines held them
# all. kopf keeps a pipeline's slot while it waits to retry (up to 60 s after a refusal), so
# the bound is well above what a few refused pipelines take.
WORKER_LIMIT = 64
# kopf's bookkeeping annotations (last handled spec, progress of retried handlers).
KOPF_PREFIX = f"operator.{GROUP}"
# The exit code when kopf stopped on an error (a watch failed for good): start the process again.
EXIT_STOPPED = 4
# Seconds kopf's shutdown may take before kopf kills the process (SIGKILL): a task that does not
# end when cancelled must not keep a stopped operator alive (a Deployment's grace period is 30).
SHUTDOWN_TIMEOUT = 25.0
LOGGER = logging.getLogger("mlpipeline_operator")


class SpecDigestStorage(kopf.AnnotationsDiffBaseStorage):
    """kopf's record of the last handled state, with the spec replaced by its SHA-256: a spec
    may be 512 KiB, and all of an object's annotations together at most 256 KiB (past that,
    kopf's patch is refused and the pipeline is handled again and again). The handlers
    reconcile the whole spec, never a diff of it: a digest tells kopf all it needs, that the
    spec changed. Labels and annotations are kept whole (the stop handler watches one)."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return _spec_digested(super().build(body=body, extra_fields=extra_fields))

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        essence = super().fetch(body=body)
        # A record that an earlier version kept whole compares equal to the unchanged spec.
        return None if essence is None else _spec_digested(essence)


def _spec_digested(essence: kopf.BodyEssence) -> kopf.BodyEssence:
    if "spec" not in essence:
        return essence
    fields = dict(essence)
    spec = json.dumps(fields.pop("spec"), sort_keys=True, separators=(",", ":"))
    fields["specSha256"] = hashlib.sha256(spec.encode()).hexdigest()
    return cast(kopf.BodyEssence, fields)


@kopf.on.startup()
async def configure(
    settings: kopf.OperatorSettings, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    """Production settings: our own annotations for kopf's state, watch timeouts, events; the
    peering object that leader election needs; the metrics endpoint; the admission webhook
    (in every replica: kopf runs startup handlers whether or not the replica leads)."""
    config: OperatorConfig = memo.config
    settings.persistence.finalizer = f"{KOPF_PREFIX}/finalizer"
    # A prefix of its own: kopf ignores annotations under it, and ours (rerun) must count.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    settings.persistence.diffbase_storage = SpecDigestStorage(
        prefix=KOPF_PREFIX, key="last-handled-configuration"
    )
    settings.watching.server_timeout = config.watch_timeout
    settings.watching.client_timeout = config.watch_timeout + 30
    settings.watching.inactivity_timeout = config.inactivity_timeout
    settings.watching.chunk_size = WATCH_CHUNK_SIZE
    settings.watching.label_selectors[ARGO_GROUP, "workflows"] = RUN_SELECTOR
    settings.queueing.idle_timeout = WORKER_IDLE_TIMEOUT
    settings.queueing.worker_limit = WORKER_LIMIT
    # Events are posted on purpose (Submitted, RunFailed, Promoted...), not for every log line.
    settings.posting.level = logging.WARNING
    # The resources are known in advance: no need to watch CRDs (and no RBAC for it).
    settings.scanning.disabled = True
    settings.peering.mandatory = config.peering is not None
    settings.peering.clusterwide = config.clusterwide
    # The failover bound: a dead leader's record expires after this long (kopf renews it
    # 5-10 s before that). Keep-alives are not logged: with a short lifetime they are frequent.
    settings.peering.lifetime = config.peering_lifetime
    settings.peering.stealth = True
    settings.process.ultimate_exiting_timeout = SHUTDOWN_TIMEOUT
    metrics: Metrics = memo.metrics
    if config.metrics is not None:
        memo.metrics_server = MetricsServer(metrics, config.metrics)
        await memo.metrics_server.start()
    memo.kube = Kube(await connect(), count_error=metrics.count_api_error)
    if config.peering is not None:
        # In the background: until the object exists, kopf pauses every handler anyway.
        memo.peering_task = asyncio.create_task(
            ensure_peerings(
                memo.kube, config.peering, config.namespaces, config.peering_retry_interval, logger
            )
        )
    memo.reconciler = Reconciler(
        kube=memo.kube,
        options=CompileOptions(promotion_image=config.promotion_image),
        cache_namespace=config.argo_namespace,
        counted=metrics.reconciling,
    )
    memo.pipelines = set()
    if config.policy is not None:
        memo.tenancy_task = await start_tenancy(memo.reconciler, memo.kube, config, memo.pipelines)
    # After the policy is in force: the webhook answers with it from its first request.
    if config.webhook is not None:
        reconciler: Reconciler = memo.reconciler
        memo.webhook_server = WebhookServer(config.webhook, lambda: reconciler.tenancy)
        memo.webhook_task = asyncio.create_task(
            serve_webhook(memo.webhook_server, memo.kube, config, logger)
        )
    memo.post_event = event_poster(metrics)
    memo.cache_sweep_task = asyncio.create_task(
        sweep_caches_periodically(
            memo.reconciler, lambda namespace: config.clusterwide or namespace in config.namespaces
        )
    )


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    """Stop creating peering objects, sweeping caches and following the tenancy policy; close
    the API client, the metrics endpoint and the webhook."""
    tasks = ("peering_task", "cache_sweep_task", "tenancy_task", "webhook_task")
    for task in (memo.get(name) for name in tasks):
        if task is not None:
            task.cancel()
    memo.reconciler.cancel_queued()
    await memo.kube.api.close()
    for server in (memo.get("metrics_server"), memo.get("webhook_server")):
        if server is not None:
            await server.stop()


async def start_tenancy(
    reconciler: Reconciler,
    kube: Kube,
    config: OperatorConfig,
    pipelines: Collection[tuple[str, str]],
) -> asyncio.Task[None]:
    """Put the tenancy policy in force before any pipeline is handled, then follow its
    ConfigMap: each change marks every pipeline (`pipelines`: the watched ones, by namespace
    and name) to be checked again."""
    assert config.policy is not None
    namespace, name = config.policy
    source = f"{namespace}/{name}"

    async def read() -> dict[str, Any] | None:
        return await kube.get_config_map(namespace, name)

    try:
        tenancy = await read_tenancy(read, source)
    except Retryable as error:  # read again at the next interval; nothing runs meanwhile
        tenancy = Tenancy(broken=f"ConfigMap {source} not read yet: {error}")
    if tenancy.broken is not None:
        LOGGER.error("tenancy policy refuses every pipeline: %s", tenancy.broken)
    reconciler.tenancy = tenancy

    async def changed(new: Tenancy) -> None:
        reconciler.tenancy = new
        await check_again(new, pipelines, kube.annotate_pipeline)

    return asyncio.create_task(
        follow_tenancy(read, source, tenancy, changed, config.policy_interval)
    )


def event_poster(metrics: Metrics) -> Emit:
    """What the reconciler emits: counted in the metrics, then posted as a Kubernetes Event."""

    async def post_event(pipeline: Mapping[str, Any], event: Event) -> None:
        """Queue a Kubernetes Event on the pipeline (kopf posts it in the background)."""
        metrics.count_event(event)
        body = cast(kopf.Body, pipeline)  # kopf reads only apiVersion, kind and metadata
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)

    return post_event


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
async def reconcile(body: kopf.Body, reason: str, memo: kopf.Memo, **_: Any) -> None:
    """Validate, compile and submit the run of the current generation; write the status. At a
    start (resume), queued instead: the pipeline is read again when its turn comes, so that
    kopf does not hold every pipeline's body at once (the reconciler retries it)."""
    if reason == kopf.Reason.RESUME:
        memo.reconciler.queue_reconcile(
            body.metadata.namespace or "", body.metadata.name, memo.post_event
        )
        return
    try:
        with memo.metrics.reconciling():
            await memo.reconciler.reconcile(body, memo.post_event)
    except InvalidPipeline as error:
        raise kopf.PermanentError(f"invalid spec: {error}") from None
    except Retryable as error:
        raise kopf.TemporaryError(str(error), delay=error.delay) from None
    except Refused as error:  # rights or CRDs missing: a fix outside the operator, retried slowly
        raise kopf.TemporaryError(str(error), delay=REFUSED_RETRY_DELAY) from None


# Registered after `reconcile`: kopf runs them in this order, so that a pipeline created with
# `stop: current` has its run submitted before it is stopped.
@kopf.on.field(
    GROUP, VERSION, PLURAL, id="stop", field=("metadata", "annotations", ANNOTATION_STOP)
)
async def stop_requested(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """The stop annotation took a new value: stop the run it names (once per value)."""
    try:
        with memo.metrics.handling("stop"):
            await memo.reconciler.stop(body, memo.post_event)
    except Retryable as error:
        raise kopf.TemporaryError(str(error), delay=error.delay) from None
    except Refused as error:  # rights missing (patch on workflows): retried slowly
        raise kopf.TemporaryError(str(error), delay=REFUSED_RETRY_DELAY) from None


@kopf.on.event(GROUP, VERSION, PLURAL)
async def pipeline_deleted(
    body: kopf.Body, type: str | None, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    """A pipeline is gone: delete its cache ConfigMap. No finalizer: the caches of deletions
    the operator did not see are swept at its start and every hour."""
    if type != "DELETED":
        return
    try:
        await memo.reconciler.forget(body)
    except (Retryable, Refused) as error:
        logger.warning("cache ConfigMap not deleted: %s", error)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def pipeline_watched(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    """Keep the (namespace, name) of every watched pipeline: the tenancy policy marks them all
    when it changes. A plain set, not a kopf index: kopf holds back every event of every kind
    until its indexes are filled, and at a start that would hold every pipeline's body."""
    key = (body.metadata.namespace or "", body.metadata.name)
    if type == "DELETED":
        memo.pipelines.discard(key)
    else:
        memo.pipelines.add(key)


@kopf.on.event(ARGO_GROUP, ARGO_VERSION, "workflows")
async def run_changed(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    """A run changed, or finished (it left `RUN_SELECTOR`: DELETED): queue a refresh of its
    pipeline's status (retried while the API server cannot answer; a refusal waits for the
    next event or a resume). Queued, so that kopf does not keep the run's body while the
    refresh waits for its turn."""
    with memo.metrics.handling("run_changed"):
        memo.reconciler.queue_refresh_for_run(body, memo.post_event, type)


def run(config: OperatorConfig) -> int:
    """Run the operator until SIGINT or SIGTERM (0), or until kopf stops on an error
    (`EXIT_STOPPED`).

    kopf stops altogether when one of its watches fails for good (the API server answers a
    watch with 410 Gone, or a 5xx past kopf's own retries). The process then exits, for its
    Deployment to start a fresh one, which resumes every pipeline (each pass is idempotent):
    starting kopf again in the same process could hang in its second shutdown.
    """
    kopf.configure(
        log_format=kopf.LogFormat[config.log_format.upper()], log_prefix=True, log_refkey="object"
    )
    try:
        asyncio.run(
            kopf.operator(
                clusterwide=config.clusterwide,
                namespaces=list(config.namespaces),
                standalone=config.peering is None,
                peering_name=config.peering,
                priority=config.priority,
                liveness_endpoint=config.liveness,
                memo=kopf.Memo(config=config, metrics=Metrics()),
            )
        )
    except Exception as error:  # whatever stopped kopf: a new process meets it anew
        LOGGER.critical(
            "the operator stopped on %s: %s; exiting with code %d to be started again",
            type(error).__name__,
            error,
            EXIT_STOPPED,
        )
        return EXIT_STOPPED
    return 0
