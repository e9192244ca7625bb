"""Step caching on the real cluster: Argo's memoization in the ConfigMap the operator made.

A pipeline of three cached steps (prepare -> train -> evaluate) runs once; a new generation
that changes only a parameter no step uses runs none of them (Argo reports each node's
memoization hit, the status says cached); changing the parameter `train` uses re-runs `train`
and `evaluate` after it, not `prepare`. Deleting the pipeline deletes its cache ConfigMap.
"""

from __future__ import annotations

from typing import Any

import pytest

from mlpipeline_operator.caching import cache_config_map_name, cache_keys
from mlpipeline_operator.validation import validate_document
from tests.e2e.cluster import ARGO_NAMESPACE, PIPELINE_NAMESPACE, NodeCluster
from tests.e2e.pipelines import MLPIPELINE, apply_pipeline, pipeline, wait_status
from tests.e2e.workflows import WORKFLOW

RUN_TIMEOUT = 300.0
NAME = "cached"

PREPARE = """
import pathlib, sys
out = pathlib.Path(sys.argv[1]); out.mkdir(parents=True)
(out / "rows").write_text(sys.argv[2])
"""
TRAIN = """
import pathlib, sys
rows = (pathlib.Path(sys.argv[1]) / "rows").read_text()
pathlib.Path(sys.argv[2]).write_text(f"model-{rows}-{sys.argv[3]}")
"""
EVALUATE = """
import pathlib, sys
pathlib.Path(sys.argv[2]).write_text(f"score-of-{sys.argv[1]}")
"""


def cached_pipeline(cluster: NodeCluster, depth: str, unused: str) -> dict[str, Any]:
    steps = [
        {
            "name": "prepare",
            "command": ["python", "-c", PREPARE],
            "args": ["{{outputs.artifacts.data.path}}", "{{pipeline.parameters.rows}}"],
            "outputs": {"artifacts": [{"name": "data", "path": "/tmp/prepared"}]},
        },
        {
            "name": "train",
            "command": ["python", "-c", TRAIN],
            "args": [
                "{{inputs.artifacts.data.path}}",
                "{{outputs.parameters.model.path}}",
                "{{pipeline.parameters.depth}}",
            ],
            "inputs": {"artifacts": [{"name": "data", "from": "prepare.data", "path": "/in"}]},
            "outputs": {"parameters": [{"name": "model", "path": "/tmp/model"}]},
        },
        {
            "name": "evaluate",
            "command": ["python", "-c", EVALUATE],
            "args": ["{{inputs.parameters.model}}", "{{outputs.parameters.score.path}}"],
            "inputs": {"parameters": [{"name": "model", "from": "train.model"}]},
            "outputs": {"parameters": [{"name": "score", "path": "/tmp/score"}]},
        },
    ]
    parameters = [
        {"name": "rows", "value": "100"},
        {"name": "depth", "value": depth},
        {"name": "unused", "value": unused},
    ]
    return pipeline(
        cluster, NAME, steps, parameters=parameters, defaults={"cache": {"maxAge": "1h"}}
    )


def keys(doc: dict[str, Any]) -> dict[str, str]:
    parsed, problems = validate_document(doc)
    assert parsed is not None, problems
    return cache_keys(parsed.spec)


