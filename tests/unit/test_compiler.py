"""The compiler: golden renders of every sample, and the rules behind them."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from hack.golden import GOLDEN, golden_file, sample_files
from mlpipeline_operator import cli
from mlpipeline_operator.api.constants import MAX_WORKFLOW_BYTES
from mlpipeline_operator.compiler.workflow import CompileOptions, compile_document
from mlpipeline_operator.core import InvalidPipeline, run_name, timeout_seconds
from mlpipeline_operator.yamlio import load_all
from tests.unit.pipelines import chain, pipeline


def render(path: Path) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli.main(["render", str(path)]) == 0
    return out.getvalue()


@pytest.mark.parametrize("sample", sample_files(), ids=lambda p: p.name)
def test_sample_renders_to_its_golden_file(sample: Path) -> None:
    golden = golden_file(sample)
    assert golden.is_file(), f"no golden file for {sample}: run `make golden`"
    assert render(sample) == golden.read_text(), f"{golden} is stale: run `make golden`"


def test_every_golden_file_has_a_sample() -> None:
    assert set(GOLDEN.glob("*.yaml")) == {golden_file(p) for p in sample_files()}


def every_field_pipeline() -> dict[str, Any]:
    """A pipeline that sets every field the compiler maps to Argo."""
    doc = pipeline()
    doc["metadata"]["annotations"] = {"mlops.gitops.dev/git-revision": "abc123", "other": "x"}
    spec = doc["spec"]
    spec["serviceAccountName"] = "trainer"
    spec["artifactRepositoryRef"] = {"configMap": "repositories", "key": "s3"}
    spec["defaults"] = {
        "retry": {
            "limit": 2,
            "policy": "OnError",
            "backoff": {"duration": "10s", "factor": 2, "maxDuration": "5m"},
        },
        "timeout": "1h30m",
        "resources": {"requests": {"cpu": "500m", "memory": 1024}, "limits": {"memory": "2Gi"}},
    }
    extract, train, evaluate = spec["steps"]
    extract["args"] = ["--lr", "{{pipeline.parameters.lr}}"]
    extract["env"] = [
        {"name": "LR", "value": "lr={{ pipeline.parameters.lr }}"},
        {"name": "EMPTY"},
        {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k", "optional": True}}},
        {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
        {
            "name": "P",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name", "apiVersion": "v1"}},
        },
        {
            "name": "R",
            "valueFrom": {
                "resourceFieldRef": {"resource": "limits.cpu", "containerName": "c", "divisor": 1}
            },
        },
    ]
    train.update(retry={"limit": 0}, timeout="90s", resources={"limits": {"nvidia.com/gpu": 1}})
    train["dependsOn"] = ["extract"]
    evaluate["inputs"]["parameters"].append({"name": "lr", "value": "{{pipeline.parameters.lr}}"})
    evaluate["inputs"]["artifacts"] = [{"name": "raw", "from": "extract.raw", "path": "/raw"}]
    evaluate["image"] = "registry.example.com/eval:2"
    evaluate["tolerations"] = [{"operator": "Exists"}]
    evaluate["priorityClassName"] = "batch"
    evaluate["nodeSelector"] = {"pool": "cpu"}
    evaluate["affinity"] = {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 10,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "namespaces": ["ml"],
                        "labelSelector": {
                            "matchLabels": {"app": "x"},
                            "matchExpressions": [{"key": "tier", "operator": "Exists"}],
                        },
                        "namespaceSelector": {"matchLabels": {"team": "a"}},
                    },
                }
            ]
        },
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n"]}]}
                ]
            }
        },
    }
    spec["imagePullSecrets"] = [{"name": "registry"}]
    spec["runLabels"] = {"team": "fraud"}
    return doc


def scheduled(doc: dict[str, Any]) -> dict[str, Any]:
    doc["spec"]["schedule"] = {"cron": "0 2 * * *", "suspend": True, "concurrencyPolicy": "Allow"}
    return doc


def golden_documents() -> list[dict[str, Any]]:
    return [doc for path in sorted(GOLDEN.glob("*.yaml")) for doc in load_all(path.read_text())]


def hera_round_trip(manifest: dict[str, Any]) -> str:
    """The manifest read into hera's generated Argo models and written back as compact JSON:
    a field those models do not know is dropped, and their field order is restored."""
    from hera.workflows.models.io.argoproj.workflow import v1alpha1 as argo

    model = argo.CronWorkflow if manifest["kind"] == "CronWorkflow" else argo.Workflow
    return model.model_validate(manifest).model_dump_json(by_alias=True, exclude_none=True)


@pytest.mark.parametrize(
    "manifest",
    [
        *golden_documents(),
        compile_document(every_field_pipeline()),
        compile_document(scheduled(every_field_pipeline())),
    ],
    ids=lambda m: f"{m['kind']}-{m['metadata']['name']}",
)
def test_render_is_what_heras_argo_models_write(manifest: dict[str, Any]) -> None:
    assert hera_round_trip(manifest) == json.dumps(manifest, separators=(",", ":"))


def test_hera_round_trip_check_can_fail() -> None:
    manifest = compile_document(every_field_pipeline())
    template = manifest["spec"]["templates"][1]
    template["retryStrategy"] = {"retryPolicy": "OnError", "limit": 2}  # not in field order
    assert hera_round_trip(manifest) != json.dumps(manifest, separators=(",", ":"))
    template["retryStrategy"] = {"limit": 2, "retries": 3}  # a field Argo does not have
    assert hera_round_trip(manifest) != json.dumps(manifest, separators=(",", ":"))


def tasks(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    entry = workflow["spec"]["templates"][0]
    return {t["name"]: t for t in entry["dag"]["tasks"]}


def templates(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in workflow["spec"]["templates"]}


def test_workflow_is_tied_to_its_pipeline() -> None:
    wf = compile_document(pipeline())
    assert wf["kind"] == "Workflow"
    meta = wf["metadata"]
    assert meta["name"] == run_name("ml", "demo", 3)
    assert meta["namespace"] == "ml"
    assert meta["labels"] == {
        "app.kubernetes.io/managed-by": "mlpipeline-operator",
        "mlops.gitops.dev/pipeline": "demo",
        "mlops.gitops.dev/generation": "3",
    }
    assert wf["spec"]["podMetadata"]["labels"] == meta["labels"]
    assert wf["spec"]["serviceAccountName"] == "default"
    assert wf["spec"]["podGC"] == {"strategy": "OnPodSuccess"}
    assert wf["spec"]["ttlStrategy"]["secondsAfterCompletion"] > 0


def test_dependencies_come_from_dependson_and_inputs() -> None:
    doc = pipeline()
    doc["spec"]["steps"][2]["dependsOn"] = ["extract"]
    dag = tasks(compile_document(doc))
    assert "dependencies" not in dag["extract"]
    assert dag["train"]["dependencies"] == ["extract"]
    assert dag["evaluate"]["dependencies"] == ["extract", "train"]
    assert dag["train"]["arguments"]["artifacts"] == [
        {"from": "{{tasks.extract.outputs.artifacts.raw}}", "name": "raw"}
    ]
    assert dag["evaluate"]["arguments"]["parameters"] == [
        {"name": "run_id", "value": "{{tasks.train.outputs.parameters.run_id}}"}
    ]


def test_placeholders_map_to_argo_variables() -> None:
    train = templates(compile_document(pipeline()))["train"]
    assert train["container"]["command"] == [
        "train",
        "--lr",
        "{{workflow.parameters.lr}}",
        "--data",
        "{{inputs.artifacts.raw.path}}",
        "--run-id",
        "{{outputs.parameters.run_id.path}}",
    ]


def test_spaces_inside_placeholders_are_normalised() -> None:
    doc = pipeline()
    doc["spec"]["steps"][0]["command"] = ["x", "{{ outputs.artifacts.raw.path }}"]
    extract = templates(compile_document(doc))["extract"]
    assert extract["container"]["command"] == ["x", "{{outputs.artifacts.raw.path}}"]


def test_defaults_apply_unless_a_step_overrides() -> None:
    doc = pipeline()
    doc["spec"]["defaults"] = {
        "retry": {
            "limit": 2,
            "policy": "OnTransientError",
            "backoff": {"duration": "10s", "factor": 2, "maxDuration": "5m"},
        },
        "timeout": "1h",
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
    }
    doc["spec"]["steps"][1].update(
        retry={"limit": 3, "policy": "Always"},
        timeout="90s",
        resources={"limits": {"nvidia.com/gpu": 1}},
    )
    t = templates(compile_document(doc))
    assert t["extract"]["retryStrategy"] == {
        "backoff": {"duration": "10s", "factor": 2, "maxDuration": "5m"},
        "limit": 2,
        "retryPolicy": "OnTransientError",
    }
    assert t["extract"]["activeDeadlineSeconds"] == 3600
    assert t["extract"]["container"]["resources"] == {"requests": {"cpu": "500m", "memory": "1Gi"}}
    assert t["train"]["retryStrategy"] == {"limit": 3, "retryPolicy": "Always"}
    assert t["train"]["activeDeadlineSeconds"] == 90
    assert t["train"]["container"]["resources"] == {"limits": {"nvidia.com/gpu": "1"}}


def test_promotion_runs_last_with_credentials_from_the_secret_only() -> None:
    doc = pipeline()
    doc["metadata"]["annotations"] = {"mlops.gitops.dev/git-revision": "abc123"}
    wf = compile_document(doc, CompileOptions(promotion_image="example/op:1"))
    promote = tasks(wf)["promote-model"]
    # After the step that produced the run id and after every last step.
    assert promote["dependencies"] == ["train", "evaluate"]
    assert promote["arguments"]["parameters"] == [
        {"name": "run-id", "value": "{{tasks.train.outputs.parameters.run_id}}"}
    ]
    container = templates(wf)["promote-model"]["container"]
    assert container["image"] == "example/op:1"
    assert container["command"] == ["mlpipeline", "promote"]
    assert container["envFrom"] == [{"secretRef": {"name": "mlflow"}}]
    assert "env" not in container
    args = container["args"]
    assert args[args.index("--run-id") + 1] == "{{inputs.parameters.run-id}}"
    assert args[args.index("--gate") + 1] == "auc>=0.9"
    assert "git-revision=abc123" in args and "workflow={{workflow.name}}" in args
    assert wf["metadata"]["annotations"] == {"mlops.gitops.dev/git-revision": "abc123"}
    outputs = templates(wf)["promote-model"]["outputs"]["parameters"]
    assert [o["name"] for o in outputs] == [
        *("decision", "version", "alias", "reason", "metrics", "lineage")
    ]


def test_every_step_gets_the_lineage_and_the_tracking_uri_but_credentials_only_when_asked() -> None:
    doc = pipeline()
    doc["metadata"]["annotations"] = {"mlops.gitops.dev/git-revision": "abc123"}
    spec = doc["spec"]
    spec["steps"][1]["mlflowCredentials"] = True
    spec["steps"][2]["env"] = [{"name": "MLFLOW_TRACKING_URI", "value": "http://mine:5000"}]
    spec["onExit"] = {"command": ["notify"], "mlflowCredentials": True}
    wf = compile_document(doc)
    # Once, for every container template (each iteration of a forEach step runs its step's
    # template); Argo merges them by name, so evaluate's own MLFLOW_TRACKING_URI wins.
    assert wf["spec"]["templateDefaults"] == {
        "container": {
            "env": [
                {"name": "MLPIPELINE_NAMESPACE", "value": "{{workflow.namespace}}"},
                {"name": "MLPIPELINE_NAME", "value": "demo"},
                {"name": "MLPIPELINE_GENERATION", "value": "3"},
                {"name": "MLPIPELINE_RUN", "value": "{{workflow.name}}"},
                {"name": "MLPIPELINE_GIT_REVISION", "value": "abc123"},
                {"name": "MLFLOW_TRACKING_URI", "value": "http://mlflow:5000"},
            ],
            # Argo's schema wants one; every template has its own.
            "image": "registry.example.com/demo:1",
        }
    }
    containers = {n: t["container"] for n, t in templates(wf).items() if "container" in t}
    assert {n: c.get("env") for n, c in containers.items()} == {
        "extract": None,
        "train": None,
        "evaluate": [{"name": "MLFLOW_TRACKING_URI", "value": "http://mine:5000"}],
        "promote-model": None,
        "on-exit": None,
    }
    credentials = [{"secretRef": {"name": "mlflow"}}]
    assert {n: c.get("envFrom") for n, c in containers.items()} == {
        "extract": None,
        "train": credentials,
        "evaluate": None,
        "promote-model": credentials,
        "on-exit": credentials,
    }


def test_without_mlflow_or_revision_steps_get_the_lineage_alone() -> None:
    doc = pipeline()
    del doc["spec"]["mlflow"], doc["spec"]["promotion"], doc["spec"]["image"]
    del doc["metadata"]["generation"]
    for step in doc["spec"]["steps"]:
        step["image"] = "example/step:1"
    defaults = compile_document(doc, CompileOptions(promotion_image="example/op:1"))["spec"][
        "templateDefaults"
    ]
    assert defaults == {
        "container": {
            "env": [
                {"name": "MLPIPELINE_NAMESPACE", "value": "{{workflow.namespace}}"},
                {"name": "MLPIPELINE_NAME", "value": "demo"},
                {"name": "MLPIPELINE_GENERATION", "value": "1"},
                {"name": "MLPIPELINE_RUN", "value": "{{workflow.name}}"},
            ],
            "image": "example/op:1",
        }
    }


def test_schedule_compiles_to_a_cronworkflow_named_after_the_pipeline() -> None:
    doc = pipeline()
    doc["spec"]["schedule"] = {"cron": "0 2 * * *", "timezone": "Europe/Paris"}
    doc["spec"]["history"] = {"succeeded": 4, "failed": 2}
    cron = compile_document(doc)
    assert cron["kind"] == "CronWorkflow"
    assert cron["metadata"]["name"] == "demo"
    spec = cron["spec"]
    assert spec["schedules"] == ["0 2 * * *"]
    assert spec["timezone"] == "Europe/Paris"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (4, 2)
    assert spec["workflowMetadata"]["labels"]["mlops.gitops.dev/generation"] == "3"
    assert spec["workflowSpec"]["entrypoint"] == "mlpipeline"


def test_run_name_is_deterministic_and_fits_kubernetes() -> None:
    assert run_name("ml", "fraud", 7) == run_name("ml", "fraud", 7)
    assert run_name("ml", "fraud", 7).startswith("fraud-g7-")
    names = {
        run_name("ml", "fraud", 7),
        run_name("ml", "fraud", 8),
        run_name("other", "fraud", 7),
        run_name("ml", "fraud", 7, rerun="r1"),
    }
    assert len(names) == 4
    long_a, long_b = run_name("ml", "a" * 62 + "x", 12345), run_name("ml", "a" * 62 + "y", 12345)
    assert len(long_a) <= 63 and len(long_b) <= 63 and long_a != long_b


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("10m", 600), ("1h30m", 5400), ("1.5h", 5400), ("500ms", 1), ("2h0m1s", 7201)],
)
def test_timeout_seconds(text: str, seconds: int) -> None:
    assert timeout_seconds(text) == seconds


def test_thousand_steps_compile_within_the_size_bound() -> None:
    wf = compile_document(chain(1000))
    assert len(tasks(wf)) == 1000
    assert len(json.dumps(wf, separators=(",", ":"))) <= MAX_WORKFLOW_BYTES


def test_oversize_workflow_is_rejected_with_a_clear_problem() -> None:
    # Under the spec bound, but defaults are copied into every step's template.
    doc = chain(1000, command_length=180)
    doc["spec"]["defaults"] = {
        "timeout": "1h",
        "retry": {
            "limit": 2,
            "policy": "OnTransientError",
            "backoff": {"duration": "10s", "factor": 2, "maxDuration": "5m"},
        },
        "resources": {
            "requests": {"cpu": "500m", "memory": "1Gi", "ephemeral-storage": "10Gi"},
            "limits": {"memory": "2Gi", "ephemeral-storage": "20Gi"},
        },
    }
    for step in doc["spec"]["steps"]:
        step.pop("retry")
    with pytest.raises(InvalidPipeline) as caught:
        compile_document(doc)
    (problem,) = caught.value.problems
    assert problem.path == "spec"
    assert f"over the limit of {MAX_WORKFLOW_BYTES} bytes" in problem.message


def test_invalid_document_raises_every_problem() -> None:
    doc = pipeline()
    doc["spec"]["steps"][1]["dependsOn"] = ["nope"]
    doc["spec"]["steps"][2]["command"] = ["{{inputs.parameters.nope}}"]
    doc["spec"]["promotion"]["from"]["parameter"] = "nope"
    with pytest.raises(InvalidPipeline) as caught:
        compile_document(doc)
    assert [str(p) for p in caught.value.problems] == [
        'spec.promotion.from.parameter: unknown output parameter of step "train" "nope"; '
        'known: "run_id"',
        'spec.steps[1].dependsOn[0]: unknown step "nope"; known: "evaluate", "extract", "train"',
        'spec.steps[2].command[0]: placeholder "{{inputs.parameters.nope}}": unknown input '
        'parameter "nope"; known: "run_id"',
    ]


def test_invalid_shapes_raise_every_problem() -> None:
    # Problems of shape (types, patterns) leave no model to check the meaning of: the
    # references between steps are checked once the shapes are right.
    doc = pipeline()
    doc["spec"]["steps"][0]["retry"] = {"limit": "many"}
    doc["spec"]["steps"][2]["timeout"] = "later"
    with pytest.raises(InvalidPipeline) as caught:
        compile_document(doc)
    assert [str(p) for p in caught.value.problems] == [
        'spec.steps[0].retry.limit: expected an integer, got the string "many"',
        'spec.steps[2].timeout: "later" must be a duration such as "30s", "10m" or "1h30m" '
        "(units: ns, us, ms, s, m, h)",
    ]
