"""The `mlpipeline` command's speed, side by side with another checkout; prints medians.

Run: `make benchmark-cli REF=DIR` (`python -m benchmarks.cli_speed [DIR]`), where DIR is another
checkout of this repository, e.g. `git worktree add --detach /tmp/main-ref main`. Without DIR,
only this tree is measured. Figures are medians of --repeat rounds; in each round the two trees
take turns, so load on the machine falls on both alike:

- `mlpipeline validate` and `mlpipeline render` of a one-step file: the process's wall time;
- `mlpipeline promote` against a real `mlflow server` on loopback (SQLite store in a temporary
  directory), through a recording proxy: from the process's start to the first request that
  reaches MLflow, and the whole command (the same run and model each time, so after the
  warm-up every round re-runs an already registered version);
- validation plus compilation of a 1,000-step pipeline (tests/unit/pipelines.py), in-process
  after a warm-up: the median of 5 runs in a fresh process, per round.

Each command runs as the console script does (`from mlpipeline_operator.cli import main`) with
the tree's `operator/` first on PYTHONPATH, and with byte code cached in a temporary directory
(PYTHONPYCACHEPREFIX), as an installed package has it. Two floors are printed for context:
`python -I -c pass`, and pydantic alone (imported, one model built and one document validated).
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from tests.mlflow.server import QUIET_ENV, start_server

REPO = Path(__file__).resolve().parent.parent
CONSOLE_SCRIPT = "import sys; from mlpipeline_operator.cli import main; sys.exit(main())"
PYDANTIC_FLOOR = (
    "from pydantic import BaseModel, Field\n"
    "class A(BaseModel):\n"
    "    x: int = Field(ge=1)\n"
    "A.model_validate({'x': 1})\n"
)
IN_PROCESS = """
import json, statistics, sys, time
from mlpipeline_operator.compiler.workflow import compile_pipeline
from mlpipeline_operator.validation import validate_document
from tests.unit.pipelines import chain

doc = chain(int(sys.argv[1]))

def once():
    pipeline, problems = validate_document(doc)
    assert pipeline is not None, problems
    compile_pipeline(pipeline)

once()
times = []
for _ in range(5):
    start = time.perf_counter()
    once()
    times.append(time.perf_counter() - start)
print(json.dumps(statistics.median(times)))
"""
ONE_STEP = """\
apiVersion: mlops.gitops.dev/v1alpha1
kind: MLPipeline
metadata: {name: one-step, namespace: ml}
spec:
  image: registry.example.com/train:1
  steps:
    - name: train
      command: [python, -m, train]
