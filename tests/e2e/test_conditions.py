"""Conditions as Argo really runs them: a false `when` skips its step and the steps that take its
outputs (Skipped in Argo's nodes and in the MLPipeline's status), a step that only comes after
it runs, a `when` over an input from an upstream step holds, a hostile parameter value cannot
turn a condition, and a failed `continueOnFailure` step lets the rest of the run go on (the run
fails only when a last step was skipped for want of its outputs, as Argo judges a DAG)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.cluster import PIPELINE_NAMESPACE, NodeCluster
from tests.e2e.pipelines import apply_pipeline, pipeline, wait_status
from tests.e2e.workflows import WORKFLOW

RUN_TIMEOUT = 300.0
# Pasted into the condition's text, this value would make `"..." == "safe"` true.
HOSTILE = 'x" || true || "'


def _writing(name: str, value: str, **fields: Any) -> dict[str, Any]:
    """A step that writes `value` to its output parameter `value` (and exits with `code`)."""
    code = fields.pop("code", 0)
    return {
        "name": name,
        "command": [
            "python",
            "-c",
            f"import sys; open(sys.argv[1], 'w').write({value!r}); sys.exit({code})",
            "{{outputs.parameters.value.path}}",
        ],
        "outputs": {"parameters": [{"name": "value", "path": "/tmp/value"}]},
        **fields,
    }


def _echo(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "command": ["python", "-c", f"print({name!r})"], **fields}


def _input(source: str) -> dict[str, Any]:
    return {"parameters": [{"name": "v", "from": f"{source}.value"}]}


@pytest.fixture(scope="module")
def finished(cluster: NodeCluster) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pipeline once its run is over, and its Argo Workflow."""
    doc = pipeline(
        cluster,
        "conditions",
        [
            _writing("measure", "0.7"),
            _writing("retrain", "1", when="{{pipeline.parameters.mode}} == full"),
            _echo("consume", inputs=_input("retrain")),
            _echo("after-retrain", dependsOn=["retrain"]),
            _echo(
                "drifted",
                when="{{inputs.parameters.v}} > 0.5",
                inputs=_input("measure"),
            ),
            _echo("guarded", when="{{pipeline.parameters.hostile}} == safe"),
            _writing("flaky", "2", code=3, continueOnFailure=True),
            _echo("consume-flaky", inputs=_input("flaky")),
            _echo("after-flaky", dependsOn=["flaky"]),
            # A last step that runs: the skipped consumer before it is not the run's end.
            _echo("report", dependsOn=["consume-flaky"]),
        ],
        parameters=[{"name": "mode", "value": "quick"}, {"name": "hostile", "value": HOSTILE}],
    )
    # The same failure, but the skipped consumer is a last step.
    optional = pipeline(
        cluster,
        "optional-output",
        [
            _writing("flaky", "2", code=3, continueOnFailure=True),
            _echo("consume", inputs=_input("flaky")),
        ],
    )
    apply_pipeline(cluster, doc)
    apply_pipeline(cluster, optional)
    done = wait_status(cluster, "conditions", generation=1, timeout=RUN_TIMEOUT)
    return done, _workflow(cluster, done)


def _workflow(cluster: NodeCluster, pipeline: dict[str, Any]) -> dict[str, Any]:
    assert cluster.control_plane is not None
    name = pipeline["status"]["lastRun"]["name"]
    return cluster.control_plane.kube.get(*WORKFLOW, name, PIPELINE_NAMESPACE)


EXPECTED = {
    "measure": "Succeeded",
    "retrain": "Skipped",
    "consume": "Skipped",
    "after-retrain": "Succeeded",
    "drifted": "Succeeded",
    "guarded": "Skipped",
    "flaky": "Failed",
    "consume-flaky": "Skipped",
    "after-flaky": "Succeeded",
    "report": "Succeeded",
}


def test_every_step_ends_as_its_conditions_say_in_the_status(
    finished: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    status = finished[0]["status"]
    phases = {step["name"]: step["phase"] for step in status["lastRun"]["steps"]}
    assert phases == EXPECTED, status
    messages = {step["name"]: step.get("message") for step in status["lastRun"]["steps"]}
    # Argo evaluated the expression as a whole: its message shows the outcome, no value.
    assert messages["retrain"] == messages["guarded"] == "when 'false' evaluated false"


def test_argo_nodes_are_skipped_not_omitted(
    finished: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    nodes = finished[1]["status"]["nodes"].values()
    phases = {n["displayName"]: n["phase"] for n in nodes if n["displayName"] in EXPECTED}
    assert phases == EXPECTED
    skipped = {n["displayName"] for n in nodes if n["type"] == "Skipped"}
    assert skipped == {"retrain", "consume", "guarded", "consume-flaky"}


def test_a_failed_step_that_continues_on_failure_leaves_the_run_succeeded(
    finished: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    pipeline_status, workflow = finished[0]["status"], finished[1]
    assert workflow["status"]["phase"] == "Succeeded", workflow["status"].get("message")
    assert pipeline_status["phase"] == "Succeeded", pipeline_status
    assert pipeline_status["lastRun"]["phase"] == "Succeeded"


def test_a_last_step_skipped_for_want_of_a_failed_output_fails_the_run(
    cluster: NodeCluster, finished: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    done = wait_status(cluster, "optional-output", generation=1, timeout=RUN_TIMEOUT)
    status = done["status"]
    phases = {step["name"]: step["phase"] for step in status["lastRun"]["steps"]}
    assert phases == {"flaky": "Failed", "consume": "Skipped"}
    assert _workflow(cluster, done)["status"]["phase"] == "Failed"
    assert status["phase"] == "Failed"
    assert status["message"].startswith('step "flaky" failed'), status["message"]
