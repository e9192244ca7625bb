"""MLPipeline → Argo Workflow or CronWorkflow, as the plain dicts the Kubernetes API takes.

One DAG task per step, one container template per step, and a final promotion task when
`spec.promotion` is set. Every object has the shape and field order of hera's generated Argo
models serialised by alias without unset fields (keys in alphabetical order); the tests check
each render against those models. Writing dicts directly keeps hera's import (about half a
second) and a second validation of what the API models already validated out of every command.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

import pydantic_core

from mlpipeline_operator import conditions, lineage, placeholders
from mlpipeline_operator.api import models as api
from mlpipeline_operator.api.constants import (
    ANNOTATION_GIT_REVISION,
    ARGO_ANNOTATION_SCHEDULED_TIME,
    DEFAULT_PROMOTION_IMAGE,
    LABEL_GENERATION,
    LABEL_MANAGED_BY,
    LABEL_PIPELINE,
    MANAGER,
    MAX_WORKFLOW_BYTES,
    PIPELINE_LABEL_PREFIX,
)
from mlpipeline_operator.caching import cache_config_map_name, cache_keys, step_max_age
from mlpipeline_operator.core import (
    ENTRY_TEMPLATE,
    EXIT_STEP,
    ITEM_PARAMETER,
    PROMOTION_INPUTS,
    PROMOTION_TASK,
    CompiledRun,
    InvalidPipeline,
    Manifest,
    Problem,
    after_promotion,
    downstream,
    exit_as_step,
    parse_rfc3339,
    reads_promotion,
    run_at_name,
    run_name,
    split_ref,
    step_dependencies,
    step_producers,
    step_texts,
    timeout_seconds,
    uses_promotion,
)
from mlpipeline_operator.perf import gc_paused
from mlpipeline_operator.promotion.request import OUTPUT_DIR, OUTPUT_NAMES, request_for
from mlpipeline_operator.validation import validate_document

# Kept long enough to read a failed run's logs; the operator's history limits usually act first.
TTL_SECONDS_AFTER_COMPLETION = 7 * 24 * 3600


@dataclass(frozen=True)
class CompileOptions:
    """What the compiler needs beyond the MLPipeline itself."""

    promotion_image: str = DEFAULT_PROMOTION_IMAGE
    # Token of a manual re-run request; a new token gives a new run of the same generation.
    rerun: str | None = None
    # The RFC 3339 time of a run-at run: one Workflow for that time, named after it, whatever
    # the pipeline's schedule.
    scheduled_time: str | None = None


@dataclass(frozen=True)
class RunTexts:
    """What `{{pipeline.scheduledTime}}`, `{{pipeline.runName}}` and `{{pipeline.generation}}`
    become in one Argo object: Argo's variables, or values the compiler knows."""

    scheduled_time: str
    generation: str
    run_name: str = "{{workflow.name}}"

    def text(self, name: str) -> str:
        if name == "scheduledTime":
            return self.scheduled_time
        return self.run_name if name == "runName" else self.generation


# A Workflow's scheduled time is its creation time; a CronWorkflow's runs carry theirs.
WORKFLOW_SCHEDULED_TIME = "{{workflow.creationTimestamp.RFC3339}}"
CRON_SCHEDULED_TIME = "{{workflow.scheduledTime}}"


def pipeline_labels(pipeline: api.MLPipeline) -> dict[str, str]:
    """Labels that tie generated objects and their pods to the pipeline and generation."""
    return {
        LABEL_MANAGED_BY: MANAGER,
        LABEL_PIPELINE: pipeline.metadata.name,
        LABEL_GENERATION: str(pipeline.metadata.generation or 1),
    }


def copied_label_key(key: str) -> str | None:
    """The key under which a label of the MLPipeline is copied to its runs: an unprefixed key
    `team` becomes `pipeline.mlops.gitops.dev/team` (its name, at most 63 characters, fits the
    name part whole). A prefixed key belongs to a tool (`app.kubernetes.io/instance` of Argo CD)
    and is not copied: its prefix would not fit in a name, and runs would look like the tool's."""
    return None if "/" in key else f"{PIPELINE_LABEL_PREFIX}/{key}"


def run_labels(pipeline: api.MLPipeline) -> dict[str, str]:
    """Labels of a run and its pods: the pipeline's own labels (copied under
    PIPELINE_LABEL_PREFIX), then `spec.runLabels`, then the operator's, which always win."""
    labels: dict[str, str] = {}
    for key, value in pipeline.metadata.labels.items():
        if (copied := copied_label_key(key)) is not None:
            labels[copied] = value
    labels.update(pipeline.spec.run_labels or {})
    labels.update(pipeline_labels(pipeline))
    return labels


def _kube(value: object) -> object:
    """An API model in the Pod spec's shapes as Kubernetes serialises it: fields by their JSON
    name in alphabetical order (the order of hera's models), unset ones left out; maps as given."""
    if isinstance(value, api.ApiModel):
        fields = {
            info.alias or name: _kube(getattr(value, name))
            for name, info in type(value).model_fields.items()
            if getattr(value, name) is not None
        }
        return dict(sorted(fields.items()))
    if isinstance(value, list):
        return [_kube(item) for item in value]
    return value


