"""The runner's pure parts: retry decisions, paths, placeholder resolution, parameters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlpipeline_operator.api.models import MLPipeline, Retry
from mlpipeline_operator.core import duration_seconds
from mlpipeline_operator.local import retry
from mlpipeline_operator.local.plan import (
    OverrideError,
    RunLayout,
    build_plan,
    file_name,
    input_parameter_values,
    pipeline_values,
    resolve,
)
from mlpipeline_operator.local.report import tail
from mlpipeline_operator.local.retry import Outcome, decide
from mlpipeline_operator.placeholders import ALLOWED_FORMS
from tests.local.helpers import pipeline, step


def model(doc: dict[str, object]) -> MLPipeline:
    return MLPipeline.model_validate(doc)


def retry_policy(**fields: object) -> Retry:
    return Retry.model_validate(fields)


def after(
    policy: Retry | None,
    attempts: int,
    outcome: Outcome = Outcome.FAILED,
    *,
    started: float = 0.0,
    finished: float = 1.0,
    scale: float = 1.0,
) -> retry.RetryDecision:
    return decide(
        policy,
        attempts=attempts,
        outcome=outcome,
        message="exit code 1",
        first_started=started,
        last_finished=finished,
        now=finished,
        backoff_scale=scale,
    )


def test_seconds_reads_go_durations() -> None:
    assert duration_seconds("1h30m") == 5400
    assert duration_seconds("500ms") == 0.5
    assert duration_seconds("1m0.5s") == 60.5


def test_limit_counts_retries_after_the_first_attempt() -> None:
    policy = retry_policy(limit=2)
    assert after(policy, 1).retry
    assert after(policy, 2).retry
    decision = after(policy, 3)
    assert not decision.retry
    assert "no more retries" in decision.reason


def test_no_policy_means_one_attempt() -> None:
    assert not after(None, 1).retry
    assert not after(retry_policy(limit=0), 1).retry


@pytest.mark.parametrize(
    ("policy", "failed", "error"),
    [
        ("Always", True, True),
        (None, True, False),  # Argo's default: OnFailure
        ("OnFailure", True, False),
        ("OnError", False, True),
        ("OnTransientError", False, False),
    ],
)
def test_policies_choose_what_is_retried(policy: str | None, failed: bool, error: bool) -> None:
    rule = retry_policy(limit=3, policy=policy)
    assert after(rule, 1, Outcome.FAILED).retry is failed
    assert after(rule, 1, Outcome.ERROR).retry is error


def test_transient_pattern_makes_a_failure_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSIENT_ERROR_PATTERN", "exit code 1")
    assert after(retry_policy(limit=1, policy="OnTransientError"), 1).retry


def test_backoff_grows_by_factor_and_scales() -> None:
    rule = retry_policy(limit=5, backoff={"duration": "10s", "factor": 2})
    assert [after(rule, n).wait for n in (1, 2, 3)] == [10, 20, 40]
    assert after(rule, 3, scale=0.01).wait == pytest.approx(0.4)


def test_max_duration_stops_retries() -> None:
    rule = retry_policy(limit=5, backoff={"duration": "10s", "factor": 2, "maxDuration": "1m"})
    assert after(rule, 1, started=0, finished=5).retry  # next try at 15 s
    late = after(rule, 3, started=0, finished=30)  # would wait 40 s: past 60 s
    assert not late.retry
    assert "maxDuration" in late.reason
    assert not after(rule, 1, started=0, finished=61).retry
    assert retry.attempt_deadline(rule, 100.0) == 160.0
    # The scale shortens the waits, not maxDuration: the same retry now fits.
    assert after(rule, 3, started=0, finished=30, scale=0.01).retry


def test_container_paths_stay_inside_the_step_root(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path)
    root = tmp_path / "steps" / "train" / "root"
    assert layout.container_path("train", "/data/raw.csv") == root / "data" / "raw.csv"
    assert layout.container_path("train", "/data/../../etc/passwd") == root / "etc" / "passwd"
    assert layout.container_path("train", "/") == root


def test_plan_takes_defaults_and_dependencies() -> None:
    doc = pipeline(
        [
            step("a", "", outputs={"parameters": [{"name": "x", "path": "/tmp/x"}]}),
            step(
                "b",
                "",
                dependsOn=["a"],
                timeout="90s",
                retry={"limit": 4},
                inputs={"parameters": [{"name": "x", "from": "a.x"}]},
            ),
            step("c", "", inputs={"parameters": [{"name": "x", "from": "a.x"}]}),
        ],
        defaults={"retry": {"limit": 1}, "timeout": "1m30.5s"},
    )
    a, b, c = build_plan(model(doc))
    assert (a.dependencies, b.dependencies, c.dependencies) == ((), ("a",), ("a",))
    assert (a.max_attempts, b.max_attempts) == (2, 5)
    assert (a.timeout_seconds, b.timeout_seconds) == (91, 90)  # as activeDeadlineSeconds


def test_placeholders_resolve_to_values_and_local_paths(tmp_path: Path) -> None:
    doc = pipeline(
        [
            {
                "name": "train",
                "command": ["train", "--lr={{pipeline.parameters.lr}}"],
                "args": [
                    "{{inputs.artifacts.raw.path}}",
                    "{{outputs.artifacts.model.path}}",
                    "{{outputs.parameters.run_id.path}}",
                    "{{inputs.parameters.k}}",
                ],
                "env": [
                    {"name": "OUT", "value": "{{outputs.artifacts.model.path}}"},
                    {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                ],
                "inputs": {
                    "parameters": [{"name": "k", "value": "k-{{pipeline.parameters.lr}}"}],
                    "artifacts": [{"name": "raw", "from": "extract.raw", "path": "/in/raw"}],
                },
                "outputs": {
                    "artifacts": [{"name": "model", "path": "/out/model"}],
                    "parameters": [{"name": "run_id", "path": "/tmp/run_id"}],
                },
            },
            {
                "name": "extract",
                "command": ["extract"],
                "outputs": {"artifacts": [{"name": "raw", "path": "/data/raw"}]},
            },
        ],
        parameters=[{"name": "lr", "value": "0.1"}],
    )
    pipe = model(doc)
    values = pipeline_values(pipe, {"lr": "0.5"})
    train = pipe.spec.steps[0]
    inputs = input_parameter_values(train, values, {})
    resolved = resolve(train, RunLayout(tmp_path), values, inputs)
    root = tmp_path / "steps" / "train" / "root"
    assert resolved.argv == [
        "train",
        "--lr=0.5",
        str(root / "in" / "raw"),
        str(root / "out" / "model"),
        str(root / "tmp" / "run_id"),
        "k-0.5",
    ]
    assert resolved.env == {"OUT": str(root / "out" / "model")}
    assert resolved.external_env == ["TOKEN"]


def test_unknown_parameter_override_is_refused() -> None:
    doc = pipeline([step("a", "")], parameters=[{"name": "lr", "value": "0.1"}])
    with pytest.raises(OverrideError) as caught:
        pipeline_values(model(doc), {"learning_rate": "1"})
    assert str(caught.value) == "-p learning_rate: unknown pipeline parameter (known: lr)"


def test_an_override_may_use_another_parameter() -> None:
    parameters = [{"name": "lr", "value": "0.1"}, {"name": "tag", "value": "x"}]
    doc = pipeline([step("a", "")], parameters=parameters)
    values = pipeline_values(model(doc), {"tag": "lr-{{pipeline.parameters.lr}}"})
    assert values == {"lr": "0.1", "tag": "lr-0.1"}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{{ lr", 'has a "{{" without its closing "}}"'),
        (
            "{{pipeline.parameters.rate}}",
            'placeholder "{{pipeline.parameters.rate}}": unknown pipeline parameter "rate"; '
            'known: "lr"',
        ),
        (
            "{{inputs.parameters.lr}}",
            '"{{inputs.parameters.lr}}" cannot be used here; only {{pipeline.parameters.NAME}} can',
        ),
        ("{{lr}}", f'"{{{{lr}}}}" is not a known placeholder; use one of {ALLOWED_FORMS}'),
    ],
)
def test_an_override_with_a_bad_placeholder_is_refused(value: str, message: str) -> None:
    doc = pipeline([step("a", "")], parameters=[{"name": "lr", "value": "0.1"}])
    with pytest.raises(OverrideError) as caught:
        pipeline_values(model(doc), {"lr": value})
    assert str(caught.value) == f'-p lr="{value}": {message}'


def test_the_runner_does_not_import_kopf() -> None:
    code = (
        "import sys, mlpipeline_operator.local.command, mlpipeline_operator.local.runner\n"
        "assert 'kopf' not in sys.modules, 'kopf imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("fraud-detection", "fraud-detection"),
        ("v1.2_nightly", "v1.2_nightly"),
        ("../../x", "x"),
        ("a/b\\c d", "a-b-c-d"),
        ("..", "pipeline"),
        (".hidden", "hidden"),
    ],
)
def test_a_pipeline_name_becomes_one_safe_file_name(name: str, expected: str) -> None:
    assert file_name(name) == expected


def test_a_step_directory_is_never_a_path(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path)
    assert layout.step_dir("train") == tmp_path / "steps" / "train"
    with pytest.raises(ValueError, match=r'step name "\.\./x" cannot be a directory name'):
        layout.step_dir("../x")


def test_the_log_tail_reads_only_the_end_of_the_log(tmp_path: Path) -> None:
    log = tmp_path / "step.log"
    log.write_bytes(b"".join(b"line %03d\n" % n for n in range(1000)))  # 9 bytes a line
    # The last 30 bytes hold the last 3 lines and part of one more, which is left out.
    assert tail(log, lines=15, max_bytes=30) == ["line 997", "line 998", "line 999"]
    assert tail(log, lines=2, max_bytes=1000) == ["line 998", "line 999"]
    # Exactly at a line's start: that line is whole.
    assert tail(log, lines=15, max_bytes=27) == ["line 997", "line 998", "line 999"]


def test_the_log_tail_cuts_long_lines_and_reads_any_bytes(tmp_path: Path) -> None:
    log = tmp_path / "step.log"
    log.write_bytes(b"x" * 50 + b"\n\xff\x00end\n")
    assert tail(log, width=10) == ["xxxxxxxxxx... (40 more characters)", "\ufffd\x00end"]
    assert tail(tmp_path / "missing.log") == []
