"""The operator's Prometheus metrics, and the endpoint that serves them (`--metrics`).

What is counted, and where: reconciliations by result and their duration, and the handlers in
progress (handlers.py); API errors by HTTP code (kube.py); and what the reconciler tells in its
Events (a run submitted, stopped or finished, a promotion decision, a spec found invalid),
counted as the Events are posted, so that the counts follow exactly what users see with
`kubectl describe`. docs/metrics.md lists every series.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final
from urllib.parse import urlsplit

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

from mlpipeline_operator.core import InvalidPipeline
from mlpipeline_operator.reconcile.kube import Conflict, Retryable
from mlpipeline_operator.reconcile.status import Event

PREFIX: Final = "mlpipeline_operator_"
RESULTS: Final = ("success", "invalid", "retry", "error")
RUN_PHASES: Final = ("Succeeded", "Failed")
DECISIONS: Final = ("Promoted", "Rejected", "Failed")
HANDLERS: Final = ("reconcile", "run_changed", "stop")
# Reconciliations take milliseconds when the API server answers at once, seconds when it is
# loaded; the buckets span both.
DURATION_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Event reasons (reconcile/status.py, reconciler.py) and what each counts.
_RUN_EVENTS: Final = {"RunSucceeded": "Succeeded", "RunFailed": "Failed"}


class Metrics:
    """Every series of the operator, in a registry of their own (plus the process's CPU,
    memory and garbage collector, as prometheus_client reports them)."""

    def __init__(self, process: bool = True) -> None:
        # No `_created` series (the time each series began): Prometheus does not need them.
        disable_created_metrics()  # type: ignore[no-untyped-call]  # (no annotations)
        self.registry = CollectorRegistry()
        if process:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        self.reconciles = Counter(
            PREFIX + "reconciles",
            "Reconciliations of an MLPipeline (create, update, resume), by result.",
            ["result"],
            registry=self.registry,
        )
        self.reconcile_duration = Histogram(
            PREFIX + "reconcile_duration_seconds",
            "Duration of the reconciliations of an MLPipeline, whatever their result.",
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.runs_submitted = Counter(
            PREFIX + "runs_submitted",
            "Workflows the operator created for a generation of an MLPipeline.",
            registry=self.registry,
        )
        self.runs_stopped = Counter(
            PREFIX + "runs_stopped",
            "Runs the operator stopped (spec.shutdown: Stop) on a mlops.gitops.dev/stop request.",
            registry=self.registry,
        )
        self.runs_finished = Counter(
            PREFIX + "runs_finished",
            "Runs seen reaching a final phase (Succeeded, Failed), by phase.",
            ["phase"],
            registry=self.registry,
        )
        self.promotions = Counter(
            PREFIX + "promotions",
            "Promotion decisions seen in the runs' outputs, by decision.",
            ["decision"],
            registry=self.registry,
        )
        self.invalid_pipelines = Counter(
            PREFIX + "invalid_pipelines",
            "MLPipelines found invalid: a spec that became invalid or whose problems changed.",
            registry=self.registry,
        )
        self.api_errors = Counter(
            PREFIX + "api_errors",
            "Kubernetes API requests of the operator that failed, by HTTP status code "
            "(`connection` when no answer came).",
            ["code"],
            registry=self.registry,
        )
        self.handlers_in_progress = Gauge(
            PREFIX + "handlers_in_progress",
            "kopf handlers running now, by handler.",
            ["handler"],
            registry=self.registry,
        )
        # Every label value from the start, so that a series reads 0 rather than missing.
        for result in RESULTS:
            self.reconciles.labels(result)
        for phase in RUN_PHASES:
            self.runs_finished.labels(phase)
        for decision in DECISIONS:
            self.promotions.labels(decision)
        for handler in HANDLERS:
            self.handlers_in_progress.labels(handler)

    @contextmanager
    def reconciling(self) -> Iterator[None]:
        """Time one reconciliation and count it by how it ended: `invalid` (the spec),
        `retry` (the API server was busy or the object changed), `error` (anything else)."""
        start = time.perf_counter()
        result = "error"
        try:
            with self.handling("reconcile"):
                yield
            result = "success"
        except InvalidPipeline:
            result = "invalid"
            raise
        except (Retryable, Conflict):
            result = "retry"
            raise
        finally:
            self.reconciles.labels(result).inc()
            self.reconcile_duration.observe(time.perf_counter() - start)

    @contextmanager
    def handling(self, handler: str) -> Iterator[None]:
        """Count `handler` as in progress while the block runs."""
        with self.handlers_in_progress.labels(handler).track_inprogress():
            yield

    def count_event(self, event: Event) -> None:
        """Count what an Event about an MLPipeline tells; other Events count nothing."""
        reason = event.reason
        if reason == "Submitted":
            self.runs_submitted.inc()
        elif reason == "Stopped":
            self.runs_stopped.inc()
        elif reason in _RUN_EVENTS:
            self.runs_finished.labels(_RUN_EVENTS[reason]).inc()
        elif reason in DECISIONS:
            self.promotions.labels(reason).inc()
        elif reason == "Invalid":
            self.invalid_pipelines.inc()

    def count_api_error(self, status: int | None) -> None:
        """An API request failed with HTTP `status`; None or 0: no answer."""
        self.api_errors.labels(str(status) if status else "connection").inc()

    def exposition(self) -> bytes:
        """The series in Prometheus' text format."""
        return generate_latest(self.registry)


class MetricsServer:
    """The HTTP endpoint of the metrics, in the operator's event loop (as kopf's liveness
    endpoint is): GET on the URL's path answers the series, any other path 404."""

    def __init__(self, metrics: Metrics, url: str) -> None:
        parts = urlsplit(url)
        self.metrics = metrics
        self.host = parts.hostname or "0.0.0.0"
        self.port = parts.port or 80
        self.path = parts.path or "/"
        self._runner: web.AppRunner | None = None

    async def _serve(self, _: web.Request) -> web.Response:
        response = web.Response(body=self.metrics.exposition())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(self.path, self._serve)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port, reuse_address=True).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
