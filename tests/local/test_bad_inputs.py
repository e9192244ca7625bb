"""Every bad input of `mlpipeline run` and everything a step can leave behind is a message and an
exit code, never a traceback; run.json is always written once the run directory exists."""

from __future__ import annotations

import asyncio
import io
import json
import signal
import socket
import subprocess
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from mlpipeline_operator import cli
from mlpipeline_operator.local.command import DEFAULT_RUNS_DIR, new_run_dir
from mlpipeline_operator.local.process import run_attempt
from tests.local.helpers import (
    pipeline,
    run_local,
    run_process,
    runner_command,
    step,
    wait_for_files,
    wait_until_gone,
    write,
)

MAKE = "import os, pathlib, sys\np = pathlib.Path(sys.argv[1])\n"


@pytest.mark.parametrize(
    ("script", "problem"),
    [
        ("pass", "was not written"),
        ("p.write_bytes(b'\\xff\\xfe')", "is not UTF-8 text (byte 0xff at 0)"),
        ("p.write_bytes(b'ok\\x00')", "holds a NUL byte (at byte 2); an output parameter is text"),
        ("p.mkdir()", "is a directory, not a file"),
        ("os.mkfifo(p)", "is a named pipe, not a file"),
        (
            "p.symlink_to('/nowhere/at/all')",
            'is a symbolic link to "/nowhere/at/all", which does not exist',
        ),
        (
            "p.write_text('x' * (256 * 1024 + 1))",
            "holds more than 256 KiB; pass large data as an artifact",
        ),
    ],
    ids=["missing", "binary", "nul", "directory", "fifo", "dangling-link", "too-large"],
)
def test_a_bad_output_parameter_is_the_step_s_error(
    tmp_path: Path, script: str, problem: str
) -> None:
    make = step(
        "make",
        MAKE + script,
        args=["{{outputs.parameters.value.path}}"],
        outputs={"parameters": [{"name": "value", "path": "/tmp/value"}]},
    )
    use = step("use", "pass", inputs={"parameters": [{"name": "v", "from": "make.value"}]})
    run = run_local(write(tmp_path, pipeline([make, use])), tmp_path / "run")

    local = tmp_path / "run" / "steps" / "make" / "root" / "tmp" / "value"
    message = f'output parameter "value": /tmp/value {problem} ({local})'
    assert run.code == 1, run.out + run.err
    assert (run.step("make")["phase"], run.step("make")["message"]) == ("Error", message)
    assert run.step("use")["phase"] == "Skipped"
    assert "run failed after " in run.out and f"step make Error: {message}" in run.out


@pytest.mark.parametrize(
    ("script", "problem"),
    [
        ("pass", "/out/model was not written"),
        (
            "p.symlink_to('/nowhere/at/all')",
            '/out/model is a symbolic link to "/nowhere/at/all", which does not exist',
        ),
        (
            "p.mkdir(); (p / 'w').write_text('1'); (p / 'link').symlink_to('/nowhere/at/all')",
            '/out/model/link is a symbolic link to "/nowhere/at/all", which does not exist',
        ),
        ("os.mkfifo(p)", "/out/model is a named pipe, not a file or a directory"),
        (
            "p.mkdir(); os.mkfifo(p / 'pipe')",
            "/out/model/pipe is a named pipe, not a file or a directory",
        ),
        (
            "(p / 'sub').mkdir(parents=True); (p / 'sub' / 'loop').symlink_to('..')",
            '/out/model/sub/loop is a symbolic link to "..", a directory that contains it (a loop)',
        ),
    ],
    ids=["missing", "dangling-link", "dangling-link-inside", "fifo", "fifo-inside", "loop"],
)
def test_a_bad_output_artifact_is_the_step_s_error(
    tmp_path: Path, script: str, problem: str
) -> None:
    make = step(
        "make",
        MAKE + script,
        args=["{{outputs.artifacts.model.path}}"],
        outputs={"artifacts": [{"name": "model", "path": "/out/model"}]},
    )
    use = step(
        "use", "pass", inputs={"artifacts": [{"name": "m", "from": "make.model", "path": "/m"}]}
    )
    run = run_local(write(tmp_path, pipeline([make, use])), tmp_path / "run")

    local = tmp_path / "run" / "steps" / "make" / "root" / "out" / "model"
    assert run.code == 1, run.out + run.err
    assert run.step("make")["phase"] == "Error"
    assert run.step("make")["message"] == f'output artifact "model": {problem} ({local})'
    assert run.step("use")["phase"] == "Skipped"


def test_a_symbolic_link_to_a_file_is_followed(tmp_path: Path) -> None:
    make = step(
        "make",
        MAKE + "p.mkdir(); (p / 'real').write_text('w'); (p / 'alias').symlink_to('real')",
        args=["{{outputs.artifacts.model.path}}"],
        outputs={"artifacts": [{"name": "model", "path": "/out/model"}]},
    )
    use = step(
        "use", "pass", inputs={"artifacts": [{"name": "m", "from": "make.model", "path": "/m"}]}
    )
    run = run_local(write(tmp_path, pipeline([make, use])), tmp_path / "run")
    assert run.code == 0, run.out + run.err
    assert (tmp_path / "run" / "steps" / "use" / "root" / "m" / "alias").read_text() == "w"


