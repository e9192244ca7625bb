"""Volumes (`spec.volumes`, `spec.volumeClaimTemplates`, `steps[].volumeMounts`): validation
with exact messages, and the compiled workflow volumes, claim templates and mounts."""

from __future__ import annotations

from typing import Any

import pytest

from mlpipeline_operator.compiler.workflow import compile_document
from mlpipeline_operator.validation import validate_document
from tests.unit.pipelines import pipeline

Doc = dict[str, Any]


def with_volumes(*mounts: Doc, step: int = 1, **spec: Any) -> Doc:
    """The base pipeline with volumes `a` (a claim) and `b` (an emptyDir), a claim template
    `scratch`, and `mounts` on one step (`train` by default)."""
    doc = pipeline()
    doc["spec"]["volumes"] = [
        {"name": "a", "persistentVolumeClaim": {"claimName": "data"}},
        {"name": "b", "emptyDir": {"sizeLimit": "1Gi"}},
    ]
    doc["spec"]["volumeClaimTemplates"] = [
        {
            "name": "scratch",
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
        }
    ]
    doc["spec"].update(spec)
    doc["spec"]["steps"][step]["volumeMounts"] = list(mounts)
    return doc


def problems(doc: Doc) -> list[str]:
    return [str(p) for p in validate_document(doc)[1]]


# --- validation -----------------------------------------------------------------------------


def test_mounts_of_known_volumes_have_no_problem() -> None:
    doc = with_volumes(
        {"name": "a", "mountPath": "/shared", "subPath": "x/y", "readOnly": True},
        {"name": "scratch", "mountPath": "/scratch"},
        {"name": "b", "mountPath": "/shared/inner"},
    )
    assert problems(doc) == []


def test_an_unknown_volume_names_the_defined_ones() -> None:
    doc = with_volumes({"name": "x", "mountPath": "/x"}, step=2)
    assert problems(doc) == [
        'spec.steps[2].volumeMounts[0].name: unknown volume "x"; defined volumes: a, b, scratch'
    ]


def test_a_mount_without_any_volume() -> None:
    doc = pipeline()
    doc["spec"]["steps"][0]["volumeMounts"] = [{"name": "x", "mountPath": "/x"}]
    assert problems(doc) == [
        'spec.steps[0].volumeMounts[0].name: unknown volume "x"; no volume is defined '
        "(spec.volumes, spec.volumeClaimTemplates)"
    ]


def test_duplicate_volume_names() -> None:
    doc = with_volumes()
    doc["spec"]["volumes"].append({"name": "a", "emptyDir": {}})
    doc["spec"]["volumeClaimTemplates"].append(doc["spec"]["volumeClaimTemplates"][0])
    assert problems(doc) == [
        'spec.volumeClaimTemplates[1].name: duplicate claim template name "scratch" (also at '
        "index 0)",
        'spec.volumes[2].name: duplicate volume name "a" (also at index 0)',
    ]


def test_a_claim_template_named_like_a_volume() -> None:
    doc = with_volumes()
    doc["spec"]["volumeClaimTemplates"][0]["name"] = "b"
    assert problems(doc) == [
        'spec.volumeClaimTemplates[0].name: "b" is also the name of spec.volumes[1]; volumes '
        "and claim templates share one set of names"
    ]


def test_a_name_argo_uses() -> None:
    doc = with_volumes()
    doc["spec"]["volumes"][1]["name"] = "var-run-argo"
    assert problems(doc) == [
        'spec.volumes[1].name: "var-run-argo" is reserved: Argo\'s executor adds a volume of '
        "that name to every pod (reserved: var-run-argo, tmp-dir-argo, input-artifacts, "
        "argoexec-bin)"
    ]


def test_a_volume_has_exactly_one_source() -> None:
    doc = with_volumes()
    doc["spec"]["volumes"][0]["emptyDir"] = {}
    doc["spec"]["volumes"][1] = {"name": "b"}
    assert problems(doc) == [
        "spec.volumes[0]: set exactly one of persistentVolumeClaim, emptyDir, configMap, secret",
        "spec.volumes[1]: set exactly one of persistentVolumeClaim, emptyDir, configMap, secret",
    ]


