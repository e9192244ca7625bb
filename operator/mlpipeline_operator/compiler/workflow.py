"""MLPipeline → Argo Workflow or CronWorkflow, built from hera's generated models.

One DAG task per step, one container template per step, and a final promotion task when
`spec.promotion` is set. The result is a plain dict, ready for the Kubernetes API or YAML.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from hera.workflows.models.io.argoproj.workflow import v1alpha1 as argo
from hera.workflows.models.io.k8s.api.core import v1 as core
from hera.workflows.models.io.k8s.apimachinery.pkg.api.resource import Quantity
from hera.workflows.models.io.k8s.apimachinery.pkg.apis.meta import v1 as meta
from hera.workflows.models.io.k8s.apimachinery.pkg.util.intstr import IntOrString

from mlpipeline_operator import placeholders
from mlpipeline_operator.api import models as api
from mlpipeline_operator.api.constants import (
    ANNOTATION_GIT_REVISION,
    DEFAULT_PROMOTION_IMAGE,
    LABEL_GENERATION,
    LABEL_MANAGED_BY,
    LABEL_PIPELINE,
    MANAGER,
    MAX_WORKFLOW_BYTES,
)
from mlpipeline_operator.core import (
    ENTRY_TEMPLATE,
    PROMOTION_TASK,
    CompiledRun,
    InvalidPipeline,
    Manifest,
    Problem,
    run_name,
    split_ref,
    step_dependencies,
    timeout_seconds,
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


def pipeline_labels(pipeline: api.MLPipeline) -> dict[str, str]:
    """Labels that tie generated objects and their pods to the pipeline and generation."""
    return {
        LABEL_MANAGED_BY: MANAGER,
        LABEL_PIPELINE: pipeline.metadata.name,
        LABEL_GENERATION: str(pipeline.metadata.generation or 1),
    }


@functools.lru_cache(maxsize=4096)
def _argo_expression(expression: str) -> str:
    """One validated placeholder as Argo's variable (cached: pipelines repeat the same few)."""
    ref = placeholders.parse(expression)
    if ref.kind == "pipeline.parameters":
        return f"{{{{workflow.parameters.{ref.name}}}}}"
    suffix = "" if ref.kind == "inputs.parameters" else ".path"
    return f"{{{{{ref.kind}.{ref.name}{suffix}}}}}"


def _to_argo_text(text: str) -> str:
    if "{{" not in text:
        return text
    return placeholders.PLACEHOLDER_RE.sub(lambda m: _argo_expression(m[1]), text)


def _quantities(values: dict[str, str | int] | None) -> dict[str, Quantity] | None:
    if not values:
        return None
    return {k: Quantity(str(v)) for k, v in values.items()}


def _resources(resources: api.Resources | None) -> core.ResourceRequirements | None:
    if resources is None:
        return None
    return core.ResourceRequirements(
        requests=_quantities(resources.requests), limits=_quantities(resources.limits)
    )


def _env(env: api.EnvVar) -> core.EnvVar:
    if env.value_from is None:
        value = None if env.value is None else _to_argo_text(env.value)
        return core.EnvVar(name=env.name, value=value)
    src = env.value_from
    field_ref = resource_ref = None
    if src.field_ref is not None:
        field_ref = core.ObjectFieldSelector(
            field_path=src.field_ref.field_path, api_version=src.field_ref.api_version
        )
    if src.resource_field_ref is not None:
        r = src.resource_field_ref
        resource_ref = core.ResourceFieldSelector(
            resource=r.resource,
            container_name=r.container_name,
            divisor=None if r.divisor is None else Quantity(str(r.divisor)),
        )
    return core.EnvVar(
        name=env.name,
        value_from=core.EnvVarSource(
            secret_key_ref=None
            if (s := src.secret_key_ref) is None
            else core.SecretKeySelector(name=s.name, key=s.key, optional=s.optional),
            config_map_key_ref=None
            if (c := src.config_map_key_ref) is None
            else core.ConfigMapKeySelector(name=c.name, key=c.key, optional=c.optional),
            field_ref=field_ref,
            resource_field_ref=resource_ref,
        ),
    )


