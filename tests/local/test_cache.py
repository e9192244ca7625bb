"""The local runner's step cache: a cached step with unchanged inputs is served, outputs and
all, from the cache; a changed parameter re-runs the steps that use it and those after them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.local.helpers import Run, pipeline, run_local, step, write

# Every step appends its name to the evidence file when it really runs.
RAN = "import os, pathlib\nopen(os.environ['EVIDENCE'], 'a').write(os.environ['STEP'] + '\\n')\n"


def evidence(tmp_path: Path, name: str) -> dict[str, Any]:
    return {
        "env": [
            {"name": "EVIDENCE", "value": str(tmp_path / "ran")},
            {"name": "STEP", "value": name},
        ]
    }


def cached_pipeline(tmp_path: Path, max_age: str = "24h") -> dict[str, Any]:
    """prepare -> train -> report; report opts out of the cache."""
    prepare = step(
        "prepare",
        RAN + "import sys\n"
        "out = pathlib.Path(sys.argv[1]); out.mkdir()\n"
        "(out / 'rows').write_text(sys.argv[2])\n",
        args=["{{outputs.artifacts.data.path}}", "{{pipeline.parameters.rows}}"],
        outputs={"artifacts": [{"name": "data", "path": "/data/prepared"}]},
        **evidence(tmp_path, "prepare"),
    )
    train = step(
        "train",
        RAN + "import sys\n"
        "rows = (pathlib.Path(sys.argv[1]) / 'rows').read_text()\n"
        "pathlib.Path(sys.argv[2]).write_text(f'model-{rows}-{sys.argv[3]}')\n",
        args=[
            "{{inputs.artifacts.data.path}}",
            "{{outputs.parameters.model.path}}",
            "{{pipeline.parameters.depth}}",
        ],
        inputs={"artifacts": [{"name": "data", "from": "prepare.data", "path": "/in/data"}]},
        outputs={"parameters": [{"name": "model", "path": "/out/model"}]},
        **evidence(tmp_path, "train"),
    )
    report = step(
        "report",
        RAN + "import sys\npathlib.Path(os.environ['REPORT']).write_text(sys.argv[1])\n",
        args=["{{inputs.parameters.model}}"],
        inputs={"parameters": [{"name": "model", "from": "train.model"}]},
        cache={"maxAge": "0s"},
        **evidence(tmp_path, "report"),
    )
    report["env"].append({"name": "REPORT", "value": str(tmp_path / "report")})
    return pipeline(
        [prepare, train, report],
        name="cached",
        parameters=[{"name": "rows", "value": "100"}, {"name": "depth", "value": "3"}],
        defaults={"cache": {"maxAge": max_age}},
    )


def run(tmp_path: Path, file: Path, label: str, *flags: str) -> Run:
    (tmp_path / "ran").write_text("")
    result = run_local(file, tmp_path / label, "--cache-dir", str(tmp_path / "cache"), *flags)
    assert result.code == 0, result.out + result.err
    return result


def ran(tmp_path: Path) -> list[str]:
    return (tmp_path / "ran").read_text().split()


def cached_steps(result: Run) -> list[str]:
    return [s["name"] for s in result.summary["steps"] if s["cached"]]


def test_an_unchanged_pipeline_is_served_from_the_cache(tmp_path: Path) -> None:
    file = write(tmp_path, cached_pipeline(tmp_path))
    first = run(tmp_path, file, "first")
    assert ran(tmp_path) == ["prepare", "train", "report"]
    assert cached_steps(first) == []

    second = run(tmp_path, file, "second")
    assert ran(tmp_path) == ["report"]
    assert cached_steps(second) == ["prepare", "train"]
    # The outputs are restored: the parameter, and the artifact where the step leaves it.
    assert second.step("train")["outputs"] == {"model": "model-100-3"}
    assert (tmp_path / "report").read_text() == "model-100-3"
    restored = second.run_dir / "steps" / "prepare" / "root" / "data" / "prepared" / "rows"
    assert restored.read_text() == "100"
    assert "from the cache (kept " in second.step("prepare")["message"]
    assert "from the cache" in second.out


def test_a_changed_parameter_reruns_its_steps_and_those_after_them(tmp_path: Path) -> None:
    file = write(tmp_path, cached_pipeline(tmp_path))
    run(tmp_path, file, "first")
    second = run(tmp_path, file, "second", "-p", "depth=5")
    assert ran(tmp_path) == ["train", "report"]
    assert cached_steps(second) == ["prepare"]
    assert (tmp_path / "report").read_text() == "model-100-5"

    third = run(tmp_path, file, "third", "-p", "rows=7")
    assert ran(tmp_path) == ["prepare", "train", "report"]
    assert cached_steps(third) == []
    assert (tmp_path / "report").read_text() == "model-7-3"


def test_an_entry_older_than_max_age_is_not_used(tmp_path: Path) -> None:
    file = write(tmp_path, cached_pipeline(tmp_path, max_age="1ns"))
    run(tmp_path, file, "first")
    second = run(tmp_path, file, "second")
    assert ran(tmp_path) == ["prepare", "train", "report"]
    assert cached_steps(second) == []


def test_no_cache_runs_every_step(tmp_path: Path) -> None:
    file = write(tmp_path, cached_pipeline(tmp_path))
    run(tmp_path, file, "first")
    second = run(tmp_path, file, "second", "--no-cache")
    assert ran(tmp_path) == ["prepare", "train", "report"]
    assert cached_steps(second) == []


def test_an_unreadable_entry_is_a_miss_said_as_a_note(tmp_path: Path) -> None:
    file = write(tmp_path, cached_pipeline(tmp_path))
    run(tmp_path, file, "first")
    entry = next((tmp_path / "cache").glob("prepare-*/entry.json"))
    entry.write_text("{not json")
    second = run(tmp_path, file, "second")
    # train's key stands for prepare's definition, unchanged: train is still served.
    assert ran(tmp_path) == ["prepare", "report"]
    assert cached_steps(second) == ["train"]
    assert f"note: prepare: cache entry {entry.parent} cannot be read: not JSON" in second.out
    # The step's success replaced the entry.
    assert json.loads(entry.read_text())["step"] == "prepare"
