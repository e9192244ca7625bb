"""The lineage and MLflow variables of every step, locally: the names the compiler gives a step
on the cluster, with the local run's values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.local.helpers import pipeline, run_local, step, write

NAMES = [
    "MLPIPELINE_NAMESPACE",
    "MLPIPELINE_NAME",
    "MLPIPELINE_GENERATION",
    "MLPIPELINE_RUN",
    "MLPIPELINE_GIT_REVISION",
    "MLFLOW_TRACKING_URI",
]
# argv: the file to write; writes the variables of NAMES that are set, as a JSON object.
SHOW_ENV = f"""
import json, os, sys
names = {NAMES!r}
open(sys.argv[1], "w").write(json.dumps({{n: os.environ[n] for n in names if n in os.environ}}))
"""


def _show(name: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "command": ["python", "-c", SHOW_ENV, "{{outputs.parameters.env.path}}"],
        "outputs": {"parameters": [{"name": "env", "path": "/tmp/env.json"}]},
        **fields,
    }


def test_every_step_sees_the_lineage_and_the_runs_mlflow_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The runner's own environment never speaks for the run's lineage.
    monkeypatch.setenv("MLPIPELINE_GIT_REVISION", "from-the-shell")
    exit_file = tmp_path / "exit.json"
    doc = pipeline(
        [
            _show("plain"),
            # A tracking URI the step sets is replaced by the run's store, locally.
            _show(
                "own-uri",
                env=[{"name": "MLFLOW_TRACKING_URI", "value": "http://mine:5000"}],
                mlflowCredentials=True,
            ),
            {
                "name": "fan",
                "command": ["python", "-c", SHOW_ENV, str(tmp_path / "item-{{item}}.json")],
                "forEach": {"items": ["a", "b"]},
            },
        ],
        name="lineage",
        mlflow={"trackingUri": "http://mlflow.example:5000", "credentialsSecret": "mlflow"},
        onExit={"command": ["python", "-c", SHOW_ENV, str(exit_file)]},
    )
    doc["metadata"].update(
        namespace="team", generation=4, annotations={"mlops.gitops.dev/git-revision": "abc123"}
    )
    run = run_local(write(tmp_path, doc), tmp_path / "run-7")
    assert run.code == 0, run.out + run.err

    uri = run.summary["mlflowTrackingUri"]
    assert uri.startswith("sqlite:///")
    expected = {
        "MLPIPELINE_NAMESPACE": "team",
        "MLPIPELINE_NAME": "lineage",
        "MLPIPELINE_GENERATION": "4",
        "MLPIPELINE_RUN": "run-7",
        "MLPIPELINE_GIT_REVISION": "abc123",
        "MLFLOW_TRACKING_URI": uri,
    }
    seen = {name: json.loads(run.step(name)["outputs"]["env"]) for name in ("plain", "own-uri")}
    seen |= {
        f"fan {item}": json.loads((tmp_path / f"item-{item}.json").read_text())
        for item in ("a", "b")
    }
    seen["on-exit"] = json.loads(exit_file.read_text())
    assert seen == dict.fromkeys(["plain", "own-uri", "fan a", "fan b", "on-exit"], expected)


def test_without_spec_mlflow_or_a_revision_a_step_sees_the_lineage_alone(tmp_path: Path) -> None:
    run = run_local(write(tmp_path, pipeline([_show("plain")], name="bare")), tmp_path / "r")
    assert run.code == 0, run.out + run.err
    assert json.loads(run.step("plain")["outputs"]["env"]) == {
        "MLPIPELINE_NAMESPACE": "local",
        "MLPIPELINE_NAME": "bare",
        "MLPIPELINE_GENERATION": "1",
        "MLPIPELINE_RUN": "r",
    }


def test_a_step_may_not_set_a_lineage_variable(tmp_path: Path) -> None:
    doc = pipeline([step("s", "pass", env=[{"name": "MLPIPELINE_NAME", "value": "x"}])])
    run = run_local(write(tmp_path, doc), tmp_path / "r")
    assert run.code != 0
    assert 'spec.steps[0].env[0].name: "MLPIPELINE_NAME": names starting with MLPIPELINE_' in (
        run.out + run.err
    )