def step_nodes(cluster: NodeCluster, done: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The Workflow's node of each step of the pipeline's last run, as Argo wrote it."""
    assert cluster.control_plane is not None
    run = done["status"]["lastRun"]["name"]
    workflow = cluster.control_plane.kube.get(*WORKFLOW, run, PIPELINE_NAMESPACE)
    nodes = workflow["status"]["nodes"].values()
    return {
        n["displayName"]: n for n in nodes if n["displayName"] in ("prepare", "train", "evaluate")
    }


def hits(cluster: NodeCluster, done: dict[str, Any]) -> dict[str, bool]:
    return {
        name: node["memoizationStatus"]["hit"] for name, node in step_nodes(cluster, done).items()
    }


def cached_in_status(done: dict[str, Any]) -> dict[str, bool]:
    return {s["name"]: s.get("cached", False) for s in done["status"]["lastRun"]["steps"]}


def run_generation(cluster: NodeCluster, doc: dict[str, Any], generation: int) -> dict[str, Any]:
    apply_pipeline(cluster, doc)
    done = wait_status(cluster, NAME, generation=generation, timeout=RUN_TIMEOUT)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    return done


def cache_entries(cluster: NodeCluster) -> dict[str, str]:
    assert cluster.control_plane is not None
    config_map = cluster.control_plane.kube.get(
        "v1", "ConfigMap", cache_config_map_name(PIPELINE_NAMESPACE, NAME), ARGO_NAMESPACE
    )
    data: dict[str, str] = config_map.get("data") or {}
    return data


@pytest.fixture(scope="module")
def first(cluster: NodeCluster) -> dict[str, Any]:
    return run_generation(cluster, cached_pipeline(cluster, depth="3", unused="a"), 1)


def test_the_first_run_runs_every_step_and_fills_the_cache(
    cluster: NodeCluster, first: dict[str, Any]
) -> None:
    assert hits(cluster, first) == {"prepare": False, "train": False, "evaluate": False}
    assert cached_in_status(first) == {"prepare": False, "train": False, "evaluate": False}
    expected = keys(cached_pipeline(cluster, depth="3", unused="a"))
    assert {
        n: node["memoizationStatus"]["key"] for n, node in step_nodes(cluster, first).items()
    } == expected
    assert set(cache_entries(cluster)) == set(expected.values())


def test_a_generation_that_changes_nothing_a_step_uses_runs_no_step(
    cluster: NodeCluster, first: dict[str, Any]
) -> None:
    second = run_generation(cluster, cached_pipeline(cluster, depth="3", unused="b"), 2)
    assert second["status"]["lastRun"]["name"] != first["status"]["lastRun"]["name"]
    assert hits(cluster, second) == {"prepare": True, "train": True, "evaluate": True}
    assert cached_in_status(second) == {"prepare": True, "train": True, "evaluate": True}
    score = step_nodes(cluster, second)["evaluate"]["outputs"]["parameters"]
    assert [(p["name"], p["value"]) for p in score] == [("score", "score-of-model-100-3")]


def test_a_changed_parameter_reruns_its_step_and_those_after_it(
    cluster: NodeCluster, first: dict[str, Any]
) -> None:
    third = run_generation(cluster, cached_pipeline(cluster, depth="5", unused="b"), 3)
    assert hits(cluster, third) == {"prepare": True, "train": False, "evaluate": False}
    assert cached_in_status(third) == {"prepare": True, "train": False, "evaluate": False}
    score = step_nodes(cluster, third)["evaluate"]["outputs"]["parameters"]
    assert [(p["name"], p["value"]) for p in score] == [("score", "score-of-model-100-5")]
    before = keys(cached_pipeline(cluster, depth="3", unused="a"))
    after = keys(cached_pipeline(cluster, depth="5", unused="b"))
    assert set(cache_entries(cluster)) == set(before.values()) | set(after.values())


def test_deleting_the_pipeline_deletes_its_cache(
    cluster: NodeCluster, first: dict[str, Any]
) -> None:
    assert cluster.control_plane is not None
    kube = cluster.control_plane.kube
    assert cache_entries(cluster)
    cluster.kubectl("delete", "mlpipeline", NAME, "-n", PIPELINE_NAMESPACE)
    kube.wait_for(*MLPIPELINE, NAME, PIPELINE_NAMESPACE, lambda obj: obj is None, timeout=60)
    kube.wait_for(
        "v1",
        "ConfigMap",
        cache_config_map_name(PIPELINE_NAMESPACE, NAME),
        ARGO_NAMESPACE,
        lambda obj: obj is None,
        timeout=60,
    )
