"""The local runner's fan-out and fan-in: one process per item, `{{item}}` substituted,
`forEach.maxParallel` honoured, the fan-in step given a JSON list in item order, and a runtime
list that does not fit reported on its step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.local.helpers import pipeline, run_local, step, write

WRITE = "import sys; open(sys.argv[1], 'w').write(sys.argv[2])"
VALUE = {"parameters": [{"name": "value", "path": "/tmp/value"}]}

# An iteration that records when it ran, and waits (at most argv[3] seconds) for another
# iteration of its step to start: iterations that may overlap then do.
RENDEZVOUS = """
import pathlib, sys, time
here, item = pathlib.Path(sys.argv[1]), sys.argv[2]
(here / f"{item}.start").write_text(repr(time.time()))
deadline = time.monotonic() + float(sys.argv[3])
while time.monotonic() < deadline and len(list(here.glob("*.start"))) < 2:
    time.sleep(0.02)
(here / f"{item}.end").write_text(repr(time.time()))
"""


def _interval(directory: Path, item: str) -> tuple[float, float]:
    return (
        float((directory / f"{item}.start").read_text()),
        float((directory / f"{item}.end").read_text()),
    )


def test_iterations_run_with_their_items_and_the_fan_in_gets_lists_in_item_order(
    tmp_path: Path,
) -> None:
    configs = [{"name": "a", "size": 1}, {"name": "b", "size": 2}, {"name": "c", "size": 3}]
    steps: list[dict[str, Any]] = [
        step(
            "configs",
            WRITE,
            args=["{{outputs.parameters.list.path}}", json.dumps(configs)],
            outputs={"parameters": [{"name": "list", "path": "/tmp/list"}]},
        ),
        step(
            "words",
            WRITE,
            forEach={"items": ["one", "two", 3]},
            args=["{{outputs.parameters.value.path}}", "{{item}}-{{inputs.parameters.tag}}"],
            inputs={"parameters": [{"name": "tag", "value": "done{{item}}"}]},
            outputs=VALUE,
        ),
        step(
            "per-config",
            "import os, sys; open(sys.argv[1], 'w').write(sys.argv[2] + os.environ['WHOLE'])",
            forEach={"from": "configs.list"},
            args=["{{outputs.parameters.value.path}}", "{{item.name}}x{{item.size}}="],
            env=[{"name": "WHOLE", "value": "{{item}}"}],
            outputs=VALUE,
        ),
        step(
            "fan-in",
            WRITE,
            args=[
                "{{outputs.parameters.seen.path}}",
                "{{inputs.parameters.words}}|{{inputs.parameters.configs}}",
            ],
            inputs={
                "parameters": [
                    {"name": "words", "from": "words.value"},
                    {"name": "configs", "from": "per-config.value"},
                ]
            },
            outputs={"parameters": [{"name": "seen", "path": "/tmp/seen"}]},
        ),
    ]
    run = run_local(write(tmp_path, pipeline(steps)), tmp_path / "run", "--parallel", "4")

    assert run.code == 0, run.out
    assert run.step("fan-in")["outputs"] == {
        "seen": '["one-doneone","two-donetwo","3-done3"]|'
        '["ax1={\\"name\\":\\"a\\",\\"size\\":1}",'
        '"bx2={\\"name\\":\\"b\\",\\"size\\":2}",'
        '"cx3={\\"name\\":\\"c\\",\\"size\\":3}"]'
    }
    words = run.step("words")
    assert words["phase"] == "Succeeded"
    assert [(i["name"], i["item"], i["phase"]) for i in words["iterations"]] == [
        ("words.0", "one", "Succeeded"),
        ("words.1", "two", "Succeeded"),
        ("words.2", "3", "Succeeded"),
    ]
    assert [i["item"] for i in run.step("per-config")["iterations"]] == [
        "name:a,size:1",
        "name:b,size:2",
        "name:c,size:3",
    ]
    assert "  per-config.1  Succeeded    1/1" in run.out
    assert "item name:b,size:2" in run.out


def _rendezvous(tmp_path: Path, max_parallel: int, wait: float) -> dict[str, Any]:
    directory = tmp_path / "marks"
    directory.mkdir()
    return step(
        "fan",
        RENDEZVOUS,
        forEach={"items": ["a", "b"], "maxParallel": max_parallel},
        args=[str(directory), "{{item}}", str(wait)],
    )


def test_max_parallel_1_runs_one_iteration_at_a_time(tmp_path: Path) -> None:
    # The first iteration waits 3 s for the other in vain: time enough for a runner that
    # started both to have started the other.
    doc = pipeline([_rendezvous(tmp_path, 1, 3)])
    run = run_local(write(tmp_path, doc), tmp_path / "run", "--parallel", "4")

    assert run.code == 0, run.out
    (_, end_a), (start_b, _) = (_interval(tmp_path / "marks", i) for i in "ab")
    assert end_a <= start_b


def test_iterations_overlap_up_to_max_parallel(tmp_path: Path) -> None:
    doc = pipeline([_rendezvous(tmp_path, 2, 60)])
    run = run_local(write(tmp_path, doc), tmp_path / "run", "--parallel", "4")

    assert run.code == 0, run.out
    (start_a, end_a), (start_b, end_b) = (_interval(tmp_path / "marks", i) for i in "ab")
    assert max(start_a, start_b) < min(end_a, end_b)


def test_a_failed_iteration_fails_its_step_and_names_its_item_and_log(tmp_path: Path) -> None:
    steps = [
        step(
            "fan",
            "import sys; sys.exit(3 if sys.argv[1] == 'b' else 0)",
            forEach={"items": ["a", "b"], "maxParallel": 1},
            args=["{{item}}"],
            outputs={},
        ),
        step("after", "pass", dependsOn=["fan"]),
    ]
    run = run_local(write(tmp_path, pipeline(steps)), tmp_path / "run")

    assert run.code == 1, run.out
    fan = run.step("fan")
    assert (fan["phase"], fan["message"]) == ("Failed", "iteration 1 (b) Failed: exit code 3")
    assert fan["log"] == str(tmp_path / "run" / "steps" / "fan.1" / "step.log")
    assert [i["phase"] for i in fan["iterations"]] == ["Succeeded", "Failed"]
    assert run.step("after")["phase"] == "Skipped"
    assert "run failed after" in run.out
    assert "step fan Failed: iteration 1 (b) Failed: exit code 3" in run.out


def _from(value: str) -> list[dict[str, Any]]:
    return [
        step(
            "configs",
            WRITE,
            args=["{{outputs.parameters.list.path}}", value],
            outputs={"parameters": [{"name": "list", "path": "/tmp/list"}]},
        ),
        step("fan", "pass", forEach={"from": "configs.list"}, args=["{{item}}"]),
    ]


def test_a_value_that_is_not_a_json_list_is_an_error_of_the_step(tmp_path: Path) -> None:
    run = run_local(write(tmp_path, pipeline(_from("a, b"))), tmp_path / "run")

    assert run.code == 1, run.out
    fan = run.step("fan")
    assert (fan["phase"], fan["message"]) == (
        "Error",
        'forEach.from "configs.list": the value is not JSON: "a, b"',
    )
    assert "iterations" not in fan


@pytest.mark.parametrize("max_parallel", [None, 1])
def test_an_empty_list_skips_the_step_and_its_consumers_but_not_the_steps_after_it(
    tmp_path: Path, max_parallel: int | None
) -> None:
    steps = _from("[]")
    fan = steps[-1]
    fan["outputs"] = VALUE
    if max_parallel is not None:
        fan["forEach"]["maxParallel"] = max_parallel
    steps += [
        step(
            "consumer",
            "pass",
            inputs={"parameters": [{"name": "values", "from": "fan.value"}]},
        ),
        step("after", "pass", dependsOn=["fan"]),
    ]
    run = run_local(write(tmp_path, pipeline(steps)), tmp_path / "run")

    assert run.code == 0, run.out
    assert run.summary["phase"] == "Succeeded"
    assert {s["name"]: (s["phase"], s.get("message")) for s in run.summary["steps"]} == {
        "configs": ("Succeeded", ""),
        "fan": ("Skipped", "forEach.from configs.list: an empty list, no iteration"),
        "consumer": ("Skipped", "takes the outputs of fan, which skipped"),
        "after": ("Succeeded", ""),
    }


def test_a_step_over_the_list_of_a_skipped_step_is_skipped(tmp_path: Path) -> None:
    steps = _from("[1]")
    steps[0]["when"] = "{{pipeline.parameters.go}} == yes"
    doc = pipeline(steps, parameters=[{"name": "go", "value": "no"}])
    run = run_local(write(tmp_path, doc), tmp_path / "run")

    assert run.code == 0, run.out
    fan = run.step("fan")
    assert (fan["phase"], fan["message"]) == (
        "Skipped",
        "takes the outputs of configs, which skipped",
    )
