"""Step caching: which steps are cached, for how long, and the key of a step's result.

Shared by the compiler (Argo's `memoize`) and the local runner (its cache directory), so that
both reuse a result under exactly the same conditions. Pure: the API models in, strings out.

A step's key covers what the step is and what it is given, as the pipeline states them:
its image, command, args, env (values as written; for `valueFrom`, the reference), its inputs
and outputs (names, paths, literal values, where `from`, the `source` of data from outside the
pipeline as written), the values of the pipeline parameters it uses (in its S3 keys and URLs
too), and the keys of the steps it depends on, so that a change upstream changes the key of
everything downstream. What a source holds is not in it: an object rewritten under the same
key, a URL serving new content or a branch that moved keep the key (docs/compiler.md).
What the operator or the runner adds at run time (generation, run name, re-run token, lineage
and MLflow variables) is not in it, nor what does not change a result (resources, retry,
timeout, cache); so validation refuses a cached step that uses `{{pipeline.scheduledTime}}`,
`{{pipeline.runName}}` or `{{pipeline.generation}}`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from mlpipeline_operator import placeholders, sources
from mlpipeline_operator.api.constants import (
    ANNOTATION_CACHE_OF,
    ARGO_CACHE_LABEL,
    ARGO_CACHE_LABEL_VALUE,
    LABEL_MANAGED_BY,
    LABEL_PIPELINE,
    MANAGER,
)
from mlpipeline_operator.api.models import MLPipelineSpec, Step, duration_nanoseconds
from mlpipeline_operator.core import step_dependencies

# Argo's memoization keys match ^[a-zA-Z0-9][-a-zA-Z0-9]*$ (and are ConfigMap keys, at most
# 253 characters): "<step>-<32 hex digits>" is at most 63 + 1 + 32 characters of that alphabet.
KEY_DIGEST_CHARS = 32


def step_max_age(step: Step, spec: MLPipelineSpec) -> str | None:
    """How long the step's result is reused, or None when the step is not cached (no cache,
    or a maxAge of 0s, which turns spec.defaults.cache off for the step). A step with forEach is
    never cached: its key holds no item, so its iterations would share one entry."""
    if step.for_each is not None:
        return None
    cache = step.cache or spec.defaults.cache
    if cache is None or duration_nanoseconds(cache.max_age) == 0:
        return None
    return cache.max_age


def uses_cache(spec: MLPipelineSpec) -> bool:
    """Whether any step of the pipeline is cached."""
    return any(step_max_age(step, spec) is not None for step in spec.steps)


def _pipeline_parameters(texts: Iterable[str], values: Mapping[str, str]) -> dict[str, str]:
    """The pipeline parameters the texts use, with the values of those they use in turn."""
    used: dict[str, str] = {}
    pending = list(texts)
    while pending:
        text = pending.pop()
        if "{{" not in text:
            continue
        for expression in placeholders.find(text):
            ref = placeholders.parse(expression)
            if ref.kind == "pipeline.parameters" and ref.name not in used:
                used[ref.name] = values.get(ref.name, "")
                pending.append(used[ref.name])
    return dict(sorted(used.items()))


def _definition(
    step: Step, spec: MLPipelineSpec, values: Mapping[str, str], upstream: dict[str, str]
) -> str:
    """The canonical JSON text of what the step's key covers."""
    inputs = step.inputs
    texts = [*step.command, *step.args]
    texts += [e.value for e in step.env if e.value is not None]
    texts += [p.value for p in inputs.parameters if p.value is not None]
    texts += sources.step_source_texts(step)
    definition = {
        "name": step.name,
        "image": step.image or spec.image,
        "command": step.command,
        "args": step.args,
        "env": [e.model_dump(mode="json", by_alias=True, exclude_none=True) for e in step.env],
        "inputs": inputs.model_dump(mode="json", by_alias=True, exclude_none=True),
        "outputs": step.outputs.model_dump(mode="json", by_alias=True, exclude_none=True),
        "parameters": _pipeline_parameters(texts, values),
        "upstream": upstream,
    }
    return json.dumps(definition, sort_keys=True, separators=(",", ":"))


def cache_keys(spec: MLPipelineSpec, parameters: Mapping[str, str] | None = None) -> dict[str, str]:
    """The cache key of every step of a valid (acyclic) pipeline, by step name.

    `parameters`: the values of the pipeline parameters when they are not those of the spec
    (the local runner's overrides)."""
    values = {p.name: p.value for p in spec.parameters} if parameters is None else parameters
    steps = {s.name: s for s in spec.steps}
    keys: dict[str, str] = {}

    def key_of(name: str) -> str:
        if name not in keys:
            step = steps[name]
            upstream = {dep: key_of(dep) for dep in sorted(step_dependencies(step))}
            digest = hashlib.sha256(_definition(step, spec, values, upstream).encode()).hexdigest()
            keys[name] = f"{name}-{digest[:KEY_DIGEST_CHARS]}"
        return keys[name]

    # Iteratively from the roots so that long chains do not recurse deeply.
    for name in _topological(spec.steps):
        key_of(name)
    return {s.name: keys[s.name] for s in spec.steps}


