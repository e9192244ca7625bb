"""`spec.parallelism` and `spec.timeout` in the local runner: at most that many steps at once,
and a run stopped, its steps killed, once it has run for its timeout."""

from __future__ import annotations

from pathlib import Path

from tests.local.helpers import pipeline, run_local, step, wait_until_gone, write

# A step that records when it ran, and waits (at most argv[3] seconds) for another step to
# start: steps that may overlap then do.
RENDEZVOUS = """
import pathlib, sys, time
here, name = pathlib.Path(sys.argv[1]), sys.argv[2]
(here / f"{name}.start").write_text(repr(time.time()))
deadline = time.monotonic() + float(sys.argv[3])
while time.monotonic() < deadline and len(list(here.glob("*.start"))) < 2:
    time.sleep(0.02)
(here / f"{name}.end").write_text(repr(time.time()))
"""


def _interval(directory: Path, name: str) -> tuple[float, float]:
    return (
        float((directory / f"{name}.start").read_text()),
        float((directory / f"{name}.end").read_text()),
    )


def test_parallelism_1_runs_independent_steps_one_after_the_other(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    # Each waits 3 s for the other in vain: time enough for a runner that started both to have
    # started the other. --parallel 4 would allow both; spec.parallelism lowers it.
    steps = [step(name, RENDEZVOUS, args=[str(marks), name, "3"]) for name in ("a", "b")]
    run = run_local(
        write(tmp_path, pipeline(steps, parallelism=1)), tmp_path / "run", "--parallel", "4"
    )

    assert run.code == 0, run.out
    first, second = sorted(_interval(marks, name) for name in "ab")
    assert first[1] <= second[0]


# Writes its pid, then sleeps far longer than the run may last.
SLEEPER = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(600)"


def test_the_timeout_stops_the_run_and_still_runs_the_exit_step(tmp_path: Path) -> None:
    pid_file, status_file = tmp_path / "pid", tmp_path / "status"
    steps = [
        step("sleep", SLEEPER, args=[str(pid_file)]),
        step("after", "pass", dependsOn=["sleep"]),
    ]
    on_exit = step("x", "import sys; open(sys.argv[1], 'w').write(sys.argv[2])")
    del on_exit["name"]
    on_exit["args"] = [str(status_file), "{{pipeline.status}}"]
    doc = pipeline(steps, timeout="1s", onExit=on_exit)
    run = run_local(write(tmp_path, doc), tmp_path / "run")

    assert run.code == 1, run.out
    assert run.summary["exitCode"] == 1
    assert run.summary["message"] == "the run exceeded spec.timeout of 1s"
    sleeper = run.step("sleep")
    assert (sleeper["phase"], sleeper["message"]) == (
        "Failed",
        "stopped: the run exceeded spec.timeout of 1s (ended on SIGTERM)",
    )
    after = run.step("after")
    assert (after["phase"], after["message"]) == (
        "Skipped",
        "not started: the run exceeded spec.timeout of 1s",
    )
    assert run.step("on-exit")["phase"] == "Succeeded"
    assert status_file.read_text() == "Failed"
    assert wait_until_gone([int(pid_file.read_text())]) == []
    assert "the run exceeded spec.timeout of 1s: stopping every running step" in run.out
    assert "run failed after" in run.out