# What every generated pod runs with unless the pipeline says otherwise: Kubernetes' restricted
# Pod Security Standard. The user 65532 (the project's images' own, "nonroot" of distroless)
# lets an image whose USER is root start under runAsNonRoot; Argo's init and wait containers
# take the pod's settings too, and their own from the controller's configuration
# (docs/argo-workflows.md).
RUN_AS_USER = 65532
DEFAULT_POD_SECURITY_CONTEXT: Manifest = {
    "runAsGroup": RUN_AS_USER,
    "runAsNonRoot": True,
    "runAsUser": RUN_AS_USER,
    "seccompProfile": {"type": "RuntimeDefault"},
}
DEFAULT_CONTAINER_SECURITY_CONTEXT: Manifest = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}
# The promotion's container, which the pipeline cannot weaken: it holds the MLflow credentials.
PROMOTION_CONTAINER_SECURITY_CONTEXT: Manifest = {
    **DEFAULT_CONTAINER_SECURITY_CONTEXT,
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _security_context(default: Manifest, chosen: api.ApiModel | None) -> Manifest:
    """A default security context with the fields the pipeline sets replacing the default's."""
    fields = _kube(chosen) if chosen is not None else {}
    assert isinstance(fields, dict)
    return dict(sorted({**default, **fields}.items()))


def _placement(step: api.Step, defaults: api.Defaults) -> Manifest:
    """The template's placement fields: each is the step's own when set, else the default's,
    whole; an empty value ({}, [] or "") on the step clears the default."""
    chosen = {
        "affinity": _kube(step.affinity if step.affinity is not None else defaults.affinity),
        "nodeSelector": step.node_selector
        if step.node_selector is not None
        else defaults.node_selector,
        "priorityClassName": step.priority_class_name
        if step.priority_class_name is not None
        else defaults.priority_class_name,
        "tolerations": _kube(
            step.tolerations if step.tolerations is not None else defaults.tolerations
        ),
    }
    return {key: value for key, value in chosen.items() if value}


@functools.lru_cache(maxsize=4096)
def _argo_expression(expression: str, run: RunTexts) -> str:
    """One validated placeholder as Argo's variable (cached: pipelines repeat the same few)."""
    ref = placeholders.parse(expression)
    if ref.kind == "run":
        return run.text(ref.name)
    if ref.kind == "item":  # in the step's template, the item arrives as an input parameter
        return f"{{{{inputs.parameters.{item_parameter(ref.name)}}}}}"
    if ref.kind == "pipeline.parameters":
        return f"{{{{workflow.parameters.{ref.name}}}}}"
    if ref.kind == "promotion":
        return f"{{{{tasks.{PROMOTION_TASK}.outputs.parameters.{ref.name}}}}}"
    suffix = "" if ref.kind == "inputs.parameters" else ".path"
    return f"{{{{{ref.kind}.{ref.name}{suffix}}}}}"


def _to_argo_text(text: str, run: RunTexts) -> str:
    if "{{" not in text:
        return text
    return placeholders.PLACEHOLDER_RE.sub(lambda m: _argo_expression(m[1], run), text)


def item_parameter(key: str) -> str:
    """The template's input parameter carrying `{{item}}` (key "") or `{{item.KEY}}`."""
    return f"{ITEM_PARAMETER}-{key}" if key else ITEM_PARAMETER


def _argument_expression(expression: str, run: RunTexts) -> str:
    """A placeholder in a task's argument, where Argo itself substitutes the item."""
    ref = placeholders.parse(expression)
    if ref.kind == "item":
        return f"{{{{item.{ref.name}}}}}" if ref.name else "{{item}}"
    return _argo_expression(expression, run)


def _to_argo_argument(text: str, run: RunTexts) -> str:
    if "{{" not in text:
        return text
    return placeholders.PLACEHOLDER_RE.sub(lambda m: _argument_expression(m[1], run), text)


def _item_keys(step: api.Step) -> list[str]:
    """The item placeholders of a step's container (command, args, env) as item keys."""
    return placeholders.item_keys([*step.command, *step.args, *(e.value or "" for e in step.env)])


@functools.lru_cache(maxsize=4096)
def _container_expression(expression: str, run: RunTexts) -> str:
    """A placeholder inside a step's container: `{{tasks.*}}` cannot be read there, so the
    promotion's values come in as input parameters that the task passes."""
    ref = placeholders.parse(expression)
    if ref.kind == "promotion":
        return f"{{{{inputs.parameters.{PROMOTION_INPUTS[ref.name]}}}}}"
    return _argo_expression(expression, run)


def _to_container_text(text: str, run: RunTexts) -> str:
    if "{{" not in text:
        return text
    return placeholders.PLACEHOLDER_RE.sub(lambda m: _container_expression(m[1], run), text)


# The promotion's values as global outputs of the Workflow, for the exit handler.
def _promotion_global(name: str) -> str:
    return f"mlpipeline_promotion_{name}"


@functools.lru_cache(maxsize=256)
def _exit_expression(expression: str, run: RunTexts) -> str:
    """A placeholder of `spec.onExit`, as Argo's exit handler reads it. The promotion's global
    outputs do not exist when it did not run: an expression makes them "" then. Argo gives
    `workflow.failures` as a JSON string that holds the JSON list ("null" when empty): it is
    decoded once, so the step reads the list itself."""
    ref = placeholders.parse(expression)
    if ref.kind == "promotion":
        return f"{{{{=workflow?.outputs?.parameters?.{_promotion_global(ref.name)} ?? ''}}}}"
    if ref.kind == "pipeline" and ref.name == "status":
        return "{{workflow.status}}"
    if ref.kind == "pipeline":
        failures = "fromJSON(workflow.failures)"
        return f"{{{{={failures} == 'null' ? '[]' : {failures}}}}}"
    return _argo_expression(expression, run)


def _to_exit_text(text: str, run: RunTexts) -> str:
    if "{{" not in text:
        return text
    return placeholders.PLACEHOLDER_RE.sub(lambda m: _exit_expression(m[1], run), text)


def _present(fields: Manifest) -> Manifest:
    """An Argo object with its unset (None) fields left out, as Kubernetes serialises it."""
    return {key: value for key, value in fields.items() if value is not None}


def _quantities(values: dict[str, str | int] | None) -> dict[str, str] | None:
    if not values:
        return None
    return {k: str(v) for k, v in values.items()}


def _resources(resources: api.Resources | None) -> Manifest | None:
    if resources is None:
        return None
    return _present(
        {"limits": _quantities(resources.limits), "requests": _quantities(resources.requests)}
    )


def _key_selector(selector: api.KeySelector | None) -> Manifest | None:
    if selector is None:
        return None
    return _present({"key": selector.key, "name": selector.name, "optional": selector.optional})


def _env(env: api.EnvVar, to_text: Callable[[str], str]) -> Manifest:
    if env.value_from is None:
        value = None if env.value is None else to_text(env.value)
        return _present({"name": env.name, "value": value})
    src = env.value_from
    field_ref = resource_ref = None
    if (f := src.field_ref) is not None:
        field_ref = _present({"apiVersion": f.api_version, "fieldPath": f.field_path})
    if (r := src.resource_field_ref) is not None:
        resource_ref = _present(
            {
                "containerName": r.container_name,
                "divisor": None if r.divisor is None else str(r.divisor),
                "resource": r.resource,
            }
        )
    source = {
        "configMapKeyRef": _key_selector(src.config_map_key_ref),
        "fieldRef": field_ref,
        "resourceFieldRef": resource_ref,
        "secretKeyRef": _key_selector(src.secret_key_ref),
    }
    return {"name": env.name, "valueFrom": _present(source)}


def _retry(retry: api.Retry | None) -> Manifest | None:
    if retry is None:
        return None
    backoff = None
    if (b := retry.backoff) is not None:
        backoff = _present(
            {"duration": b.duration, "factor": b.factor, "maxDuration": b.max_duration}
        )
    return _present({"backoff": backoff, "limit": retry.limit, "retryPolicy": retry.policy})


def _io(artifacts: list[Manifest], parameters: list[Manifest]) -> Manifest | None:
    """Inputs, outputs or arguments: artifacts, then parameters, each only when there are some."""
    io: Manifest = {}
    if artifacts:
        io["artifacts"] = artifacts
    if parameters:
        io["parameters"] = parameters
    return io or None


def _artifact(artifact: api.InputArtifact | api.OutputArtifact) -> Manifest:
    return {"name": artifact.name, "path": artifact.path}


def _template_defaults(pipeline: api.MLPipeline, options: CompileOptions) -> Manifest:
    """The lineage and MLflow variables of every step (`lineage`), written once: Argo merges
    `templateDefaults` into every container template, by variable name, so a step's own
    MLFLOW_TRACKING_URI wins. (In each template, they would add a quarter to the Workflow of a
    long pipeline.) Argo's schema wants an image: every template has its own, which wins."""
    mlflow = pipeline.spec.mlflow
    injected = lineage.injected_environment(
        pipeline,
        namespace="{{workflow.namespace}}",
        run="{{workflow.name}}",
        tracking_uri=None if mlflow is None else mlflow.tracking_uri,
    )
    env = [{"name": name, "value": value} for name, value in injected.items()]
    return {"container": {"env": env, "image": pipeline.spec.image or options.promotion_image}}


def _credentials(pipeline: api.MLPipeline, step: api.Step) -> list[Manifest] | None:
    """`envFrom` of spec.mlflow.credentialsSecret, for a step that asks for it (and the
    promotion step, which always does)."""
    mlflow = pipeline.spec.mlflow
    if not step.mlflow_credentials or mlflow is None or not mlflow.credentials_secret:
        return None
    return [{"secretRef": {"name": mlflow.credentials_secret}}]


def _sorted(value: object) -> object:
    """A dumped API model with its keys in alphabetical order, at every level, as hera's."""
    if isinstance(value, dict):
        return {k: _sorted(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def _argo_shape(model: api.ApiModel) -> Manifest:
    """An API model that has Kubernetes' own shape, as the Kubernetes object."""
    dumped = _sorted(model.model_dump(by_alias=True, exclude_none=True))
    assert isinstance(dumped, dict)
    return dumped


# `{{volumes.NAME.path}}` as the other conversions leave it (no Argo variable has that name).
_VOLUME_PATH = re.compile(r"\{\{\s*volumes\.([^.}]+)\.path\s*\}\}")


def _with_volume_paths(step: api.Step, to_text: Callable[[str], str]) -> Callable[[str], str]:
    """`to_text`, then `{{volumes.NAME.path}}` as the mount path of volume NAME in the step
    (validation made sure the step mounts it once)."""
    if not step.volume_mounts:
        return to_text
    mounts = {m.name: m.mount_path for m in step.volume_mounts}
    return lambda text: _VOLUME_PATH.sub(lambda m: mounts[m[1]], to_text(text))


S3_SOURCE_MODE = 0o755


def _source(source: api.ArtifactSource, to_text: Callable[[str], str]) -> Manifest:
    """Argo's location of an input artifact from outside the pipeline. A key-only `s3` is
    completed by Argo from the run's artifact repository (bucket, endpoint, credentials); a
    git repository is cloned whole, so that any commit of it can be checked out."""
    if source.s3 is not None:
        # Argo's S3 download is readable by its owner (root) only: 0755, applied to every file
        # and directory of it, lets a step running as another user read it.
        return {"mode": S3_SOURCE_MODE, "s3": {"key": to_text(source.s3.key)}}
    if source.http is not None:
        return {"http": {"url": to_text(source.http.url)}}
    assert source.git is not None
    return {"git": {"repo": source.git.repo, "revision": source.git.revision}}


def _input_artifact(artifact: api.InputArtifact, to_text: Callable[[str], str]) -> Manifest:
    """A template's input artifact: where it is placed, and where it comes from when that is
    outside the pipeline (an artifact `from` a step arrives in the task's arguments)."""
    if artifact.source is None:
        return _artifact(artifact)
    return dict(sorted({**_artifact(artifact), **_source(artifact.source, to_text)}.items()))


def _passed(artifacts: list[api.InputArtifact]) -> list[tuple[str, str]]:
    """(name, "STEP.NAME") of the input artifacts that a task passes: those `from` a step."""
    return [(a.name, a.from_) for a in artifacts if a.from_ is not None]


def _step_template(
    step: api.Step, pipeline: api.MLPipeline, to_text: Callable[[str], str]
) -> Manifest:
    # Keys are added in alphabetical order, and only when set; this runs once per step.
    spec = pipeline.spec
    defaults = spec.defaults
    to_text = _with_volume_paths(step, to_text)
    container: Manifest = {}
    if step.args:
        container["args"] = [to_text(a) for a in step.args]
    container["command"] = [to_text(c) for c in step.command]
    if step.env:
        container["env"] = [_env(e, to_text) for e in step.env]
    if (env_from := _credentials(pipeline, step)) is not None:
        container["envFrom"] = env_from
    container["image"] = step.image or spec.image
    if (resources := _resources(step.resources or defaults.resources)) is not None:
        container["resources"] = resources
    container["securityContext"] = _security_context(
        DEFAULT_CONTAINER_SECURITY_CONTEXT, step.security_context
    )
    if step.volume_mounts:
        container["volumeMounts"] = [_argo_shape(m) for m in step.volume_mounts]
    template: Manifest = {}
    if (timeout := step.timeout or defaults.timeout) is not None:
        template["activeDeadlineSeconds"] = timeout_seconds(timeout)
    placement = _placement(step, defaults)
    if "affinity" in placement:
        template["affinity"] = placement["affinity"]
    template["container"] = container
    inputs, outputs = step.inputs, step.outputs
    item_inputs = [{"name": item_parameter(k)} for k in _item_keys(step)] if step.for_each else []
    if inputs.artifacts or inputs.parameters or item_inputs:
        template["inputs"] = _io(
            [_input_artifact(a, to_text) for a in inputs.artifacts],
            [{"name": p.name} for p in inputs.parameters] + item_inputs,
        )
    template["name"] = step.name
    if "nodeSelector" in placement:
        template["nodeSelector"] = placement["nodeSelector"]
    if outputs.artifacts or outputs.parameters:
        template["outputs"] = _io(
            [_artifact(a) for a in outputs.artifacts],
            [{"name": p.name, "valueFrom": {"path": p.path}} for p in outputs.parameters],
        )
    if "priorityClassName" in placement:
        template["priorityClassName"] = placement["priorityClassName"]
    if (retry := _retry(step.retry or defaults.retry)) is not None:
        template["retryStrategy"] = retry
    if "tolerations" in placement:
        template["tolerations"] = placement["tolerations"]
    return template


def _task_argument(ref: str, kind: str) -> str:
    step, name = split_ref(ref)
    return f"{{{{tasks.{step}.outputs.{kind}.{name}}}}}"


# --- Conditions ----------------------------------------------------------------------------------
#
# A task's `when` is one expression of Argo's expression language, `{{=...}}`: Argo evaluates it
# with every value as a variable of the expression, so no value, whatever its text, can change
# the expression's structure (with `{{...}}` tags, Argo would paste values into the text first).
# Outputs of other tasks are read with get(), which gives nil for an output that a skipped or
# failed task never produced, instead of the error that makes Argo wait for it forever.


def _expr_get(root: str, *keys: str) -> str:
    expression = root
    for key in keys:
        expression = f"get({expression}, {conditions.expr_string(key)})"
    return expression


def _expr_text(text: str) -> str:
    """A text with `{{pipeline.parameters.NAME}}` placeholders, as an expr string expression."""
    parts: list[str] = []
    for i, piece in enumerate(placeholders.PLACEHOLDER_RE.split(text)):
        if i % 2:
            name = placeholders.parse(piece).name
            parts.append(f"workflow.parameters[{conditions.expr_string(name)}]")
        elif piece:
            parts.append(conditions.expr_string(piece))
    return " + ".join(parts) or '""'


def _expr_value(step: api.Step, ref: conditions.Reference) -> str:
    """The expr expression of a placeholder's value, in the DAG task of `step`."""
    kind, name = ref.placeholder.kind, ref.placeholder.name
    if kind == "pipeline.parameters":
        return f"workflow.parameters[{conditions.expr_string(name)}]"
    if kind == "promotion":
        return _expr_get("tasks", PROMOTION_TASK, "outputs", "parameters", name)
    param = next(p for p in step.inputs.parameters if p.name == name)
    if param.from_ is None:
        return f"({_expr_text(param.value or '')})"
    source, output = split_ref(param.from_)
    return _expr_get("tasks", source, "outputs", "parameters", output)


def _succeeded(task: str) -> str:
    return f'{_expr_get("tasks", task, "status")} == "Succeeded"'


def _uncertain_steps(steps: list[api.Step]) -> set[str]:
    """Steps that can end without succeeding while the run goes on: those with a condition or
    continueOnFailure, those with `forEach.from` (an empty list skips them), and those that take
    outputs from one of them (they are skipped then)."""
    seeds = {
        s.name
        for s in steps
        if s.when is not None
        or s.continue_on_failure
        or (s.for_each is not None and s.for_each.from_ is not None)
    }
    return downstream(steps, seeds, step_producers)


def _task_when(step: api.Step, uncertain: set[str]) -> str | None:
    """The task's `when`: the producers of its inputs succeeded (when they might not have), and
    its own condition holds."""
    guards = [p for p in step_producers(step) if p in uncertain]
    if reads_promotion(step) or uses_promotion(step):  # it needs the decision
        guards.append(PROMOTION_TASK)
    parts = [_succeeded(g) for g in guards]
    for_each = step.for_each
    if for_each is not None and for_each.from_ is not None and for_each.max_parallel is not None:
        # Argo skips a looped task over an empty list, but the wrapper template that carries
        # maxParallel (`_fan_out`) would succeed around it: the wrapper's task is skipped itself.
        source, name = split_ref(for_each.from_)
        items = _expr_get("tasks", source, "outputs", "parameters", name)
        parts.append(f"len(fromJSON({items})) > 0")
    if step.when is not None:
        condition = conditions.parse(step.when)
        parts.append(f"({conditions.to_expr(condition, lambda ref: _expr_value(step, ref))})")
    if not parts:
        return None
    return "{{=" + " && ".join(parts) + "}}"


def _step_task(step: api.Step, uncertain: set[str], run: RunTexts) -> Manifest:
    task: Manifest = {}
    inputs = step.inputs
    passed = _passed(inputs.artifacts)
    if passed or inputs.parameters:
        task["arguments"] = _io(
            [{"from": _task_argument(ref, "artifacts"), "name": name} for name, ref in passed],
            [
                {
                    "name": p.name,
                    "value": _task_argument(p.from_, "parameters")
                    if p.from_
                    else _to_argo_argument(p.value or "", run),
                }
                for p in inputs.parameters
            ],
        )
    if step.continue_on_failure:
        task["continueOn"] = {"error": True, "failed": True}
    dependencies = step_dependencies(step)
    if reads_promotion(step) or uses_promotion(step):
        dependencies.append(PROMOTION_TASK)
    if dependencies:
        task["dependencies"] = dependencies
    task["name"] = step.name
    task["template"] = step.name
    if (when := _task_when(step, uncertain)) is not None:
        task["when"] = when
    return task


def _items_argument(step: api.Step, outer: bool) -> Manifest:
    """`withItems` or `withParam` of a fanned-out step's looped task."""
    for_each = step.for_each
    assert for_each is not None
    if for_each.items is not None:
        return {"withItems": for_each.items}
    assert for_each.from_ is not None
    if outer:
        return {"withParam": _task_argument(for_each.from_, "parameters")}
    return {"withParam": f"{{{{inputs.parameters.{ITEM_LIST_PARAMETER}}}}}"}


# The input parameter of a wrapper template (see `_fan_out`) that carries `forEach.from`'s list.
ITEM_LIST_PARAMETER = f"{ITEM_PARAMETER}-list"


def _wrapper_name(step: api.Step) -> str:
    # Step names are lower-case: "-forEach" never names another step's template.
    return f"{step.name}-forEach"


def _fan_out(
    step: api.Step, template: Manifest, uncertain: set[str], run: RunTexts
) -> tuple[Manifest, list[Manifest]]:
    """The task and templates of a step with forEach.

    Without maxParallel, the step's own task loops (`withItems` / `withParam`); Argo gives the
    task's outputs as JSON lists. With it, the loop moves into a DAG template of its own whose
    `parallelism` limits the running iterations (Argo's parallelism applies to a template's
    children), fed with the step's inputs and giving back the aggregated output parameters.
    """
    for_each = step.for_each
    assert for_each is not None
    task = _step_task(step, uncertain, run)
    item_arguments = [
        {
            "name": item_parameter(k),
            "value": _argument_expression(f"item.{k}" if k else "item", run),
        }
        for k in _item_keys(step)
    ]
    if item_arguments:
        arguments = task.setdefault("arguments", {})
        arguments["parameters"] = [*arguments.get("parameters", []), *item_arguments]
    if for_each.max_parallel is None:
        return dict(sorted({**task, **_items_argument(step, outer=True)}.items())), [template]
    inputs, outputs = step.inputs, step.outputs
    passed = [p for p in inputs.parameters if p.from_ is not None]
    list_input = [{"name": ITEM_LIST_PARAMETER}] if for_each.from_ is not None else []
    inner_arguments = _io(
        [
            {"from": f"{{{{inputs.artifacts.{name}}}}}", "name": name}
            for name, _ in _passed(inputs.artifacts)
        ],
        [
            {"name": p.name, "value": f"{{{{inputs.parameters.{p.name}}}}}"}
            if p.from_ is not None
            else {"name": p.name, "value": _to_argo_argument(p.value or "", run)}
            for p in inputs.parameters
        ]
        + item_arguments,
    )
    inner = _present(
        {
            "arguments": inner_arguments,
            "name": step.name,
            "template": step.name,
            **_items_argument(step, outer=False),
        }
    )
    wrapper = _present(
        {
            "dag": {"tasks": [inner]},
            "inputs": _io(
                [{"name": name} for name, _ in _passed(inputs.artifacts)],
                [{"name": p.name} for p in passed] + list_input,
            ),
            "name": _wrapper_name(step),
            "outputs": _io(
                [],
                [
                    {
                        "name": p.name,
                        "valueFrom": {
                            "parameter": f"{{{{tasks.{step.name}.outputs.parameters.{p.name}}}}}"
                        },
                    }
                    for p in outputs.parameters
                ],
            ),
            "parallelism": for_each.max_parallel,
        }
    )
    outer_arguments = _io(
        [
            {"from": _task_argument(ref, "artifacts"), "name": name}
            for name, ref in _passed(inputs.artifacts)
        ],
        [{"name": p.name, "value": _task_argument(p.from_ or "", "parameters")} for p in passed]
        + (
            [{"name": ITEM_LIST_PARAMETER, "value": _task_argument(for_each.from_, "parameters")}]
            if for_each.from_ is not None
            else []
        ),
    )
    outer = _present(
        {
            "arguments": outer_arguments,
            "continueOn": task.get("continueOn"),
            "dependencies": task.get("dependencies"),
            "name": step.name,
            "template": _wrapper_name(step),
            "when": task.get("when"),
        }
    )
    return outer, [wrapper, template]


def _promotion(pipeline: api.MLPipeline, options: CompileOptions) -> tuple[Manifest, Manifest]:
    spec = pipeline.spec
    promotion, mlflow = spec.promotion, spec.mlflow
    assert promotion is not None and mlflow is not None  # guaranteed by validation
    request = request_for(
        pipeline,
        tracking_uri=mlflow.tracking_uri,
        run_id="{{inputs.parameters.run-id}}",
        namespace="{{workflow.namespace}}",
        workflow="{{workflow.name}}",
        output_dir=OUTPUT_DIR,
    )
    env_from = None
    if mlflow.credentials_secret:
        env_from = [{"secretRef": {"name": mlflow.credentials_secret}}]
    container = {
        "args": request.to_args(),
        "command": ["mlpipeline", "promote"],
        "envFrom": env_from,
        "image": options.promotion_image,
        "resources": {
            "limits": {"memory": "512Mi"},
            "requests": {"cpu": "100m", "memory": "256Mi"},
        },
        "securityContext": PROMOTION_CONTAINER_SECURITY_CONTEXT,
    }
    # The exit handler reads the decision through the Workflow's global outputs.
    exported = placeholders.NAMED_FORMS["promotion"] if spec.on_exit is not None else ()
    template = {
        "container": _present(container),
        "inputs": {"parameters": [{"name": "run-id"}]},
        "name": PROMOTION_TASK,
        "outputs": {
            "parameters": [
                _present(
                    {
                        "globalName": _promotion_global(name) if name in exported else None,
                        "name": name,
                        "valueFrom": {"default": "", "path": f"{OUTPUT_DIR}/{name}"},
                    }
                )
                for name in OUTPUT_NAMES
            ]
        },
        # The default whole, whatever spec.podSecurityContext says.
        "securityContext": DEFAULT_POD_SECURITY_CONTEXT,
    }
    # Promote only once every step before it has succeeded: depend on the source and on every
    # last step, leaving out the steps that run after the promotion.
    after = after_promotion(spec.steps)
    before = [s for s in spec.steps if s.name not in after]
    depended_on = {d for s in before for d in step_dependencies(s)}
    sinks = [s.name for s in before if s.name not in depended_on]
    deps = list(dict.fromkeys([promotion.from_.step, *sinks]))
    source = f"{promotion.from_.step}.{promotion.from_.parameter}"
    task = {
        "arguments": {
            "parameters": [{"name": "run-id", "value": _task_argument(source, "parameters")}]
        },
        "dependencies": deps,
        "name": PROMOTION_TASK,
        "template": PROMOTION_TASK,
    }
    # No model to promote when the step that trains it was skipped (or failed and went on).
    if promotion.from_.step in _uncertain_steps(spec.steps):
        task["when"] = "{{=" + _succeeded(promotion.from_.step) + "}}"
    return task, template


def _memoized(templates: list[Manifest], pipeline: api.MLPipeline) -> list[Manifest]:
    """The step templates, with Argo's `memoize` on those of cached steps."""
    spec = pipeline.spec
    max_ages = [step_max_age(s, spec) for s in spec.steps]
    if not any(max_ages):
        return templates
    keys = cache_keys(spec)
    config_map = cache_config_map_name(pipeline.metadata.namespace or "", pipeline.metadata.name)
    memoized = []
    for step, template, max_age in zip(spec.steps, templates, max_ages, strict=True):
        if max_age is not None:
            memoize = {"cache": {"configMap": {"name": config_map}}, "key": keys[step.name]}
            memoize["maxAge"] = max_age
            template = dict(sorted({**template, "memoize": memoize}.items()))
        memoized.append(template)
    return memoized


def _promotion_names(step: api.Step) -> list[str]:
    """The names of `{{promotion.NAME}}` that a validated step uses, in a fixed order."""
    refs = {placeholders.parse(e) for t in step_texts(step) for e in placeholders.find(t)}
    used = {ref.name for ref in refs if ref.kind == "promotion"}
    return [name for name in placeholders.NAMED_FORMS["promotion"] if name in used]


def _run_after_promotion(step: api.Step, task: Manifest, template: Manifest, run: RunTexts) -> None:
    """A step that uses `{{promotion.*}}` (its task depends on the promotion, and runs only when
    it succeeded: `_step_task`): its task passes the values it uses as input parameters."""
    names = _promotion_names(step)
    arguments = task.setdefault("arguments", {})
    arguments["parameters"] = [
        *arguments.get("parameters", []),
        *(
            {"name": PROMOTION_INPUTS[n], "value": _argo_expression(f"promotion.{n}", run)}
            for n in names
        ),
    ]
    inputs = template.setdefault("inputs", {})
    inputs["parameters"] = [
        *inputs.get("parameters", []),
        *({"name": PROMOTION_INPUTS[n]} for n in names),
    ]
    for manifest in (task, template):  # keys in alphabetical order, as everywhere
        ordered = dict(sorted(manifest.items()))
        manifest.clear()
        manifest.update(ordered)


def _artifact_gc(artifact_gc: api.ArtifactGC) -> Manifest | None:
    """Argo's artifact GC. `forceFinalizerRemoval`: a run whose artifacts cannot be deleted (no
    rights, the store unreachable) is still deleted, leaving them, instead of being held by
    Argo's finalizer for ever."""
    if artifact_gc.strategy == "Never":
        return None
    return {"forceFinalizerRemoval": True, "strategy": artifact_gc.strategy}


def _workflow_spec(pipeline: api.MLPipeline, options: CompileOptions, run: RunTexts) -> Manifest:
    spec = pipeline.spec
    uncertain = _uncertain_steps(spec.steps)
    tasks: list[Manifest] = []
    templates: list[Manifest] = []
    to_container = functools.partial(_to_container_text, run=run)
    step_templates = _memoized(
        [_step_template(s, pipeline, to_container) for s in spec.steps], pipeline
    )
    for step, template in zip(spec.steps, step_templates, strict=True):
        if step.for_each is None:
            task = _step_task(step, uncertain, run)
            if uses_promotion(step):
                _run_after_promotion(step, task, template, run)
            tasks.append(task)
            templates.append(template)
        else:
            task, fan_out_templates = _fan_out(step, template, uncertain, run)
            tasks.append(task)
            templates += fan_out_templates
    if spec.promotion is not None:
        task, template = _promotion(pipeline, options)
        tasks.append(task)
        templates.append(template)
    if spec.on_exit is not None:
        to_exit = functools.partial(_to_exit_text, run=run)
        templates.append(_step_template(exit_as_step(spec.on_exit), pipeline, to_exit))
    repo = spec.artifact_repository_ref
    workflow_spec = {
        "activeDeadlineSeconds": None if spec.timeout is None else timeout_seconds(spec.timeout),
        "archiveLogs": spec.archive_logs,
        "arguments": {"parameters": [{"name": p.name, "value": p.value} for p in spec.parameters]}
        if spec.parameters
        else None,
        "artifactGC": _artifact_gc(spec.artifact_gc),
        "artifactRepositoryRef": None
        if repo is None
        else _present({"configMap": repo.config_map, "key": repo.key}),
        "entrypoint": ENTRY_TEMPLATE,
        "imagePullSecrets": [{"name": s.name} for s in spec.image_pull_secrets]
        if spec.image_pull_secrets
        else None,
        "onExit": EXIT_STEP if spec.on_exit is not None else None,
        "parallelism": spec.parallelism,
        "podGC": None if spec.pod_gc.strategy == "Never" else {"strategy": spec.pod_gc.strategy},
        "podMetadata": {"labels": run_labels(pipeline)},
        "securityContext": _security_context(
            DEFAULT_POD_SECURITY_CONTEXT, spec.pod_security_context
        ),
        "serviceAccountName": spec.service_account_name or "default",
        "templateDefaults": _template_defaults(pipeline, options),
        "templates": [{"dag": {"tasks": tasks}, "name": ENTRY_TEMPLATE}, *templates],
        "ttlStrategy": {"secondsAfterCompletion": TTL_SECONDS_AFTER_COMPLETION},
        **_volumes(spec),
    }
    return _present(workflow_spec)


def _claim_template(template: api.VolumeClaimTemplate) -> Manifest:
    claim = {
        "accessModes": template.access_modes,
        "resources": {"requests": {"storage": str(template.resources.requests.storage)}},
        "storageClassName": template.storage_class_name,
    }
    return {"metadata": {"name": template.name}, "spec": _present(claim)}


def _volumes(spec: api.MLPipelineSpec) -> Manifest:
    """The workflow's volumes and claim templates; a claim is deleted when the run ends,
    succeeded or not (Argo's default keeps the claims of a failed run)."""
    volumes: Manifest = {}  # keys in alphabetical order, after ttlStrategy
    if spec.volume_claim_templates:
        volumes["volumeClaimGC"] = {"strategy": "OnWorkflowCompletion"}
        volumes["volumeClaimTemplates"] = [_claim_template(t) for t in spec.volume_claim_templates]
    if spec.volumes:
        volumes["volumes"] = [_volume(v) for v in spec.volumes]
    return volumes


def _volume(volume: api.Volume) -> Manifest:
    manifest = _argo_shape(volume)
    empty_dir = manifest.get("emptyDir")
    if empty_dir is not None and "sizeLimit" in empty_dir:  # a quantity is a string in Argo
        empty_dir["sizeLimit"] = str(empty_dir["sizeLimit"])
    return manifest


def compile_pipeline(pipeline: api.MLPipeline, options: CompileOptions | None = None) -> Manifest:
    """The Argo object for a valid pipeline: a CronWorkflow when scheduled, else a Workflow."""
    with gc_paused():
        return _compile(pipeline, options or CompileOptions())


def _compile(pipeline: api.MLPipeline, options: CompileOptions) -> Manifest:
    meta_ = pipeline.metadata
    generation = meta_.generation or 1
    annotations = {k: v for k, v in meta_.annotations.items() if k == ANNOTATION_GIT_REVISION}
    schedule = pipeline.spec.schedule
    if options.scheduled_time is not None:
        at = parse_rfc3339(options.scheduled_time)
        assert at is not None  # validated by the caller
        name = run_at_name(meta_.namespace or "", meta_.name, at)
        # Argo's own record of a run's scheduled time, as `argo submit --scheduled-time` sets it.
        annotations[ARGO_ANNOTATION_SCHEDULED_TIME] = options.scheduled_time
        run = RunTexts(scheduled_time=options.scheduled_time, generation=str(generation))
        kind, spec = "Workflow", _workflow_spec(pipeline, options, run)
    elif schedule is None:
        name = run_name(meta_.namespace or "", meta_.name, generation, options.rerun)
        run = RunTexts(scheduled_time=WORKFLOW_SCHEDULED_TIME, generation=str(generation))
        kind, spec = "Workflow", _workflow_spec(pipeline, options, run)
    else:
        run = RunTexts(scheduled_time=CRON_SCHEDULED_TIME, generation=str(generation))
        workflow_spec = _workflow_spec(pipeline, options, run)
        history = pipeline.spec.history
        name, kind = meta_.name, "CronWorkflow"
        workflow_metadata = {
            "annotations": dict(annotations) or None,
            "labels": run_labels(pipeline),
        }
        cron_spec = {
            "concurrencyPolicy": schedule.concurrency_policy,
            "failedJobsHistoryLimit": history.failed,
            "schedules": [schedule.cron],
            "startingDeadlineSeconds": schedule.starting_deadline_seconds,
            "successfulJobsHistoryLimit": history.succeeded,
            "suspend": schedule.suspend or None,
            "timezone": schedule.timezone,
            "workflowMetadata": _present(workflow_metadata),
            "workflowSpec": workflow_spec,
        }
        spec = _present(cron_spec)
    metadata = {
        "annotations": annotations or None,
        "labels": run_labels(pipeline),
        "name": name,
        "namespace": meta_.namespace,
    }
    manifest = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": kind,
        "metadata": _present(metadata),
        "spec": spec,
    }
    # Measured on the compact JSON text that the API server stores.
    size = len(pydantic_core.to_json(manifest).decode())
    if size > MAX_WORKFLOW_BYTES:
        raise InvalidPipeline(
            [
                Problem(
                    "spec",
                    f"compiles to an Argo {kind} of {size} bytes, over the limit of "
                    f"{MAX_WORKFLOW_BYTES} bytes (etcd stores a run whole, with its status); "
                    "split the pipeline or shorten its steps",
                )
            ]
        )
    return manifest


def compile_run(pipeline: api.MLPipeline, options: CompileOptions | None = None) -> CompiledRun:
    """The compiled run of a valid pipeline, with the pipeline it was compiled from."""
    return CompiledRun(pipeline=pipeline, manifest=compile_pipeline(pipeline, options))


def compile_document(doc: object, options: CompileOptions | None = None) -> Manifest:
    """Validate and compile one MLPipeline document; raises InvalidPipeline with every problem."""
    pipeline, problems = validate_document(doc)
    if pipeline is None:
        raise InvalidPipeline(problems)
    return compile_pipeline(pipeline, options)