def _retry(retry: api.Retry | None) -> argo.RetryStrategy | None:
    if retry is None:
        return None
    backoff = None
    if retry.backoff is not None:
        b = retry.backoff
        backoff = argo.Backoff(
            duration=b.duration,
            factor=None if b.factor is None else IntOrString(b.factor),
            max_duration=b.max_duration,
        )
    return argo.RetryStrategy(
        limit=IntOrString(retry.limit), retry_policy=retry.policy, backoff=backoff
    )


def _step_template(step: api.Step, spec: api.MLPipelineSpec) -> argo.Template:
    defaults = spec.defaults
    timeout = step.timeout or defaults.timeout
    inputs = step.inputs
    outputs = step.outputs
    return argo.Template(
        name=step.name,
        inputs=argo.Inputs(
            parameters=[argo.Parameter(name=p.name) for p in inputs.parameters] or None,
            artifacts=[argo.Artifact(name=a.name, path=a.path) for a in inputs.artifacts] or None,
        )
        if inputs.parameters or inputs.artifacts
        else None,
        outputs=argo.Outputs(
            parameters=[
                argo.Parameter(name=p.name, value_from=argo.ValueFrom(path=p.path))
                for p in outputs.parameters
            ]
            or None,
            artifacts=[argo.Artifact(name=a.name, path=a.path) for a in outputs.artifacts] or None,
        )
        if outputs.parameters or outputs.artifacts
        else None,
        container=core.Container(
            image=step.image or spec.image,
            command=[_to_argo_text(c) for c in step.command],
            args=[_to_argo_text(a) for a in step.args] or None,
            env=[_env(e) for e in step.env] or None,
            resources=_resources(step.resources or defaults.resources),
        ),
        retry_strategy=_retry(step.retry or defaults.retry),
        active_deadline_seconds=None if timeout is None else IntOrString(timeout_seconds(timeout)),
    )


def _task_argument(ref: str, kind: str) -> str:
    step, name = split_ref(ref)
    return f"{{{{tasks.{step}.outputs.{kind}.{name}}}}}"


def _step_task(step: api.Step) -> argo.DAGTask:
    params = [
        argo.Parameter(
            name=p.name,
            value=_task_argument(p.from_, "parameters")
            if p.from_
            else _to_argo_text(p.value or ""),
        )
        for p in step.inputs.parameters
    ]
    artifacts = [
        argo.Artifact(name=a.name, from_=_task_argument(a.from_, "artifacts"))
        for a in step.inputs.artifacts
    ]
    return argo.DAGTask(
        name=step.name,
        template=step.name,
        dependencies=step_dependencies(step) or None,
        arguments=argo.Arguments(parameters=params or None, artifacts=artifacts or None)
        if params or artifacts
        else None,
    )


def _promotion(
    pipeline: api.MLPipeline, options: CompileOptions
) -> tuple[argo.DAGTask, argo.Template]:
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
        env_from = [
            core.EnvFromSource(secret_ref=core.SecretEnvSource(name=mlflow.credentials_secret))
        ]
    template = argo.Template(
        name=PROMOTION_TASK,
        inputs=argo.Inputs(parameters=[argo.Parameter(name="run-id")]),
        outputs=argo.Outputs(
            parameters=[
                argo.Parameter(
                    name=name, value_from=argo.ValueFrom(path=f"{OUTPUT_DIR}/{name}", default="")
                )
                for name in OUTPUT_NAMES
            ]
        ),
        container=core.Container(
            image=options.promotion_image,
            command=["mlpipeline", "promote"],
            args=request.to_args(),
            env_from=env_from,
            resources=core.ResourceRequirements(
                requests={"cpu": Quantity("100m"), "memory": Quantity("256Mi")},
                limits={"memory": Quantity("512Mi")},
            ),
        ),
    )
    # Promote only once every step has succeeded: depend on the source and on every last step.
    depended_on = {d for s in spec.steps for d in step_dependencies(s)}
    sinks = [s.name for s in spec.steps if s.name not in depended_on]
    deps = list(dict.fromkeys([promotion.from_.step, *sinks]))
    task = argo.DAGTask(
        name=PROMOTION_TASK,
        template=PROMOTION_TASK,
        dependencies=deps,
        arguments=argo.Arguments(
            parameters=[
                argo.Parameter(
                    name="run-id",
                    value=_task_argument(
                        f"{promotion.from_.step}.{promotion.from_.parameter}", "parameters"
                    ),
                )
            ]
        ),
    )
    return task, template


