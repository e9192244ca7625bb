"""MLflow out of reach: bounded retries, then a clear failure, and nothing written to MLflow."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlpipeline_operator.promotion.errors import ExitCode
from mlpipeline_operator.promotion.retry import RetryPolicy
from tests.mlflow.helpers import make_request, run_promote
from tests.mlflow.server import free_port

pytestmark = pytest.mark.mlflow

SLACK = 5.0  # seconds allowed beyond the policy's bound (a busy machine, first imports)


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound and closed again)."""
    return free_port()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


class _Unavailable(http.server.BaseHTTPRequestHandler):
    def _answer(self) -> None:
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_PATCH = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def unavailable_url() -> Iterator[str]:
    """An HTTP server answering 503 to everything. A stand-in, not MLflow: a real mlflow server
    cannot be made to answer 503 on demand, and this is what a proxy in front of one does while
    it restarts."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_closed_port_fails_within_the_bound(closed_port: int, tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{closed_port}"
    policy = RetryPolicy(attempts=3, backoff=0.2, request_timeout=5)
    start = time.monotonic()
    outcome = run_promote(make_request(uri, "fraud", "a" * 32, tmp_path), policy)
    elapsed = time.monotonic() - start
    assert outcome.code == ExitCode.UNAVAILABLE
    # Three attempts with 0.2 s and 0.4 s between them: refused connections fail at once.
    assert 0.6 <= elapsed < 0.6 + SLACK
    assert outcome.stderr.count("attempt ") == 2
    last = outcome.stderr.strip().splitlines()[-1]
    assert last.startswith(f"mlpipeline promote: error: MLflow at {uri} is unavailable: ")
    assert "read run " + "a" * 32 + " failed 3 times" in last
    assert "connection failed: Connection refused" in last
    assert "Traceback" not in outcome.stderr
    assert outcome.outputs["decision"] == "Failed"
    assert outcome.outputs["reason"].startswith(f"MLflow at {uri} is unavailable")


def test_silent_server_times_out_within_the_bound(silent_port: int, tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{silent_port}"
    policy = RetryPolicy(attempts=2, backoff=0.1, request_timeout=1)
    start = time.monotonic()
    outcome = run_promote(make_request(uri, "fraud", "b" * 32, tmp_path), policy)
    elapsed = time.monotonic() - start
    assert outcome.code == ExitCode.UNAVAILABLE
    assert elapsed < policy.worst_case_seconds() + SLACK
    assert "no answer within 1s" in outcome.stderr


def test_http_503_is_retried_then_fails(unavailable_url: str, tmp_path: Path) -> None:
    policy = RetryPolicy(attempts=2, backoff=0.1, request_timeout=5)
    outcome = run_promote(make_request(unavailable_url, "fraud", "c" * 32, tmp_path), policy)
    assert outcome.code == ExitCode.UNAVAILABLE
    assert "failed 2 times" in outcome.stderr
    assert "(last: HTTP 503)" in outcome.stderr


def test_credentials_in_the_uri_are_not_printed(closed_port: int, tmp_path: Path) -> None:
    uri = f"http://user:hunter2@127.0.0.1:{closed_port}"
    policy = RetryPolicy(attempts=1, backoff=0, request_timeout=5)
    outcome = run_promote(make_request(uri, "fraud", "d" * 32, tmp_path), policy)
    assert outcome.code == ExitCode.UNAVAILABLE
    assert "hunter2" not in outcome.stderr + outcome.outputs["reason"]
    assert f"MLflow at http://***@127.0.0.1:{closed_port} is unavailable" in outcome.stderr


def test_unusable_tracking_uri_fails_clearly(tmp_path: Path) -> None:
    outcome = run_promote(make_request("ftp://mlflow.example", "fraud", "f" * 32, tmp_path))
    assert outcome.code == ExitCode.MLFLOW_ERROR
    assert "cannot use tracking URI ftp://mlflow.example: " in outcome.stderr
    assert "Traceback" not in outcome.stderr
    assert outcome.outputs["decision"] == "Failed"
