"""Step caching: which steps are cached, their keys, and the `memoize` the compiler writes."""

from __future__ import annotations

import re
from typing import Any

from mlpipeline_operator.api.models import MLPipeline
from mlpipeline_operator.caching import (
    CACHE_TRIM_THRESHOLD,
    cache_config_map_name,
    cache_keys,
    cache_size,
    cache_trim_patch,
    memoize_keys,
    stale_cache_keys,
    step_max_age,
    uses_cache,
)
from mlpipeline_operator.compiler.workflow import CompileOptions, compile_document
from mlpipeline_operator.validation import validate_document
from tests.unit.pipelines import chain, pipeline

Doc = dict[str, Any]
# Argo's memoization key format; keys are also ConfigMap keys (at most 253 characters).
ARGO_KEY = re.compile(r"^[a-zA-Z0-9][-a-zA-Z0-9]*$")


def cached(doc: Doc | None = None) -> Doc:
    """The base pipeline with every step cached for a day."""
    doc = doc or pipeline()
    doc["spec"]["defaults"] = {"cache": {"maxAge": "24h"}}
    return doc


def parsed(doc: Doc) -> MLPipeline:
    result, problems = validate_document(doc)
    assert result is not None, [str(p) for p in problems]
    return result


def keys(doc: Doc) -> dict[str, str]:
    return cache_keys(parsed(doc).spec)


def changed_keys(change: Any) -> list[str]:
    """The steps whose key a change of the cached base pipeline changes."""
    before = keys(cached())
    doc = cached()
    change(doc)
    after = keys(doc)
    return [name for name in before if before[name] != after[name]]


def test_keys_are_argo_keys_named_after_their_step() -> None:
    result = keys(cached())
    assert list(result) == ["extract", "train", "evaluate"]
    for name, key in result.items():
        assert ARGO_KEY.match(key) and len(key) == len(name) + 1 + 32
        assert key.startswith(f"{name}-")


def test_keys_are_stable_across_what_the_operator_adds() -> None:
    def runtime_only(doc: Doc) -> None:
        doc["metadata"]["generation"] = 4
        doc["metadata"]["annotations"] = {"mlops.gitops.dev/rerun": "again"}
        doc["spec"]["parameters"].append({"name": "unused", "value": "x"})
        doc["spec"]["steps"][1]["resources"] = {"requests": {"cpu": "2"}}
        doc["spec"]["steps"][1]["retry"] = {"limit": 2}
        doc["spec"]["steps"][1]["timeout"] = "1h"
        doc["spec"]["steps"][2]["cache"] = {"maxAge": "1h"}

    assert changed_keys(runtime_only) == []


def test_a_used_parameter_changes_its_step_and_everything_downstream() -> None:
    def new_rate(doc: Doc) -> None:
        doc["spec"]["parameters"][0]["value"] = "0.2"

    assert changed_keys(new_rate) == ["train", "evaluate"]


def test_an_upstream_change_reaches_every_step_after_it() -> None:
    def new_image(doc: Doc) -> None:
        doc["spec"]["steps"][0]["image"] = "registry.example.com/demo:2"

    assert changed_keys(new_image) == ["extract", "train", "evaluate"]


def test_env_is_keyed_by_what_the_step_says() -> None:
    def with_env(name: str) -> Any:
        def change(doc: Doc) -> None:
            ref = {"secretKeyRef": {"name": name, "key": "token"}}
            doc["spec"]["steps"][2]["env"] = [{"name": "TOKEN", "valueFrom": ref}]

        return change

    first, second = cached(), cached()
    with_env("a")(first)
    with_env("b")(second)
    assert keys(first)["evaluate"] != keys(second)["evaluate"]
    assert keys(first)["train"] == keys(second)["train"]


def test_literal_inputs_and_parameters_inside_parameters_are_keyed() -> None:
    def literal(doc: Doc) -> None:
        doc["spec"]["steps"][2]["inputs"]["parameters"].append({"name": "k", "value": "5"})

    assert changed_keys(literal) == ["evaluate"]

    def nested(value: str) -> Doc:
        doc = cached()
        doc["spec"]["parameters"] = [
            {"name": "lr", "value": "{{pipeline.parameters.base}}"},
            {"name": "base", "value": value},
        ]
        return doc

    assert keys(nested("1"))["train"] != keys(nested("2"))["train"]


def test_a_step_opts_out_with_a_max_age_of_zero() -> None:
    doc = cached()
    doc["spec"]["steps"][2]["cache"] = {"maxAge": "0s"}
    spec = parsed(doc).spec
    assert [step_max_age(s, spec) for s in spec.steps] == ["24h", "24h", None]
    assert uses_cache(spec)
    assert not uses_cache(parsed(pipeline()).spec)


