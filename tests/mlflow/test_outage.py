"""MLflow out of reach: bounded retries, then a clear failure, and nothing written to MLflow."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlpipeline_operator.promotion.errors import ExitCode
from mlpipeline_operator.promotion.retry import RetryPolicy
from tests.mlflow.helpers import make_request, run_promote
from tests.mlflow.server import free_port

pytestmark = pytest.mark.mlflow


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound and closed again)."""
    return free_port()


@pytest.fixture
def silent_socket() -> Iterator[socket.socket]:
    """A listening socket that never answers: connections complete in the kernel's backlog."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock


def requests_received(sock: socket.socket) -> list[str]:
    """The request line of every connection waiting on `sock` (all of them have been made
    once the client has returned)."""
    lines: list[str] = []
    sock.setblocking(False)
    while True:
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            return lines
        with conn:
            conn.setblocking(True)
            lines.append(conn.recv(65536).decode().split("\r\n", 1)[0])


class _Unavailable(http.server.BaseHTTPRequestHandler):
    def _answer(self) -> None:
        assert isinstance(self.server, _UnavailableServer)
        self.server.requests.append(self.requestline)
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_PATCH = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


class _UnavailableServer(http.server.ThreadingHTTPServer):
    """Answers 503 to everything; `requests` lists the request lines it received."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Unavailable)
        self.requests: list[str] = []


@pytest.fixture
def unavailable() -> Iterator[_UnavailableServer]:
    """An HTTP server answering 503 to everything. A stand-in, not MLflow: a real mlflow server
    cannot be made to answer 503 on demand, and this is what a proxy in front of one does while
    it restarts."""
    server = _UnavailableServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_closed_port_is_retried_with_backoff_then_fails(closed_port: int, tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{closed_port}"
    policy = RetryPolicy(attempts=3, backoff=0.2, request_timeout=5)
    outcome = run_promote(make_request(uri, "fraud", "a" * 32, tmp_path), policy)
    assert outcome.code == ExitCode.UNAVAILABLE
    *retries, last = outcome.stderr.strip().splitlines()
    # Three attempts with 0.2 s and 0.4 s between them; a refused connection fails at once.
    failed = f"mlpipeline promote: MLflow at {uri}: read run {'a' * 32} failed (connection "
    assert retries == [
        failed + "failed: Connection refused); attempt 2 of 3 in 0.2s",
        failed + "failed: Connection refused); attempt 3 of 3 in 0.4s",
    ]
    assert last.startswith(f"mlpipeline promote: error: MLflow at {uri} is unavailable: ")
    assert "read run " + "a" * 32 + " failed 3 times" in last
    assert "connection failed: Connection refused" in last
    assert outcome.outputs["decision"] == "Failed"
    assert outcome.outputs["reason"].startswith(f"MLflow at {uri} is unavailable")


def test_silent_server_times_out_once_per_attempt(
    silent_socket: socket.socket, tmp_path: Path
) -> None:
    uri = f"http://127.0.0.1:{silent_socket.getsockname()[1]}"
    policy = RetryPolicy(attempts=2, backoff=0.1, request_timeout=1)
    outcome = run_promote(make_request(uri, "fraud", "b" * 32, tmp_path), policy)
    assert outcome.code == ExitCode.UNAVAILABLE
    # One request per attempt: MLflow's own retries are off, each attempt gave up on its
    # request after the request timeout and the next one started over.
    read = f"GET /api/2.0/mlflow/runs/get?run_uuid={'b' * 32}&run_id={'b' * 32} HTTP/1.1"
    assert requests_received(silent_socket) == [read, read]
    *retries, last = outcome.stderr.strip().splitlines()
    assert retries == [
        f"mlpipeline promote: MLflow at {uri}: read run {'b' * 32} failed (no answer within "
        "1s); attempt 2 of 2 in 0.1s"
    ]
    assert f"read run {'b' * 32} failed 2 times in " in last
    assert "(last: no answer within 1s)" in last


def test_http_503_is_retried_then_fails(unavailable: _UnavailableServer, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{unavailable.server_address[1]}"
    policy = RetryPolicy(attempts=2, backoff=0.1, request_timeout=5)
    outcome = run_promote(make_request(url, "fraud", "c" * 32, tmp_path), policy)
    assert outcome.code == ExitCode.UNAVAILABLE
    read = f"GET /api/2.0/mlflow/runs/get?run_uuid={'c' * 32}&run_id={'c' * 32} HTTP/1.1"
    assert unavailable.requests == [read, read]
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
