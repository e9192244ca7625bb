"""The runner's conditions: `when`, the Skipped steps that follow from it, `continueOnFailure`.

Each step writes its name into a shared file when it runs, so the tests see what really ran."""

from __future__ import annotations

from pathlib import Path

from tests.local.helpers import pipeline, run_local, step, write


def _marking(name: str, marks: Path, **fields: object) -> dict[str, object]:
    """A step that appends its name to `marks` and succeeds."""
    return step(name, f"open({str(marks)!r}, 'a').write('{name}\\n')", **fields)


def _ran(marks: Path) -> list[str]:
    return sorted(marks.read_text().split()) if marks.exists() else []


def _producing(name: str, value: str, marks: Path) -> dict[str, object]:
    """A step whose output parameter `value` is `value`."""
    return step(
        name,
        "import sys\n"
        f"open({str(marks)!r}, 'a').write('{name}\\n')\n"
        f"open(sys.argv[1], 'w').write({value!r})\n",
        args=["{{outputs.parameters.value.path}}"],
        outputs={"parameters": [{"name": "value", "path": "/tmp/value"}]},
    )


def test_a_false_condition_skips_its_step_and_the_consumers_of_its_outputs(
    tmp_path: Path,
) -> None:
    marks = tmp_path / "marks"
    steps = [
        _producing("train", "0.7", marks),
        {**_producing("retrain", "1", marks), "when": "{{pipeline.parameters.mode}} == full"},
        {
            **_producing("use", "2", marks),
            "inputs": {"parameters": [{"name": "v", "from": "retrain.value"}]},
        },
        _marking("use-more", marks, inputs={"parameters": [{"name": "v", "from": "use.value"}]}),
        _marking("after-use", marks, dependsOn=["use"]),
        _marking("after", marks, dependsOn=["retrain"]),
        _marking(
            "good-enough",
            marks,
            when="{{inputs.parameters.auc}} >= 0.65 and not {{inputs.parameters.auc}} == 1",
            inputs={"parameters": [{"name": "auc", "from": "train.value"}]},
        ),
    ]
    doc = pipeline(steps, parameters=[{"name": "mode", "value": "quick"}])
    run = run_local(write(tmp_path, doc), tmp_path / "run")

    assert run.code == 0, run.out
    phases = {s["name"]: s["phase"] for s in run.summary["steps"]}
    assert phases == {
        "train": "Succeeded",
        "retrain": "Skipped",
        "use": "Skipped",
        "use-more": "Skipped",
        "after-use": "Succeeded",
        "after": "Succeeded",
        "good-enough": "Succeeded",
    }
    assert _ran(marks) == ["after", "after-use", "good-enough", "train"]
    assert run.step("retrain")["message"] == "when is false: {{pipeline.parameters.mode}} == full"
    assert run.step("use")["message"] == "takes the outputs of retrain, which skipped"
    assert run.step("use-more")["message"] == "takes the outputs of use, which skipped"
    assert "run succeeded" in run.out


