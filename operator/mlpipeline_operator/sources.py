"""Input artifacts from outside the pipeline (`inputs.artifacts[].source`): the rules their
texts follow, shared by validation, caching, the compiler and the local runner. Pure.

An S3 key and an HTTP URL may use `{{pipeline.parameters.NAME}}` (a date-partitioned dataset:
`data/raw/{{pipeline.parameters.date}}`); a git repo and revision are literal.
"""

from __future__ import annotations

import re
import urllib.parse

from mlpipeline_operator import placeholders
from mlpipeline_operator.api.models import ArtifactSource, Step
from mlpipeline_operator.messages import quoted

GIT_SCHEMES = ("https", "http", "git")
HTTP_SCHEMES = ("https", "http")
_SPACE = re.compile(r"\s")


def key_problem(key: str) -> str | None:
    """Why an S3 key (its placeholders already replaced, or still in it) is refused."""
    if key.startswith("/"):
        return f"{quoted(key)} starts with '/'; a key is relative to the bucket, e.g. data/raw.csv"
    if ".." in key.split("/"):
        return f"{quoted(key)} has a '..' segment; name the object itself"
    return None


def _url_problem(url: str, schemes: tuple[str, ...], what: str) -> str | None:
    allowed = ", ".join(f"{s}://" for s in schemes)
    if _SPACE.search(url):
        return f"{quoted(url)} has a space; write it percent-encoded (%20)"
    # A placeholder stands for a value only Argo knows: check the URL around it.
    parts = urllib.parse.urlsplit(placeholders.PLACEHOLDER_RE.sub("x", url))
    if parts.scheme not in schemes or not parts.hostname:
        return f"{quoted(url)} is not a {what}; write {allowed}HOST/PATH"
    return None


def url_problem(url: str) -> str | None:
    """Why an HTTP source's URL is refused."""
    return _url_problem(url, HTTP_SCHEMES, "URL to download")


def repo_problem(repo: str) -> str | None:
    """Why a git source's repository is refused: only URLs that need no credentials."""
    problem = _url_problem(repo, GIT_SCHEMES, "git repository URL that needs no credentials")
    if problem is None and urllib.parse.urlsplit(repo).username is not None:
        return f"{quoted(repo)} has a user name; credentials are not supported"
    if problem is None and ".." in urllib.parse.urlsplit(repo).path.split("/"):
        return f"{quoted(repo)} has a '..' segment in its path"
    return problem


def revision_problem(revision: str) -> str | None:
    """Why a git revision is refused (git would read "-x" as an option)."""
    if revision.startswith("-") or _SPACE.search(revision) or ".." in revision:
        return (
            f"{quoted(revision)} is not a branch, tag or commit; write e.g. main, v1.2 or a "
            "commit hash"
        )
    return None


def templated_texts(source: ArtifactSource) -> list[str]:
    """The texts of a source that may use `{{pipeline.parameters.NAME}}`."""
    if source.s3 is not None:
        return [source.s3.key]
    if source.http is not None:
        return [source.http.url]
    return []


def step_source_texts(step: Step) -> list[str]:
    """The texts of every source of a step's input artifacts that may use placeholders."""
    return [
        text
        for artifact in step.inputs.artifacts
        if artifact.source is not None
        for text in templated_texts(artifact.source)
    ]


def git_local_path(repo: str) -> str:
    """Where the local runner finds a repository under `SOURCE_DIR/git/`: its host and path
    ("https://example.com/org/data.git" is "example.com/org/data.git")."""
    parts = urllib.parse.urlsplit(repo)
    return f"{parts.hostname}/{parts.path.strip('/')}".rstrip("/")


def describe(source: ArtifactSource) -> str:
    """A source as a message names it."""
    if source.s3 is not None:
        return f"s3 key {quoted(source.s3.key)}"
    if source.http is not None:
        return f"URL {source.http.url}"
    assert source.git is not None
    return f"git {source.git.repo} at {quoted(source.git.revision)}"
