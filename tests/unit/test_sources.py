"""Input artifacts from outside the pipeline (`inputs.artifacts[].source`): every misuse with
its exact field path and message, the compiled Argo artifacts, and the cache keys."""

from __future__ import annotations

from typing import Any

import pytest

from mlpipeline_operator.api.models import MLPipeline
from mlpipeline_operator.caching import cache_keys
from mlpipeline_operator.compiler.workflow import compile_document
from mlpipeline_operator.core import Problem
from mlpipeline_operator.validation import validate_document
from tests.unit.pipelines import pipeline

Doc = dict[str, Any]
ARTIFACT = "spec.steps[1].inputs.artifacts[0]"
SOURCE = f"{ARTIFACT}.source"


def with_artifact(artifact: Doc, parameters: list[Doc] | None = None) -> Doc:
    """The base pipeline whose step "train" takes `artifact` as its input artifact "raw"."""
    doc = pipeline()
    doc["spec"]["steps"][1]["inputs"]["artifacts"] = [
        {"name": "raw", "path": "/data/raw", **artifact}
    ]
    if parameters is not None:
        doc["spec"]["parameters"] = parameters
    return doc


def problems_of(doc: Doc) -> list[Problem]:
    parsed, problems = validate_document(doc)
    assert parsed is None
    return problems


@pytest.mark.parametrize(
    ("artifact", "path", "message"),
    [
        pytest.param(
            {"from": "extract.raw", "source": {"s3": {"key": "data/raw.csv"}}},
            ARTIFACT,
            "set exactly one of from or source",
            id="from and source",
        ),
        pytest.param({}, ARTIFACT, "set exactly one of from or source", id="neither"),
        pytest.param(
            {"source": {"s3": {"key": "a"}, "http": {"url": "https://example.com/a"}}},
            SOURCE,
            "set exactly one of s3, http or git",
            id="two sources",
        ),
        pytest.param({"source": {}}, SOURCE, "set exactly one of s3, http or git", id="no source"),
        pytest.param(
            {"source": {"s3": {"key": ""}}}, f"{SOURCE}.s3.key", "must not be empty", id="empty key"
        ),
        pytest.param(
            {"source": {"s3": {"key": "data/../secrets"}}},
            f"{SOURCE}.s3.key",
            "\"data/../secrets\" has a '..' segment; name the object itself",
            id="dot-dot key",
        ),
        pytest.param(
            {"source": {"s3": {"key": "/data/raw.csv"}}},
            f"{SOURCE}.s3.key",
            "\"/data/raw.csv\" starts with '/'; a key is relative to the bucket, e.g. data/raw.csv",
            id="absolute key",
        ),
        pytest.param(
            {"source": {"s3": {"key": "data/{{pipeline.parameters.day}}"}}},
            f"{SOURCE}.s3.key",
            'placeholder "{{pipeline.parameters.day}}": unknown pipeline parameter "day"; '
            'known: "lr"',
            id="unknown parameter in key",
        ),
        pytest.param(
            {"source": {"s3": {"key": "data/{{inputs.parameters.day}}"}}},
            f"{SOURCE}.s3.key",
            '"{{inputs.parameters.day}}" cannot be used here; only '
            "{{pipeline.parameters.NAME}} can",
            id="step placeholder in key",
        ),
        pytest.param(
            {"source": {"http": {"url": "ftp://example.com/raw.csv"}}},
            f"{SOURCE}.http.url",
            '"ftp://example.com/raw.csv" is not a URL to download; write https://, '
            "http://HOST/PATH",
            id="ftp url",
        ),
        pytest.param(
            {"source": {"http": {"url": "https:///raw.csv"}}},
            f"{SOURCE}.http.url",
            '"https:///raw.csv" is not a URL to download; write https://, http://HOST/PATH',
            id="url without host",
        ),
        pytest.param(
            {"source": {"http": {"url": "https://example.com/a b.csv"}}},
            f"{SOURCE}.http.url",
            '"https://example.com/a b.csv" has a space; write it percent-encoded (%20)',
            id="url with space",
        ),
        pytest.param(
            {"source": {"git": {"repo": "git@github.com:acme/data.git", "revision": "main"}}},
            f"{SOURCE}.git.repo",
            '"git@github.com:acme/data.git" is not a git repository URL that needs no '
            "credentials; write https://, http://, git://HOST/PATH",
            id="ssh repo",
        ),
        pytest.param(
            {"source": {"git": {"repo": "https://bob@example.com/data.git", "revision": "v1"}}},
            f"{SOURCE}.git.repo",
            '"https://bob@example.com/data.git" has a user name; credentials are not supported',
            id="repo with user",
        ),
        pytest.param(
            {"source": {"git": {"repo": "https://example.com/data.git", "revision": "--all"}}},
            f"{SOURCE}.git.revision",
            '"--all" is not a branch, tag or commit; write e.g. main, v1.2 or a commit hash',
            id="option as revision",
        ),
        pytest.param(
            {
                "source": {
                    "git": {
                        "repo": "https://example.com/data.git",
                        "revision": "{{pipeline.parameters.lr}}",
                    }
                }
            },
            f"{SOURCE}.git.revision",
            "cannot use placeholders; write the repository and revision as they are",
            id="placeholder in revision",
        ),
        pytest.param(
            {"source": {"git": {"repo": "https://example.com/data.git"}}},
            f"{SOURCE}.git.revision",
            "required field is missing",
            id="no revision",
        ),
    ],
)
def test_misused_source_names_its_field(artifact: Doc, path: str, message: str) -> None:
    assert problems_of(with_artifact(artifact)) == [Problem(path, message)]


