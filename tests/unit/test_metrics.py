"""The operator's metrics (reconcile/metrics.py): what each series counts, the API errors that
`Kube` reports, and the endpoint that serves them."""

from __future__ import annotations

import asyncio
from contextlib import nullcontext
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families

from mlpipeline_operator.core import InvalidPipeline, Problem
from mlpipeline_operator.reconcile.kube import Conflict, Kube, Refused, Retryable
from mlpipeline_operator.reconcile.metrics import Metrics, MetricsServer
from mlpipeline_operator.reconcile.status import Event
from tests.controlplane.harness import free_port

P = "mlpipeline_operator_"


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(P + name, labels)


def test_every_series_starts_at_zero_with_its_labels() -> None:
    metrics = Metrics(process=False)
    series = {
        (sample.name, tuple(sorted(sample.labels.items())))
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for sample in family.samples
        if not sample.name.endswith("_bucket")
    }
    assert series == {
        *((P + "reconciles_total", (("result", r),)) for r in ("success", "invalid", "retry")),
        (P + "reconciles_total", (("result", "error"),)),
        (P + "reconcile_duration_seconds_count", ()),
        (P + "reconcile_duration_seconds_sum", ()),
        (P + "runs_submitted_total", ()),
        (P + "runs_stopped_total", ()),
        (P + "runs_finished_total", (("phase", "Succeeded"),)),
        (P + "runs_finished_total", (("phase", "Failed"),)),
        *((P + "promotions_total", (("decision", d),)) for d in ("Promoted", "Rejected", "Failed")),
        (P + "invalid_pipelines_total", ()),
        (P + "handlers_in_progress", (("handler", "reconcile"),)),
        (P + "handlers_in_progress", (("handler", "run_changed"),)),
        (P + "handlers_in_progress", (("handler", "stop"),)),
    }
    assert all(
        sample.value == 0
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for sample in family.samples
    )


@pytest.mark.parametrize(
    ("error", "result"),
    [
        (None, "success"),
        (InvalidPipeline([Problem("spec.steps", "at least one step")]), "invalid"),
        (Retryable("busy"), "retry"),
        (Conflict("changed"), "retry"),
        (Refused("create Workflow ns/a", 403, "forbidden"), "error"),
        (RuntimeError("unexpected"), "error"),
    ],
)
def test_a_reconciliation_counts_by_result_and_is_timed(
    error: Exception | None, result: str
) -> None:
    metrics = Metrics(process=False)
    passes_on = pytest.raises(type(error)) if error else nullcontext()  # on to kopf
    with passes_on, metrics.reconciling():
        assert value(metrics, "handlers_in_progress", handler="reconcile") == 1
        if error is not None:
            raise error
    assert value(metrics, "reconciles_total", result=result) == 1
    others = {"success", "invalid", "retry", "error"} - {result}
    assert [value(metrics, "reconciles_total", result=r) for r in sorted(others)] == [0, 0, 0]
    assert value(metrics, "reconcile_duration_seconds_count") == 1
    assert value(metrics, "handlers_in_progress", handler="reconcile") == 0


def test_handlers_in_progress_follow_each_block() -> None:
    metrics = Metrics(process=False)
    with metrics.handling("run_changed"), metrics.handling("run_changed"):
        assert value(metrics, "handlers_in_progress", handler="run_changed") == 2
    assert value(metrics, "handlers_in_progress", handler="run_changed") == 0


def test_events_count_runs_promotions_and_invalid_specs() -> None:
    metrics = Metrics(process=False)
    reasons = [
        "Submitted",
        "Submitted",
        "Stopped",
        "NothingToStop",
        "RunSucceeded",
        "RunFailed",
        "RunFailed",
        "Promoted",
        "Rejected",
        "Rejected",
        "Failed",
        "Invalid",
        "Scheduled",  # a CronWorkflow: counts nothing
        "Updated",
    ]
    for reason in reasons:
        metrics.count_event(Event("Normal", reason, "message"))
    assert value(metrics, "runs_submitted_total") == 2
    assert value(metrics, "runs_stopped_total") == 1
    assert value(metrics, "runs_finished_total", phase="Succeeded") == 1
    assert value(metrics, "runs_finished_total", phase="Failed") == 2
    assert value(metrics, "promotions_total", decision="Promoted") == 1
    assert value(metrics, "promotions_total", decision="Rejected") == 2
    assert value(metrics, "promotions_total", decision="Failed") == 1
    assert value(metrics, "invalid_pipelines_total") == 1


def test_kube_reports_each_failed_request_by_http_code() -> None:
    metrics = Metrics(process=False)

    async def failing(error: Exception) -> None:
        raise error

    async def calls() -> list[type[Exception]]:
        raised: list[type[Exception]] = []
        async with client.ApiClient() as api:
            kube = Kube(api, count_error=metrics.count_api_error)
            for error in (
                ApiException(status=409, reason="Conflict"),
                ApiException(status=503, reason="Service Unavailable"),
                ApiException(status=503, reason="Service Unavailable"),
                ApiException(status=403, reason="Forbidden"),
                ConnectionRefusedError("refused"),
            ):
                try:
                    await kube._call("get something", failing, error)
                except (Conflict, Retryable, Refused) as translated:
                    raised.append(type(translated))
            assert await kube._call("get something", _answer) == {"ok": True}
        return raised

    assert asyncio.run(calls()) == [Conflict, Retryable, Retryable, Refused, Retryable]
    assert value(metrics, "api_errors_total", code="409") == 1
    assert value(metrics, "api_errors_total", code="503") == 2
    assert value(metrics, "api_errors_total", code="403") == 1
    assert value(metrics, "api_errors_total", code="connection") == 1


async def _answer() -> dict[str, Any]:
    return {"ok": True}


def test_the_endpoint_serves_the_series_on_its_path_only() -> None:
    metrics = Metrics()
    metrics.count_event(Event("Normal", "Submitted", "submitted run a"))
    port = free_port()
    server = MetricsServer(metrics, f"http://127.0.0.1:{port}/metrics")

    async def scrape() -> tuple[int, str, str, int]:
        await server.start()
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{port}/metrics") as found:
                    status, content_type, body = (
                        found.status,
                        found.headers["Content-Type"],
                        await found.text(),
                    )
                async with session.get(f"http://127.0.0.1:{port}/") as other:
                    return status, content_type, body, other.status
        finally:
            await server.stop()

    status, content_type, body, other = asyncio.run(scrape())
    assert (status, other) == (200, 404)
    assert content_type.startswith("text/plain; version=")
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if not sample.labels
    }
    assert samples[P + "runs_submitted_total"] == 1
    assert samples["process_cpu_seconds_total"] > 0  # the process's own series are there too