def test_outputs_that_cannot_be_placed_are_the_step_s_error(tmp_path: Path) -> None:
    # The input artifact is a file where the output's directory would have to be.
    make = step(
        "make",
        MAKE + "p.write_text('w')",
        args=["{{outputs.artifacts.model.path}}"],
        outputs={"artifacts": [{"name": "model", "path": "/out/model"}]},
    )
    use = step(
        "use",
        "pass",
        inputs={"artifacts": [{"name": "m", "from": "make.model", "path": "/data"}]},
        outputs={"artifacts": [{"name": "report", "path": "/data/report.txt"}]},
    )
    run = run_local(write(tmp_path, pipeline([make, use])), tmp_path / "run")
    assert run.code == 1, run.out + run.err
    assert (run.step("use")["phase"], run.step("use")["message"]) == (
        "Error",
        'output artifact "report": cannot make the directory of /data/report.txt: File exists',
    )


def test_a_nul_byte_in_a_command_line_is_an_error_before_the_start(tmp_path: Path) -> None:
    ended = asyncio.run(
        run_attempt(
            ["python", "-c", "pass", "a\0b"],
            cwd=tmp_path,
            env={},
            log=tmp_path / "step.log",
            timeout=None,
        )
    )
    assert ended.start_error == "an argument or environment variable holds a NUL byte"


def test_the_summary_shows_only_the_end_of_a_failed_step_s_log(tmp_path: Path) -> None:
    noisy = step("noisy", "import sys\nfor n in range(100): print(f'line {n}')\nsys.exit(1)")
    run = run_local(write(tmp_path, pipeline([noisy])), tmp_path / "run")
    assert run.code == 1
    shown = run.out.split("last lines of noisy's log:\n", 1)[1].splitlines()
    assert shown[:-1] == [f"  | line {n}" for n in range(86, 100)]
    assert shown[-1].startswith("  | === ") and shown[-1].endswith(
        " attempt 1 Failed: exit code 1 ==="
    )


# --- the command line and the run directory ------------------------------------------------


def test_a_run_directory_that_cannot_be_made_is_a_usage_error(tmp_path: Path) -> None:
    file = write(tmp_path, pipeline([step("a", "pass")]))
    regular = tmp_path / "regular"
    regular.write_text("")
    under_a_file = run_local(file, regular / "run")
    assert (under_a_file.code, under_a_file.err) == (
        2,
        f"mlpipeline run: --run-dir {regular / 'run'}: cannot be created: Not a directory\n",
    )
    a_file = run_local(file, regular)
    assert (a_file.code, a_file.err) == (
        2,
        f"mlpipeline run: --run-dir {regular}: exists and is not an empty directory\n",
    )


def test_a_default_run_directory_that_cannot_be_made_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = write(tmp_path, pipeline([step("a", "pass")]))
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".mlpipeline").write_text("")
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        code = cli.main(["run", str(file)])
    assert (code, err.getvalue()) == (
        2,
        "mlpipeline run: cannot make the directory of runs .mlpipeline/runs: Not a directory "
        "(or give --run-dir)\n",
    )


def test_a_pipeline_name_never_makes_a_path_outside_the_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd = tmp_path / "a" / "b"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    made = new_run_dir(None, "../../x")
    assert made.parent == DEFAULT_RUNS_DIR and made.name.startswith("x-")
    assert made.resolve().is_relative_to(cwd / DEFAULT_RUNS_DIR)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_a_suspended_pipeline_runs_only_with_ignore_suspend(tmp_path: Path) -> None:
    file = write(tmp_path, pipeline([step("a", "print('ran')")], suspend=True))
    refused = run_local(file, tmp_path / "refused")
    assert (refused.code, refused.err) == (
        2,
        f"mlpipeline run: {file}: spec.suspend is true: no run is started "
        "(--ignore-suspend runs it anyway)\n",
    )
    assert not (tmp_path / "refused").exists()
    ran = run_local(file, tmp_path / "ran", "--ignore-suspend")
    assert ran.code == 0, ran.err
    assert "spec.suspend ignored (--ignore-suspend): the pipeline runs" in ran.out
    assert ran.summary["phase"] == "Succeeded"


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_backoff_scale_must_be_a_finite_number(tmp_path: Path, value: str) -> None:
    file = write(tmp_path, pipeline([step("a", "pass")]))
    run = run_local(file, tmp_path / "run", "--backoff-scale", value)
    assert run.code == 2
    assert run.err.splitlines()[-1] == (
        f'mlpipeline run: error: argument --backoff-scale: "{value}": expected a finite number >= 0'
    )
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("lr={{", 'has a "{{" without its closing "}}"'),
        (
            "lr={{ outputs.x }}",
            '"{{ outputs.x }}" is not a known placeholder; use one of '
            "{{pipeline.parameters.NAME}}, {{inputs.parameters.NAME}}, "
            "{{inputs.artifacts.NAME.path}}, {{outputs.artifacts.NAME.path}}, "
            "{{outputs.parameters.NAME.path}}, {{volumes.NAME.path}}, {{promotion.decision}}, "
            "{{promotion.version}}, {{promotion.alias}}, {{pipeline.scheduledTime}}, "
            "{{pipeline.runName}}, {{pipeline.generation}}, and in spec.onExit "
            "{{pipeline.status}} and {{pipeline.failures}}",
        ),
    ],
)
def test_a_bad_placeholder_in_an_override_is_a_usage_error(
    tmp_path: Path, override: str, message: str
) -> None:
    file = write(tmp_path, pipeline([step("a", "pass")], parameters=[{"name": "lr", "value": "1"}]))
    run = run_local(file, tmp_path / "run", "-p", override)
    name, _, value = override.partition("=")
    assert (run.code, run.err) == (2, f'mlpipeline run: -p {name}="{value}": {message}\n')
    assert not (tmp_path / "run").exists()


