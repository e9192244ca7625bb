"""Fan-out and fan-in as Argo runs them: a step run once per literal item, one iteration at a
time (forEach.maxParallel 1), a step run once per object of an upstream step's JSON list
(forEach.from with maxParallel, {{item.KEY}}), a step run once per value of a fanned-out step,
a step over literal items without a limit, and a step that receives each fan-out's values as
JSON lists in item order; the status counts the iterations. A step over an empty list (with and
without maxParallel) is skipped with the steps that take its outputs, while a step that only
comes after it runs, and a false `when` skips a step with maxParallel."""

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


def empty_list_pipeline(cluster: NodeCluster) -> dict[str, Any]:
    def over_empty(name: str, **for_each: Any) -> dict[str, Any]:
        return {
            "name": name,
            "forEach": {"from": "empty.list", **for_each},
            "command": ["python", "-c", WRITE, "{{outputs.parameters.value.path}}"],
            "args": ["{{item}}"],
            "outputs": {"parameters": [{"name": "value", "path": "/tmp/value"}]},
        }

    def consuming(name: str, source: str) -> dict[str, Any]:
        return {
            "name": name,
            "command": ["python", "-c", "import sys; print(sys.argv[1])"],
            "args": ["{{inputs.parameters.values}}"],
            "inputs": {"parameters": [{"name": "values", "from": f"{source}.value"}]},
        }

    return pipeline(
        cluster,
        "fan-out-empty",
        [
            {
                "name": "empty",
                "command": ["python", "-c", WRITE, "{{outputs.parameters.list.path}}", "[]"],
                "outputs": {"parameters": [{"name": "list", "path": "/tmp/list"}]},
            },
            over_empty("none"),
            over_empty("none-bounded", maxParallel=2),
            {
                "name": "bounded-guarded",
                "forEach": {"items": ["a"], "maxParallel": 1},
                "when": "{{pipeline.parameters.go}} == yes",
                "command": ["python", "-c", "print('ran')"],
            },
            consuming("consumer", "none"),
            consuming("bounded-consumer", "none-bounded"),
            {
                "name": "after",
                "command": ["python", "-c", "print('after')"],
                "dependsOn": ["none", "none-bounded", "bounded-guarded"],
            },
        ],
        parameters=[{"name": "go", "value": "no"}],
    )


EMPTY_LIST_PHASES = {
    "empty": "Succeeded",
    "none": "Skipped",
    "none-bounded": "Skipped",
    "bounded-guarded": "Skipped",
    "consumer": "Skipped",
    "bounded-consumer": "Skipped",
    "after": "Succeeded",
}


def test_an_empty_list_skips_its_step_and_the_consumers_and_the_steps_after_it_run(
    cluster: NodeCluster,
) -> None:
    apply_pipeline(cluster, empty_list_pipeline(cluster))
    done = wait_status(cluster, "fan-out-empty", generation=1, timeout=RUN_TIMEOUT)

    status = done["status"]
    assert status["phase"] == "Succeeded", status
    assert status["lastRun"]["phase"] == "Succeeded"
    steps = status["lastRun"]["steps"]
    assert {step["name"]: step["phase"] for step in steps} == EMPTY_LIST_PHASES, steps
    assert [step["name"] for step in steps] == list(EMPTY_LIST_PHASES)

    nodes = _nodes(cluster, status["lastRun"]["name"])
    named = {
        node["displayName"]: node for node in nodes if node["displayName"] in EMPTY_LIST_PHASES
    }
    assert {name: node["phase"] for name, node in named.items()} == EMPTY_LIST_PHASES
    assert sorted(node["displayName"] for node in nodes if node["type"] == "Pod") == [
        "after",
        "empty",
    ]
    skipped = {name for name, node in named.items() if node["type"] == "Skipped"}
    assert skipped == {name for name, p in EMPTY_LIST_PHASES.items() if p == "Skipped"}
    # Argo's own skip of a loop over nothing; with maxParallel, the compiled guard's.
    assert named["none"]["message"] == "Skipped, empty params"
    assert named["none-bounded"]["message"] == "when 'false' evaluated false"
    assert named["bounded-guarded"]["message"] == "when 'false' evaluated false"