def _topological(steps: list[Step]) -> list[str]:
    """Step names, each after the steps it depends on (the pipeline is acyclic)."""
    deps = {s.name: step_dependencies(s) for s in steps}
    order: list[str] = []
    done: set[str] = set()
    for root in deps:
        stack = [(root, iter(deps[root]))]
        while stack:
            name, children = stack[-1]
            child = next((c for c in children if c not in done and c in deps), None)
            if child is None:
                stack.pop()
                if name not in done:
                    done.add(name)
                    order.append(name)
            else:
                stack.append((child, iter(deps[child])))
    return order


def cache_config_map_name(namespace: str, pipeline: str) -> str:
    """The name of the pipeline's cache ConfigMap.

    Argo keeps every memoization ConfigMap in its controller's namespace, shared by the
    pipelines of every namespace: the hash of namespace and name keeps them apart.
    """
    digest = hashlib.sha256(f"{namespace}/{pipeline}".encode()).hexdigest()[:8]
    return f"mlpipeline-cache-{pipeline}-{digest}"


def cache_config_map(namespace: str, pipeline: str, cache_namespace: str) -> dict[str, Any]:
    """The pipeline's empty cache ConfigMap, made in Argo's namespace before a run needs it.

    Argo uses a ConfigMap as a cache only with its label `configmap-type: Cache`, and rewrites
    the labels to that one label whenever it saves an entry: the pipeline it belongs to is in
    an annotation, which Argo keeps.
    """
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": cache_config_map_name(namespace, pipeline),
            "namespace": cache_namespace,
            "labels": {
                ARGO_CACHE_LABEL: ARGO_CACHE_LABEL_VALUE,
                LABEL_MANAGED_BY: MANAGER,
                LABEL_PIPELINE: pipeline,
            },
            "annotations": {ANNOTATION_CACHE_OF: f"{namespace}/{pipeline}"},
        },
    }


def cache_owner(metadata: Mapping[str, Any]) -> tuple[str, str] | None:
    """The (namespace, name) of the pipeline whose cache ConfigMap this is, from the annotation
    the operator wrote; None for any other ConfigMap (Argo's caches of other workflows among
    them), and for one whose name is not the cache name of the pipeline it claims."""
    owner = (metadata.get("annotations") or {}).get(ANNOTATION_CACHE_OF, "")
    namespace, _, name = owner.partition("/")
    if not namespace or not name or metadata.get("name") != cache_config_map_name(namespace, name):
        return None
    return namespace, name


# The API server refuses a ConfigMap whose data (keys and values, in bytes) exceeds 1 MiB, and
# Argo ends in Error a step whose cache entry does not fit.
CONFIG_MAP_LIMIT = 1024 * 1024
# Above this, stale entries are removed before a run: the other half is room for one more run's
# entries of a large pipeline (an entry holds the step's outputs: a few hundred bytes to a few
# KiB each), so that the run submitted now can save all of its own.
CACHE_TRIM_THRESHOLD = CONFIG_MAP_LIMIT // 2


def memoize_keys(manifest: Mapping[str, Any]) -> set[str]:
    """The cache keys that a compiled Workflow or CronWorkflow saves its steps' results under:
    the `memoize.key` of its templates (Argo keeps an entry in the ConfigMap's data under
    exactly that key)."""
    spec = manifest["spec"]
    templates = spec["workflowSpec"]["templates"] if "workflowSpec" in spec else spec["templates"]
    return {t["memoize"]["key"] for t in templates if "memoize" in t}


def cache_size(data: Mapping[str, str]) -> int:
    """The bytes that count against a ConfigMap's limit: its keys and values."""
    return sum(len(key.encode()) + len(value.encode()) for key, value in data.items())


def stale_cache_keys(data: Mapping[str, str], current: set[str]) -> list[str]:
    """The entries to remove from a cache before a run: none while the cache holds at most
    CACHE_TRIM_THRESHOLD bytes, else those of keys the run does not use (earlier versions of
    its steps, which no run of this version will read). The current entries stay, even when
    they alone are above the threshold (they are the results of one run, far smaller)."""
    if cache_size(data) <= CACHE_TRIM_THRESHOLD:
        return []
    return sorted(key for key in data if key not in current)


def cache_trim_patch(resource_version: str, stale: list[str]) -> dict[str, Any]:
    """A JSON merge patch removing the stale entries, as of the cache's resourceVersion (the
    API server refuses it with a conflict if Argo wrote an entry since it was read)."""
    return {"metadata": {"resourceVersion": resource_version}, "data": dict.fromkeys(stale)}