# --- run.json, whatever happens ---------------------------------------------------------------


def test_run_json_says_why_a_run_failed_before_its_steps(tmp_path: Path) -> None:
    regular = tmp_path / "regular"
    regular.write_text("")
    uri = f"sqlite:///{regular}/mlflow.db"
    file = write(tmp_path, pipeline([step("a", "pass")]))
    # In a process of its own: mlflow, once imported, stays in this one.
    run = run_process(file, tmp_path / "run", "--mlflow-uri", uri)

    message = f"MLflow store {uri}: cannot make {regular}/mlartifacts: Not a directory"
    assert (run.code, run.err) == (1, f"mlpipeline run: {message}\n")
    summary = run.summary
    assert (summary["phase"], summary["exitCode"], summary["message"]) == ("Failed", 1, message)
    assert [(s["name"], s["phase"]) for s in summary["steps"]] == [("a", "Pending")]


def test_run_json_says_a_run_was_interrupted_before_its_steps(tmp_path: Path) -> None:
    file = write(tmp_path, pipeline([step("a", "pass")]))
    # A tracking server that never answers: the runner waits for it before any step starts.
    with socket.create_server(("127.0.0.1", 0)) as server:
        uri = f"http://127.0.0.1:{server.getsockname()[1]}"
        command = runner_command(file, tmp_path / "run", "--mlflow-uri", uri)
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ) as p:
            try:
                server.settimeout(300)  # not to wait for ever if the runner never asks
                connection, _ = server.accept()
                with connection:
                    p.send_signal(signal.SIGTERM)
                    _, err = p.communicate(timeout=60)
            finally:
                p.kill()

    assert p.returncode == 130, err
    assert err.splitlines()[-1] == "mlpipeline run: interrupted by SIGTERM"
    summary = json.loads((tmp_path / "run" / "run.json").read_text())
    assert (summary["phase"], summary["exitCode"], summary["message"]) == (
        "Interrupted",
        130,
        "interrupted by SIGTERM",
    )
    assert [(s["name"], s["phase"]) for s in summary["steps"]] == [("a", "Pending")]


def test_a_second_sigint_kills_the_steps_at_once(tmp_path: Path) -> None:
    started, child = tmp_path / "started", tmp_path / "child"
    # The step ignores SIGTERM: only SIGKILL ends it, after 5 s or at the second Ctrl-C.
    script = f"trap '' TERM; sleep 300 & echo $! > {child}; echo $$ > {started}; wait"
    file = write(tmp_path, pipeline([{"name": "stubborn", "command": ["sh", "-c", script]}]))

    command = runner_command(file, tmp_path / "run")
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as p:
        assert p.stdout is not None
        try:
            assert wait_for_files([started, child], 120), "the step did not start"
            p.send_signal(signal.SIGINT)
            before = []
            for line in p.stdout:  # until the runner says it took the first one
                before.append(line)
                if "SIGINT: stopping every running step" in line:
                    break
            p.send_signal(signal.SIGINT)
            out, _ = p.communicate(timeout=60)
        finally:
            p.kill()
    pids = [int(started.read_text()), int(child.read_text())]
    out = "".join(before) + out

    assert p.returncode == 130, out
    assert "note: SIGINT again: killing every running step at once" in out
    assert wait_until_gone(pids) == []
    summary = json.loads((tmp_path / "run" / "run.json").read_text())
    assert (summary["phase"], summary["exitCode"], summary["message"]) == (
        "Interrupted",
        130,
        "interrupted by SIGINT; a second SIGINT killed the steps still running at once",
    )
    assert [(s["name"], s["phase"], s["message"]) for s in summary["steps"]] == [
        ("stubborn", "Interrupted", "stopped by SIGINT: killed at once (SIGKILL)")
    ]
