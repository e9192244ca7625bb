"""Input artifacts from outside the pipeline, placed where a local step reads them.

SOURCE_DIR/s3/KEY              the object (a file) or the objects under a prefix (a directory)
                               that `source.s3.key` names in the cluster's artifact repository
SOURCE_DIR/git/HOST/PATH       a git repository standing for `source.git.repo`
                               (https://HOST/PATH): cloned, then checked out at the revision
`source.http.url`              downloaded, as Argo's executor does
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from mlpipeline_operator import placeholders, sources
from mlpipeline_operator.api.models import ArtifactSource, MLPipeline

S3_DIR = "s3"
GIT_DIR = "git"
# A download that hangs would hold the step forever; Argo's executor gives up too.
HTTP_TIMEOUT_SECONDS = 120.0


class SourceError(Exception):
    """An input artifact that cannot be taken from its source (the message says why)."""


def needs_source_dir(pipeline: MLPipeline) -> list[str]:
    """The field paths of the sources that the local runner reads from `--source-dir`."""
    return [
        f"spec.steps[{i}].inputs.artifacts[{j}].source.{'s3' if a.source.s3 else 'git'}"
        for i, step in enumerate(pipeline.spec.steps)
        for j, a in enumerate(step.inputs.artifacts)
        if a.source is not None and a.source.http is None
    ]


def _with_parameters(text: str, values: Mapping[str, str]) -> str:
    return placeholders.substitute(text, lambda ref: values[ref.name])


async def place(
    source: ArtifactSource, target: Path, values: Mapping[str, str], source_dir: Path | None
) -> None:
    """Put the source's content at `target` (whose parent exists). Raises SourceError."""
    if source.http is not None:
        await asyncio.to_thread(_download, _with_parameters(source.http.url, values), target)
        return
    assert source_dir is not None  # `mlpipeline run` requires it for s3 and git sources
    if source.s3 is not None:
        key = _with_parameters(source.s3.key, values)
        problem = sources.key_problem(key)
        if problem is not None:
            raise SourceError(f"s3 key {problem}")
        await asyncio.to_thread(_copy, source_dir / S3_DIR / key, target, f's3 key "{key}"')
        return
    assert source.git is not None
    repository = source_dir / GIT_DIR / sources.git_local_path(source.git.repo)
    await asyncio.to_thread(_checkout, repository, source.git.revision, target, source.git.repo)


def _copy(origin: Path, target: Path, what: str) -> None:
    if not origin.exists():
        raise SourceError(f"{what}: {origin} is missing")
    try:
        if origin.is_dir():
            shutil.copytree(origin, target, dirs_exist_ok=True)
        else:
            shutil.copy2(origin, target)
    except (OSError, shutil.Error) as error:
        raise SourceError(f"{what}: cannot copy {origin}: {error}") from None


def _download(url: str, target: Path) -> None:
    problem = sources.url_problem(url)  # a parameter's value may have made it another URL
    if problem is not None:
        raise SourceError(problem)
    try:
        with (
            urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_SECONDS) as response,
            target.open("wb") as out,
        ):
            shutil.copyfileobj(response, out)
    except urllib.error.HTTPError as error:
        raise SourceError(f"cannot download {url}: HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        raise SourceError(f"cannot download {url}: {error.reason}") from None
    except OSError as error:
        raise SourceError(f"cannot download {url}: {error.strerror or error}") from None


def _git(*argv: str) -> None:
    try:
        result = subprocess.run(["git", *argv], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise SourceError("git is not installed (a git source needs it)") from None
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise SourceError(lines[-1] if lines else f"git exited {result.returncode}")


def _checkout(repository: Path, revision: str, target: Path, repo: str) -> None:
    what = f"git {repo}"
    if not repository.is_dir():
        raise SourceError(f"{what}: {repository} is missing (a clone of the repository)")
    try:
        _git("clone", "--quiet", "--no-checkout", "--", str(repository), str(target))
        _git("-C", str(target), "checkout", "--quiet", revision, "--")
    except SourceError as error:
        raise SourceError(f"{what} at {revision}: {error}") from None
