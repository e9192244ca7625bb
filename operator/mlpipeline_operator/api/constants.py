"""Names and bounds of the API, shared by the models, the CRD, the compiler and the operator."""

from mlpipeline_operator import __version__

GROUP = "mlops.gitops.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "MLPipeline"
PLURAL = "mlpipelines"
SINGULAR = "mlpipeline"
SHORT_NAMES = ("mlp",)

# Labels and annotations that tie generated objects to their pipeline.
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "mlpipeline-operator"
LABEL_PIPELINE = f"{GROUP}/pipeline"
LABEL_GENERATION = f"{GROUP}/generation"
ANNOTATION_GIT_REVISION = f"{GROUP}/git-revision"
# The MLPipeline's own labels are copied to its runs and their pods under this prefix.
PIPELINE_LABEL_PREFIX = f"pipeline.{GROUP}"

# Bounds. etcd refuses objects over about 1.5 MiB and Argo stores every template of a run (and,
# later, one status node per step and attempt) in the Workflow object itself, uncompressed.
MAX_STEPS = 1000
MAX_IO_ITEMS = 32
MAX_ENV_VARS = 64
MAX_PARAMETERS = 64
MAX_GATES = 16
# A step's `forEach.items`: each item becomes a node in the run's status (see docs/compiler.md).
MAX_FOREACH_ITEMS = 256
MAX_ITEM_KEYS = 16
# Kubernetes names and label values, metadata.name and the names of the runs among them.
MAX_NAME = 63
# Argo refuses longer CronWorkflow names (its runs add "-<unix time>" to reach 63 characters).
MAX_SCHEDULED_NAME = 52
# The compiled Workflow (or CronWorkflow) may use at most this many bytes of JSON, which leaves
# room under etcd's limit for the status Argo writes into the same object.
MAX_WORKFLOW_BYTES = 768 * 1024
# Set to any new value to start a new run of the current generation.
ANNOTATION_RERUN = f"{GROUP}/rerun"
# Set on an MLPipeline to the name of one of its runs, or to "current", to stop that run as Argo
# stops a workflow (`spec.shutdown: Stop`: no new step starts, running pods are stopped, exit
# handlers still run). Acted upon when its value changes.
ANNOTATION_STOP = f"{GROUP}/stop"
STOP_CURRENT = "current"
# Set on an MLPipeline to an RFC 3339 time to submit one run whose {{pipeline.scheduledTime}} is
# that time (a backfill of one date); one run per time, however often it is applied.
ANNOTATION_RUN_AT = f"{GROUP}/run-at"
# Written by the operator on every pipeline when the tenancy policy changes (a digest of it): the
# change of annotation makes the operator check the pipeline again against the new policy.
ANNOTATION_POLICY = f"{GROUP}/tenancy-policy"
# Argo's annotation of a run's scheduled time: set by a CronWorkflow on its runs, and by
# `argo submit --scheduled-time`; the operator sets it on a run-at run.
ARGO_ANNOTATION_SCHEDULED_TIME = "workflows.argoproj.io/scheduled-time"
# Written by the operator on a run it stopped: the field manager that set ANNOTATION_STOP, and
# when the operator set `spec.shutdown` (the status reads them back).
ANNOTATION_STOPPED_BY = f"{GROUP}/stopped-by"
ANNOTATION_STOPPED_AT = f"{GROUP}/stopped-at"
# Labels that Argo puts on the runs it creates from a CronWorkflow.
ARGO_LABEL_CRON = "workflows.argoproj.io/cron-workflow"
# Labels that Argo's controller keeps on every Workflow it runs: its phase, and "true" once it
# finished ("false" again when `argo retry` restarts it).
ARGO_LABEL_PHASE = "workflows.argoproj.io/phase"
ARGO_LABEL_COMPLETED = "workflows.argoproj.io/completed"
ARGO_GROUP = "argoproj.io"
# Argo's memoization caches: ConfigMaps with this label, in the namespace of Argo's controller.
ARGO_CACHE_LABEL = "workflows.argoproj.io/configmap-type"
ARGO_CACHE_LABEL_VALUE = "Cache"
DEFAULT_ARGO_NAMESPACE = "argo"
# On a cache ConfigMap: the "namespace/name" of the pipeline whose cache it is.
ANNOTATION_CACHE_OF = f"{GROUP}/cache-of"
ARGO_VERSION = "v1alpha1"

# The operator's own image, which also runs the promotion step (`mlpipeline promote`).
DEFAULT_PROMOTION_IMAGE = f"ghcr.io/mlops-gitops/mlpipeline-operator:{__version__}"