def _workflow_spec(pipeline: api.MLPipeline, options: CompileOptions) -> argo.WorkflowSpec:
    spec = pipeline.spec
    tasks = [_step_task(s) for s in spec.steps]
    templates = [_step_template(s, spec) for s in spec.steps]
    if spec.promotion is not None:
        task, template = _promotion(pipeline, options)
        tasks.append(task)
        templates.append(template)
    repo = spec.artifact_repository_ref
    return argo.WorkflowSpec(
        entrypoint=ENTRY_TEMPLATE,
        service_account_name=spec.service_account_name or "default",
        arguments=argo.Arguments(
            parameters=[argo.Parameter(name=p.name, value=p.value) for p in spec.parameters]
        )
        if spec.parameters
        else None,
        artifact_repository_ref=None
        if repo is None
        else argo.ArtifactRepositoryRef(config_map=repo.config_map, key=repo.key),
        pod_gc=argo.PodGC(strategy="OnPodSuccess"),
        ttl_strategy=argo.TTLStrategy(seconds_after_completion=TTL_SECONDS_AFTER_COMPLETION),
        pod_metadata=argo.Metadata(labels=pipeline_labels(pipeline)),
        templates=[
            argo.Template(name=ENTRY_TEMPLATE, dag=argo.DAGTemplate(tasks=tasks)),
            *templates,
        ],
    )


def compile_pipeline(pipeline: api.MLPipeline, options: CompileOptions | None = None) -> Manifest:
    """The Argo object for a valid pipeline: a CronWorkflow when scheduled, else a Workflow."""
    with gc_paused():
        return _compile(pipeline, options or CompileOptions())


def _compile(pipeline: api.MLPipeline, options: CompileOptions) -> Manifest:
    meta_ = pipeline.metadata
    generation = meta_.generation or 1
    labels = pipeline_labels(pipeline)
    annotations = {k: v for k, v in meta_.annotations.items() if k == ANNOTATION_GIT_REVISION}
    workflow_spec = _workflow_spec(pipeline, options)
    schedule = pipeline.spec.schedule
    model: argo.Workflow | argo.CronWorkflow
    if schedule is None:
        model = argo.Workflow(
            api_version="argoproj.io/v1alpha1",
            kind="Workflow",
            metadata=meta.ObjectMeta(
                name=run_name(meta_.namespace or "", meta_.name, generation, options.rerun),
                namespace=meta_.namespace,
                labels=labels,
                annotations=annotations or None,
            ),
            spec=workflow_spec,
        )
    else:
        history = pipeline.spec.history
        model = argo.CronWorkflow(
            api_version="argoproj.io/v1alpha1",
            kind="CronWorkflow",
            metadata=meta.ObjectMeta(
                name=meta_.name,
                namespace=meta_.namespace,
                labels=labels,
                annotations=annotations or None,
            ),
            spec=argo.CronWorkflowSpec(
                schedules=[schedule.cron],
                timezone=schedule.timezone,
                concurrency_policy=schedule.concurrency_policy,
                suspend=schedule.suspend or None,
                successful_jobs_history_limit=history.succeeded,
                failed_jobs_history_limit=history.failed,
                workflow_metadata=meta.ObjectMeta(labels=labels, annotations=annotations or None),
                workflow_spec=workflow_spec,
            ),
        )
    # Serialised once by pydantic's Rust core: the size check and the dict come from one pass.
    raw = model.model_dump_json(by_alias=True, exclude_none=True)
    if len(raw) > MAX_WORKFLOW_BYTES:
        raise InvalidPipeline(
            [
                Problem(
                    "spec",
                    f"compiles to an Argo {model.kind} of {len(raw)} bytes, over the limit of "
                    f"{MAX_WORKFLOW_BYTES} bytes (etcd stores a run whole, with its status); "
                    "split the pipeline or shorten its steps",
                )
            ]
        )
    manifest: Manifest = json.loads(raw)
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
