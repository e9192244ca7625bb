"""Steps after the promotion and the exit step, run by the local runner with Argo's semantics:
a step that reads `{{promotion.*}}` runs once the promotion has decided, and sees its decision;
`spec.onExit` runs last, whatever happened, with the run's status, its failures and the
decision ("" without one); its failure fails the run. The promotion runs `mlpipeline promote`
against a SQLite MLflow store, so these tests need MLflow and scikit-learn."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.local.helpers import Run, pipeline, run_local, step, write

# Logs a tiny model with an auc to MLflow (the runner sets MLFLOW_TRACKING_URI) and writes the
# run id where the step's output parameter is read.
TRAIN = """
import sys, mlflow
from sklearn.linear_model import LogisticRegression
model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
with mlflow.start_run() as run:
    mlflow.log_metric("auc", 0.9)
    mlflow.sklearn.log_model(model, name="model")
open(sys.argv[1], "w").write(run.info.run_id)
"""
# Writes its arguments to seen.json in its working directory.
SEE = "import json, sys; json.dump(sys.argv[1:], open('seen.json', 'w'))"
# The same, with the value of $ALIAS last.
SEE_ALIAS = (
    "import json, os, sys; json.dump([*sys.argv[1:], os.environ['ALIAS']], open('seen.json', 'w'))"
)
EXIT_ARGS = [
    "{{pipeline.status}}",
    "{{pipeline.failures}}",
    "{{promotion.decision}}",
    "{{promotion.version}}",
    "{{promotion.alias}}",
]


def _doc(train_script: str = TRAIN, exit_script: str = SEE) -> dict[str, Any]:
    steps = [
        step(
            "train",
            train_script,
            args=["{{outputs.parameters.run_id.path}}"],
            outputs={"parameters": [{"name": "run_id", "path": "/tmp/run_id"}]},
        ),
        step("evaluate", "pass", dependsOn=["train"]),
        step(
            "deploy",
            SEE_ALIAS,
            dependsOn=["evaluate"],
            args=["{{promotion.decision}}", "{{promotion.version}}"],
            env=[{"name": "ALIAS", "value": "{{promotion.alias}}"}],
        ),
        step("smoke", "pass", dependsOn=["deploy"]),
    ]
    return pipeline(
        steps,
        name="deploy-after",
        promotion={"model": "tiny", "from": {"step": "train", "parameter": "run_id"}},
        mlflow={"trackingUri": "http://mlflow.invalid:5000"},
        onExit={"command": ["python", "-c", exit_script], "args": EXIT_ARGS},
    )


def _run(tmp_path: Path, doc: dict[str, Any], *flags: str) -> Run:
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return run_local(write(tmp_path, doc), tmp_path / "run", "--mlflow-uri", store, *flags)


def seen(run: Run, name: str) -> list[str]:
    found: list[str] = json.loads((run.run_dir / "steps" / name / "work" / "seen.json").read_text())
    return found


def test_a_step_after_the_promotion_sees_its_decision_and_the_exit_step_the_outcome(
    tmp_path: Path,
) -> None:
    run = _run(tmp_path, _doc())

    assert run.code == 0, run.out + run.err
    phases = {s["name"]: s["phase"] for s in run.summary["steps"]}
    assert phases == dict.fromkeys(
        ["train", "evaluate", "deploy", "smoke", "promote-model", "on-exit"], "Succeeded"
    )
    version = run.summary["promotion"]["version"]
    assert run.summary["promotion"]["decision"] == "Promoted"
    assert seen(run, "deploy") == ["Promoted", version, "champion"]
    assert seen(run, "on-exit") == ["Succeeded", "[]", "Promoted", version, "champion"]
    started = [line.split("]", 1)[1].split() for line in run.out.splitlines() if "Running" in line]
    order = [words[0] for words in started]
    assert order.index("promote-model") < order.index("deploy") < order.index("on-exit")


def test_the_exit_step_sees_the_failures_and_no_decision(tmp_path: Path) -> None:
    failing = "import sys; print('no model', file=sys.stderr); sys.exit(3)"
    run = _run(tmp_path, _doc(train_script=failing))

    assert run.code == 1
    phases = {s["name"]: s["phase"] for s in run.summary["steps"]}
    assert phases == {
        "train": "Failed",
        "evaluate": "Skipped",
        "deploy": "Skipped",
        "smoke": "Skipped",
        "on-exit": "Succeeded",
    }
    status, failures, *promotion = seen(run, "on-exit")
    assert (status, promotion) == ("Failed", ["", "", ""])
    (failure,) = json.loads(failures)
    assert failure.pop("finishedAt").endswith("Z")
    assert failure == {
        "displayName": "train",
        "message": "exit code 3",
        "templateName": "train",
        "phase": "Failed",
        "podName": "",
    }


def test_a_failing_exit_step_fails_the_run(tmp_path: Path) -> None:
    run = _run(tmp_path, _doc(exit_script="import sys; sys.exit(4)"))

    assert run.code == 1
    phases = {s["name"]: s["phase"] for s in run.summary["steps"]}
    assert phases["on-exit"] == "Failed"
    assert phases["deploy"] == "Succeeded"
    assert "run failed after" in run.out
    assert "step on-exit Failed: exit code 4" in run.out


def test_without_the_promotion_the_steps_after_it_do_not_run(tmp_path: Path) -> None:
    run = _run(tmp_path, _doc(), "--skip-promotion")

    assert run.code == 0, run.out + run.err
    phases = {s["name"]: (s["phase"], s["message"]) for s in run.summary["steps"]}
    assert phases["deploy"] == ("Skipped", "promote-model did not run")
    # As in Argo, a step that only depends on a skipped step runs.
    assert phases["smoke"] == ("Succeeded", "")
    assert seen(run, "on-exit") == ["Succeeded", "[]", "", "", ""]
    assert "--skip-promotion: the steps after the promotion will not run either" in run.out
