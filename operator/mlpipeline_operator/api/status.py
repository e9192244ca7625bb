"""Pydantic models of MLPipeline status, written by the operator through the status subresource."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from mlpipeline_operator.api.constants import MAX_STEPS
from mlpipeline_operator.api.models import ApiModel

Phase = Literal["Pending", "Running", "Succeeded", "Failed", "Invalid"]
Timestamp = Annotated[str, Field(max_length=64, description="RFC 3339 time.")]
Message = Annotated[str, Field(max_length=32768)]
MAX_HISTORY = 20
# Iterations of a fanned-out step (forEach) listed by item when they fail, and the length to
# which their items are cut: the status stays small however many items fail.
MAX_FAILED_ITERATIONS = 10
MAX_ITEM_SHOWN = 64


class StatusModel(ApiModel):
    """A part of the status. Read back from the cluster, where another version of the operator
    may have written fields this one does not know: those are ignored, not fatal (the spec's
    models, written by users, still refuse unknown fields)."""

    model_config = ConfigDict(extra="ignore")


class Condition(StatusModel):
    """A condition in Kubernetes' usual shape."""

    type: Literal["Valid", "Ready", "Promoted"] = Field(description="Valid, Ready or Promoted.")
    status: Literal["True", "False", "Unknown"]
    reason: Annotated[str, Field(max_length=128)] = Field(description="CamelCase reason.")
    message: Message = ""
    last_transition_time: Timestamp | None = None
    observed_generation: int | None = None


class FailedIteration(StatusModel):
    """An iteration of a fanned-out step that failed."""

    index: int = Field(ge=0, description="Position of its item in the list (from 0).")
    item: Annotated[str, Field(max_length=MAX_ITEM_SHOWN + 3)] = Field(
        description=f"The item as Argo names it, cut at {MAX_ITEM_SHOWN} characters."
    )
    message: Message | None = Field(
        default=None, description="Argo's message of the iteration's node (why it failed)."
    )


class Iterations(StatusModel):
    """The iterations of a step with forEach, counted by phase."""

    total: int = Field(ge=0, description="Iterations started or waiting.")
    phases: dict[str, int] = Field(
        default_factory=dict,
        max_length=16,
        description="How many iterations are in each of Argo's node phases.",
    )
    failed: list[FailedIteration] | None = Field(
        default=None,
        max_length=MAX_FAILED_ITERATIONS,
        description=f"The first {MAX_FAILED_ITERATIONS} failed iterations, in item order.",
    )


class StepStatus(StatusModel):
    """One step of a run."""

    name: Annotated[str, Field(max_length=63)]
    phase: Annotated[str, Field(max_length=32)] = Field(
        description="Argo's node phase: Pending, Running, Succeeded, Failed, Error, Skipped..."
    )
    retries: int = Field(default=0, ge=0, description="Attempts after the first.")
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    message: Message | None = None
    cached: bool = Field(
        default=False,
        description="Whether the step's result was reused from the cache instead of run "
        "(written only when true).",
    )

    iterations: Iterations | None = Field(
        default=None, description="A step with forEach: its iterations."
    )

    @model_serializer(mode="wrap")
    def _omit_uncached(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Most steps of most runs are not cached: keep the status of large runs small.
        data: dict[str, Any] = handler(self)
        if not self.cached:
            data.pop("cached", None)
        return data


class RunSummary(StatusModel):
    """A run (an Argo Workflow) of the pipeline."""

    name: Annotated[str, Field(max_length=63)] = Field(description="Name of the Workflow.")
    generation: int | None = Field(default=None, description="Pipeline generation it runs.")
    phase: Annotated[str, Field(max_length=32)] = Field(
        description="Argo's workflow phase: Pending, Running, Succeeded, Failed or Error."
    )
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    message: Message | None = None
    stopped_by: Annotated[str, Field(max_length=128)] | None = Field(
        default=None,
        description="When the operator stopped the run (the mlops.gitops.dev/stop annotation): "
        "the field manager that set the annotation, such as kubectl-annotate or "
        "argocd-controller (not the user; the API server's audit log has the user).",
    )
    stopped_at: Timestamp | None = Field(
        default=None, description="When the operator stopped the run (set spec.shutdown: Stop)."
    )


class RunStatus(RunSummary):
    """The most recent run, with its steps."""

    # Besides the user's steps: promote-model and on-exit.
    steps: list[StepStatus] = Field(default_factory=list, max_length=MAX_STEPS + 2)


class PromotionStatus(StatusModel):
    """What the promotion step decided."""

    decision: Literal["Promoted", "Rejected", "Failed"]
    model: Annotated[str, Field(max_length=250)] | None = None
    version: Annotated[str, Field(max_length=32)] | None = None
    alias: Annotated[str, Field(max_length=63)] | None = None
    reason: Message | None = None
    metrics: dict[str, float] = Field(default_factory=dict, max_length=64)
    run: Annotated[str, Field(max_length=63)] | None = Field(
        default=None, description="Workflow that made the decision."
    )
    lineage: Literal["Matched", "Mismatched", "Unknown"] | None = Field(
        default=None,
        description="Whether the MLflow run's lineage tags (mlpipeline.namespace, "
        "mlpipeline.pipeline) name this pipeline: Matched; Mismatched (the model is rejected); "
        "Unknown (the run has no lineage tags).",
    )


class MLPipelineStatus(StatusModel):
    """What the operator observed: the current generation's run, its steps, the promotion."""

    observed_generation: int | None = Field(default=None, description="Generation last handled.")
    phase: Phase | None = Field(
        default=None, description="Pending, Running, Succeeded, Failed, Invalid."
    )
    message: Message | None = Field(default=None, description="Why the phase is what it is.")
    conditions: list[Condition] = Field(default_factory=list, max_length=8)
    last_run: RunStatus | None = Field(default=None, description="The most recent run.")
    history: list[RunSummary] = Field(
        default_factory=list, max_length=MAX_HISTORY, description="Recent runs, newest first."
    )
    promotion: PromotionStatus | None = Field(default=None, description="Last promotion decision.")
