"""The operator (a real `mlpipeline operator` process) against the real kube-apiserver.

Argo's controller does not run here: the tests play its part by writing Workflow status the
way it does (see tests/unit/argo_runs.py).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, cast

from mlpipeline_operator.caching import cache_config_map, cache_config_map_name
from mlpipeline_operator.compiler.workflow import CompileOptions, compile_document
from mlpipeline_operator.core import run_name
from tests.controlplane.harness import ControlPlane, Kube, ManagedProcess
from tests.integration.operator_process import (
    PIPELINE_API,
    OperatorProcess,
    get_or_none,
    make_pipeline,
    pipeline_status,
    runs,
    set_run_status,
    wait,
    wait_status,
    watches_ended,
)
from tests.unit.argo_runs import StepRun, workflow_status

TIMEOUT = 30
# Where kopf keeps its record of the last handled state (handlers.py).
LAST_HANDLED = "operator.mlops.gitops.dev/last-handled-configuration"


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status.get("conditions", []) if c["type"] == kind)


def wait_history(
    kube: Kube, namespace: str, name: str, op: OperatorProcess, length: int
) -> dict[str, Any]:
    """The first status computed from `length` runs (status.history lists every run)."""

    def listed() -> dict[str, Any] | None:
        status = pipeline_status(kube, namespace, name)
        return status if len(status.get("history", [])) == length else None

    found: dict[str, Any] = wait(listed, TIMEOUT, f"{length} runs in the status of {name}", op)
    return found


def event_reasons(kube: Kube, namespace: str) -> set[str]:
    return {e["reason"] for e in kube.list_objects("v1", "Event", namespace)}


def test_create_submits_one_run_and_follows_it_to_success(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    created = kube.create(make_pipeline(namespace))
    expected = run_name(namespace, "demo", 1)
    status = wait_status(kube, namespace, "demo", operator, phase="Pending", observedGeneration=1)
    assert condition(status, "Ready")["reason"] == "RunPending"
    (wf,) = runs(kube, namespace, "demo")
    assert wf["metadata"]["name"] == expected
    (owner,) = wf["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "MLPipeline",
        "demo",
        created["metadata"]["uid"],
        True,
    )
    assert wf["spec"]["serviceAccountName"] == "default"

    set_run_status(
        kube,
        namespace,
        expected,
        workflow_status(
            expected, "Running", {"extract": StepRun("Succeeded"), "train": StepRun("Running")}
        ),
    )
    status = wait_status(kube, namespace, "demo", operator, phase="Running")
    assert [s["name"] for s in status["lastRun"]["steps"]] == ["extract", "train"]

    set_run_status(
        kube,
        namespace,
        expected,
        workflow_status(
            expected,
            "Succeeded",
            {
                "extract": StepRun("Succeeded"),
                "train": StepRun("Succeeded", attempts=3),
                "evaluate": StepRun("Succeeded"),
                "promote-model": StepRun(
                    "Succeeded",
                    outputs={
                        "decision": "Promoted",
                        "version": "3",
                        "alias": "champion",
                        "reason": "every gate passed",
                        "metrics": '{"auc": 0.97}',
                    },
                ),
            },
            finished="2026-01-01T01:00:00Z",
        ),
    )
    status = wait_status(kube, namespace, "demo", operator, phase="Succeeded")
    assert condition(status, "Ready")["status"] == "True"
    assert {s["name"]: s["retries"] for s in status["lastRun"]["steps"]}["train"] == 2
    assert status["promotion"]["decision"] == "Promoted"
    assert status["promotion"]["version"] == "3"
    assert condition(status, "Promoted")["status"] == "True"
    assert len(runs(kube, namespace, "demo")) == 1
    # Events are posted in the background, after the status is written.
    expected_events = {"Submitted", "RunSucceeded", "Promoted"}
    wait(lambda: expected_events <= event_reasons(kube, namespace), TIMEOUT, "the events", operator)
    assert event_reasons(kube, namespace) == expected_events


def test_spec_change_starts_a_second_run_and_leaves_the_first(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    kube.create(make_pipeline(namespace))
    first = run_name(namespace, "demo", 1)
    wait(lambda: runs(kube, namespace, "demo"), TIMEOUT, "the first run", operator)
    set_run_status(kube, namespace, first, workflow_status(first, "Running", {}))
    kube.patch(
        PIPELINE_API,
        "MLPipeline",
        "demo",
        {"spec": {"parameters": [{"name": "lr", "value": "0.2"}]}},
        namespace,
    )
    second = run_name(namespace, "demo", 2)
    wait(lambda: len(runs(kube, namespace, "demo")) == 2, TIMEOUT, "the second run", operator)
    by_name = {w["metadata"]["name"]: w for w in runs(kube, namespace, "demo")}
    assert set(by_name) == {first, second}
    assert by_name[first]["status"]["phase"] == "Running"  # untouched
    assert by_name[second]["spec"]["arguments"]["parameters"] == [{"name": "lr", "value": "0.2"}]
    # A status written between the spec change and the second run's creation names the first
    # run; the one computed once both runs exist names the current generation's run.
    status = wait_history(kube, namespace, "demo", operator, 2)
    assert (status["observedGeneration"], status["phase"]) == (2, "Pending")
    assert status["lastRun"]["name"] == second
    assert [run["name"] for run in status["history"]] == [second, first]


def test_schedule_is_one_cronworkflow_updated_in_place(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    kube.create(make_pipeline(namespace, schedule={"cron": "0 2 * * *"}))
    cron = wait(
        lambda: get_or_none(kube, "CronWorkflow", namespace, "demo"), TIMEOUT, "the cron", operator
    )
    uid = cron["metadata"]["uid"]
    assert cron["spec"]["schedules"] == ["0 2 * * *"]
    kube.patch(
        PIPELINE_API,
        "MLPipeline",
        "demo",
        {"spec": {"schedule": {"cron": "30 4 * * *", "timezone": "Europe/Paris"}}},
        namespace,
    )

    def updated() -> dict[str, Any] | None:
        obj = get_or_none(kube, "CronWorkflow", namespace, "demo")
        return obj if obj and obj["spec"]["schedules"] == ["30 4 * * *"] else None

    cron = wait(updated, TIMEOUT, "the cron update", operator)
    assert cron["metadata"]["uid"] == uid  # the same object, updated in place
    assert cron["spec"]["timezone"] == "Europe/Paris"
    assert cron["spec"]["workflowMetadata"]["labels"]["mlops.gitops.dev/generation"] == "2"
    status = wait_status(kube, namespace, "demo", operator, observedGeneration=2)
    assert condition(status, "Ready")["reason"] == "Scheduled"
    assert runs(kube, namespace, "demo") == []  # generation 2 is reconciled: no run of its own
    # Removing the schedule removes the CronWorkflow and submits a run instead.
    kube.patch(PIPELINE_API, "MLPipeline", "demo", {"spec": {"schedule": None}}, namespace)
    wait(
        lambda: get_or_none(kube, "CronWorkflow", namespace, "demo") is None,
        TIMEOUT,
        "cron gone",
        operator,
    )
    wait(lambda: runs(kube, namespace, "demo"), TIMEOUT, "a run", operator)


def test_invalid_spec_is_reported_and_a_fix_recovers(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    doc = make_pipeline(namespace)
    doc["spec"]["steps"][1]["dependsOn"] = ["trian"]
    doc["spec"]["steps"][2]["command"] = ["{{inputs.parameters.nope}}"]
    kube.create(doc)
    status = wait_status(kube, namespace, "demo", operator, phase="Invalid")
    problems = (
        'spec.steps[1].dependsOn[0]: unknown step "trian" (did you mean "train"?); '
        'spec.steps[2].command[0]: placeholder "{{inputs.parameters.nope}}": unknown input '
        'parameter "nope"; known: "run_id"'
    )
    assert status["message"] == problems
    valid = condition(status, "Valid")
    assert (valid["status"], valid["reason"], valid["message"]) == (
        "False",
        "InvalidSpec",
        problems,
    )
    assert runs(kube, namespace, "demo") == []

    def invalid_events() -> list[str]:
        events = kube.list_objects("v1", "Event", namespace)
        return [e["message"] for e in events if e["reason"] == "Invalid"]

    assert wait(invalid_events, TIMEOUT, "the Invalid event", operator) == [problems]
    # The handler's failure is logged once the status is written: no traceback up to there.
    failed = f"[{namespace}/demo] Handler 'reconcile' failed permanently: invalid spec: {problems}"
    wait(lambda: failed in operator.log(), TIMEOUT, "the handler's failure logged", operator)
    assert "Traceback" not in operator.log()
    kube.patch(
        PIPELINE_API,
        "MLPipeline",
        "demo",
        {"spec": {"steps": make_pipeline(namespace)["spec"]["steps"]}},
        namespace,
    )
    wait_status(kube, namespace, "demo", operator, phase="Pending", observedGeneration=2)
    assert len(runs(kube, namespace, "demo")) == 1


def test_restart_after_submission_adopts_the_run(
    control_plane: ControlPlane, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    """The operator dies after creating the Workflow and before writing any status."""
    doc = make_pipeline(namespace)
    created = kube.create(doc)
    # The state that the crash leaves: the run of generation 1 exists, the status is empty.
    manifest = compile_document(created, CompileOptions())
    manifest["metadata"]["namespace"] = namespace
    meta = created["metadata"]
    manifest["metadata"]["ownerReferences"] = [
        {
            "apiVersion": PIPELINE_API,
            "kind": "MLPipeline",
            "name": meta["name"],
            "uid": meta["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    kube.create(manifest)
    op = OperatorProcess(control_plane, tmp_path, ["--standalone", "--namespace", namespace])
    op.start()
    try:
        status = wait_status(kube, namespace, "demo", op, observedGeneration=1, phase="Pending")
        assert status["lastRun"]["name"] == manifest["metadata"]["name"]
        assert len(runs(kube, namespace, "demo")) == 1
        # A hard kill and a restart change nothing either.
        op.kill()
        op.start()
        name = manifest["metadata"]["name"]
        set_run_status(kube, namespace, name, workflow_status(name, "Succeeded", {}))
        wait_status(kube, namespace, "demo", op, phase="Succeeded")
        # One run, never a second: whether the reconciler met the run with a 409 (and logged
        # "already exists: adopted") or the run's own event wrote the status first is a race.
        assert len(runs(kube, namespace, "demo")) == 1
    finally:
        op.stop()


def test_a_restart_brings_up_to_date_the_runs_that_finished_while_no_operator_ran(
    control_plane: ControlPlane, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    """kopf resumes each pipeline at a start; the resume is queued and reads the pipeline when
    its turn comes. The finished runs are outside the run watch (Argo's completed label), so
    only the resumes can write these statuses."""
    names = ["first", "second", "third"]
    op = OperatorProcess(control_plane, tmp_path, ["--standalone", "--namespace", namespace])
    op.start()
    try:
        for name in names:
            kube.create(make_pipeline(namespace, name))
        for name in names:
            wait_status(kube, namespace, name, op, observedGeneration=1, phase="Pending")
    finally:
        op.stop()
    for name in names:
        run = run_name(namespace, name, 1)
        set_run_status(kube, namespace, run, workflow_status(run, "Succeeded", {}))
    op.start()
    try:
        for name in names:
            status = wait_status(kube, namespace, name, op, phase="Succeeded")
            assert status["lastRun"]["name"] == run_name(namespace, name, 1)
            resumed = f"[{namespace}/{name}] Resuming is processed: 1 succeeded; 0 failed."
            assert resumed in op.log()
        assert all(len(runs(kube, namespace, name)) == 1 for name in names)
    finally:
        op.stop()


def test_history_limit_deletes_the_oldest_finished_runs(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    kube.create(make_pipeline(namespace, history={"succeeded": 1, "failed": 1}))
    names = []
    for generation in (1, 2, 3):
        if generation > 1:
            kube.patch(
                PIPELINE_API,
                "MLPipeline",
                "demo",
                {"spec": {"parameters": [{"name": "lr", "value": str(generation)}]}},
                namespace,
            )
        name = run_name(namespace, "demo", generation)
        names.append(name)
        wait(
            functools.partial(get_or_none, kube, "Workflow", namespace, name),
            TIMEOUT,
            name,
            operator,
        )
        set_run_status(
            kube,
            namespace,
            name,
            workflow_status(name, "Succeeded", {}, finished=f"2026-01-0{generation}T00:00:00Z"),
        )
        wait_status(
            kube, namespace, "demo", operator, observedGeneration=generation, phase="Succeeded"
        )
    wait(
        lambda: {w["metadata"]["name"] for w in runs(kube, namespace, "demo")} == {names[2]},
        TIMEOUT,
        "only the newest run left",
        operator,
    )


def test_rerun_annotation_starts_a_new_run_of_the_same_generation(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    kube.create(make_pipeline(namespace))
    wait(lambda: runs(kube, namespace, "demo"), TIMEOUT, "the first run", operator)
    kube.patch(
        PIPELINE_API,
        "MLPipeline",
        "demo",
        {"metadata": {"annotations": {"mlops.gitops.dev/rerun": "again-1"}}},
        namespace,
    )
    rerun = run_name(namespace, "demo", 1, rerun="again-1")
    wait(lambda: get_or_none(kube, "Workflow", namespace, rerun), TIMEOUT, "the re-run", operator)
    assert len(runs(kube, namespace, "demo")) == 2
    # The re-run is the run the pipeline now expects: the status computed from both runs
    # follows it, not the first run of the same generation.
    status = wait_history(kube, namespace, "demo", operator, 2)
    assert status["observedGeneration"] == 1
    assert status["lastRun"]["name"] == rerun


def test_deleting_the_pipeline_deletes_its_runs(
    kube: Kube, namespace: str, operator: OperatorProcess, controller_manager: ManagedProcess
) -> None:
    kube.create(make_pipeline(namespace))
    wait(lambda: runs(kube, namespace, "demo"), TIMEOUT, "the run", operator)
    kube.delete(PIPELINE_API, "MLPipeline", "demo", namespace)
    wait(
        lambda: get_or_none(kube, "MLPipeline", namespace, "demo", PIPELINE_API) is None,
        TIMEOUT,
        "the pipeline gone (no finalizer holds it)",
        operator,
    )
    wait(lambda: runs(kube, namespace, "demo") == [], 60, "garbage collection of the run", operator)


def test_watch_restarts_do_not_lose_updates(
    control_plane: ControlPlane, kube: Kube, namespace: str, tmp_path: Path, audit_log: Path
) -> None:
    """The API server ends every watch after 2 s; the operator re-watches and converges."""
    op = OperatorProcess(
        control_plane, tmp_path, ["--standalone", "--namespace", namespace, "--watch-timeout", "2"]
    )
    op.start()
    try:
        kube.create(make_pipeline(namespace))
        name = run_name(namespace, "demo", 1)
        wait(lambda: get_or_none(kube, "Workflow", namespace, name), TIMEOUT, "the run", op)
        ended = watches_ended(audit_log, namespace, "workflows")
        wait(
            lambda: watches_ended(audit_log, namespace, "workflows") >= ended + 2,
            TIMEOUT,
            "two watches of the namespace's Workflows ended by the API server",
            op,
        )
        set_run_status(
            kube,
            namespace,
            name,
            workflow_status(name, "Failed", {"extract": StepRun("Failed", message="OOMKilled")}),
        )
        status = wait_status(kube, namespace, "demo", op, phase="Failed")
        assert status["message"] == 'step "extract" failed: OOMKilled'
    finally:
        op.stop()


def test_two_replicas_only_one_acts(
    control_plane: ControlPlane, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    """Leader election through kopf peering: the higher priority acts, the other pauses."""
    kube.create(
        {
            "apiVersion": "kopf.dev/v1",
            "kind": "KopfPeering",
            "metadata": {"name": "mlpipeline-operator", "namespace": namespace},
        }
    )
    args = ["--namespace", namespace, "--peering", "mlpipeline-operator"]
    leader = OperatorProcess(control_plane, tmp_path, [*args, "--priority", "200"], "leader")
    follower = OperatorProcess(control_plane, tmp_path, [*args, "--priority", "100"], "follower")
    leader.start()
    follower.start()
    try:

        def peers() -> int:
            peering = kube.get("kopf.dev/v1", "KopfPeering", "mlpipeline-operator", namespace)
            return len(peering.get("status") or {})

        wait(lambda: peers() == 2, TIMEOUT, "both replicas in the peering", follower)
        kube.create(make_pipeline(namespace, name="first"))
        first = run_name(namespace, "first", 1)
        wait_status(kube, namespace, "first", leader, phase="Pending")
        assert len(runs(kube, namespace, "first")) == 1
        assert f"{namespace}/first: submitted run {first}" in leader.log()
        # The leader leaves (a graceful stop withdraws it from the peering): the follower acts.
        leader.stop()
        kube.create(make_pipeline(namespace, name="second"))
        wait_status(kube, namespace, "second", follower, phase="Pending")
        assert len(runs(kube, namespace, "second")) == 1
        assert f"{namespace}/second: submitted run {run_name(namespace, 'second', 1)}" in (
            follower.log()
        )
        # Once it acts, the follower meets "first" for the first time: the run it finds is
        # the leader's, in the status already; it neither submitted nor adopted one.
        resumed = f"[{namespace}/first] Resuming is processed: 1 succeeded; 0 failed."
        wait(lambda: resumed in follower.log(), TIMEOUT, "the follower's resume of first", follower)
        assert f"{namespace}/first: " not in follower.log()
        assert len(runs(kube, namespace, "first")) == 1
    finally:
        leader.stop()
        follower.stop()


def test_concurrent_writers_converge(kube: Kube, namespace: str, operator: OperatorProcess) -> None:
    """Another client keeps changing the MLPipeline while the operator writes its status:
    status writes that lose the race (409) are re-read and retried until they land."""
    kube.create(make_pipeline(namespace))
    name = run_name(namespace, "demo", 1)
    wait(
        functools.partial(get_or_none, kube, "Workflow", namespace, name),
        TIMEOUT,
        "the run",
        operator,
    )
    for i in range(30):
        kube.patch(
            PIPELINE_API,
            "MLPipeline",
            "demo",
            {"metadata": {"labels": {"touched": str(i)}}},
            namespace,
        )
        if i == 10:
            set_run_status(kube, namespace, name, workflow_status(name, "Succeeded", {}))
    wait_status(kube, namespace, "demo", operator, phase="Succeeded")
    assert len(runs(kube, namespace, "demo")) == 1


def test_at_start_the_operator_deletes_the_caches_of_pipelines_deleted_meanwhile(
    control_plane: ControlPlane, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    # Caches in the test's namespace, standing for Argo's: one of a pipeline that exists, one of
    # a pipeline deleted while no operator ran.
    kube.create(make_pipeline(namespace, "kept"))
    for pipeline in ("kept", "gone"):
        kube.create(cache_config_map(namespace, pipeline, namespace))
    operator = OperatorProcess(
        control_plane,
        tmp_path,
        ["--standalone", "--namespace", namespace, "--argo-namespace", namespace],
    )
    operator.start()
    try:
        wait(
            lambda: f"swept the caches in {namespace}: 1 of 2 deleted" in operator.log(),
            30,
            "the sweep of the caches",
            operator,
        )
    finally:
        operator.stop()
    caches = kube.list_objects(
        "v1", "ConfigMap", namespace, label_selector="workflows.argoproj.io/configmap-type=Cache"
    )
    assert [c["metadata"]["name"] for c in caches] == [cache_config_map_name(namespace, "kept")]


def test_a_500_kib_pipeline_is_handled_once_per_generation(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    # 128 more steps with 4,000-character arguments: a spec of 500 KiB, within the spec's 512
    # KiB but past the 256 KiB that all of an object's annotations may hold together.
    doc = make_pipeline(namespace, name="large")
    fillers = [{"name": f"filler-{i}", "command": ["echo", "x" * 4000]} for i in range(128)]
    doc["spec"]["steps"] += fillers
    assert 500 * 1024 < len(json.dumps(doc["spec"], separators=(",", ":"))) <= 512 * 1024
    kube.create(doc)

    status = wait_status(kube, namespace, "large", operator, phase="Pending", observedGeneration=1)

    assert status["lastRun"]["name"] == run_name(namespace, "large", 1)

    def recorded() -> dict[str, Any] | None:
        """kopf's record of the handled state, once written (after the handler's status)."""
        stored = kube.get(PIPELINE_API, "MLPipeline", "large", namespace)
        text = stored["metadata"].get("annotations", {}).get(LAST_HANDLED)
        return None if text is None else cast(dict[str, Any], json.loads(text))

    handled = wait(recorded, TIMEOUT, "kopf's record of the handled state", operator)
    assert set(handled) == {"specSha256"}, handled
    # The spec changes: handled again (a new generation, a new run).
    fewer = {"spec": {"steps": doc["spec"]["steps"][:-1]}}
    kube.patch(PIPELINE_API, "MLPipeline", "large", fewer, namespace)
    wait_status(kube, namespace, "large", operator, observedGeneration=2)
    # kopf's record of the handled state fits (refused otherwise: handled again and again):
    # each generation is handled exactly once.
    handled_line = f"[{namespace}/large] Handler 'reconcile' succeeded"
    wait(
        lambda: operator.log().count(handled_line) >= 2,
        TIMEOUT,
        "the second generation handled",
        operator,
    )
    assert "Too long" not in operator.log()
    assert operator.log().count(handled_line) == 2


def _foreign_run(namespace: str, name: str, pipeline: str = "demo") -> dict[str, Any]:
    """A Workflow with the pipeline's label but no owner reference to it (someone else's)."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"mlops.gitops.dev/pipeline": pipeline},
        },
        "spec": {"entrypoint": "main", "templates": [{"name": "main", "container": {}}]},
    }


