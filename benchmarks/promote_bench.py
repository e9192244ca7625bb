"""The promotion step's own time against a local `mlflow server`; prints medians.

Run: `.venv/bin/python benchmarks/promote_bench.py [--repeat N] [--tracking-uri URI]`.
Without --tracking-uri it starts a server on loopback (SQLite store in a temporary directory)
and stops it at the end. Measured in-process after a warm-up, so the interpreter start and
mlflow's import (a few seconds, paid once by each promotion pod) are reported apart:

- new version: find nothing, register the run's model, tags, gates, champion comparison,
  decision tags, move the alias (a fresh run each time, logged outside the timing);
- re-run: the same request again (finds the version, writes nothing, same decision);
- command: `python -m mlpipeline_operator promote` end to end, as the Workflow runs it;
- outages: how long the step takes to give up on a refused connection and on a server that never
  answers, against the bound of its retry policy (`RetryPolicy.worst_case_seconds`).
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mlpipeline_operator.api.models import Gate, MustBeat
from mlpipeline_operator.promotion.promote import promote
from mlpipeline_operator.promotion.request import PromotionRequest
from mlpipeline_operator.promotion.retry import RetryPolicy

# isort: split
from tests.mlflow.helpers import log_run_to, sklearn_model
from tests.mlflow.server import QUIET_ENV, free_port, start_server

POLICY = RetryPolicy(attempts=1)


def request_for(uri: str, model: str, run_id: str, out: Path) -> PromotionRequest:
    return PromotionRequest(
        tracking_uri=uri,
        model=model,
        run_id=run_id,
        gates=(
            Gate(metric="auc", op=">=", value=0.5),
            Gate(metric="accuracy", op=">=", value=0.5),
        ),
        must_beat=MustBeat(alias="champion", metric="auc"),
        lineage={"namespace": "bench", "pipeline": "bench", "generation": "1", "workflow": "w"},
        output_dir=str(out),
    )


def timed(request: PromotionRequest) -> float:
    start = time.perf_counter()
    code = promote(request, POLICY, stdout=io.StringIO(), stderr=sys.stderr)
    elapsed = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"promotion failed with exit code {code}")
    return elapsed


def bench(uri: str, repeat: int, out: Path) -> None:
    model = sklearn_model()
    name = f"bench-{uuid.uuid4().hex[:8]}"
    # Warm-up: imports, the registered model, a first champion.
    warm = request_for(uri, name, log_run_to(uri, model, {"auc": 0.5, "accuracy": 0.5}), out)
    timed(warm)
    new, rerun = [], []
    for i in range(repeat):
        # Rising auc: each new version beats the champion, so every one moves the alias.
        run_id = log_run_to(uri, model, {"auc": 0.6 + i * 0.01, "accuracy": 0.9})
        request = request_for(uri, name, run_id, out)
        new.append(timed(request))
        rerun.append(timed(request))
    command = []
    for _ in range(min(repeat, 3)):
        request = request_for(
            uri, name, log_run_to(uri, model, {"auc": 0.99, "accuracy": 0.9}), out
        )
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "mlpipeline_operator", "promote", *request.to_args()],
            check=True,
            capture_output=True,
        )
        command.append(time.perf_counter() - start)

    def ms(values: list[float]) -> str:
        low, high = min(values) * 1000, max(values) * 1000
        median = statistics.median(values) * 1000
        return f"median {median:6.0f} ms  (min {low:.0f}, max {high:.0f}, n={len(values)})"

    print(f"promotion against {uri}")
    print(f"  new version (register + gates + champion + alias): {ms(new)}")
    print(f"  re-run of an already registered version:           {ms(rerun)}")
    print(f"  whole command (interpreter + imports + promotion): {ms(command)}")


def give_up_seconds(uri: str, policy: RetryPolicy, out: Path) -> float:
    """Seconds until the promotion gives up on an MLflow out of reach."""
    request = request_for(uri, "outage", "0" * 32, out)
    start = time.perf_counter()
    code = promote(request, policy, stdout=io.StringIO(), stderr=io.StringIO())
    elapsed = time.perf_counter() - start
    if code == 0:
        raise SystemExit(f"promotion against {uri} succeeded, expected it to give up")
    return elapsed


def outages(out: Path) -> None:
    refused = RetryPolicy(attempts=3, backoff=0.2, request_timeout=5)
    silent = RetryPolicy(attempts=2, backoff=0.1, request_timeout=1)
    closed = give_up_seconds(f"http://127.0.0.1:{free_port()}", refused, out)
    with socket.socket() as sock:  # accepts connections (the kernel's backlog), never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        never = give_up_seconds(f"http://127.0.0.1:{sock.getsockname()[1]}", silent, out)
    waits = sum(refused.delays())
    print("giving up on an MLflow out of reach")
    print(f"  refused connection, 3 attempts (waits {waits:g} s):    {closed:5.2f} s")
    bound = silent.worst_case_seconds()
    print(f"  no answer, 2 attempts of 1 s (bound {bound:g} s):      {never:5.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--tracking-uri", help="an existing server (default: start one)")
    args = parser.parse_args()
    os.environ.update(QUIET_ENV)
    with tempfile.TemporaryDirectory(prefix="promote-bench-") as tmp:
        root = Path(tmp)
        outages(root / "outage")
        if args.tracking_uri:
            bench(args.tracking_uri, args.repeat, root / "out")
            return
        server = start_server(root / "server")
        try:
            bench(server.url, args.repeat, root / "out")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
