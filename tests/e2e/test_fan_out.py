"""Fan-out and fan-in as Argo runs them: a step run once per literal item, one iteration at a
time (forEach.maxParallel 1), a step run once per object of an upstream step's JSON list
(forEach.from with maxParallel, {{item.KEY}}), a step run once per value of a fanned-out step,
a step over literal items without a limit, and a step that receives each fan-out's values as
JSON lists in item order; the status counts the iterations."""

from __future__ import annotations

import itertools
import json
from typing import Any

from tests.e2e.cluster import PIPELINE_NAMESPACE, NodeCluster
from tests.e2e.pipelines import apply_pipeline, pipeline, wait_status
from tests.e2e.workflows import WORKFLOW

RUN_TIMEOUT = 420.0

WRITE = "import sys; open(sys.argv[1], 'w').write(sys.argv[2])"
CONFIGS = [{"name": "a", "size": 1}, {"name": "b", "size": 2}, {"name": "c", "size": 3}]


def fan_out_pipeline(cluster: NodeCluster) -> dict[str, Any]:
    return pipeline(
        cluster,
        "fan-out",
        [
            {
                "name": "configs",
                "command": ["python", "-c", WRITE, "{{outputs.parameters.list.path}}"],
                "args": [json.dumps(CONFIGS)],
                "outputs": {"parameters": [{"name": "list", "path": "/tmp/list"}]},
            },
            {
                "name": "one-at-a-time",
                "forEach": {"items": ["one", "two", "three"], "maxParallel": 1},
                "command": ["python", "-c", WRITE, "{{outputs.parameters.value.path}}"],
                "args": ["{{item}}-done"],
                "outputs": {"parameters": [{"name": "value", "path": "/tmp/value"}]},
            },
            {
                "name": "per-config",
                "forEach": {"from": "configs.list", "maxParallel": 3},
                "command": ["python", "-c", WRITE, "{{outputs.parameters.value.path}}"],
                "args": ["{{item.name}}x{{item.size}}"],
                "outputs": {"parameters": [{"name": "value", "path": "/tmp/value"}]},
            },
            {
                "name": "per-done",
                "forEach": {"from": "one-at-a-time.value"},
                "command": ["python", "-c", WRITE, "{{outputs.parameters.value.path}}"],
                "args": ["{{item}}!"],
                "outputs": {"parameters": [{"name": "value", "path": "/tmp/value"}]},
            },
            {
                "name": "words",
                "forEach": {"items": ["x", 2]},
                "command": ["python", "-c", WRITE, "{{outputs.parameters.value.path}}"],
                "args": ["{{item}}"],
                "outputs": {"parameters": [{"name": "value", "path": "/tmp/value"}]},
            },
            {
                "name": "fan-in",
                "command": ["python", "-c", "import sys; print(sys.argv[1:])"],
                "args": ["{{inputs.parameters.done}}", "{{inputs.parameters.sizes}}"],
                "inputs": {
                    "parameters": [
                        {"name": "done", "from": "one-at-a-time.value"},
                        {"name": "sizes", "from": "per-config.value"},
                        {"name": "shouted", "from": "per-done.value"},
                        {"name": "words", "from": "words.value"},
                    ]
                },
            },
        ],
    )


def _nodes(cluster: NodeCluster, run: str) -> list[dict[str, Any]]:
    assert cluster.control_plane is not None
    workflow = cluster.control_plane.kube.get(*WORKFLOW, run, PIPELINE_NAMESPACE)
    return list(workflow["status"]["nodes"].values())


def test_fan_out_and_fan_in(cluster: NodeCluster) -> None:
    apply_pipeline(cluster, fan_out_pipeline(cluster))
    done = wait_status(cluster, "fan-out", generation=1, timeout=RUN_TIMEOUT)

    status = done["status"]
    assert status["phase"] == "Succeeded", status
    nodes = _nodes(cluster, status["lastRun"]["name"])
    pods = [node for node in nodes if node["type"] == "Pod"]
    names = sorted(node["displayName"] for node in pods)
    assert names == [
        "configs",
        "fan-in",
        "one-at-a-time(0:one)",
        "one-at-a-time(1:two)",
        "one-at-a-time(2:three)",
        "per-config(0:name:a,size:1)",
        "per-config(1:name:b,size:2)",
        "per-config(2:name:c,size:3)",
        "per-done(0:one-done)",
        "per-done(1:two-done)",
        "per-done(2:three-done)",
        "words(0:x)",
        "words(1:2)",
    ]
    (fan_in,) = [node for node in pods if node["displayName"] == "fan-in"]
    received = {p["name"]: p["value"] for p in fan_in["inputs"]["parameters"]}
    assert received == {
        "done": '["one-done","two-done","three-done"]',
        "sizes": '["ax1","bx2","cx3"]',
        "shouted": '["one-done!","two-done!","three-done!"]',
        "words": '["x","2"]',
    }
    # maxParallel 1: each iteration starts once the one before it has finished.
    serial = sorted(
        (node for node in pods if node["displayName"].startswith("one-at-a-time(")),
        key=lambda node: node["displayName"],
    )
    spans = [(node["startedAt"], node["finishedAt"]) for node in serial]
    for (_, finished), (started, _) in itertools.pairwise(spans):
        assert started >= finished, spans

    steps = {step["name"]: step for step in status["lastRun"]["steps"]}
    assert list(steps) == ["configs", "one-at-a-time", "per-config", "per-done", "words", "fan-in"]
    for name, total in (("one-at-a-time", 3), ("per-config", 3), ("per-done", 3), ("words", 2)):
        assert steps[name]["phase"] == "Succeeded"
        assert steps[name]["iterations"] == {"total": total, "phases": {"Succeeded": total}}
