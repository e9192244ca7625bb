"""Generate the MLPipeline CustomResourceDefinition from the pydantic models.

Pydantic's JSON schema is turned into a Kubernetes structural schema: `$defs` inlined, `null`
alternatives of optional fields dropped, quantities marked int-or-string, titles and defaults
removed (defaults live in the models; the API server must not rewrite what Argo CD applied).
"""

from __future__ import annotations

from typing import Any

from mlpipeline_operator.api.constants import (
    GROUP,
    KIND,
    MAX_NAME,
    MAX_SCHEDULED_NAME,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
)
from mlpipeline_operator.api.models import MLPipelineSpec
from mlpipeline_operator.api.status import MLPipelineStatus
from mlpipeline_operator.yamlio import dump

JsonSchema = dict[str, Any]

# Keys of pydantic's JSON schema that a structural schema does not want.
_DROPPED_KEYS = frozenset({"title", "default"})

ROOT_VALIDATIONS = [
    {
        "rule": f"self.metadata.name.size() <= {MAX_NAME}",
        "message": f"metadata.name must be at most {MAX_NAME} characters: it names the pipeline's "
        "runs and labels",
    },
    {
        "rule": f"!has(self.spec.schedule) || self.metadata.name.size() <= {MAX_SCHEDULED_NAME}",
        "message": f"metadata.name must be at most {MAX_SCHEDULED_NAME} characters when "
        "spec.schedule is set: Argo refuses longer CronWorkflow names",
    },
]

PRINTER_COLUMNS = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Last Run", "type": "string", "jsonPath": ".status.lastRun.name"},
    {
        "name": "Promoted",
        "type": "string",
        "jsonPath": ".status.promotion.version",
        "description": "Model version that the last promotion decided on.",
    },
    {"name": "Decision", "type": "string", "jsonPath": ".status.promotion.decision", "priority": 1},
    {"name": "Schedule", "type": "string", "jsonPath": ".spec.schedule.cron", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def _structural(node: Any, defs: dict[str, JsonSchema], dropped: frozenset[str]) -> Any:
    """Rewrite one node of pydantic's schema into its structural form."""
    if isinstance(node, list):
        return [_structural(item, defs, dropped) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    ref = node.pop("$ref", None)
    if ref is not None:
        # A field's own description wins over the referenced model's docstring.
        target = _structural(defs[ref.rsplit("/", 1)[-1]], defs, dropped)
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    any_of = node.pop("anyOf", None)
    if any_of is not None:
        choices = [c for c in any_of if c.get("type") != "null"]
        types = {c.get("type") for c in choices}
        if types == {"string", "integer"}:
            # A Kubernetes quantity or IntOrString.
            node["x-kubernetes-int-or-string"] = True
            node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        elif len(choices) == 1:
            node = {**_structural(choices[0], defs, dropped), **node}
        else:
            raise ValueError(f"no structural form for anyOf {any_of!r}")
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if node.get("additionalProperties") is False:
        del node["additionalProperties"]
    out: JsonSchema = {}
    for key, value in node.items():
        if key in dropped:
            continue
        if key == "properties":
            out[key] = {name: _structural(sub, defs, dropped) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _structural(value, defs, dropped)
        else:
            out[key] = value
    if "properties" in out or "additionalProperties" in out:
        out.setdefault("type", "object")
    return out


def structural_schema(model: type[Any], keep_defaults: bool = False) -> JsonSchema:
    """The structural OpenAPI v3 schema of a pydantic model, as a CRD wants it."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    defs = schema.pop("$defs", {})
    dropped = _DROPPED_KEYS - {"default"} if keep_defaults else _DROPPED_KEYS
    result: JsonSchema = _structural(schema, defs, dropped)
    return result


def build_crd() -> dict[str, Any]:
    """The whole CustomResourceDefinition of MLPipeline."""
    spec_schema = structural_schema(MLPipelineSpec)
    status_schema = structural_schema(MLPipelineStatus)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "mlpipeline-operator"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": ["mlops"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "description": "A machine-learning pipeline run as Argo Workflows, "
                            "with gated promotion of its model in the MLflow Model Registry.",
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                            "x-kubernetes-validations": ROOT_VALIDATIONS,
                        }
                    },
                }
            ],
        },
    }


def render_crd() -> str:
    """The CRD as the YAML committed in `crds/`."""
    header = "# Generated by `mlpipeline crd` from the API models. Do not edit by hand.\n"
    return header + dump(build_crd())
