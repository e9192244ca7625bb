"""Input artifacts from outside the pipeline, run locally: S3 keys and git repositories read
from `--source-dir`, URLs downloaded from a server on loopback that the test starts."""

from __future__ import annotations

import functools
import http.server
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.local.helpers import pipeline, run_local, step, write

# Prints the artifact's content (a file), or its files' names and contents (a directory).
SHOW = """
import pathlib, sys
p = pathlib.Path(sys.argv[1])
if p.is_dir():
    for f in sorted(p.rglob('*')):
        if f.is_file() and '.git' not in f.parts:
            print('got:', f.relative_to(p), f.read_text().strip())
else:
    print('got:', p.read_text().strip())
"""


def reader(source: dict[str, Any], path: str = "/data/in") -> dict[str, Any]:
    """A step "read" that prints its input artifact "data", taken from `source`."""
    return step(
        "read",
        SHOW,
        args=["{{inputs.artifacts.data.path}}"],
        inputs={"artifacts": [{"name": "data", "path": path, "source": source}]},
    )


def log_lines(run_dir: Path) -> list[str]:
    """What the step printed of its artifact."""
    text = (run_dir / "steps" / "read" / "step.log").read_text()
    return [line[len("got: ") :] for line in text.splitlines() if line.startswith("got: ")]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(base URL, directory) of an HTTP server on loopback serving the directory."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_s3_key_with_a_parameter_is_read_from_the_source_dir(tmp_path: Path) -> None:
    partition = tmp_path / "sources" / "s3" / "events" / "date=2026-11-30"
    partition.mkdir(parents=True)
    (partition / "part-0.csv").write_text("a,1\n")
    (partition / "part-1.csv").write_text("b,2\n")
    doc = pipeline(
        [reader({"s3": {"key": "events/date={{pipeline.parameters.date}}"}})],
        parameters=[{"name": "date", "value": "2026-11-29"}],
    )
    run = run_local(
        write(tmp_path, doc),
        tmp_path / "run",
        "--source-dir",
        str(tmp_path / "sources"),
        "-p",
        "date=2026-11-30",
    )
    assert run.code == 0, run.out + run.err
    assert log_lines(run.run_dir) == ["part-0.csv a,1", "part-1.csv b,2"]


def test_missing_s3_key_is_the_step_s_error_naming_the_artifact(tmp_path: Path) -> None:
    (tmp_path / "sources").mkdir()
    doc = pipeline([reader({"s3": {"key": "data/raw.csv"}})])
    run = run_local(
        write(tmp_path, doc), tmp_path / "run", "--source-dir", str(tmp_path / "sources")
    )
    missing = tmp_path / "sources" / "s3" / "data" / "raw.csv"
    message = f'input artifact "data": s3 key "data/raw.csv": {missing} is missing'
    assert run.code == 1
    assert (run.step("read")["phase"], run.step("read")["message"]) == ("Error", message)
    assert f"step read Error: {message}" in run.out


def test_a_parameter_that_makes_a_key_leave_the_source_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "sources").mkdir()
    doc = pipeline(
        [reader({"s3": {"key": "data/{{pipeline.parameters.part}}"}})],
        parameters=[{"name": "part", "value": "a.csv"}],
    )
    run = run_local(
        write(tmp_path, doc),
        tmp_path / "run",
        "--source-dir",
        str(tmp_path / "sources"),
        "-p",
        "part=../../secret",
    )
    assert run.code == 1
    assert run.step("read")["message"] == (
        'input artifact "data": s3 key "data/../../secret" has a \'..\' segment; '
        "name the object itself"
    )


def test_s3_or_git_source_without_source_dir_is_a_usage_error(tmp_path: Path) -> None:
    doc = pipeline([reader({"s3": {"key": "data/raw.csv"}})])
    run = run_local(write(tmp_path, doc), tmp_path / "run")
    assert run.code == 2
    assert run.err == (
        "mlpipeline run: spec.steps[0].inputs.artifacts[0].source.s3: the local runner reads S3 "
        "keys and git repositories from a directory: give --source-dir DIR (DIR/s3/KEY, "
        "DIR/git/HOST/PATH)\n"
    )
    assert not (tmp_path / "run").exists()


