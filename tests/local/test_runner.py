"""The runner on small synthetic pipelines: data flow, retries, timeouts, failures, parallelism,
interruption. Steps are tiny `python -c` or `sh -c` programs that leave evidence in files."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.local.helpers import (
    pipeline,
    run_local,
    runner_command,
    step,
    wait_for_files,
    wait_until_gone,
    write,
)


def test_artifacts_and_parameters_flow_between_steps(tmp_path: Path) -> None:
    # An absolute path nobody has: the runner must map it into the run directory.
    absolute = f"/mlpipeline-test-{uuid.uuid4().hex}"
    produce = step(
        "produce",
        "import sys, pathlib\n"
        "out, data, run_id = map(pathlib.Path, sys.argv[1:4])\n"
        "out.write_text(sys.argv[4])\n"
        "data.mkdir(); (data / 'part-0').write_text('a'); (data / 'part-1').write_text('b')\n"
        "run_id.write_text('run-123\\n')\n",
        args=[
            "{{outputs.artifacts.text.path}}",
            "{{outputs.artifacts.parts.path}}",
            "{{outputs.parameters.run_id.path}}",
            "{{pipeline.parameters.greeting}}",
        ],
        outputs={
            "artifacts": [
                {"name": "text", "path": f"{absolute}/text.txt"},
                {"name": "parts", "path": f"{absolute}/parts"},
            ],
            "parameters": [{"name": "run_id", "path": "/tmp/run_id"}],
        },
    )
    consume = step(
        "consume",
        "import os, sys, pathlib\n"
        "text, parts, out = map(pathlib.Path, sys.argv[1:4])\n"
        "names = ','.join(sorted(p.name for p in parts.iterdir()))\n"
        "out.write_text(f'{text.read_text()}|{names}|{sys.argv[4]}|{os.environ[\"WHO\"]}')\n",
        args=[
            "{{inputs.artifacts.text.path}}",
            "{{inputs.artifacts.parts.path}}",
            "{{outputs.artifacts.result.path}}",
            "{{inputs.parameters.run_id}}",
        ],
        env=[{"name": "WHO", "value": "{{inputs.parameters.who}}"}],
        inputs={
            "artifacts": [
                {"name": "text", "from": "produce.text", "path": "/in/text.txt"},
                {"name": "parts", "from": "produce.parts", "path": "/in/parts"},
            ],
            "parameters": [
                {"name": "run_id", "from": "produce.run_id"},
                {"name": "who", "value": "{{pipeline.parameters.greeting}}-consumer"},
            ],
        },
        outputs={"artifacts": [{"name": "result", "path": "/out/result.txt"}]},
    )
    doc = pipeline([produce, consume], parameters=[{"name": "greeting", "value": "hello"}])
    run = run_local(write(tmp_path, doc), tmp_path / "run", "-p", "greeting=bonjour")

    assert run.code == 0, run.out + run.err
    result = tmp_path / "run" / "steps" / "consume" / "root" / "out" / "result.txt"
    assert result.read_text() == "bonjour|part-0,part-1|run-123|bonjour-consumer"
    assert run.step("produce")["outputs"] == {"run_id": "run-123"}  # one newline trimmed
    assert (tmp_path / "run" / "steps" / "produce" / "root" / absolute[1:] / "text.txt").is_file()
    assert not Path(absolute).exists()


def test_a_step_that_fails_twice_succeeds_on_its_third_attempt(tmp_path: Path) -> None:
    counter = tmp_path / "attempts"
    flaky = step(
        "flaky",
        "import pathlib, sys\n"
        f"f = pathlib.Path({str(counter)!r})\n"
        "n = int(f.read_text()) + 1 if f.exists() else 1\n"
        "f.write_text(str(n))\n"
        "print(f'attempt {n}')\n"
        "sys.exit(0 if n >= 3 else 1)\n",
        retry={"limit": 2, "backoff": {"duration": "2s", "factor": 2, "maxDuration": "1m"}},
    )
    run = run_local(write(tmp_path, pipeline([flaky])), tmp_path / "run", "--backoff-scale", "0.01")

    assert run.code == 0, run.out
    assert counter.read_text() == "3"
    assert run.step("flaky")["phase"] == "Succeeded"
    assert run.step("flaky")["attempts"] == 3
    assert "retrying in" in run.out
    log = (tmp_path / "run" / "steps" / "flaky" / "step.log").read_text()
    assert "attempt 1\n" in log and "attempt 3\n" in log  # every attempt's output is kept


def test_retries_stop_at_the_limit(tmp_path: Path) -> None:
    failing = step("failing", "import sys; sys.exit(1)", retry={"limit": 1})
    run = run_local(write(tmp_path, pipeline([failing])), tmp_path / "run")
    assert run.code == 1
    assert run.step("failing")["attempts"] == 2
    assert run.step("failing")["phase"] == "Failed"


def test_a_step_over_its_timeout_is_killed_with_its_children(tmp_path: Path) -> None:
    main_pid, child_pid = tmp_path / "main.pid", tmp_path / "child.pid"
    slow = {
        "name": "slow",
        "command": ["sh", "-c", f"sleep 300 & echo $! > {child_pid}; echo $$ > {main_pid}; wait"],
        "timeout": "1s",
    }
    run = run_local(write(tmp_path, pipeline([slow])), tmp_path / "run")

    assert run.code == 1
    assert run.step("slow")["phase"] == "Failed"
    assert "timed out" in run.step("slow")["message"]
    pids = [int(main_pid.read_text()), int(child_pid.read_text())]
    assert wait_until_gone(pids) == []


def test_a_failure_skips_dependents_and_names_the_step_and_its_log(tmp_path: Path) -> None:
    steps = [
        step("extract", "import sys; print('boom: no data', file=sys.stderr); sys.exit(3)"),
        step("train", "pass", dependsOn=["extract"]),
        step("report", "pass", dependsOn=["train"]),
    ]
    run = run_local(write(tmp_path, pipeline(steps)), tmp_path / "run")

    assert run.code == 1
    assert run.step("extract")["phase"] == "Failed"
    assert run.step("extract")["exitCode"] == 3
    assert [run.step(s)["phase"] for s in ("train", "report")] == ["Skipped", "Skipped"]
    log = tmp_path / "run" / "steps" / "extract" / "step.log"
    assert "step extract Failed: exit code 3" in run.out
    assert f"log of extract: {log}" in run.out
    assert "boom: no data" in log.read_text()
    assert "boom: no data" in run.out  # the end of the log is shown


def test_no_step_starts_after_a_failure(tmp_path: Path) -> None:
    # As Argo's DAG (failFast): "later" waits for a slot that "fails" frees by failing.
    steps = [step("fails", "import sys; sys.exit(1)"), step("later", "pass")]
    run = run_local(write(tmp_path, pipeline(steps)), tmp_path / "run", "--parallel", "1")
    assert run.step("later")["phase"] == "Skipped"
    assert "fails failed" in run.step("later")["message"]


# Each step records its start, waits for the other step's start (at most argv[4] seconds),
# then records its end: two steps that run at the same time overlap, whatever the timing.
RENDEZVOUS = """
import pathlib, sys, time
here, other, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
here.write_text(repr(time.time()))
deadline = time.monotonic() + float(sys.argv[4])
while not other.exists() and time.monotonic() < deadline:
    time.sleep(0.02)
