"""The `mlpipeline` command as CI uses it: output lines and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hack.golden import SAMPLES
from mlpipeline_operator import cli
from tests.unit.pipelines import pipeline


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_validate_valid_files(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(str(p) for p in SAMPLES.glob("*.yaml"))
    code, out, _ = run(capsys, "validate", *files)
    assert code == 0
    assert out.splitlines()[0] == f"{files[0]}: valid (1 pipeline)"


def test_validate_prints_file_path_and_message(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = pipeline()
    doc["spec"]["steps"][1]["dependsOn"] = ["trian"]
    bad = write(tmp_path, "bad.yaml", yaml.safe_dump(doc))
    good = write(tmp_path, "good.yaml", yaml.safe_dump(pipeline()))
    code, out, _ = run(capsys, "validate", good, bad)
    assert code == 1
    assert out.splitlines() == [
        f"{good}: valid (1 pipeline)",
        f'{bad}: spec.steps[1].dependsOn[0]: unknown step "trian" (did you mean "train"?)',
    ]


def test_validate_yaml_syntax_error_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = write(tmp_path, "broken.yaml", "spec:\n  steps: [a, b\n  x: 1\n")
    code, out, _ = run(capsys, "validate", bad)
    assert code == 1
    assert out.splitlines() == [f"{bad}:3:4: YAML syntax error: did not find expected ',' or ']'"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
            "(document): not an MLPipeline: expected apiVersion mlops.gitops.dev/v1alpha1 and kind "
            'MLPipeline, got apiVersion "v1" and kind "ConfigMap"',
        ),
        ("- a\n- b\n", "(document): expected a MLPipeline object, got list"),
        ("# nothing\n", "no document found"),
    ],
)
def test_validate_other_documents(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, "other.yaml", text)
    code, out, _ = run(capsys, "validate", path)
    assert code == 1
    assert out.strip() == f"{path}: {expected}"


def test_validate_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "validate", str(tmp_path / "nope.yaml"))
    assert code == 1
    assert out.strip() == f"{tmp_path / 'nope.yaml'}: cannot read: No such file or directory"


def test_validate_multi_document_file_names_the_document(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = pipeline()
    bad["spec"]["steps"][0]["name"] = "Bad"
    path = write(tmp_path, "two.yaml", yaml.safe_dump_all([pipeline(), bad]))
    code, out, _ = run(capsys, "validate", path)
    assert code == 1
    assert out.startswith(f"{path} (document 2): spec.steps[0].name: ")


def test_render_json_and_overrides(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", yaml.safe_dump(pipeline()))
    code, out, _ = run(
        capsys,
        "render",
        path,
        "-o",
        "json",
        "--namespace",
        "team-a",
        "--generation",
        "9",
        "--promotion-image",
        "example/op:2",
    )
    assert code == 0
    wf = json.loads(out)
    assert wf["metadata"]["namespace"] == "team-a"
    assert wf["metadata"]["name"].startswith("demo-g9-")
    assert wf["spec"]["templates"][-1]["container"]["image"] == "example/op:2"


def test_render_invalid_prints_problems_to_stderr(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = pipeline()
    doc["spec"]["steps"][0]["timeout"] = "forever"
    path = write(tmp_path, "p.yaml", yaml.safe_dump(doc))
    code, out, err = run(capsys, "render", path)
    assert (code, out) == (1, "")
    assert err.startswith(f"{path}: spec.steps[0].timeout: ")


def test_crd_command_prints_the_crd(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "crd")
    assert code == 0
    assert yaml.safe_load(out)["kind"] == "CustomResourceDefinition"


# What a command must not import: hera (the compiler writes plain dicts); the MLflow client, kopf
# and the Kubernetes clients, which only `promote` and `operator` use; other commands' code (the
# compiler writes the promotion step's request, so `render` needs that part of `promote`).
NOT_FOR_RENDER = (
    *("hera", "mlflow", "kopf", "kubernetes", "kubernetes_asyncio"),
    *("mlpipeline_operator.reconcile", "mlpipeline_operator.local"),
)
NOT_FOR_VALIDATE = (
    *NOT_FOR_RENDER,
    *("mlpipeline_operator.compiler", "mlpipeline_operator.promotion"),
)
LIST_IMPORTED = (
    "imported = sorted(m for m in sys.modules for f in FORBIDDEN"
    " if m == f or m.startswith(f + '.'))"
)


@pytest.mark.parametrize(
    ("command", "forbidden"),
    [(["validate", "-q"], NOT_FOR_VALIDATE), (["render"], NOT_FOR_RENDER)],
    ids=["validate", "render"],
)
def test_command_imports_only_what_it_uses(
    tmp_path: Path, command: list[str], forbidden: tuple[str, ...]
) -> None:
    path = write(tmp_path, "p.yaml", yaml.safe_dump(pipeline()))
    code = (
        "import sys\nfrom mlpipeline_operator.cli import main\n"
        f"FORBIDDEN = {forbidden!r}\n"
        f"assert main({[*command, path]!r}) == 0\n"
        f"{LIST_IMPORTED}\n"
        "print('imported:', *imported)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "imported:"


def test_console_script_usage_error_exits_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mlpipeline_operator", "frobnicate"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


@pytest.mark.parametrize(
    ("command", "flag"),
    [("operator", "--standalone"), ("run", "--run-dir"), ("promote", "--tracking-uri")],
)
def test_help_of_a_command_lists_its_flags(
    capsys: pytest.CaptureFixture[str], command: str, flag: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main([command, "--help"])
    assert exited.value.code == 0
    assert flag in capsys.readouterr().out


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for command in ("validate", "render", "crd", "operator", "run", "promote"):
        assert f"    {command} " in out


POLICY = """apiVersion: mlops.gitops.dev/v1alpha1
kind: TenancyPolicy
defaults:
  secrets: [mlflow]
  trackingUris: ["http://mlflow:5000"]
  models: [demo]