def test_http_source_is_downloaded(tmp_path: Path, served: tuple[str, Path]) -> None:
    base, root = served
    (root / "holidays-2026.csv").write_text("2026-12-25\n")
    doc = pipeline(
        [reader({"http": {"url": f"{base}/holidays-{{{{pipeline.parameters.year}}}}.csv"}})],
        parameters=[{"name": "year", "value": "2026"}],
    )
    run = run_local(write(tmp_path, doc), tmp_path / "run")
    assert run.code == 0, run.out + run.err
    assert log_lines(run.run_dir) == ["2026-12-25"]


def test_http_error_names_the_url(tmp_path: Path, served: tuple[str, Path]) -> None:
    base, _ = served
    doc = pipeline([reader({"http": {"url": f"{base}/gone.csv"}})])
    run = run_local(write(tmp_path, doc), tmp_path / "run")
    assert run.code == 1
    assert run.step("read")["message"] == (
        f'input artifact "data": cannot download {base}/gone.csv: HTTP 404 File not found'
    )


def _git(cwd: Path, *argv: str) -> str:
    result = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


@pytest.fixture
def labels_repo(tmp_path: Path) -> tuple[Path, str]:
    """A repository standing for https://git.example.com/data/labels.git under
    SOURCE_DIR/git: tag v1 holds rules "v1"; branch main has moved on to "v2"."""
    repo = tmp_path / "sources" / "git" / "git.example.com" / "data" / "labels.git"
    repo.mkdir(parents=True)
    _git(repo, "init", "--quiet", "--initial-branch=main")
    (repo / "rules.txt").write_text("v1\n")
    _git(repo, "add", "rules.txt")
    _git(repo, "commit", "--quiet", "-m", "v1")
    _git(repo, "tag", "v1")
    first = _git(repo, "rev-parse", "HEAD")
    (repo / "rules.txt").write_text("v2\n")
    _git(repo, "commit", "--quiet", "-am", "v2")
    return tmp_path / "sources", first


@pytest.mark.parametrize(("revision", "expected"), [("v1", "v1"), ("main", "v2"), ("FIRST", "v1")])
def test_git_source_is_checked_out_at_its_revision(
    tmp_path: Path, labels_repo: tuple[Path, str], revision: str, expected: str
) -> None:
    source_dir, first = labels_repo
    git = {
        "repo": "https://git.example.com/data/labels.git",
        "revision": first if revision == "FIRST" else revision,
    }
    doc = pipeline([reader({"git": git})])
    run = run_local(write(tmp_path, doc), tmp_path / "run", "--source-dir", str(source_dir))
    assert run.code == 0, run.out + run.err
    assert log_lines(run.run_dir) == [f"rules.txt {expected}"]


def test_unknown_git_revision_is_the_step_s_error(
    tmp_path: Path, labels_repo: tuple[Path, str]
) -> None:
    source_dir, _ = labels_repo
    git = {"repo": "https://git.example.com/data/labels.git", "revision": "v9"}
    run = run_local(
        write(tmp_path, pipeline([reader({"git": git})])),
        tmp_path / "run",
        "--source-dir",
        str(source_dir),
    )
    assert run.code == 1
    assert run.step("read")["message"] == (
        'input artifact "data": git https://git.example.com/data/labels.git at v9: '
        "fatal: invalid reference: v9"
    )


def test_missing_git_repository_names_where_it_was_looked_for(tmp_path: Path) -> None:
    (tmp_path / "sources").mkdir()
    git = {"repo": "git://git.example.com/other.git", "revision": "main"}
    run = run_local(
        write(tmp_path, pipeline([reader({"git": git})])),
        tmp_path / "run",
        "--source-dir",
        str(tmp_path / "sources"),
    )
    where = tmp_path / "sources" / "git" / "git.example.com" / "other.git"
    assert run.step("read")["message"] == (
        f'input artifact "data": git git://git.example.com/other.git: {where} is missing '
        "(a clone of the repository)"
    )
