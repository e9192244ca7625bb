"""`{{pipeline.scheduledTime}}`, `{{pipeline.runName}}` and `{{pipeline.generation}}` in a local
run, with `--scheduled-time`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.local.helpers import pipeline, run_local, step, write

pytestmark = pytest.mark.local

# Writes what the step was given (argv, env, its input parameter) as JSON to its output.
RECORD = (
    "import json, os, sys\n"
    "out = sys.argv[1]\n"
    "seen = {'args': sys.argv[2:], 'env': [os.environ['RUN'], os.environ['GEN']]}\n"
    "open(out, 'w').write(json.dumps(seen))\n"
)


def recording_pipeline(generation: int | None = None) -> dict[str, Any]:
    seen = step(
        "seen",
        RECORD,
        args=[
            "{{outputs.parameters.seen.path}}",
            "{{pipeline.scheduledTime}}",
            "day={{inputs.parameters.day}}",
        ],
        env=[
            {"name": "RUN", "value": "{{pipeline.runName}}"},
            {"name": "GEN", "value": "{{pipeline.generation}}"},
        ],
        inputs={"parameters": [{"name": "day", "value": "{{pipeline.scheduledTime}}"}]},
        outputs={"parameters": [{"name": "seen", "path": "/tmp/seen.json"}]},
    )
    doc = pipeline([seen])
    if generation is not None:
        doc["metadata"]["generation"] = generation
    return doc


def seen(run_dir: Path, summary: dict[str, Any]) -> dict[str, Any]:
    step_summary = next(s for s in summary["steps"] if s["name"] == "seen")
    loaded: dict[str, Any] = json.loads(step_summary["outputs"]["seen"])
    return loaded


def test_the_scheduled_time_given_reaches_the_step_as_written(tmp_path: Path) -> None:
    file = write(tmp_path, recording_pipeline(generation=4))
    run_dir = tmp_path / "run-2026-01-31"
    result = run_local(file, run_dir, "--scheduled-time", "2026-01-31T02:00:00+01:00")
    assert result.code == 0, result.err
    assert seen(run_dir, result.summary) == {
        "args": ["2026-01-31T02:00:00+01:00", "day=2026-01-31T02:00:00+01:00"],
        "env": ["run-2026-01-31", "4"],
    }


def test_without_it_the_run_is_scheduled_for_its_start(tmp_path: Path) -> None:
    file = write(tmp_path, recording_pipeline())
    before = datetime.now(UTC).replace(microsecond=0)
    result = run_local(file, tmp_path / "run")
    after = datetime.now(UTC)
    assert result.code == 0, result.err
    values = seen(tmp_path / "run", result.summary)
    scheduled = datetime.strptime(values["args"][0], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before <= scheduled <= after
    assert values["args"][1] == f"day={values['args'][0]}"
    assert values["env"] == ["run", "1"]  # the run directory's name; generation 1 by default


def test_a_scheduled_time_that_is_not_rfc3339_is_a_usage_error(tmp_path: Path) -> None:
    file = write(tmp_path, recording_pipeline())
    result = run_local(file, tmp_path / "run", "--scheduled-time", "2026-01-31")
    assert result.code == 2
    assert (
        'argument --scheduled-time: "2026-01-31" is not an RFC 3339 time; write a date, "T", a '
        'time and "Z" or an offset, such as "2026-01-31T00:00:00Z" or '
        '"2026-01-31T02:00:00+02:00"' in result.err
    )
    assert not (tmp_path / "run").exists()