def test_sources_with_parameters_are_valid() -> None:
    for source in (
        {"s3": {"key": "data/raw/{{pipeline.parameters.lr}}/part.csv"}},
        {"http": {"url": "https://example.com/{{pipeline.parameters.lr}}.csv"}},
        {"git": {"repo": "git://example.com/data.git", "revision": "v1.2"}},
    ):
        parsed, problems = validate_document(with_artifact({"source": source}))
        assert problems == []
        assert parsed is not None


def _compiled_train(source: Doc, **spec: Any) -> tuple[Doc, Doc]:
    """The template and the DAG task of step "train" taking `source` as artifact "raw"."""
    doc = with_artifact({"source": source})
    doc["spec"].update(spec)
    workflow = compile_document(doc)["spec"]
    template = next(t for t in workflow["templates"] if t["name"] == "train")
    task = next(t for t in workflow["templates"][0]["dag"]["tasks"] if t["name"] == "train")
    return template, task


def test_s3_source_is_a_key_only_artifact_with_argo_parameters() -> None:
    template, task = _compiled_train({"s3": {"key": "data/raw/{{pipeline.parameters.lr}}"}})
    assert template["inputs"] == {
        "artifacts": [
            {
                "mode": 0o755,
                "name": "raw",
                "path": "/data/raw",
                "s3": {"key": "data/raw/{{workflow.parameters.lr}}"},
            }
        ]
    }
    # Nothing to pass: the template holds the location, and "train" no longer needs "extract".
    assert "arguments" not in task
    assert "dependencies" not in task


def test_http_and_git_sources_compile_to_argo_locations() -> None:
    template, _ = _compiled_train(
        {"http": {"url": "https://example.com/{{pipeline.parameters.lr}}"}}
    )
    assert template["inputs"]["artifacts"] == [
        {
            "http": {"url": "https://example.com/{{workflow.parameters.lr}}"},
            "name": "raw",
            "path": "/data/raw",
        }
    ]
    template, _ = _compiled_train({"git": {"repo": "https://example.com/d.git", "revision": "v1"}})
    assert template["inputs"]["artifacts"] == [
        {
            "git": {"repo": "https://example.com/d.git", "revision": "v1"},
            "name": "raw",
            "path": "/data/raw",
        }
    ]


def test_fanned_out_step_with_max_parallel_passes_only_artifacts_from_steps() -> None:
    doc = pipeline()
    train = doc["spec"]["steps"][1]
    train["inputs"]["artifacts"].append(
        {"name": "extra", "path": "/data/extra", "source": {"s3": {"key": "extra.csv"}}}
    )
    train["forEach"] = {"items": ["a", "b"], "maxParallel": 1}
    doc["spec"]["promotion"]["from"] = {"step": "evaluate", "parameter": "run_id"}
    doc["spec"]["steps"][2]["outputs"] = {"parameters": [{"name": "run_id", "path": "/tmp/r"}]}
    templates = {t["name"]: t for t in compile_document(doc)["spec"]["templates"]}
    wrapper = templates["train-forEach"]
    assert wrapper["inputs"]["artifacts"] == [{"name": "raw"}]
    assert wrapper["dag"]["tasks"][0]["arguments"]["artifacts"] == [
        {"from": "{{inputs.artifacts.raw}}", "name": "raw"}
    ]
    assert templates["train"]["inputs"]["artifacts"][1] == {
        "mode": 0o755,
        "name": "extra",
        "path": "/data/extra",
        "s3": {"key": "extra.csv"},
    }


def _train_key(source: Doc, lr: str = "0.1") -> str:
    doc = with_artifact({"source": source})
    return cache_keys(MLPipeline.model_validate(doc).spec, {"lr": lr})["train"]


def test_cache_key_covers_the_source_as_written_with_parameter_values() -> None:
    key = {"s3": {"key": "data/{{pipeline.parameters.lr}}"}}
    assert _train_key(key) == _train_key(key)
    assert _train_key(key) != _train_key(key, lr="0.2")
    assert _train_key(key) != _train_key({"s3": {"key": "data/0.1"}})
    git = {"git": {"repo": "https://example.com/d.git", "revision": "v1"}}
    assert _train_key(git) != _train_key({"git": {**git["git"], "revision": "v2"}})
    url = {"http": {"url": "https://example.com/{{pipeline.parameters.lr}}"}}
    assert _train_key(url) != _train_key(url, lr="0.2")