@pytest.mark.parametrize(
    ("mount", "message"),
    [
        (
            {"name": "a", "mountPath": "data"},
            'spec.steps[1].volumeMounts[0].mountPath: "data" must be an absolute path',
        ),
        (
            {"name": "a", "mountPath": "/"},
            "spec.steps[1].volumeMounts[0].mountPath: cannot be /, the root of the container",
        ),
        (
            {"name": "a", "mountPath": "/x", "subPath": "../up"},
            'spec.steps[1].volumeMounts[0].subPath: "../up" must be a relative path inside the '
            "volume, without '..'",
        ),
        (
            {"name": "A", "mountPath": "/x"},
            'spec.steps[1].volumeMounts[0].name: "A" is not a volume name: use lower-case '
            "letters, digits and '-', starting and ending with a letter or digit",
        ),
        (
            {"name": "a", "mountPath": "/var/run"},
            'spec.steps[1].volumeMounts[0].mountPath: "/var/run" contains /var/run/argo, where '
            "Argo's executor mounts its own volume",
        ),
        (
            {"name": "a", "mountPath": "/argo-bin/x"},
            'spec.steps[1].volumeMounts[0].mountPath: "/argo-bin/x" is inside /argo-bin, where '
            "Argo's executor mounts its own volume",
        ),
    ],
)
def test_a_bad_mount(mount: Doc, message: str) -> None:
    assert problems(with_volumes(mount)) == [message]


def test_two_mounts_at_one_path() -> None:
    doc = with_volumes({"name": "a", "mountPath": "/x"}, {"name": "b", "mountPath": "/x/"})
    assert problems(doc) == [
        'spec.steps[1].volumeMounts[1].mountPath: "/x/" is also the mountPath of '
        "volumeMounts[0]; mount one volume at a path"
    ]


@pytest.mark.parametrize(
    ("mount_path", "how", "field", "path"),
    [
        ("/data/raw", "is", "inputs.artifacts[0]", "/data/raw"),  # train's input: /data/raw
        ("/data", "contains", "inputs.artifacts[0]", "/data/raw"),
        ("/data/raw/part", "is inside", "inputs.artifacts[0]", "/data/raw"),
    ],
)
def test_a_mount_clashing_with_an_input_artifact(
    mount_path: str, how: str, field: str, path: str
) -> None:
    doc = with_volumes({"name": "a", "mountPath": mount_path})
    assert problems(doc) == [
        f'spec.steps[1].volumeMounts[0].mountPath: "{mount_path}" {how} the path of {field} '
        f'("{path}"); Argo places artifacts on the container\'s own filesystem: choose paths '
        "apart"
    ]


def test_a_mount_clashing_with_an_output_artifact() -> None:
    doc = with_volumes({"name": "b", "mountPath": "/data"}, step=0)  # extract's output /data/raw
    assert problems(doc) == [
        'spec.steps[0].volumeMounts[0].mountPath: "/data" contains the path of '
        'outputs.artifacts[0] ("/data/raw"); Argo places artifacts on the container\'s own '
        "filesystem: choose paths apart"
    ]


def test_the_volume_placeholder_needs_the_step_to_mount_it_once() -> None:
    doc = with_volumes(
        {"name": "a", "mountPath": "/one"}, {"name": "a", "mountPath": "/two"}, step=1
    )
    doc["spec"]["steps"][1]["args"] = ["{{volumes.a.path}}", "{{volumes.b.path}}"]
    doc["spec"]["steps"][2]["env"] = [{"name": "OUT", "value": "{{volumes.a.path}}/x"}]
    doc["spec"]["steps"][0]["inputs"] = {
        "parameters": [{"name": "p", "value": "{{volumes.a.path}}"}]
    }
    assert problems(doc) == [
        'spec.steps[0].inputs.parameters[0].value: "{{volumes.a.path}}" cannot be used here; '
        "only {{pipeline.parameters.NAME}} can",
        'spec.steps[1].args[0]: placeholder "{{volumes.a.path}}": the step mounts volume "a" 2 '
        "times; write the mount path itself",
        'spec.steps[1].args[1]: placeholder "{{volumes.b.path}}": the step does not mount '
        'volume "b" (it mounts: a)',
        'spec.steps[2].env[0].value: placeholder "{{volumes.a.path}}": the step does not mount '
        'volume "a" (it mounts: none)',
    ]