def test_a_workflow_with_the_pipeline_label_that_it_does_not_own_is_neither_shown_nor_pruned(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    kube.create(_foreign_run(namespace, "someone-elses"))
    set_run_status(
        kube,
        namespace,
        "someone-elses",
        workflow_status("someone-elses", "Succeeded", {}, finished="2026-01-01T00:00:00Z"),
    )
    kube.create(make_pipeline(namespace, history={"succeeded": 1, "failed": 1}))
    name = run_name(namespace, "demo", 1)
    wait(functools.partial(get_or_none, kube, "Workflow", namespace, name), TIMEOUT, name, operator)
    set_run_status(
        kube,
        namespace,
        name,
        workflow_status(name, "Succeeded", {}, finished="2026-01-02T00:00:00Z"),
    )

    status = wait_status(kube, namespace, "demo", operator, phase="Succeeded")

    assert [run["name"] for run in status["history"]] == [name]
    # Past the history limit of one succeeded run, were it the pipeline's: still there.
    assert get_or_none(kube, "Workflow", namespace, "someone-elses") is not None
    assert "deleted run someone-elses" not in operator.log()


def test_a_workflow_in_the_way_of_the_run_is_not_adopted_and_the_pipeline_says_so(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    name = run_name(namespace, "demo", 1)
    kube.create(_foreign_run(namespace, name))
    kube.create(make_pipeline(namespace))

    status = wait_status(kube, namespace, "demo", operator, phase="Invalid")

    assert status["message"] == (
        f'metadata.name: a Workflow "{name}" that this pipeline does not own has the name of '
        "its run; give the annotation mlops.gitops.dev/rerun a value to submit the run under "
        "another name"
    )
    assert "lastRun" not in status
    annotate = {"metadata": {"annotations": {"mlops.gitops.dev/rerun": "1"}}}
    kube.patch(PIPELINE_API, "MLPipeline", "demo", annotate, namespace)
    status = wait_status(kube, namespace, "demo", operator, phase="Pending")
    assert status["lastRun"]["name"] == run_name(namespace, "demo", 1, "1")
    assert get_or_none(kube, "Workflow", namespace, name) is not None


def test_a_run_beyond_max_concurrent_runs_waits_for_the_running_one_to_finish(
    kube: Kube, namespace: str, operator: OperatorProcess
) -> None:
    kube.create(make_pipeline(namespace, maxConcurrentRuns=1))
    first, second = run_name(namespace, "demo", 1), run_name(namespace, "demo", 2)
    wait(lambda: runs(kube, namespace, "demo"), TIMEOUT, "the first run", operator)
    set_run_status(kube, namespace, first, workflow_status(first, "Running", {}))
    wait_status(kube, namespace, "demo", operator, phase="Running")
    kube.patch(
        PIPELINE_API,
        "MLPipeline",
        "demo",
        {"spec": {"parameters": [{"name": "lr", "value": "0.2"}]}},
        namespace,
    )
    status = wait_status(
        kube,
        namespace,
        "demo",
        operator,
        observedGeneration=2,
        message="waiting: 1 run of this pipeline is running (spec.maxConcurrentRuns: 1)",
    )
    assert condition(status, "Ready")["reason"] == "RunWaiting"
    assert [w["metadata"]["name"] for w in runs(kube, namespace, "demo")] == [first]

    # Argo finishes the first run: its event makes the operator submit the waiting one.
    set_run_status(
        kube,
        namespace,
        first,
        workflow_status(first, "Succeeded", {}, finished="2026-01-01T00:10:00Z"),
    )
    wait(lambda: len(runs(kube, namespace, "demo")) == 2, TIMEOUT, "the second run", operator)
    status = wait_history(kube, namespace, "demo", operator, 2)
    assert status["lastRun"]["name"] == second
    assert [(h["name"], h["phase"]) for h in status["history"]] == [
        (second, "Pending"),
        (first, "Succeeded"),
    ]
    assert condition(status, "Ready")["reason"] == "RunPending"
