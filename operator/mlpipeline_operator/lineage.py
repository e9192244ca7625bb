"""The lineage of a run as every step sees it: environment variables naming the pipeline, its
generation and the run, and MLflow's tracking URI; and the MLflow tags that record them.

Shared by the compiler (the values as Argo variables where Argo knows them) and the local runner
(the values themselves), so that a step reads the same names wherever it runs. Pure.

| variable                  | value                                                          |
|---------------------------|----------------------------------------------------------------|
| `MLPIPELINE_NAMESPACE`    | the pipeline's namespace                                       |
| `MLPIPELINE_NAME`         | the pipeline's name                                            |
| `MLPIPELINE_GENERATION`   | its generation (metadata.generation)                           |
| `MLPIPELINE_RUN`          | the run's name (the Workflow's, also for scheduled runs)       |
| `MLPIPELINE_GIT_REVISION` | the mlops.gitops.dev/git-revision annotation, when it is set   |
| `MLFLOW_TRACKING_URI`     | spec.mlflow.trackingUri, unless the step sets it itself        |

A step that logs to MLflow records them as the run tags of `RUN_TAGS` (the names the promotion
writes on model versions), which the promotion reads back to check the run's lineage.
"""

from __future__ import annotations

from mlpipeline_operator.api.constants import ANNOTATION_GIT_REVISION
from mlpipeline_operator.api.models import MLPipeline

ENV_NAMESPACE = "MLPIPELINE_NAMESPACE"
ENV_NAME = "MLPIPELINE_NAME"
ENV_GENERATION = "MLPIPELINE_GENERATION"
ENV_RUN = "MLPIPELINE_RUN"
ENV_GIT_REVISION = "MLPIPELINE_GIT_REVISION"
ENV_TRACKING_URI = "MLFLOW_TRACKING_URI"
# A step's own env may not use this prefix: the operator owns these names.
RESERVED_ENV_PREFIX = "MLPIPELINE_"

# MLflow tag prefix of the lineage, on runs (written by the steps) and model versions (by the
# promotion): mlpipeline.namespace, mlpipeline.pipeline, mlpipeline.generation...
TAG_PREFIX = "mlpipeline."
# The run tag of each variable: the keys the promotion writes on model versions.
RUN_TAGS: dict[str, str] = {
    ENV_NAMESPACE: f"{TAG_PREFIX}namespace",
    ENV_NAME: f"{TAG_PREFIX}pipeline",
    ENV_GENERATION: f"{TAG_PREFIX}generation",
    ENV_RUN: f"{TAG_PREFIX}workflow",
    ENV_GIT_REVISION: f"{TAG_PREFIX}git-revision",
}


def git_revision(pipeline: MLPipeline) -> str | None:
    """The git revision the pipeline was applied from, when its annotation says so."""
    return pipeline.metadata.annotations.get(ANNOTATION_GIT_REVISION) or None


def injected_environment(
    pipeline: MLPipeline, *, namespace: str, run: str, tracking_uri: str | None
) -> dict[str, str]:
    """The variables added to every step's environment, in a fixed order. `namespace` and `run`
    are values or Argo variables (`{{workflow.name}}`); `tracking_uri` None: spec.mlflow is
    unset. A tracking URI that a step sets in its own env is the step's to keep."""
    env = {
        ENV_NAMESPACE: namespace,
        ENV_NAME: pipeline.metadata.name,
        ENV_GENERATION: str(pipeline.metadata.generation or 1),
        ENV_RUN: run,
    }
    if (revision := git_revision(pipeline)) is not None:
        env[ENV_GIT_REVISION] = revision
    if tracking_uri is not None:
        env[ENV_TRACKING_URI] = tracking_uri
    return env