def test_a_cached_step_cannot_mount_a_volume() -> None:
    doc = with_volumes({"name": "a", "mountPath": "/x"}, defaults={"cache": {"maxAge": "1h"}})
    doc["spec"].pop("promotion")
    assert problems(doc) == [
        'spec.steps[1].cache: cached (spec.defaults.cache) but mounts volume "a", whose content '
        "its cache key does not hold (and a step served from the cache writes nothing on it); "
        "set cache: {maxAge: 0s} on this step"
    ]


def test_the_exit_step_mounts_like_a_step() -> None:
    doc = with_volumes()
    doc["spec"]["onExit"] = {
        "command": ["report", "{{volumes.scratch.path}}", "{{volumes.a.path}}"],
        "volumeMounts": [{"name": "scratch", "mountPath": "/s"}, {"name": "z", "mountPath": "/s"}],
    }
    assert problems(doc) == [
        'spec.onExit.command[2]: placeholder "{{volumes.a.path}}": the step does not mount '
        'volume "a" (it mounts: scratch, z)',
        'spec.onExit.volumeMounts[1].mountPath: "/s" is also the mountPath of volumeMounts[0]; '
        "mount one volume at a path",
        'spec.onExit.volumeMounts[1].name: unknown volume "z"; defined volumes: a, b, scratch',
    ]


# --- compiler -------------------------------------------------------------------------------


def test_volumes_compile_to_the_workflow_and_mounts_to_the_container() -> None:
    doc = with_volumes(
        {"name": "a", "mountPath": "/shared", "subPath": "x", "readOnly": True},
        {"name": "scratch", "mountPath": "/scratch"},
    )
    doc["spec"]["volumes"].append(
        {"name": "c", "configMap": {"name": "settings", "items": [{"key": "k", "path": "k.yaml"}]}}
    )
    doc["spec"]["volumes"].append({"name": "s", "secret": {"secretName": "creds"}})
    doc["spec"]["volumes"][1]["emptyDir"] = {"medium": "Memory", "sizeLimit": 1024}
    doc["spec"]["steps"][1]["args"] = ["--out", "{{volumes.scratch.path}}/features"]
    spec = compile_document(doc)["spec"]
    assert spec["volumes"] == [
        {"name": "a", "persistentVolumeClaim": {"claimName": "data"}},
        {"emptyDir": {"medium": "Memory", "sizeLimit": "1024"}, "name": "b"},
        {"configMap": {"items": [{"key": "k", "path": "k.yaml"}], "name": "settings"}, "name": "c"},
        {"name": "s", "secret": {"secretName": "creds"}},
    ]
    assert spec["volumeClaimTemplates"] == [
        {
            "metadata": {"name": "scratch"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
    ]
    assert spec["volumeClaimGC"] == {"strategy": "OnWorkflowCompletion"}
    assert list(spec)[-3:] == ["volumeClaimGC", "volumeClaimTemplates", "volumes"]
    train = next(t for t in spec["templates"] if t["name"] == "train")
    assert train["container"]["volumeMounts"] == [
        {"mountPath": "/shared", "name": "a", "readOnly": True, "subPath": "x"},
        {"mountPath": "/scratch", "name": "scratch"},
    ]
    assert train["container"]["args"] == ["--out", "/scratch/features"]


def test_a_pipeline_without_volumes_compiles_without_them() -> None:
    spec = compile_document(pipeline())["spec"]
    assert not {"volumes", "volumeClaimTemplates", "volumeClaimGC"} & set(spec)
    assert all("volumeMounts" not in t.get("container", {}) for t in spec["templates"])


def test_the_exit_step_mounts_its_volumes() -> None:
    doc = with_volumes()
    doc["spec"]["onExit"] = {
        "command": ["report", "{{pipeline.status}}", "{{volumes.scratch.path}}"],
        "volumeMounts": [{"name": "scratch", "mountPath": "/s", "readOnly": True}],
    }
    spec = compile_document(doc)["spec"]
    on_exit = next(t for t in spec["templates"] if t["name"] == "on-exit")
    assert on_exit["container"]["command"] == ["report", "{{workflow.status}}", "/s"]
    assert on_exit["container"]["volumeMounts"] == [
        {"mountPath": "/s", "name": "scratch", "readOnly": True}
    ]