out.write_text(repr(time.time()))
"""


def _pair(tmp_path: Path, wait: float) -> list[dict[str, object]]:
    def one(name: str, other: str) -> dict[str, object]:
        files = [tmp_path / f"{name}.start", tmp_path / f"{other}.start", tmp_path / f"{name}.end"]
        return step(name, RENDEZVOUS, args=[*map(str, files), str(wait)])

    return [one("left", "right"), one("right", "left")]


def _interval(tmp_path: Path, name: str) -> tuple[float, float]:
    return (
        float((tmp_path / f"{name}.start").read_text()),
        float((tmp_path / f"{name}.end").read_text()),
    )


def test_independent_steps_overlap_under_parallel_2(tmp_path: Path) -> None:
    run = run_local(
        write(tmp_path, pipeline(_pair(tmp_path, 60))), tmp_path / "run", "--parallel", "2"
    )
    assert run.code == 0, run.out
    (start_l, end_l), (start_r, end_r) = _interval(tmp_path, "left"), _interval(tmp_path, "right")
    assert max(start_l, start_r) < min(end_l, end_r)


def test_parallel_1_runs_one_step_at_a_time(tmp_path: Path) -> None:
    # The first step waits 3 s for the other in vain: time enough for a runner that started
    # both to have started the other.
    run = run_local(
        write(tmp_path, pipeline(_pair(tmp_path, 3))), tmp_path / "run", "--parallel", "1"
    )
    assert run.code == 0, run.out
    (start_l, end_l), (start_r, end_r) = _interval(tmp_path, "left"), _interval(tmp_path, "right")
    assert end_l <= start_r or end_r <= start_l


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_an_interrupted_run_leaves_no_process_behind(tmp_path: Path, sig: signal.Signals) -> None:
    pid_files: list[Path] = []
    steps: list[dict[str, object]] = []
    for name in ("one", "two"):
        main, child = tmp_path / f"{name}.pid", tmp_path / f"{name}-child.pid"
        pid_files += [main, child]
        # The step ignores SIGTERM: the runner has to escalate to SIGKILL.
        script = f"trap '' TERM; sleep 300 & echo $! > {child}; echo $$ > {main}; wait"
        steps.append({"name": name, "command": ["sh", "-c", script]})
    steps.append(step("after", "pass", dependsOn=["one", "two"]))
    file = write(tmp_path, pipeline(steps))

    command = runner_command(file, tmp_path / "run", "--parallel", "2")
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as p:
        try:
            assert wait_for_files(pid_files, 120), "the steps did not start"
            p.send_signal(sig)
            out, _ = p.communicate(timeout=60)
        finally:
            p.kill()
    pids = [int(f.read_text()) for f in pid_files]

    assert p.returncode == 130, out
    assert wait_until_gone(pids) == []
    assert "Interrupted" in out
    assert f"run interrupted by {sig.name}" in out


def test_an_invalid_pipeline_prints_its_problems(tmp_path: Path) -> None:
    doc = pipeline([step("train", "pass", dependsOn=["extrct"]), step("extract", "pass")])
    file = write(tmp_path, doc)
    run = run_local(file, tmp_path / "run")
    assert run.code == 1
    assert f'{file}: spec.steps[0].dependsOn[0]: unknown step "extrct"' in run.err
    assert not (tmp_path / "run" / "run.json").exists()


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    file = write(tmp_path, pipeline([step("a", "pass")], parameters=[{"name": "lr", "value": "1"}]))
    unknown = run_local(file, tmp_path / "run", "-p", "rate=2")
    assert unknown.code == 2
    assert "-p rate: unknown pipeline parameter (known: lr)" in unknown.err
    used = tmp_path / "used"
    used.mkdir()
    (used / "something").write_text("")
    assert run_local(file, used).code == 2


def test_a_command_that_cannot_start_is_an_error(tmp_path: Path) -> None:
    doc = pipeline([{"name": "missing", "command": ["no-such-command-here"]}])
    run = run_local(write(tmp_path, doc), tmp_path / "run")
    assert run.code == 1
    assert run.step("missing")["phase"] == "Error"
    assert "could not start" in run.step("missing")["message"]


def test_a_missing_output_fails_the_step(tmp_path: Path) -> None:
    doc = pipeline(
        [step("lazy", "pass", outputs={"artifacts": [{"name": "model", "path": "/out/model"}]})]
    )
    run = run_local(write(tmp_path, doc), tmp_path / "run")
    assert run.code == 1
    assert 'output artifact "model": /out/model was not written' in run.step("lazy")["message"]


def test_placement_and_run_labels_have_no_local_meaning(tmp_path: Path) -> None:
    placement = {
        "nodeSelector": {"nvidia.com/gpu.present": "true"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "priorityClassName": "training",
    }
    doc = pipeline(
        [step("train", "print('trained')", affinity={}), step("score", "pass", nodeSelector={})],
        defaults=placement,
        runLabels={"cost-center": "ml-42"},
        imagePullSecrets=[{"name": "registry"}],
    )
    run = run_local(write(tmp_path, doc), tmp_path / "run")
    assert run.code == 0, run.err
    assert [(s["name"], s["phase"]) for s in run.summary["steps"]] == [
        ("train", "Succeeded"),
        ("score", "Succeeded"),
    ]


def test_max_concurrent_runs_has_no_local_meaning_and_is_refused_with_a_schedule(
    tmp_path: Path,
) -> None:
    doc = pipeline([step("train", "print('trained')")], maxConcurrentRuns=1)
    run = run_local(write(tmp_path, doc), tmp_path / "run")
    assert run.code == 0, run.err
    assert [(s["name"], s["phase"]) for s in run.summary["steps"]] == [("train", "Succeeded")]

    doc["spec"]["schedule"] = {"cron": "@daily"}
    file = write(tmp_path, doc)
    refused = run_local(file, tmp_path / "refused")
    assert refused.code == 1
    assert refused.err.splitlines() == [
        f"{file}: spec.maxConcurrentRuns: a scheduled pipeline's runs are limited by "
        "spec.schedule.concurrencyPolicy, not spec.maxConcurrentRuns"
    ]


def test_security_contexts_have_no_local_meaning(tmp_path: Path) -> None:
    # The default (user 65532) and a step's own settings: steps run as the user running them.
    own = {"runAsUser": 1234, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}
    doc = pipeline(
        [
            step("train", "import os, sys; print(os.getuid(), file=open(sys.argv[1], 'w'))"),
            step("score", "pass", securityContext=own),
        ],
        podSecurityContext={"runAsUser": 4321, "fsGroup": 2000},
    )
    doc["spec"]["steps"][0]["args"] = [str(tmp_path / "uid")]
    run = run_local(write(tmp_path, doc), tmp_path / "run")
    assert run.code == 0, run.err
    assert [(s["name"], s["phase"]) for s in run.summary["steps"]] == [
        ("train", "Succeeded"),
        ("score", "Succeeded"),
    ]
    assert (tmp_path / "uid").read_text() == f"{os.getuid()}\n"


def test_a_security_context_kubernetes_refuses_is_refused_locally(tmp_path: Path) -> None:
    doc = pipeline([step("train", "pass", securityContext={"runAsUser": 0})])
    file = write(tmp_path, doc)
    run = run_local(file, tmp_path / "run")
    assert run.code == 1
    assert run.err.splitlines() == [
        f"{file}: spec.steps[0].securityContext.runAsUser: 0 (root) with runAsNonRoot, which "
        "refuses to start the container; set a non-zero user, or runAsNonRoot: false"
    ]


def test_a_misused_toleration_is_refused_as_the_operator_refuses_it(tmp_path: Path) -> None:
    toleration = {"key": "gpu", "operator": "Exists", "value": "yes"}
    doc = pipeline([step("train", "pass", tolerations=[toleration])])
    file = write(tmp_path, doc)
    run = run_local(file, tmp_path / "run")
    assert run.code == 1
    assert run.err.splitlines() == [
        f"{file}: spec.steps[0].tolerations[0].value: must be empty with operator Exists "
        "(which tolerates any value); remove it, or use operator Equal"
    ]