namespaces:
  team-a:
    serviceAccounts: [trainer]
"""


def test_validate_with_a_policy_checks_each_pipeline_in_its_namespace(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    policy = write(tmp_path, "policy.yaml", POLICY)
    good = write(tmp_path, "good.yaml", yaml.safe_dump(pipeline()))  # namespace ml
    code, out, _ = run(capsys, "validate", "--policy", policy, good)
    assert (code, out) == (0, f"{good}: valid (1 pipeline)\n")
    code, out, _ = run(capsys, "validate", "--policy", policy, "--namespace", "team-a", good)
    assert code == 1
    assert out.splitlines() == [
        f'{good}: spec.serviceAccountName: unset, so "default" is not allowed in namespace '
        "team-a; allowed: trainer"
    ]


def test_validate_with_a_policy_needs_a_namespace(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    policy = write(tmp_path, "policy.yaml", POLICY)
    doc = pipeline()
    del doc["metadata"]["namespace"]
    path = write(tmp_path, "p.yaml", yaml.safe_dump(doc))
    code, out, _ = run(capsys, "validate", "--policy", policy, path)
    assert code == 1
    assert out.splitlines() == [
        f"{path}: metadata.namespace: unset; give --namespace to check the pipeline against "
        "the tenancy policy"
    ]


def test_validate_refuses_a_malformed_policy(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    policy = write(tmp_path, "policy.yaml", POLICY.replace("models:", "model:"))
    good = write(tmp_path, "good.yaml", yaml.safe_dump(pipeline()))
    code, out, err = run(capsys, "validate", "--policy", policy, good)
    assert (code, out) == (2, "")
    assert err == f"mlpipeline validate: error: {policy}: defaults.model: unknown field\n"
    code, out, err = run(capsys, "validate", "--policy", str(tmp_path / "none.yaml"), good)
    assert (code, out) == (2, "")
    assert err == (
        f"mlpipeline validate: error: {tmp_path / 'none.yaml'}: cannot read: "
        "No such file or directory\n"
    )


def test_operator_refuses_a_webhook_without_its_namespace(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLPIPELINE_WEBHOOK_NAMESPACE", raising=False)
    assert cli.main(["operator", "--webhook", "https://0.0.0.0:9443/validate"]) == 2
    assert capsys.readouterr().err == (
        "mlpipeline operator: error: --webhook without --webhook-cert-dir needs "
        "--webhook-namespace (env MLPIPELINE_WEBHOOK_NAMESPACE): the operator's namespace, "
        "where it keeps its certificates in the Secret --webhook-secret\n"
    )


def test_render_of_a_suspended_pipeline_notes_that_nothing_is_submitted(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = pipeline()
    doc["spec"]["suspend"] = True
    path = write(tmp_path, "p.yaml", yaml.safe_dump(doc))
    code, out, err = run(capsys, "render", path)
    assert code == 0
    assert yaml.safe_load(out)["kind"] == "Workflow"
    assert err == (
        f"{path}: note: demo: spec.suspend is true: the operator submits no run while it is; "
        "this is the run it would submit otherwise\n"
    )
