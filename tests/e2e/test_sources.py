"""Data from outside the pipeline, read by real pods through Argo's executor: an object the test
uploads to the cluster's S3 store, named by a key-only `source.s3` with a pipeline parameter; a
file served over HTTP; and a tag of a git repository served by `git daemon`. The servers run
in the cluster's network namespace, on the address where pods reach MLflow: nothing leaves the
machine. Each step checks what it was given and fails otherwise."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cluster import (
    PIPELINE_NAMESPACE,
    S3_ACCESS_KEY,
    S3_BUCKET,
    S3_SECRET_KEY,
    NodeCluster,
)
from tests.e2e.pipelines import apply_pipeline, eventually, pipeline, wait_status

RUN_TIMEOUT = 300.0
HTTP_PORT = 18080
GIT_PORT = 19418
# Compares the artifact at argv[1] (a file) with argv[2]; a mismatch fails the step.
CHECK = """
import pathlib, sys
p = pathlib.Path(sys.argv[1])
if p.is_dir():
    print("a directory:", sorted(str(f.relative_to(p)) for f in p.rglob("*")))
    sys.exit(1)
found = p.read_bytes()
print("found", repr(found))
sys.exit(0 if found.decode().strip() == sys.argv[2] else 1)
"""


def s3_put(endpoint: str, key: str, body: bytes) -> None:
    """Upload an object to the cluster's S3 store, signed with AWS Signature Version 4."""
    region, now = "us-east-1", datetime.datetime.now(datetime.UTC)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    path = f"/{S3_BUCKET}/{urllib.parse.quote(key, safe='/-_.~')}"
    payload = hashlib.sha256(body).hexdigest()
    headers = {"host": endpoint, "x-amz-content-sha256": payload, "x-amz-date": stamp}
    signed = ";".join(sorted(headers))
    canonical = "\n".join(
        ["PUT", path, "", *(f"{k}:{headers[k]}" for k in sorted(headers)), "", signed, payload]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    signing = f"AWS4{S3_SECRET_KEY}".encode()
    for part in (day, region, "s3", "aws4_request"):
        signing = hmac.new(signing, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(signing, to_sign.encode(), hashlib.sha256).hexdigest()
    authorization = (
        f"AWS4-HMAC-SHA256 Credential={S3_ACCESS_KEY}/{scope}, SignedHeaders={signed}, "
        f"Signature={signature}"
    )
    request = urllib.request.Request(
        f"http://{endpoint}{path}",
        data=body,
        method="PUT",
        headers={**headers, "Authorization": authorization},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def _git(cwd: Path, *argv: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=e2e", "-c", "user.email=e2e@example.com", *argv],
        cwd=cwd,
        capture_output=True,
        check=True,
    )


def _reachable(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def token() -> str:
    return uuid.uuid4().hex


@pytest.fixture(scope="module")
def servers(cluster: NodeCluster, token: str) -> Iterator[tuple[str, str]]:
    """(HTTP base URL, git base URL) of servers in the cluster's network namespace: the HTTP
    server serves holidays.csv (the token); git daemon serves labels.git, whose tag v1 holds
    the token and whose branch main has moved on."""
    root = cluster.workdir / "sources"
    www, repos = root / "www", root / "git"
    www.mkdir(parents=True)
    (www / "holidays.csv").write_text(f"holidays-{token}\n")
    repo = repos / "labels.git"
    repo.mkdir(parents=True)
    _git(repo, "init", "--quiet", "--initial-branch=main")
    (repo / "rules.txt").write_text(f"rules-{token}\n")
    _git(repo, "add", "rules.txt")
    _git(repo, "commit", "--quiet", "-m", "v1")
    _git(repo, "tag", "v1")
    (repo / "rules.txt").write_text("moved on\n")
    _git(repo, "commit", "--quiet", "-am", "v2")
    host = cluster.node_ip
    started = [
        subprocess.Popen(
            cluster.ns_command(
                [
                    sys.executable,
                    "-m",
                    "http.server",
                    "--bind",
                    host,
                    "-d",
                    str(www),
                    str(HTTP_PORT),
                ]
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            cluster.ns_command(
                [
                    "git",
                    "daemon",
                    "--reuseaddr",
                    "--export-all",
                    f"--base-path={repos}",
                    f"--listen={host}",
                    f"--port={GIT_PORT}",
                    str(repos),
                ]
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        http_base = f"http://{host}:{HTTP_PORT}"
        eventually(lambda: _reachable(f"{http_base}/holidays.csv"), "the HTTP server", 30)
        eventually(
            lambda: (
                subprocess.run(
                    ["git", "ls-remote", f"git://{host}:{GIT_PORT}/labels.git"],
                    capture_output=True,
                    check=False,
                ).returncode
                == 0
            ),
            "git daemon",
            30,
        )
        yield http_base, f"git://{host}:{GIT_PORT}"
    finally:
        for process in started:
            process.terminate()
            process.wait(timeout=30)


def _reader(source: dict[str, Any], expected: str, inside: str = "") -> dict[str, Any]:
    """A step "read" that checks its input artifact "data" (`inside`: a file in it) holds
    `expected`."""
    return {
        "name": "read",
        "command": ["python", "-c", CHECK, "{{inputs.artifacts.data.path}}" + inside, expected],
        "inputs": {"artifacts": [{"name": "data", "path": "/data/in", "source": source}]},
    }


@pytest.fixture(scope="module")
def applied(cluster: NodeCluster, servers: tuple[str, str], token: str) -> None:
    """The three pipelines, applied at once (they run side by side)."""
    http_base, git_base = servers
    key = f"datasets/{token}/date=2026-11-30/events.csv"
    s3_put(cluster.s3_endpoint, key, f"events-{token}\n".encode())
    assert (cluster.s3_root / S3_BUCKET / key).is_file()
    partitioned = {
        "s3": {"key": f"datasets/{token}/date={{{{pipeline.parameters.date}}}}/events.csv"}
    }
    docs = [
        pipeline(
            cluster,
            "source-s3",
            [_reader(partitioned, f"events-{token}")],
            parameters=[{"name": "date", "value": "2026-11-30"}],
        ),
        pipeline(
            cluster,
            "source-http",
            [_reader({"http": {"url": f"{http_base}/holidays.csv"}}, f"holidays-{token}")],
        ),
        pipeline(
            cluster,
            "source-git",
            [
                _reader(
                    {"git": {"repo": f"{git_base}/labels.git", "revision": "v1"}},
                    f"rules-{token}",
                    inside="/rules.txt",
                )
            ],
        ),
    ]
    for doc in docs:
        apply_pipeline(cluster, doc)


@pytest.mark.parametrize("name", ["source-s3", "source-http", "source-git"])
def test_a_step_reads_data_from_outside_the_pipeline(
    cluster: NodeCluster, applied: None, name: str
) -> None:
    done = wait_status(cluster, name, generation=1, timeout=RUN_TIMEOUT)

    status = done["status"]
    if status["phase"] != "Succeeded":  # what the pod saw: the executor's and the step's logs
        run = status["lastRun"]["name"]
        logs = cluster.kubectl(
            "logs",
            "-n",
            PIPELINE_NAMESPACE,
            f"--selector=workflows.argoproj.io/workflow={run}",
            "--all-containers",
            "--prefix",
        )
        raise AssertionError(f"{status['message']}\n{logs}")
    assert [(s["name"], s["phase"]) for s in status["lastRun"]["steps"]] == [("read", "Succeeded")]
