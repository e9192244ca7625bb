"""The CRD is generated from the models, committed, and structural."""

from __future__ import annotations

from typing import Any

from mlpipeline_operator.api.crd import build_crd, render_crd
from tests.paths import CRD_FILE, REPO


def test_committed_crd_is_what_the_models_generate() -> None:
    assert CRD_FILE.read_text() == render_crd(), "crds/ is stale: run `make crd`"


def test_committed_peering_crds_are_generated() -> None:
    from mlpipeline_operator.api.peering import render_peering_crds

    path = REPO / "crds" / "peerings.kopf.dev.yaml"
    assert path.read_text() == render_peering_crds(), "crds/ is stale: run `make crd`"


def walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, value in node.get("properties", {}).items():
            found += walk(value, f"{path}.{key}")
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                found += walk(node[key], f"{path}[{key}]")
    return found


def schema() -> dict[str, Any]:
    version = build_crd()["spec"]["versions"][0]
    result: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return result


def test_schema_is_structural() -> None:
    for path, node in walk(schema()):
        assert "$ref" not in node and "$defs" not in node, path
        # Kubernetes allows an untyped node only as int-or-string or as any JSON value.
        assert (
            "type" in node
            or node.get("x-kubernetes-int-or-string")
            or node.get("x-kubernetes-preserve-unknown-fields")
        ), f"{path} has no type"
        assert "default" not in node and "title" not in node, path
        if "anyOf" in node:
            assert node.get("x-kubernetes-int-or-string"), path
        assert node.get("additionalProperties") is not False, path


def test_lists_and_strings_are_bounded() -> None:
    for path, node in walk(schema()):
        if path.startswith(".metadata"):
            continue
        if node.get("type") == "array":
            assert "maxItems" in node, f"{path} has no maxItems"
        if node.get("type") == "string" and "enum" not in node and path.startswith(".spec"):
            assert "maxLength" in node, f"{path} has no maxLength"


def test_names_subresource_and_columns() -> None:
    crd = build_crd()
    spec = crd["spec"]
    assert crd["metadata"]["name"] == "mlpipelines.mlops.gitops.dev"
    assert spec["names"]["shortNames"] == ["mlp"]
    version = spec["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns[:3] == ["Phase", "Last Run", "Promoted"] and columns[-1] == "Age"


def test_step_names_are_unique_by_list_type_and_enums_are_listed() -> None:
    steps = schema()["properties"]["spec"]["properties"]["steps"]
    assert steps["x-kubernetes-list-type"] == "map"
    assert steps["x-kubernetes-list-map-keys"] == ["name"]
    retry = steps["items"]["properties"]["retry"]["properties"]
    assert retry["policy"]["enum"] == ["Always", "OnFailure", "OnError", "OnTransientError"]
    rules = [r["rule"] for r in schema()["properties"]["spec"]["x-kubernetes-validations"]]
    assert "!has(self.promotion) || has(self.mlflow)" in rules


def test_committed_reference_is_what_the_models_generate() -> None:
    from mlpipeline_operator.api.reference import render_reference

    assert (REPO / "docs" / "api.md").read_text() == render_reference(), "run `make docs`"
