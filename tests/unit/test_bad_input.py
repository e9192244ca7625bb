"""Bad input to `mlpipeline validate`, `render`, `run` and `promote`: one line each, the exact
message at its field path or file:line:col, and the documented exit code; never a traceback."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlpipeline_operator import cli, yamlio
from mlpipeline_operator.messages import quoted
from mlpipeline_operator.validation import validate_document
from tests.unit.pipelines import pipeline

Capture = pytest.CaptureFixture[str]


def run(capsys: Capture, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def problems(doc: dict[str, Any]) -> list[str]:
    parsed, found = validate_document(doc)
    assert parsed is None or not found
    return [str(p) for p in found]


# --- YAML -----------------------------------------------------------------------------------------

VALID = yaml.safe_dump(pipeline(), sort_keys=False)

YAML_CASES = [
    (
        "duplicate key",
        VALID.replace("spec:\n", "spec:\n  steps: []\n", 1),
        '13:3: duplicate key "steps" (first at line 8, column 3)',
    ),
    (
        "duplicate key in a flow mapping",
        "a: {x: 1, x: 2}\n",
        '1:11: duplicate key "x" (first at line 1, column 5)',
    ),
    (
        "tab indentation",
        "spec:\n\tsteps: []\n",
        "2:1: YAML syntax error: a tab character where YAML expects spaces (indent with spaces, "
        "not tabs)",
    ),
    (
        "binary",
        "a: !!binary aGVsbG8=\n",
        "1:4: !!binary values are not supported: a Kubernetes object holds only strings, "
        "numbers, booleans, null, lists and mappings",
    ),
    ("nan", "a: .nan\n", '1:4: ".nan" is not a finite number (JSON has no NaN or infinity)'),
    ("infinity", "a: -.inf\n", '1:4: "-.inf" is not a finite number (JSON has no NaN or infinity)'),
    ("overflow", "a: 1e999\n", '1:4: "1e999" is not a finite number (JSON has no NaN or infinity)'),
    (
        "integer beyond 64 bits",
        "a: 9223372036854775808\n",
        '1:4: "9223372036854775808" does not fit a 64-bit integer',
    ),
    (
        "integer of more digits than Python converts",
        "a: " + "9" * 5000 + "\n",
        f'1:4: "{"9" * 79}…" (5000 characters) does not fit a 64-bit integer',
    ),
    (
        "alias to itself",
        "a: &x [1, *x]\n",
        "1:4: an alias refers to a list or mapping that contains it (a cycle)",
    ),
    (
        "python object",
        "a: !!python/object/apply:os.system [id]\n",
        "1:4: !!python/object/apply:os.system values are not supported: a Kubernetes object "
        "holds only strings, numbers, booleans, null, lists and mappings",
    ),
    (
        "set",
        "a: !!set {x}\n",
        "1:4: !!set values are not supported: a Kubernetes object holds "
        "only strings, numbers, booleans, null, lists and mappings",
    ),
    ("number as key", "spec:\n  1: x\n", "2:3: a key must be a string, got the number 1"),
    ("list as key", "? [a]\n: 1\n", "1:3: a key must be a string, got a list"),
    (
        "control character",
        "a: é\x07\n",
        "1:5: control characters are not allowed (character #x0007)",
    ),
    ("unclosed list", "a: [1, 2\n", "2:1: YAML syntax error: did not find expected ',' or ']'"),
]


@pytest.mark.parametrize(
    ("text", "expected"), [pytest.param(t, e, id=name) for name, t, e in YAML_CASES]
)
def test_yaml_problem_is_one_line_at_file_line_column(
    capsys: Capture, tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    assert run(capsys, "validate", path) == (1, f"{path}:{expected}\n", "")
    assert run(capsys, "render", path) == (1, "", f"{path}:{expected}\n")


def test_dates_stay_the_strings_written_as_kubectl_reads_them() -> None:
    text = "a: 2024-01-01\nb: 2024-01-01T10:00:00Z\nc: !!timestamp 2024-02-03\n"
    assert yamlio.load_all(text) == [
        {"a": "2024-01-01", "b": "2024-01-01T10:00:00Z", "c": "2024-02-03"}
    ]


def test_exponents_without_a_dot_are_numbers_as_kubectl_reads_them() -> None:
    assert yamlio.load_all("a: 1e3\nb: -2E-2\nc: '1e3'\n") == [
        {"a": 1000.0, "b": -0.02, "c": "1e3"}
    ]


def test_merge_keys_are_not_duplicates() -> None:
    text = "base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  x: 3\n"
    assert yamlio.load_all(text) == [{"base": {"x": 1, "y": 2}, "c": {"x": 3, "y": 2}}]


def test_a_date_in_a_string_field_is_valid(capsys: Capture, tmp_path: Path) -> None:
    text = VALID.replace("value: '0.1'", "value: 2024-01-01")
    assert "value: 2024-01-01" in text
    path = write(tmp_path, text)
    assert run(capsys, "validate", path) == (0, f"{path}: valid (1 pipeline)\n", "")


def test_stdin_that_is_not_utf8_is_reported(
    capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"a: 1\nb: \xff\xfe\x00\n")))
    assert run(capsys, "validate", "-") == (1, "<stdin>:2:4: not UTF-8 text (byte 0xff)\n", "")


def test_stdin_is_read_as_utf8_whatever_the_locale(
    capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = pipeline()
    doc["spec"]["parameters"][0]["value"] = "café"
    data = yaml.safe_dump(doc, allow_unicode=True).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="ascii"))
    assert run(capsys, "validate", "-") == (0, "<stdin>: valid (1 pipeline)\n", "")


def test_a_file_that_is_not_utf8_is_reported(capsys: Capture, tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes("spec:\n  é: \x89PNG".encode("latin-1"))
    assert run(capsys, "validate", str(path)) == (
        1,
        f"{path}:2:3: not UTF-8 text (byte 0xe9)\n",
        "",
    )


# --- Types as the CRD has them --------------------------------------------------------------------


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    keys = path.split(".")
    target: Any = doc
    for key in keys[:-1]:
        target = target[int(key)] if key.isdigit() else target.setdefault(key, {})
    target[int(keys[-1]) if keys[-1].isdigit() else keys[-1]] = value
    return doc


TYPE_CASES = [
    (
        "spec.steps.0.retry",
        {"limit": "3"},
        'spec.steps[0].retry.limit: expected an integer, got the string "3"',
    ),
    (
        "spec.steps.0.retry",
        {"limit": True},
        "spec.steps[0].retry.limit: expected an integer, got the boolean true",
    ),
    (
        "spec.steps.0.retry",
        {"limit": 2.5},
        "spec.steps[0].retry.limit: expected an integer, got the number 2.5",
    ),
    (
        "spec.steps.0.retry",
        {"limit": 1, "backoff": {"duration": "1s", "factor": "2"}},
        'spec.steps[0].retry.backoff.factor: expected an integer, got the string "2"',
    ),
    (
        "spec.promotion.failOnReject",
        "true",
        'spec.promotion.failOnReject: expected a boolean, got the string "true"',
    ),
    (
        "spec.promotion.gates.0.value",
        "0.9",
        'spec.promotion.gates[0].value: expected a number, got the string "0.9"',
    ),
    (
        "spec.promotion.gates.0.value",
        float("nan"),
        "spec.promotion.gates[0].value: expected a finite number, got the number nan",
    ),
    (
        "spec.history",
        {"succeeded": "1"},
        'spec.history.succeeded: expected an integer, got the string "1"',
    ),
    (
        "spec.schedule",
        {"cron": "@daily", "suspend": "yes"},
        'spec.schedule.suspend: expected a boolean, got the string "yes"',
    ),
    (
        "spec.steps.0.resources",
        {"requests": {"cpu": 0.5}},
        "spec.steps[0].resources.requests.cpu: expected a string or an integer, got the number 0.5",
    ),
    (
        "spec.parameters.0.value",
        3,
        "spec.parameters[0].value: expected a string, got the number 3",
    ),
    ("spec.steps", None, "spec.steps: expected a list, got null"),
    (
        "spec.steps.0.timeout",
        "0s",
        'spec.steps[0].timeout: "0s" would stop every attempt at once; a timeout is longer than 0s',
    ),
    (
        "spec.defaults.timeout",
        "2147483648s",
        'spec.defaults.timeout: "2147483648s" is longer than the longest timeout Argo takes, '
        "2147483647s (about 68 years)",
    ),
    (
        "spec.steps.0.retry",
        {"limit": 1, "backoff": {"duration": "1s", "maxDuration": "2562048h"}},
        'spec.steps[0].retry.backoff.maxDuration: "2562048h" is longer than Argo\'s longest '
        "duration, 2562047h47m16.854775807s",
    ),
    (
        "spec.promotion.gates.0.metric",
        "auc>",
        "spec.promotion.gates[0].metric: \"auc>\" is not a metric a gate can name: no '<', "
        "'>' or '=', no space at either end",
    ),
]


@pytest.mark.parametrize(("path", "value", "expected"), TYPE_CASES)
def test_types_are_those_of_the_crd(path: str, value: Any, expected: str) -> None:
    assert problems(_set(pipeline(), path, value)) == [expected]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("spec.steps.0.retry", {"limit": 3}),
        ("spec.promotion.gates.0.value", 1),
        ("spec.steps.0.resources", {"requests": {"cpu": 2, "memory": "1Gi"}}),
        ("spec.steps.0.timeout", "1ns"),
        ("spec.steps.0.timeout", "2147483647s"),
        ("spec.steps.0.retry", {"limit": 1, "backoff": {"duration": "0s"}}),
    ],
)
def test_values_of_the_right_type_are_valid(path: str, value: Any) -> None:
    assert problems(_set(pipeline(), path, value)) == []


def test_a_string_where_an_integer_belongs_fails_the_cli(capsys: Capture, tmp_path: Path) -> None:
    text = VALID.replace("  - name: extract\n", "  - name: extract\n    retry: {limit: '3'}\n")
    path = write(tmp_path, text)
    assert run(capsys, "validate", path) == (
        1,
        f'{path}: spec.steps[0].retry.limit: expected an integer, got the string "3"\n',
        "",
    )


# --- metadata.name --------------------------------------------------------------------------------

_NOT_A_NAME = (
    "is not a Kubernetes resource name: use lower-case letters, digits, '-' and '.', starting "
    "and ending with a letter or digit"
)


@pytest.mark.parametrize("name", ["../../x", "Café", "a_b", "-a", "a.", "a..b", "/etc"])
def test_name_is_a_kubernetes_resource_name(name: str) -> None:
    assert problems(_set(pipeline(), "metadata.name", name)) == [
        f"metadata.name: {quoted(name)} {_NOT_A_NAME}"
    ]


def test_name_shows_non_ascii_as_written() -> None:
    assert problems(_set(pipeline(), "metadata.name", "modèle")) == [
        f'metadata.name: "modèle" {_NOT_A_NAME}'
    ]


def test_scheduled_name_fits_argo_cron_workflow_names() -> None:
    doc = _set(pipeline(), "spec.schedule", {"cron": "@daily"})
    assert problems(_set(doc, "metadata.name", "a" * 52)) == []
    assert problems(_set(doc, "metadata.name", "a" * 53)) == [
        "metadata.name: is 53 characters; a scheduled pipeline (spec.schedule) may have at most "
        "52, as Argo refuses longer CronWorkflow names"
    ]


def test_unscheduled_name_may_have_63_characters() -> None:
    assert problems(_set(pipeline(), "metadata.name", "a." * 31 + "b")) == []


def test_run_refuses_a_name_that_is_a_path(
    capsys: Capture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = _set(pipeline(), "metadata.name", "../../x")
    path = write(tmp_path, yaml.safe_dump(doc))
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "run", path, "--run-dir", str(tmp_path / "runs" / "r"))
    assert (code, out, err) == (1, "", f'{path}: metadata.name: "../../x" {_NOT_A_NAME}\n')
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.yaml"]


# --- Long and non-ASCII values in messages --------------------------------------------------------


def test_quoted_cuts_long_values_and_keeps_one_line() -> None:
    assert quoted("é" * 80) == '"' + "é" * 80 + '"'
    assert quoted("x" * 81) == '"' + "x" * 79 + '…" (81 characters)'
    assert quoted('a\nb\u2028c\t"d\\') == '"a\\nb\\u2028c\\t\\"d\\\\"'
    assert quoted(None) == "null"
    assert quoted(True) == "true"
    assert quoted(2.5) == "2.5"
    assert quoted(10**100) == "(an integer of 333 bits)"


def test_a_huge_value_is_not_echoed(capsys: Capture, tmp_path: Path) -> None:
    doc = _set(pipeline(), "spec.steps.0.resources", {"limits": {"cpu": "x" * 3_000_000}})
    path = write(tmp_path, json.dumps(doc))
    assert run(capsys, "validate", path) == (
        1,
        f'{path}: spec.steps[0].resources.limits.cpu: "{"x" * 79}…" (3000000 characters) is not '
        'a Kubernetes quantity; write e.g. "500m", "2", "1Gi"\n',
        "",
    )


def test_a_long_string_says_its_length() -> None:
    assert problems(_set(pipeline(), "spec.parameters.0.value", "é" * 5000)) == [
        "spec.parameters[0].value: is 5000 characters long; at most 4096 are allowed"
    ]


def test_not_an_mlpipeline_quotes_what_it_got() -> None:
    doc = _set(pipeline(), "kind", "Pipelíne\n" * 20)
    shown = "Pipelíne\\n" * 8 + "Pipelín"  # the first 79 characters, a newline escaped
    assert problems(doc) == [
        "(document): not an MLPipeline: expected apiVersion mlops.gitops.dev/v1alpha1 and kind "
        'MLPipeline, got apiVersion "mlops.gitops.dev/v1alpha1" and kind '
        f'"{shown}…" (180 characters)'
    ]


# --- Commands whose extra is not installed --------------------------------------------------------


def _without(monkeypatch: pytest.MonkeyPatch, package: str, *ours: str) -> None:
    """Make `import package` fail, and forget our modules that imported it. Its submodules go
    too: one already imported (by another test) would import without its package. So does the
    attribute that names one of ours on its parent package: `from parent import module` takes
    it from there, without a look at sys.modules (a test module collected earlier may have
    imported it)."""
    for name in [n for n in sys.modules if n == package or n.startswith(f"{package}.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, package, None)
    for name in ours:
        monkeypatch.delitem(sys.modules, name, raising=False)
        parent, _, child = name.rpartition(".")
        if parent in sys.modules:
            monkeypatch.delattr(sys.modules[parent], child, raising=False)


def test_operator_without_its_extra(capsys: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    _without(monkeypatch, "kopf", "mlpipeline_operator.reconcile.handlers")
    assert run(capsys, "operator") == (
        3,
        "",
        'mlpipeline operator: error: the "operator" extra is not installed (no module named '
        "kopf): pip install 'mlpipeline-operator[operator]'\n",
    )


def test_promote_without_mlflow_fails_with_exit_7_and_a_decision(tmp_path: Path) -> None:
    # In a process of its own: once any test has imported MLflow's modules, an import of one of
    # them no longer fails in this process, whatever sys.modules says of the package.
    out_dir = tmp_path / "out"
    argv = [
        "promote",
        "--tracking-uri",
        "http://mlflow:5000",
        "--model",
        "fraud",
        "--run-id",
        "abc",
        "--output-dir",
        str(out_dir),
    ]
    script = (
        "import sys; sys.modules['mlflow'] = None\n"
        "from mlpipeline_operator.cli import main\n"
        f"sys.exit(main({argv!r}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    message = (
        'the "promote" extra is not installed (no module named mlflow): '
        "pip install 'mlpipeline-operator[promote]'"
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        7,
        "",
        f"mlpipeline promote: error: {message}\n",
    )
    files = {p.name: p.read_text() for p in out_dir.iterdir()}
    assert files == {
        "decision": "Failed",
        "version": "",
        "alias": "",
        "reason": message,
        "metrics": "{}",
        "lineage": "",
    }