def test_a_parameter_override_turns_a_condition_true(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    steps = [_marking("deploy", marks, when="{{pipeline.parameters.env}} == 'prod'")]
    doc = pipeline(steps, parameters=[{"name": "env", "value": "dev"}])
    run = run_local(write(tmp_path, doc), tmp_path / "run", "-p", "env=prod")

    assert run.code == 0, run.out
    assert run.step("deploy")["phase"] == "Succeeded"
    assert _ran(marks) == ["deploy"]


def test_a_hostile_value_is_compared_as_text(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    hostile = 'x" || true || "'
    steps = [_marking("guarded", marks, when="{{pipeline.parameters.p}} == safe")]
    doc = pipeline(steps, parameters=[{"name": "p", "value": hostile}])
    run = run_local(write(tmp_path, doc), tmp_path / "run")

    assert run.code == 0, run.out
    assert run.step("guarded")["phase"] == "Skipped"
    assert _ran(marks) == []


def test_a_value_compared_with_a_number_must_be_one(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    steps = [
        _producing("measure", "high", marks),
        _marking(
            "train",
            marks,
            when="{{inputs.parameters.drift}} > 0.2",
            inputs={"parameters": [{"name": "drift", "from": "measure.value"}]},
        ),
    ]
    run = run_local(write(tmp_path, pipeline(steps)), tmp_path / "run")

    assert run.code == 1
    assert run.step("train")["phase"] == "Error"
    assert run.step("train")["message"] == (
        'when: {{inputs.parameters.drift}} is "high", not a number, and is compared with a number'
    )
    assert _ran(marks) == ["measure"]


def test_a_failure_with_continue_on_failure_lets_the_run_go_on_and_succeed(
    tmp_path: Path,
) -> None:
    marks = tmp_path / "marks"
    steps = [
        {
            **step(
                "flaky",
                "import sys\nopen(sys.argv[1], 'w').write('x')\nsys.exit(4)\n",
                args=["{{outputs.parameters.value.path}}"],
                outputs={"parameters": [{"name": "value", "path": "/tmp/value"}]},
            ),
            "continueOnFailure": True,
        },
        _marking("after", marks, dependsOn=["flaky"]),
        _marking("consumer", marks, inputs={"parameters": [{"name": "v", "from": "flaky.value"}]}),
        _marking("report", marks, dependsOn=["consumer"]),
        _marking("independent", marks),
    ]
    run = run_local(write(tmp_path, pipeline(steps)), tmp_path / "run")

    assert run.code == 0, run.out
    phases = {s["name"]: s["phase"] for s in run.summary["steps"]}
    assert phases == {
        "flaky": "Failed",
        "after": "Succeeded",
        "consumer": "Skipped",
        "report": "Succeeded",
        "independent": "Succeeded",
    }
    assert run.step("consumer")["message"] == "takes the outputs of flaky, which failed"
    assert "step flaky Failed (continueOnFailure: the run went on)" in run.out
    assert "run succeeded" in run.out
    assert run.summary["phase"] == "Succeeded"


def test_a_last_step_skipped_for_want_of_a_failed_output_fails_the_run(tmp_path: Path) -> None:
    # As Argo's DAG: a skipped last step takes the phase of the step before it that ran.
    marks = tmp_path / "marks"
    steps = [
        {**_producing("flaky", "1", marks), "continueOnFailure": True},
        step("broken", "import sys; sys.exit(5)", continueOnFailure=True),
        _marking("consumer", marks, inputs={"parameters": [{"name": "v", "from": "flaky.value"}]}),
        _marking("after", marks, dependsOn=["broken"]),
    ]
    steps[0]["command"] = ["python", "-c", "import sys; sys.exit(4)"]
    run = run_local(write(tmp_path, pipeline(steps)), tmp_path / "run")

    assert run.code == 1, run.out
    phases = {s["name"]: s["phase"] for s in run.summary["steps"]}
    assert phases == {
        "flaky": "Failed",
        "broken": "Failed",
        "consumer": "Skipped",
        "after": "Succeeded",
    }
    assert run.summary["message"] == (
        "step consumer Skipped: takes the outputs of flaky, which failed"
    )
    assert run.out.splitlines()[-1].endswith(
        "step consumer Skipped: takes the outputs of flaky, which failed"
    )
    assert _ran(marks) == ["after"]


def test_without_continue_on_failure_a_failure_still_stops_the_run(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    steps = [
        step("broken", "import sys; sys.exit(2)"),
        _marking("after", marks, dependsOn=["broken"]),
    ]
    run = run_local(write(tmp_path, pipeline(steps)), tmp_path / "run")

    assert run.code == 1
    assert run.step("after")["phase"] == "Skipped"
    assert _ran(marks) == []


def test_the_promotion_is_skipped_with_its_source_and_so_are_the_steps_that_read_it(
    tmp_path: Path,
) -> None:
    marks = tmp_path / "marks"
    steps = [
        {
            **_producing("train", "run-1", marks),
            "when": "{{pipeline.parameters.train}} == yes",
        },
        _marking("notify", marks, when="{{promotion.decision}} == Promoted"),
        _marking("always", marks),
    ]
    doc = pipeline(
        steps,
        parameters=[{"name": "train", "value": "no"}],
        promotion={"model": "m", "from": {"step": "train", "parameter": "value"}},
        mlflow={"trackingUri": "http://mlflow.invalid:5000"},
    )
    run = run_local(
        write(tmp_path, doc), tmp_path / "run", "--mlflow-uri", f"sqlite:///{tmp_path}/m.db"
    )

    assert run.code == 0, run.out
    phases = {s["name"]: s["phase"] for s in run.summary["steps"]}
    assert phases == {
        "train": "Skipped",
        "notify": "Skipped",
        "always": "Succeeded",
        "promote-model": "Skipped",
    }
    assert run.step("promote-model")["message"] == "no model: step train Skipped"
    assert run.step("notify")["message"] == "takes the outputs of promote-model, which skipped"
    assert _ran(marks) == ["always"]