"""
# Headers that belong to one connection, not to the request (RFC 9110, 7.6.1), and Host, which
# http.client sets for the upstream server.
_HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding"}
    | {"upgrade", "host", "content-length"}
)


@dataclass
class Tree:
    """A checkout whose `operator/` package is measured."""

    label: str
    root: Path
    env: dict[str, str] = field(default_factory=dict)


class Recorder:
    """An HTTP proxy on loopback in front of the MLflow server that notes when the first request
    after `reset` arrives, and what it was."""

    def __init__(self, upstream: str) -> None:
        target = urlsplit(upstream)
        host, port = target.hostname or "127.0.0.1", target.port
        self.first: tuple[float, str] | None = None
        self._lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def forward(self) -> None:
                recorder.note(f"{self.command} {self.path.split('?')[0]}")
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
                upstream = http.client.HTTPConnection(host, port, timeout=120)
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    data = response.read()
                finally:
                    upstream.close()
                self.send_response(response.status, response.reason)
                for key, value in response.getheaders():
                    if key.lower() not in _HOP_HEADERS:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = forward

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def note(self, request: str) -> None:
        now = time.perf_counter()
        with self._lock:
            if self.first is None:
                self.first = (now, request)

    def reset(self) -> None:
        with self._lock:
            self.first = None

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def run(argv: list[str], env: dict[str, str]) -> float:
    """Wall time of a command that must succeed."""
    start = time.perf_counter()
    result = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(
            f"{' '.join(argv)} failed ({result.returncode}):\n{result.stderr.decode()}"
        )
    return elapsed


def command(*args: str) -> list[str]:
    return [sys.executable, "-c", CONSOLE_SCRIPT, *args]


Figures = dict[str, list[float]]


def measure(
    trees: list[Tree], rounds: int, steps: int, sample: Path, promote: Promote | None
) -> dict[str, Figures]:
    """Every figure of every tree, in seconds, one value per round."""
    figures: dict[str, Figures] = {tree.label: {} for tree in trees}

    def add(tree: Tree, name: str, value: float) -> None:
        figures[tree.label].setdefault(name, []).append(value)

    in_process_env = {
        tree.label: {**tree.env, "PYTHONPATH": f"{tree.root / 'operator'}{os.pathsep}{REPO}"}
        for tree in trees
    }
    # Warm-up: byte code written to the cache, the promotion's model version registered.
    for tree in trees:
        run(command("validate", str(sample)), tree.env)
        run(command("render", str(sample)), tree.env)
        if promote is not None:
            promote.once(tree)
    for round_ in range(rounds):
        # Turn about (A B, B A, ...): neither tree always runs right after the other's work.
        for tree in trees if round_ % 2 == 0 else trees[::-1]:
            add(tree, "validate", run(command("validate", str(sample)), tree.env))
            add(tree, "render", run(command("render", str(sample)), tree.env))
            if promote is not None:
                first, whole = promote.once(tree)
                add(tree, "promote-first", first)
                add(tree, "promote-whole", whole)
            out = subprocess.run(
                [sys.executable, "-c", IN_PROCESS, str(steps)],
                env=in_process_env[tree.label],
                capture_output=True,
                text=True,
                check=True,
            )
            add(tree, "compile", float(out.stdout))
    return figures


@dataclass
class Promote:
    """`mlpipeline promote` of one logged run, through the recording proxy."""

    recorder: Recorder
    model: str
    run_id: str
    output_dir: Path
    first_request: str = ""

    def once(self, tree: Tree) -> tuple[float, float]:
        self.recorder.reset()
        argv = command(
            "promote",
            *("--tracking-uri", self.recorder.url, "--model", self.model, "--run-id", self.run_id),
            *("--gate", "auc>=0.5", "--must-beat", "champion:auc:higher"),
            *("--output-dir", str(self.output_dir)),
        )
        start = time.perf_counter()
        whole = run(argv, tree.env)
        if self.recorder.first is None:
            raise SystemExit("mlpipeline promote sent no request to MLflow")
        arrived, self.first_request = self.recorder.first
        return arrived - start, whole


def start_promote(work: Path, stack: list[Callable[[], None]]) -> Promote:
    """A fresh `mlflow server`, a run with a logged model, and the proxy in front."""
    from tests.mlflow.helpers import log_run_to, sklearn_model

    print("starting mlflow server ...", file=sys.stderr, flush=True)
    server = start_server(work / "mlflow")
    stack.append(server.stop)
    run_id = log_run_to(server.url, sklearn_model(), {"auc": 0.9, "accuracy": 0.9})
    recorder = Recorder(server.url)
    stack.append(recorder.stop)
    return Promote(recorder, f"bench-{uuid.uuid4().hex[:8]}", run_id, work / "promotion")


def report(
    trees: list[Tree], figures: dict[str, Figures], floors: Figures, promote_note: str
) -> None:
    rows = [
        ("validate", "mlpipeline validate, one step (wall)"),
        ("render", "mlpipeline render, one step (wall)"),
        ("promote-first", "mlpipeline promote: start -> first MLflow request"),
        ("promote-whole", "mlpipeline promote: whole command"),
        ("compile", "validate + compile, 1,000 steps, in-process"),
    ]
    header = f"{'ms: median (min)':<52}" + "".join(f"{t.label:>18}" for t in trees)
    if len(trees) == 2:
        header += f"{'ratio':>8}"
    print(header)
    for key, title in rows:
        values = [figures[t.label].get(key) or [] for t in trees]
        if not values[0]:
            continue
        medians = [statistics.median(v) * 1000 for v in values]
        cells = [f"{m:.1f} ({min(v) * 1000:.0f})" for m, v in zip(medians, values, strict=True)]
        line = f"{title:<52}" + "".join(f"{c:>18}" for c in cells)
        if len(trees) == 2:
            line += f"{medians[1] / medians[0]:>7.2f}x"
        print(line)
    print(
        f"floors: python -I -c pass {statistics.median(floors['python']) * 1000:.1f} ms; "
        f"pydantic alone {statistics.median(floors['pydantic']) * 1000:.1f} ms"
    )
    if len(trees) == 2:
        print(f"ratio: {trees[1].label} / {trees[0].label} medians (above 1: this tree is faster)")
    if promote_note:
        print(promote_note)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", nargs="?", type=Path, help="another checkout to compare")
    parser.add_argument("--repeat", type=int, default=11, help="rounds (default 11)")
    parser.add_argument("--steps", type=int, default=1000, help="size of the in-process figure")
    parser.add_argument(
        "--skip-promote", action="store_true", help="no MLflow server (it takes ~30 s to start)"
    )
    args = parser.parse_args()
    if args.reference is not None and not (args.reference / "operator").is_dir():
        parser.error(f"{args.reference} is not a checkout of this repository (no operator/)")
    stack: list[Callable[[], None]] = []
    with tempfile.TemporaryDirectory(prefix="cli-speed-") as tmp:
        work = Path(tmp)
        os.environ.update(QUIET_ENV)
        base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        base["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        trees = [Tree("this tree", REPO)]
        if args.reference is not None:
            trees.append(Tree("reference", args.reference.resolve()))
        for tree in trees:
            tree.env = {**base, "PYTHONPATH": str(tree.root / "operator")}
        sample = work / "one-step.yaml"
        sample.write_text(ONE_STEP)
        try:
            promote = None if args.skip_promote else start_promote(work, stack)
            load = [os.getloadavg()[0]]
            figures = measure(trees, args.repeat, args.steps, sample, promote)
            floors: Figures = {"python": [], "pydantic": []}
            for _ in range(args.repeat):
                floors["python"].append(run([sys.executable, "-I", "-c", "pass"], base))
                floors["pydantic"].append(run([sys.executable, "-c", PYDANTIC_FLOOR], base))
            load.append(os.getloadavg()[0])
        finally:
            for stop in reversed(stack):
                stop()
        for tree in trees:
            print(f"{tree.label}: {tree.root}")
        print(f"load average (1 min): {load[0]:.2f} before, {load[1]:.2f} after")
        note = f"promote's first request: {promote.first_request}" if promote else ""
        report(trees, figures, floors, note)


if __name__ == "__main__":
    main()