def test_a_cached_step_may_not_follow_an_uncached_one() -> None:
    doc = cached()
    doc["spec"]["steps"][0]["cache"] = {"maxAge": "0s"}
    _, problems = validate_document(doc)
    assert [str(p) for p in problems] == [
        'spec.steps[1].cache: cached (spec.defaults.cache) but depends on step "extract", which '
        'is not cached and may give other outputs at each run; cache "extract" too, or set '
        "cache: {maxAge: 0s} on this step"
    ]


def test_compiled_steps_are_memoized_in_the_pipelines_cache() -> None:
    doc = cached()
    doc["spec"]["steps"][2]["cache"] = {"maxAge": "0s"}
    workflow = compile_document(doc, CompileOptions(rerun="token"))
    templates = {t["name"]: t for t in workflow["spec"]["templates"]}
    expected = keys(doc)
    for name in ("extract", "train"):
        assert templates[name]["memoize"] == {
            "cache": {"configMap": {"name": cache_config_map_name("ml", "demo")}},
            "key": expected[name],
            "maxAge": "24h",
        }
        assert list(templates[name]) == sorted(templates[name])
    assert "memoize" not in templates["evaluate"]
    assert "memoize" not in templates["promote-model"]
    assert all("memoize" not in t for t in compile_document(pipeline())["spec"]["templates"])


def test_the_variables_injected_in_every_step_leave_the_memoization_keys_alone() -> None:
    def memoized(doc: Doc) -> dict[str, Any]:
        workflow = compile_document(doc)
        return {
            t["name"]: t["memoize"]["key"] for t in workflow["spec"]["templates"] if "memoize" in t
        }

    def injected(doc: Doc) -> Any:
        return compile_document(doc)["spec"]["templateDefaults"]

    base = cached()
    other = cached()
    other["metadata"]["generation"] = 9
    other["metadata"]["annotations"] = {"mlops.gitops.dev/git-revision": "0ddba11"}
    other["spec"]["mlflow"]["trackingUri"] = "http://elsewhere:5000"
    other["spec"]["steps"][1]["mlflowCredentials"] = True
    assert injected(base) != injected(other)  # the injected values differ...
    assert memoized(base) == memoized(other) == keys(base)  # ...and are in no key
    assert list(memoized(base)) == ["extract", "train", "evaluate"]


def test_config_map_names_are_apart_per_namespace_and_within_limits() -> None:
    name = "p" * 63
    assert cache_config_map_name("a", name) != cache_config_map_name("b", name)
    assert len(cache_config_map_name("a", name)) == 17 + 63 + 9
    assert re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", cache_config_map_name("a", name))


def test_the_largest_pipeline_has_a_key_per_step() -> None:
    doc = cached(chain(1000))
    result = keys(doc)
    assert len(set(result.values())) == 1000
    assert all(ARGO_KEY.match(k) and len(k) <= 253 for k in result.values())


def test_the_memoize_keys_of_a_run_and_of_a_schedule_are_those_of_its_cached_steps() -> None:
    doc = cached()
    doc["spec"]["steps"][2]["cache"] = {"maxAge": "0s"}
    expected = keys(doc)
    assert memoize_keys(compile_document(doc)) == {expected["extract"], expected["train"]}
    doc["spec"]["schedule"] = {"cron": "0 2 * * *"}
    cron = compile_document(doc)
    assert cron["kind"] == "CronWorkflow"
    assert memoize_keys(cron) == {expected["extract"], expected["train"]}
    assert memoize_keys(compile_document(pipeline())) == set()


def test_a_cache_size_counts_the_bytes_of_keys_and_values() -> None:
    assert cache_size({"a-1": "xy", "b-2": "é"}) == 3 + 2 + 3 + 2
    assert cache_size({}) == 0


def test_stale_entries_go_only_from_a_cache_above_the_threshold() -> None:
    current = {"train-1"}
    # Exactly at the threshold: nothing removed.
    at = {"train-1": "x", "train-0": "y" * (CACHE_TRIM_THRESHOLD - 15)}
    assert cache_size(at) == CACHE_TRIM_THRESHOLD
    assert stale_cache_keys(at, current) == []
    above = {**at, "extract-0": ""}
    assert stale_cache_keys(above, current) == ["extract-0", "train-0"]
    # Above it with the run's own entries alone: they stay.
    assert stale_cache_keys({"train-1": "y" * CACHE_TRIM_THRESHOLD}, current) == []


def test_the_trim_patch_nulls_the_stale_keys_as_of_the_version_read() -> None:
    assert cache_trim_patch("42", ["extract-0", "train-0"]) == {
        "metadata": {"resourceVersion": "42"},
        "data": {"extract-0": None, "train-0": None},
    }
