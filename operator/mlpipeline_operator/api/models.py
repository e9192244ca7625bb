"""Pydantic models of the MLPipeline resource: the single source of truth of the API.

The CRD in `crds/` is generated from these models (see `api.crd`), so every field's description
here is also what `kubectl explain mlpipeline.spec...` shows. Bounds (`max_length`, `max_items`)
keep the object far below etcd's size limit and keep the CRD's CEL rules cheap.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel

from mlpipeline_operator.api.constants import (
    MAX_ENV_VARS,
    MAX_FOREACH_ITEMS,
    MAX_GATES,
    MAX_IO_ITEMS,
    MAX_ITEM_KEYS,
    MAX_NAME,
    MAX_PARAMETERS,
    MAX_STEPS,
)
from mlpipeline_operator.messages import described, quoted

# A Kubernetes object name (DNS-1123 subdomain): Secrets, ConfigMaps, ServiceAccounts...
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# A key of a Secret or ConfigMap, as Kubernetes validates it.
CONFIG_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"


def cel(rule: str, message: str) -> dict[str, Any]:
    """A CEL rule that the API server checks at admission (`x-kubernetes-validations`)."""
    return {"x-kubernetes-validations": [{"rule": rule, "message": message}]}


# Strings that reach Argo's controller as they are, where it would evaluate a `{{...}}`.
NO_PLACEHOLDER = cel("!self.contains('{{')", "takes no placeholder ({{...}})")
KubeName = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)]

# Strings: short identifiers and long free text, bounded so the CRD's CEL cost stays low.
Name = Annotated[str, Field(min_length=1, max_length=63)]
Text = Annotated[str, Field(max_length=4096)]
ImageRef = Annotated[str, Field(min_length=1, max_length=512, json_schema_extra=NO_PLACEHOLDER)]
# A Go duration as Argo and Kubernetes write it: "30s", "10m", "1h30m".
_DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$"
_DURATION_PART = re.compile(r"([0-9]+)(?:\.([0-9]+))?(ns|us|ms|s|m|h)")
_NANOSECONDS = {"ns": 1, "us": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
# Go's time.Duration is an int64 of nanoseconds: Argo refuses a longer duration.
MAX_GO_DURATION_NS = 2**63 - 1
# A timeout becomes a template's activeDeadlineSeconds, which Argo decodes as an int32.
MAX_TIMEOUT_SECONDS = 2**31 - 1


def duration_nanoseconds(duration: str) -> int:
    """A Go duration ("1h30m", "1.5s") in whole nanoseconds, as Go's time.ParseDuration reads
    it (a fraction below a nanosecond is dropped)."""
    total = 0
    for whole, fraction, unit in _DURATION_PART.findall(duration):
        scale = _NANOSECONDS[unit]
        total += int(whole) * scale
        if fraction:
            total += int(fraction) * scale // 10 ** len(fraction)
    return total


def _check_duration(value: str) -> str:
    if duration_nanoseconds(value) > MAX_GO_DURATION_NS:
        raise ValueError(
            f"{quoted(value)} is longer than Argo's longest duration, 2562047h47m16.854775807s"
        )
    return value


def _check_timeout(value: str) -> str:
    nanoseconds = duration_nanoseconds(value)
    if nanoseconds == 0:
        raise ValueError(
            f"{quoted(value)} would stop every attempt at once; a timeout is longer than 0s"
        )
    if nanoseconds > MAX_TIMEOUT_SECONDS * 10**9:
        raise ValueError(
            f"{quoted(value)} is longer than the longest timeout Argo takes, "
            f"{MAX_TIMEOUT_SECONDS}s (about 68 years)"
        )
    return value


_DURATION_FIELD = Field(
    max_length=32,
    pattern=_DURATION_PATTERN,
    description='A duration such as "30s", "10m" or "1h30m" (units: ns, us, ms, s, m, h).',
)
Duration = Annotated[str, _DURATION_FIELD, AfterValidator(_check_duration)]
# A limit on one attempt of a step: more than 0, at most MAX_TIMEOUT_SECONDS once rounded up.
Timeout = Annotated[str, _DURATION_FIELD, AfterValidator(_check_timeout)]
_QUANTITY = re.compile(
    r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)


def _check_quantity(value: str | int) -> str | int:
    if isinstance(value, str) and not _QUANTITY.match(value):
        raise ValueError(
            f'{quoted(value)} is not a Kubernetes quantity; write e.g. "500m", "2", "1Gi"'
        )
    if isinstance(value, int) and value < 0:
        raise ValueError(f"{value} is negative; a quantity is at least 0")
    return value


# Kubernetes resource quantity ("500m", "1Gi", 2); checked by the API server and again here.
Quantity = Annotated[
    str | int,
    AfterValidator(_check_quantity),
    Field(description='A Kubernetes quantity such as "500m", "1Gi" or 2.'),
]
# A reference to another step's output: "STEP.NAME".
OutputRef = Annotated[
    str,
    Field(
        max_length=128,
        pattern=r"^[^.]+\.[^.]+$",
        description='The output of an earlier step, written "STEP.NAME" (e.g. "extract.raw").',
    ),
]


class ApiModel(BaseModel):
    """The one configuration of every API model: camelCase names, unknown fields are errors."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_default=False,
        # Types as the CRD has them: "3" is not an integer, "true" not a boolean.
        strict=True,
        # Validators are built on first use: `promote` needs two small models, not all of them.
        defer_build=True,
    )


# Lists keyed by name: the API server rejects duplicate names, and server-side apply merges by name.
LIST_BY_NAME: dict[str, Any] = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["name"],
}
LIST_OF_UNIQUE: dict[str, Any] = {"x-kubernetes-list-type": "set"}


# --- Kubernetes shapes ---------------------------------------------------------------------------


class KeySelector(ApiModel):
    """A key of a Secret or ConfigMap."""

    name: Annotated[KubeName, Field(description="Name of the object.")]
    key: Annotated[
        str,
        Field(
            min_length=1,
            max_length=253,
            pattern=CONFIG_KEY_PATTERN,
            description="Key inside the object.",
        ),
    ]
    optional: bool | None = Field(
        default=None, description="Whether the object or its key may be missing."
    )


class FieldSelector(ApiModel):
    """A field of the pod, as in Kubernetes' ObjectFieldSelector."""

    field_path: Annotated[
        str, Field(max_length=256, description='Path of the field, e.g. "metadata.namespace".')
    ]
    api_version: str | None = Field(
        default=None, max_length=64, description='Version of the schema of fieldPath ("v1").'
    )


class ResourceFieldSelector(ApiModel):
    """A resource limit or request of a container, as in Kubernetes' ResourceFieldSelector."""

    resource: Annotated[str, Field(max_length=128, description='e.g. "limits.memory".')]
    container_name: str | None = Field(
        default=None, max_length=63, description="Container whose resource is read."
    )
    divisor: Quantity | None = Field(default=None, description="Unit of the exposed value.")


class EnvVarSource(ApiModel):
    """Where an environment variable's value comes from (exactly one source)."""

    secret_key_ref: KeySelector | None = Field(default=None, description="A key of a Secret.")
    config_map_key_ref: KeySelector | None = Field(
        default=None, description="A key of a ConfigMap."
    )
    field_ref: FieldSelector | None = Field(default=None, description="A field of the pod.")
    resource_field_ref: ResourceFieldSelector | None = Field(
        default=None, description="A resource of the container."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> EnvVarSource:
        chosen = [
            v
            for v in (
                self.secret_key_ref,
                self.config_map_key_ref,
                self.field_ref,
                self.resource_field_ref,
            )
            if v is not None
        ]
        if len(chosen) != 1:
            raise ValueError(
                "set exactly one of secretKeyRef, configMapKeyRef, fieldRef, resourceFieldRef"
            )
        return self


class EnvVar(ApiModel):
    """An environment variable of a step's container, in Kubernetes' EnvVar shape."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            "!(has(self.value) && has(self.valueFrom))", "set either value or valueFrom, not both"
        )
    )

    name: Annotated[
        str,
        Field(
            min_length=1,
            max_length=128,
            pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$",
            description="Name of the variable.",
        ),
    ]
    value: Text | None = Field(
        default=None, description="Literal value; may use the step's placeholders."
    )
    value_from: EnvVarSource | None = Field(
        default=None, description="Take the value from a Secret, ConfigMap or the pod."
    )

    @model_validator(mode="after")
    def _value_or_source(self) -> EnvVar:
        if self.value is not None and self.value_from is not None:
            raise ValueError("set either value or valueFrom, not both")
        return self


class Resources(ApiModel):
    """Compute resources of a step's container, as in Kubernetes' ResourceRequirements."""

    requests: dict[str, Quantity] | None = Field(
        default=None,
        max_length=16,
        description="Minimum resources, e.g. {cpu: 500m, memory: 1Gi}.",
    )
    limits: dict[str, Quantity] | None = Field(
        default=None,
        max_length=16,
        description="Maximum resources, e.g. {memory: 2Gi, nvidia.com/gpu: 1}.",
    )


# --- Placement: where a step's pod runs, in the Pod spec's own shapes ---------------------------

# A label key or value as Kubernetes checks it; validation gives the messages (validation.py).
LabelKey = Annotated[str, Field(min_length=1, max_length=317)]
LabelValue = Annotated[str, Field(max_length=63)]
LabelMap = Annotated[
    dict[str, LabelValue],
    Field(max_length=64, description="Labels: keys [prefix/]name, values of at most 63."),
]
MAX_PLACEMENT_ITEMS = 32
_Values = Annotated[list[Annotated[str, Field(max_length=63)]], Field(max_length=64)]


class Toleration(ApiModel):
    """A taint the step's pod tolerates, as in Kubernetes' Toleration."""

    key: LabelKey | None = Field(
        default=None, description="Taint key; empty with operator Exists tolerates every taint."
    )
    operator: Literal["Exists", "Equal"] | None = Field(
        default=None, description="Equal (the default): the value matches; Exists: any value."
    )
    value: LabelValue | None = Field(default=None, description="Taint value (with operator Equal).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Effect tolerated (every effect when unset)."
    )
    toleration_seconds: int | None = Field(
        default=None,
        ge=0,
        description="With effect NoExecute: how long the pod stays once the taint appears.",
    )


class NodeSelectorRequirement(ApiModel):
    """A condition on a node's labels (or fields): key, operator, values."""

    key: LabelKey = Field(description="Label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"] = Field(
        description="In, NotIn, Exists, DoesNotExist, Gt or Lt."
    )
    values: _Values | None = Field(
        default=None,
        description="Values: some for In and NotIn, none for Exists and DoesNotExist, one "
        "integer for Gt and Lt.",
    )


class NodeSelectorTerm(ApiModel):
    """Requirements that a node must all meet."""

    match_expressions: list[NodeSelectorRequirement] | None = Field(
        default=None, max_length=MAX_PLACEMENT_ITEMS, description="Requirements on node labels."
    )
    match_fields: list[NodeSelectorRequirement] | None = Field(
        default=None, max_length=MAX_PLACEMENT_ITEMS, description="Requirements on node fields."
    )


class NodeSelector(ApiModel):
    """Terms of which a node must meet at least one."""

    node_selector_terms: list[NodeSelectorTerm] = Field(
        min_length=1, max_length=MAX_PLACEMENT_ITEMS, description="The terms (ORed)."
    )


class PreferredSchedulingTerm(ApiModel):
    """A preferred term of node affinity, with its weight."""

    weight: int = Field(ge=1, le=100, description="Weight, 1 to 100.")
    preference: NodeSelectorTerm = Field(description="The preferred term.")


class NodeAffinity(ApiModel):
    """Node affinity, as in Kubernetes' NodeAffinity."""

    required_during_scheduling_ignored_during_execution: NodeSelector | None = Field(
        default=None, description="Nodes the pod may run on."
    )
    preferred_during_scheduling_ignored_during_execution: list[PreferredSchedulingTerm] | None = (
        Field(default=None, max_length=MAX_PLACEMENT_ITEMS, description="Nodes preferred.")
    )


class LabelSelectorRequirement(ApiModel):
    """A condition on labels: key, operator (In, NotIn, Exists, DoesNotExist), values."""

    key: LabelKey = Field(description="Label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="In, NotIn, Exists or DoesNotExist."
    )
    values: _Values | None = Field(
        default=None, description="Values: some for In and NotIn, none otherwise."
    )


class LabelSelector(ApiModel):
    """A label selector, as in Kubernetes' LabelSelector."""

    match_labels: LabelMap | None = Field(default=None, description="Labels that must match.")
    match_expressions: list[LabelSelectorRequirement] | None = Field(
        default=None, max_length=MAX_PLACEMENT_ITEMS, description="Requirements (ANDed)."
    )


class PodAffinityTerm(ApiModel):
    """Pods (selected by labels) near which, or away from which, the pod runs."""

    label_selector: LabelSelector | None = Field(default=None, description="The pods.")
    namespaces: list[Name] | None = Field(
        default=None, max_length=MAX_PLACEMENT_ITEMS, description="Their namespaces."
    )
    namespace_selector: LabelSelector | None = Field(
        default=None, description="Their namespaces, by label."
    )
    topology_key: LabelKey = Field(
        description='Node label whose value defines "near", e.g. kubernetes.io/hostname.'
    )


class WeightedPodAffinityTerm(ApiModel):
    """A preferred pod affinity term, with its weight."""

    weight: int = Field(ge=1, le=100, description="Weight, 1 to 100.")
    pod_affinity_term: PodAffinityTerm = Field(description="The preferred term.")


class PodAffinity(ApiModel):
    """Pod affinity or anti-affinity, as in Kubernetes' PodAffinity."""

    required_during_scheduling_ignored_during_execution: list[PodAffinityTerm] | None = Field(
        default=None, max_length=MAX_PLACEMENT_ITEMS, description="Terms that must hold."
    )
    preferred_during_scheduling_ignored_during_execution: list[WeightedPodAffinityTerm] | None = (
        Field(default=None, max_length=MAX_PLACEMENT_ITEMS, description="Terms preferred.")
    )


class Affinity(ApiModel):
    """Scheduling constraints, as in Kubernetes' Affinity."""

    node_affinity: NodeAffinity | None = Field(default=None, description="Node affinity.")
    pod_affinity: PodAffinity | None = Field(default=None, description="Pod affinity.")
    pod_anti_affinity: PodAffinity | None = Field(default=None, description="Pod anti-affinity.")


class LocalObjectReference(ApiModel):
    """An object of the pipeline's namespace, by name."""

    name: Annotated[str, Field(min_length=1, max_length=253, description="Name of the object.")]


# --- Security contexts --------------------------------------------------------------------------
#
# Focused subsets of Kubernetes' PodSecurityContext and SecurityContext: what a step needs to run
# under the `restricted` Pod Security Standard, or to leave it knowingly. The compiler's defaults
# (docs/compiler.md) meet that standard; a field set here replaces the default's field.

# A user or group id: Kubernetes takes 0 to 2^31-1 (a Linux id).
UnixId = Annotated[int, Field(ge=0, le=2**31 - 1)]
# Linux capabilities as Kubernetes writes them ("NET_BIND_SERVICE", "ALL"; a "CAP_" prefix is
# kept as written, as Kubernetes does).
CAPABILITY_PATTERN = r"^[A-Z][A-Z0-9_]*$"
Capability = Annotated[str, Field(min_length=1, max_length=64, pattern=CAPABILITY_PATTERN)]


class SeccompProfile(ApiModel):
    """The seccomp profile of a pod or container, as in Kubernetes' SeccompProfile."""

    type: Literal["RuntimeDefault", "Localhost", "Unconfined"] = Field(
        description="RuntimeDefault (the container runtime's profile, what the restricted "
        "standard asks for), Localhost (a profile file on the node) or Unconfined."
    )
    localhost_profile: Annotated[str, Field(min_length=1, max_length=255)] | None = Field(
        default=None,
        description="With type Localhost only: the profile's path, relative to the kubelet's "
        "seccomp directory.",
    )


class Capabilities(ApiModel):
    """Linux capabilities added to and dropped from a container's default set."""

    add: Annotated[list[Capability], Field(max_length=64)] | None = Field(
        default=None,
        description="Capabilities added (the restricted standard allows only NET_BIND_SERVICE).",
    )
    drop: Annotated[list[Capability], Field(max_length=64)] | None = Field(
        default=None, description='Capabilities dropped ("ALL" drops every one).'
    )


class PodSecurityContext(ApiModel):
    """Security settings of every pod of a run (Kubernetes' PodSecurityContext, a subset)."""

    run_as_user: UnixId | None = Field(default=None, description="User id of every container.")
    run_as_group: UnixId | None = Field(
        default=None, description="Primary group id of every container."
    )
    run_as_non_root: bool | None = Field(
        default=None,
        description="Refuse to start a container whose user is root (id 0).",
    )
    fs_group: UnixId | None = Field(
        default=None, description="Group that owns the pod's volumes, added to every container."
    )
    supplemental_groups: Annotated[list[UnixId], Field(max_length=32)] | None = Field(
        default=None, description="More group ids of every container."
    )
    seccomp_profile: SeccompProfile | None = Field(
        default=None, description="Seccomp profile of every container."
    )


class SecurityContext(ApiModel):
    """Security settings of a step's container (Kubernetes' SecurityContext, a subset); each
    field set replaces the pod's or the default's."""

    run_as_user: UnixId | None = Field(default=None, description="User id of the container.")
    run_as_group: UnixId | None = Field(
        default=None, description="Primary group id of the container."
    )
    run_as_non_root: bool | None = Field(
        default=None, description="Refuse to start the container if its user is root (id 0)."
    )
    read_only_root_filesystem: bool | None = Field(
        default=None, description="Mount the container's root filesystem read-only."
    )
    allow_privilege_escalation: bool | None = Field(
        default=None,
        description="Whether a process may gain more privileges than its parent (setuid "
        "binaries); false by default.",
    )
    capabilities: Capabilities | None = Field(
        default=None,
        description="Capabilities added and dropped; replaces the default (drop ALL) whole.",
    )
    seccomp_profile: SeccompProfile | None = Field(
        default=None, description="Seccomp profile of the container."
    )


NodeSelectorMap = Annotated[dict[str, LabelValue], Field(max_length=64)]
Tolerations = Annotated[list[Toleration], Field(max_length=MAX_PLACEMENT_ITEMS)]
PriorityClassName = Annotated[str, Field(max_length=253)]


# --- Volumes -------------------------------------------------------------------------------------

# A volume's name, as Kubernetes names volumes (a DNS label).
VolumeName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Name of the volume: lower-case letters, digits and '-'.",
    ),
]


class PersistentVolumeClaimSource(ApiModel):
    """An existing PersistentVolumeClaim of the pipeline's namespace."""

    claim_name: KubeName = Field(description="Name of the PersistentVolumeClaim.")
    read_only: bool | None = Field(default=None, description="Mount the claim read-only.")


class EmptyDirSource(ApiModel):
    """An empty directory made for each pod (each attempt of a step), gone when the pod ends."""

    medium: Literal["", "Memory"] | None = Field(
        default=None, description='"Memory" for a tmpfs; the node\'s disk when unset or "".'
    )
    size_limit: Quantity | None = Field(
        default=None, description='Most the directory may hold, e.g. "1Gi".'
    )


class KeyToPath(ApiModel):
    """One key of a ConfigMap or Secret, projected as a file."""

    key: Annotated[str, Field(min_length=1, max_length=253, pattern=CONFIG_KEY_PATTERN)] = Field(
        description="The key."
    )
    path: Annotated[str, Field(min_length=1, max_length=1024)] = Field(
        description="Relative path of its file in the volume."
    )
    mode: int | None = Field(default=None, ge=0, le=0o777, description="Mode bits of the file.")


class ConfigMapSource(ApiModel):
    """A ConfigMap's keys as files."""

    name: KubeName = Field(description="Name of the ConfigMap.")
    items: list[KeyToPath] | None = Field(
        default=None, max_length=MAX_IO_ITEMS, description="Only these keys (all when unset)."
    )
    default_mode: int | None = Field(
        default=None, ge=0, le=0o777, description="Mode bits of the files (0644 when unset)."
    )
    optional: bool | None = Field(default=None, description="Whether the ConfigMap may be missing.")


class SecretSource(ApiModel):
    """A Secret's keys as files."""

    secret_name: KubeName = Field(description="Name of the Secret.")
    items: list[KeyToPath] | None = Field(
        default=None, max_length=MAX_IO_ITEMS, description="Only these keys (all when unset)."
    )
    default_mode: int | None = Field(
        default=None, ge=0, le=0o777, description="Mode bits of the files (0644 when unset)."
    )
    optional: bool | None = Field(default=None, description="Whether the Secret may be missing.")


VOLUME_SOURCES = ("persistentVolumeClaim", "emptyDir", "configMap", "secret")


class Volume(ApiModel):
    """A volume that steps may mount: a name and exactly one source, as in Kubernetes."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            "[" + ", ".join(f"has(self.{s})" for s in VOLUME_SOURCES) + "]"
            ".filter(x, x).size() == 1",
            "set exactly one of " + ", ".join(VOLUME_SOURCES),
        )
    )

    name: VolumeName
    persistent_volume_claim: PersistentVolumeClaimSource | None = Field(
        default=None, description="An existing claim, shared by the steps that mount it."
    )
    empty_dir: EmptyDirSource | None = Field(
        default=None, description="A fresh empty directory in each pod (not shared by steps)."
    )
    config_map: ConfigMapSource | None = Field(default=None, description="A ConfigMap's keys.")
    secret: SecretSource | None = Field(default=None, description="A Secret's keys.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Volume:
        chosen = (self.persistent_volume_claim, self.empty_dir, self.config_map, self.secret)
        if sum(source is not None for source in chosen) != 1:
            raise ValueError("set exactly one of " + ", ".join(VOLUME_SOURCES))
        return self


AccessMode = Literal["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"]


class ClaimRequests(ApiModel):
    """What the claim asks for."""

    storage: Quantity = Field(description='Size of the volume, e.g. "1Gi".')


class ClaimResources(ApiModel):
    """The claim's resources."""

    requests: ClaimRequests = Field(description="Minimum size of the volume.")


class VolumeClaimTemplate(ApiModel):
    """A claim made for each run and deleted when the run ends, that steps mount by name."""

    # Argo's workflow-level volumeClaimTemplates; a subset of a PersistentVolumeClaim's spec.

    name: VolumeName
    access_modes: list[AccessMode] = Field(
        min_length=1,
        max_length=4,
        description="ReadWriteOnce, ReadOnlyMany, ReadWriteMany or ReadWriteOncePod.",
        json_schema_extra=LIST_OF_UNIQUE,
    )
    storage_class_name: Annotated[str, Field(max_length=253)] | None = Field(
        default=None,
        description="Storage class of the claim (the cluster's default class when unset).",
    )
    resources: ClaimResources = Field(description="The size asked for: requests.storage.")


def _check_sub_path(value: str) -> str:
    parts = value.split("/")
    if value.startswith("/") or ".." in parts:
        raise ValueError(f"{quoted(value)} must be a relative path inside the volume, without '..'")
    return value


class VolumeMount(ApiModel):
    """A volume mounted into the step's container, in Kubernetes' VolumeMount shape."""

    name: VolumeName = Field(description="A volume of spec.volumes or spec.volumeClaimTemplates.")
    mount_path: Annotated[
        str, Field(min_length=1, max_length=1024, pattern=r"^/", description="Absolute path.")
    ] = Field(description="Where the volume appears in the container (an absolute path).")
    sub_path: Annotated[str, Field(max_length=1024), AfterValidator(_check_sub_path)] | None = (
        Field(default=None, description="Mount this directory of the volume instead of its root.")
    )
    read_only: bool | None = Field(default=None, description="Mount the volume read-only.")


# --- Execution policy ----------------------------------------------------------------------------

RetryPolicyName = Literal["Always", "OnFailure", "OnError", "OnTransientError"]


class Backoff(ApiModel):
    """Wait between attempts: duration, then duration*factor, ... never beyond maxDuration."""

    duration: Duration = Field(description='First wait, e.g. "10s".')
    factor: int | None = Field(
        default=None, ge=1, le=100, description="Multiplier applied to the wait after each retry."
    )
    max_duration: Duration | None = Field(
        default=None,
        description="Stop retrying once this much time has passed since the first try.",
    )


class Retry(ApiModel):
    """How a failed step is tried again (Argo's retryStrategy)."""

    limit: int = Field(ge=0, le=100, description="Retries after the first attempt.")
    policy: RetryPolicyName | None = Field(
        default=None,
        description=(
            "Which failures are retried: Always, OnFailure (the container failed), OnError "
            "(Argo or Kubernetes errors), OnTransientError. Argo's default is OnFailure."
        ),
    )
    backoff: Backoff | None = Field(default=None, description="Wait between attempts.")


class Cache(ApiModel):
    """Reuse a step's earlier result instead of running it again (Argo's memoization)."""

    max_age: Duration = Field(
        description=(
            'How long a result is reused, e.g. "24h": a step whose definition, parameters and '
            "upstream steps are unchanged is not run again within this time. "
            '"0s" turns caching off for a step (overriding spec.defaults.cache).'
        )
    )


class Defaults(ApiModel):
    """Settings that apply to every step unless the step sets its own."""

    retry: Retry | None = Field(default=None, description="Default retry policy of every step.")
    timeout: Timeout | None = Field(
        default=None, description="Default limit on the duration of one attempt of a step."
    )
    resources: Resources | None = Field(
        default=None, description="Default resources of every step's container."
    )
    cache: Cache | None = Field(
        default=None,
        description="Cache every step's result for maxAge (a step's own cache replaces it).",
    )
    node_selector: NodeSelectorMap | None = Field(
        default=None,
        description="Node labels that every step's pod requires (not the promotion's), e.g. "
        '{nvidia.com/gpu.present: "true"}.',
    )
    tolerations: Tolerations | None = Field(
        default=None,
        description="Taints that every step's pod tolerates (not the promotion's).",
    )
    affinity: Affinity | None = Field(
        default=None,
        description="Node and pod affinity of every step's pod (not the promotion's).",
    )
    priority_class_name: PriorityClassName | None = Field(
        default=None,
        description="PriorityClass of every step's pod (not the promotion's).",
    )


# --- Parameters and artifacts --------------------------------------------------------------------

IoName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=63,
        pattern=r"^[a-zA-Z0-9_][-a-zA-Z0-9_]*$",
        description="Name: letters, digits, '_' and '-'.",
    ),
]
FilePath = Annotated[
    str, Field(min_length=1, max_length=1024, pattern=r"^/", description="Absolute path.")
]


class PipelineParameter(ApiModel):
    """A pipeline parameter, usable in steps as {{pipeline.parameters.NAME}}."""

    name: IoName
    value: Text = Field(description="Value of the parameter (a string).")
    description: Text | None = Field(default=None, description="What the parameter is for.")


class InputParameter(ApiModel):
    """A parameter of a step: a literal value, or the output parameter of an earlier step."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            "has(self.value) != has(self.from)", "set exactly one of value or from"
        )
    )

    name: IoName
    value: Text | None = Field(default=None, description="Literal value.")
    from_: OutputRef | None = Field(
        default=None, alias="from", description='Output parameter "STEP.NAME" of an earlier step.'
    )

    @model_validator(mode="after")
    def _value_or_from(self) -> InputParameter:
        if (self.value is None) == (self.from_ is None):
            raise ValueError("set exactly one of value or from")
        return self


class S3Source(ApiModel):
    """An object (or a directory of objects) of the pipeline's artifact repository."""

    key: Annotated[str, Field(min_length=1, max_length=1024)] = Field(
        description=(
            "Key in the bucket of the artifact repository the run uses (spec."
            "artifactRepositoryRef, or the namespace's default), e.g. "
            '"data/raw/{{pipeline.parameters.date}}"; may use {{pipeline.parameters.NAME}}.'
        )
    )


class HttpSource(ApiModel):
    """A file downloaded over HTTP or HTTPS."""

    url: Annotated[str, Field(min_length=1, max_length=2048)] = Field(
        description="http:// or https:// URL; may use {{pipeline.parameters.NAME}}."
    )


class GitSource(ApiModel):
    """A git repository, checked out at a revision (cloned without credentials)."""

    repo: Annotated[str, Field(min_length=1, max_length=1024)] = Field(
        description="https://, http:// or git:// URL of the repository (a public one)."
    )
    revision: Annotated[str, Field(min_length=1, max_length=256)] = Field(
        description="Branch, tag or commit to check out (a commit keeps the run reproducible)."
    )


class ArtifactSource(ApiModel):
    """Where an input artifact comes from outside the pipeline (exactly one of s3, http, git)."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            "(has(self.s3) ? 1 : 0) + (has(self.http) ? 1 : 0) + (has(self.git) ? 1 : 0) == 1",
            "set exactly one of s3, http or git",
        )
    )

    s3: S3Source | None = Field(default=None, description="A key of the artifact repository.")
    http: HttpSource | None = Field(default=None, description="A URL to download.")
    git: GitSource | None = Field(default=None, description="A git repository at a revision.")

    @model_validator(mode="after")
    def _exactly_one(self) -> ArtifactSource:
        if sum(s is not None for s in (self.s3, self.http, self.git)) != 1:
            raise ValueError("set exactly one of s3, http or git")
        return self


class InputArtifact(ApiModel):
    """A file or directory placed at `path` before the step runs, `from` a step or a `source`."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            "has(self.from) != has(self.source)", "set exactly one of from or source"
        )
    )

    name: IoName
    from_: OutputRef | None = Field(
        default=None, alias="from", description='Output artifact "STEP.NAME" of an earlier step.'
    )
    source: ArtifactSource | None = Field(
        default=None, description="Data from outside the pipeline: an S3 key, a URL or a git repo."
    )
    path: FilePath = Field(description="Where the step finds the artifact.")

    @model_validator(mode="after")
    def _from_or_source(self) -> InputArtifact:
        if (self.from_ is None) == (self.source is None):
            raise ValueError("set exactly one of from or source")
        return self


class Inputs(ApiModel):
    """What a step receives."""

    parameters: list[InputParameter] = Field(
        default_factory=list, max_length=MAX_IO_ITEMS, json_schema_extra=LIST_BY_NAME
    )
    artifacts: list[InputArtifact] = Field(
        default_factory=list, max_length=MAX_IO_ITEMS, json_schema_extra=LIST_BY_NAME
    )


class OutputParameter(ApiModel):
    """A value the step writes to a file; its content becomes the parameter."""

    name: IoName
    path: FilePath = Field(description="File whose content is the value.")


class OutputArtifact(ApiModel):
    """A file or directory the step leaves at `path` for later steps."""

    name: IoName
    path: FilePath = Field(description="File or directory to keep.")


class Outputs(ApiModel):
    """What a step produces."""

    parameters: list[OutputParameter] = Field(
        default_factory=list, max_length=MAX_IO_ITEMS, json_schema_extra=LIST_BY_NAME
    )
    artifacts: list[OutputArtifact] = Field(
        default_factory=list, max_length=MAX_IO_ITEMS, json_schema_extra=LIST_BY_NAME
    )


# --- Fan-out -------------------------------------------------------------------------------------

# The key of an object item, as `{{item.KEY}}` names it.
_ITEM_KEY = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]{0,62}$")
MAX_ITEM_TEXT = 1024
ItemScalar = str | int | float
ItemValue = ItemScalar | dict[str, ItemScalar]


def _check_scalar(value: object, where: str) -> ItemScalar:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        expected = (
            "a string or a number"
            if where
            else ("a string, a number, or an object of strings and numbers")
        )
        raise ValueError(f"{where}expected {expected}, got {described(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}expected a finite number, got {value}")
    if isinstance(value, str) and len(value) > MAX_ITEM_TEXT:
        raise ValueError(
            f"{where}is {len(value)} characters long; at most {MAX_ITEM_TEXT} are allowed"
        )
    return value


def _check_item(value: object) -> ItemValue:
    """One item of forEach.items, with one clear message for each way it can be wrong."""
    if not isinstance(value, dict):
        return _check_scalar(value, "")
    if len(value) > MAX_ITEM_KEYS:
        raise ValueError(f"has {len(value)} keys; an item has at most {MAX_ITEM_KEYS}")
    checked: dict[str, ItemScalar] = {}
    for key, inner in value.items():
        if not isinstance(key, str) or not _ITEM_KEY.match(key):
            raise ValueError(
                f"key {quoted(str(key))} is not a name {{{{item.KEY}}}} can use: letters, "
                "digits and '_', not starting with a digit, at most 63 characters"
            )
        checked[key] = _check_scalar(inner, f"key {quoted(key)}: ")
    return checked


# One item of `forEach.items`. Its CRD schema is left open (any JSON value): a structural schema
# has no "string or number or object"; `_check_item` checks the shape.
ForEachItem = Annotated[
    ItemValue,
    PlainValidator(_check_item),
    WithJsonSchema(
        {
            "x-kubernetes-preserve-unknown-fields": True,
            "description": "A string, a number, or an object of strings and numbers.",
        }
    ),
]


class ForEach(ApiModel):
    """Run the step once per item (fan-out); its output parameters become JSON lists (fan-in)."""

    # No CEL rule for "items or from": CEL cannot read `items`, whose schema has no type; the
    # operator's validation reports it (phase Invalid).

    items: list[ForEachItem] | None = Field(
        default=None,
        max_length=MAX_FOREACH_ITEMS,
        description=(
            "The items: strings, numbers, or objects of strings and numbers (keys: letters, "
            f"digits and '_'), at most {MAX_FOREACH_ITEMS}. `{{{{item}}}}` is the item, "
            "`{{item.KEY}}` a key of an object item."
        ),
    )
    from_: OutputRef | None = Field(
        default=None,
        alias="from",
        description=(
            'Output parameter "STEP.NAME" of an earlier step holding a JSON list. An empty list '
            "skips the step and the steps that take its outputs (not those only after it)."
        ),
    )
    max_parallel: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="Most iterations running at once (no limit when unset).",
    )

    @model_validator(mode="after")
    def _items_or_from(self) -> ForEach:
        if (self.items is None) == (self.from_ is None):
            raise ValueError("set exactly one of items or from")
        return self


# --- Steps ---------------------------------------------------------------------------------------

StepName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=63,
        pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$",
        description="Name of the step: lower-case letters, digits and '-', starting with a letter.",
    ),
]
Argument = Annotated[str, Field(max_length=4096)]


class Step(ApiModel):
    """One task of the pipeline: a container run once its dependencies have succeeded."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            "!has(self.dependsOn) || !(self.name in self.dependsOn)",
            "a step cannot depend on itself",
        )
    )

    name: StepName
    image: ImageRef | None = Field(default=None, description="Image; defaults to spec.image.")
    command: list[Argument] = Field(
        min_length=1, max_length=256, description="The command to run, with its arguments."
    )
    args: list[Argument] = Field(
        default_factory=list, max_length=256, description="More arguments after the command."
    )
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=MAX_ENV_VARS,
        description="Environment variables.",
        json_schema_extra=LIST_BY_NAME,
    )
    resources: Resources | None = Field(
        default=None, description="Resources; replaces spec.defaults.resources when set."
    )
    depends_on: list[StepName] = Field(
        default_factory=list,
        max_length=MAX_STEPS,
        description="Steps that must succeed first (inputs `from` other steps add to these).",
        json_schema_extra=LIST_OF_UNIQUE,
    )
    retry: Retry | None = Field(default=None, description="Replaces spec.defaults.retry when set.")
    timeout: Timeout | None = Field(
        default=None, description="Limit on one attempt; replaces spec.defaults.timeout."
    )
    inputs: Inputs = Field(default_factory=Inputs, description="Parameters and artifacts received.")
    outputs: Outputs = Field(
        default_factory=Outputs, description="Parameters and artifacts produced."
    )
    cache: Cache | None = Field(
        default=None,
        description='Reuse the step\'s result; replaces spec.defaults.cache ("0s": not cached).',
    )
    for_each: ForEach | None = Field(
        default=None,
        description=(
            "Run the step once per item; a step taking one of its output parameters receives "
            "the JSON list of every iteration's value, in item order."
        ),
    )
    when: Annotated[str, Field(min_length=1, max_length=1024)] | None = Field(
        default=None,
        description="Condition to run the step, such as `{{inputs.parameters.auc}} >= 0.9 and "
        "{{pipeline.parameters.env}} == prod` or `{{promotion.decision}} == Promoted` (grammar: "
        "docs/compiler.md). When it is false the step ends Skipped, and so do the steps that "
        "take its outputs; steps that only depend on it still run.",
    )
    continue_on_failure: bool = Field(
        default=False,
        description="Let the rest of the pipeline go on when this step fails or errors (its "
        "retries spent); the steps that take its outputs end Skipped. By default a failed step "
        "stops the run.",
    )
    node_selector: NodeSelectorMap | None = Field(
        default=None,
        description="Node labels that its pod requires; replaces spec.defaults.nodeSelector "
        "when set ({} clears it).",
    )
    tolerations: Tolerations | None = Field(
        default=None,
        description="Taints that its pod tolerates; replaces spec.defaults.tolerations "
        "when set ([] clears them).",
    )
    affinity: Affinity | None = Field(
        default=None,
        description="Node and pod affinity of its pod; replaces spec.defaults.affinity "
        "when set ({} clears it).",
    )
    priority_class_name: PriorityClassName | None = Field(
        default=None,
        description="PriorityClass of its pod; replaces spec.defaults.priorityClassName "
        'when set ("" clears it).',
    )
    mlflow_credentials: bool = Field(
        default=False,
        description="Give the step the keys of spec.mlflow.credentialsSecret as environment "
        "variables (MLflow's credentials); by default a step does not see them.",
    )
    volume_mounts: list[VolumeMount] = Field(
        default_factory=list,
        max_length=MAX_IO_ITEMS,
        description="Volumes of spec.volumes or spec.volumeClaimTemplates mounted into the "
        "step's container; `{{volumes.NAME.path}}` is where volume NAME is mounted.",
    )
    security_context: SecurityContext | None = Field(
        default=None,
        description="Security settings of its container; each field set replaces the default "
        "(which meets the restricted Pod Security Standard: docs/compiler.md).",
    )


class ExitStep(ApiModel):
    """The step that runs when the run ends, whatever its outcome (Argo's exit handler)."""

    image: ImageRef | None = Field(default=None, description="Image; defaults to spec.image.")
    command: list[Argument] = Field(
        min_length=1,
        max_length=256,
        description=(
            "The command to run, with its arguments; may use {{pipeline.status}}, "
            "{{pipeline.failures}}, {{promotion.*}} and {{pipeline.parameters.NAME}}."
        ),
    )
    args: list[Argument] = Field(
        default_factory=list, max_length=256, description="More arguments after the command."
    )
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=MAX_ENV_VARS,
        description="Environment variables.",
        json_schema_extra=LIST_BY_NAME,
    )
    resources: Resources | None = Field(
        default=None, description="Resources; replaces spec.defaults.resources when set."
    )
    retry: Retry | None = Field(default=None, description="Replaces spec.defaults.retry when set.")
    timeout: Timeout | None = Field(
        default=None, description="Limit on one attempt; replaces spec.defaults.timeout."
    )
    node_selector: NodeSelectorMap | None = Field(
        default=None,
        description="Node labels that its pod requires; replaces spec.defaults.nodeSelector "
        "when set ({} clears it).",
    )
    tolerations: Tolerations | None = Field(
        default=None,
        description="Taints that its pod tolerates; replaces spec.defaults.tolerations "
        "when set ([] clears them).",
    )
    affinity: Affinity | None = Field(
        default=None,
        description="Node and pod affinity of its pod; replaces spec.defaults.affinity "
        "when set ({} clears it).",
    )
    priority_class_name: PriorityClassName | None = Field(
        default=None,
        description="PriorityClass of its pod; replaces spec.defaults.priorityClassName "
        'when set ("" clears it).',
    )
    mlflow_credentials: bool = Field(
        default=False,
        description="Give the exit step the keys of spec.mlflow.credentialsSecret as "
        "environment variables; by default it does not see them.",
    )
    volume_mounts: list[VolumeMount] = Field(
        default_factory=list,
        max_length=MAX_IO_ITEMS,
        description="Volumes mounted into the exit step's container, as a step mounts them.",
    )


# --- Promotion -----------------------------------------------------------------------------------

GateOp = Literal[">=", ">", "<=", "<", "=="]


class PromotionSource(ApiModel):
    """The step output that holds the MLflow run id of the trained model."""

    step: StepName
    parameter: IoName


# A gate's metric: no comparison sign, no space at either end, so that `mlpipeline promote
# --gate METRIC OP VALUE` reads it back as written (`request.parse_gate`).
GATE_METRIC_PATTERN = r"^[^<>=\s]([^<>=]*[^<>=\s])?$"


class Gate(ApiModel):
    """A quality gate on a metric of the MLflow run: `metric op value`."""

    metric: Annotated[
        str,
        Field(
            min_length=1,
            max_length=250,
            pattern=GATE_METRIC_PATTERN,
            description="MLflow metric key.",
        ),
    ]
    op: GateOp = Field(description="Comparison: >=, >, <=, < or ==.")
    value: float = Field(allow_inf_nan=False, description="Threshold (a finite number).")


class MustBeat(ApiModel):
    """Champion/challenger: the new model must beat the version holding `alias` on `metric`."""

    alias: Name = Field(description="Alias of the version to beat (e.g. champion).")
    metric: Annotated[str, Field(min_length=1, max_length=250, description="Metric compared.")]
    higher_is_better: bool = Field(
        default=True, description="false for losses and errors, where lower wins."
    )


class Promotion(ApiModel):
    """Register the trained model in MLflow and move an alias to it when the gates pass."""

    model: Annotated[
        str,
        Field(
            min_length=1,
            max_length=250,
            description="Registered model name in MLflow.",
            json_schema_extra=NO_PLACEHOLDER,
        ),
    ]
    from_: PromotionSource = Field(
        alias="from", description="Step and output parameter holding the MLflow run id."
    )
    alias: Name = Field(default="champion", description="Alias moved to a promoted version.")
    artifact_path: Annotated[
        str,
        Field(
            min_length=1,
            max_length=512,
            description="Path of the model inside the run (runs:/<run id>/<artifactPath>).",
            json_schema_extra=NO_PLACEHOLDER,
        ),
    ] = "model"
    gates: list[Gate] = Field(
        default_factory=list,
        max_length=MAX_GATES,
        description="Every gate must pass for the model to be promoted.",
    )
    must_beat: MustBeat | None = Field(
        default=None, description="Also require beating the current holder of an alias."
    )
    fail_on_reject: bool = Field(
        default=False,
        description="Fail the run when the model is rejected (by default a rejection succeeds).",
    )


class MLflow(ApiModel):
    """Where the MLflow tracking server and model registry are."""

    tracking_uri: Annotated[
        str,
        Field(
            min_length=1,
            max_length=1024,
            pattern=r"^(https?|file|sqlite|postgresql|mysql|databricks)[:+]",
            description="Tracking URI, e.g. http://mlflow.mlflow:5000; no credentials in it "
            "(credentialsSecret holds them), no placeholder.",
            json_schema_extra={
                "x-kubernetes-validations": [
                    *NO_PLACEHOLDER["x-kubernetes-validations"],
                    {
                        "rule": "!self.matches('^[a-z+]+://[^/?#]*@')",
                        "message": "holds credentials (USER:PASSWORD@); put them in the "
                        "Secret named by credentialsSecret",
                    },
                ]
            },
        ),
    ]
    credentials_secret: (
        Annotated[
            str,
            Field(
                min_length=1,
                max_length=253,
                pattern=DNS_SUBDOMAIN_PATTERN,
                description=(
                    "Secret whose keys become the promotion step's environment (for example "
                    "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or "
                    "MLFLOW_TRACKING_TOKEN), and that of the steps with mlflowCredentials."
                ),
            ),
        ]
        | None
    ) = None


# --- Scheduling and housekeeping -----------------------------------------------------------------


class Schedule(ApiModel):
    """Run the pipeline on a schedule (an Argo CronWorkflow) instead of once per generation."""

    cron: Annotated[
        str,
        Field(
            min_length=1,
            max_length=128,
            description='Cron expression ("0 2 * * *") or @hourly, @daily, @weekly, @monthly...',
        ),
    ]
    timezone: Annotated[
        str, Field(max_length=64, description='IANA time zone of the cron, e.g. "Europe/Paris".')
    ] = "UTC"
    concurrency_policy: Literal["Allow", "Forbid", "Replace"] = Field(
        default="Forbid",
        description="What to do when a run is due while the previous one still runs.",
    )
    suspend: bool = Field(default=False, description="Stop starting new runs.")
    starting_deadline_seconds: int | None = Field(
        default=None,
        ge=0,
        le=2**31 - 1,
        description="How many seconds after its scheduled time a missed run (Argo's controller "
        "was down, say) may still start; a run missed by longer is skipped. Unset: a missed "
        "run is not started.",
    )


class History(ApiModel):
    """How many finished runs are kept."""

    succeeded: int = Field(default=5, ge=0, le=100, description="Succeeded runs kept.")
    failed: int = Field(default=3, ge=0, le=100, description="Failed runs kept.")


class ArtifactRepositoryRef(ApiModel):
    """The Argo artifact repository used to pass artifacts between steps."""

    config_map: KubeName = Field(
        default="artifact-repositories", description="ConfigMap holding the repository."
    )
    key: Annotated[str, Field(max_length=253, pattern=CONFIG_KEY_PATTERN)] | None = Field(
        default=None, description="Key in the ConfigMap (Argo's default key when unset)."
    )


class PodGC(ApiModel):
    """When the pods of finished steps are deleted (Argo's podGC)."""

    strategy: Literal[
        "OnPodSuccess", "OnPodCompletion", "OnWorkflowSuccess", "OnWorkflowCompletion", "Never"
    ] = Field(
        default="OnPodSuccess",
        description=(
            "OnPodSuccess (default): a step's pod is deleted once it succeeded, a failed one "
            "stays until the run is deleted; OnPodCompletion: once it ended; OnWorkflowSuccess, "
            "OnWorkflowCompletion: every pod once the run succeeded, or ended; Never: pods stay "
            "until the run is deleted. Logs outlive the pods when spec.archiveLogs is true."
        ),
    )


class ArtifactGC(ApiModel):
    """When a run's artifacts are deleted from the artifact repository (Argo's artifactGC)."""

    strategy: Literal["OnWorkflowDeletion", "Never"] = Field(
        default="OnWorkflowDeletion",
        description=(
            "OnWorkflowDeletion (default): a run's artifacts and archived logs are deleted with "
            "the run (by Argo's artifact GC pods, see docs/operator.md); Never: they stay."
        ),
    )


# --- The resource --------------------------------------------------------------------------------


# A bound for the schema: more runs at once than any namespace's quota would let run.
MAX_CONCURRENT_RUNS = 1000


class MLPipelineSpec(ApiModel):
    """The desired pipeline: steps, their inputs and outputs, and how the model is promoted."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.promotion) || has(self.mlflow)",
                    "message": "spec.mlflow is required when spec.promotion is set",
                },
                {
                    "rule": "!has(self.promotion) || "
                    "self.steps.exists(s, s.name == self.promotion.from.step)",
                    "message": "spec.promotion.from.step must name one of spec.steps",
                },
                {
                    "rule": "!has(self.schedule) || !has(self.suspend) || !self.suspend",
                    "message": "spec.suspend: a scheduled pipeline is suspended with "
                    "spec.schedule.suspend",
                },
                {
                    "rule": "!has(self.schedule) || !has(self.maxConcurrentRuns)",
                    "message": "spec.maxConcurrentRuns: a scheduled pipeline's runs are limited "
                    "by spec.schedule.concurrencyPolicy",
                },
            ]
        }
    )

    image: ImageRef | None = Field(default=None, description="Default image of every step.")
    service_account_name: KubeName | None = Field(
        default=None,
        description="Service account of the workflow pods (the namespace's 'default' when unset).",
    )
    parameters: list[PipelineParameter] = Field(
        default_factory=list,
        max_length=MAX_PARAMETERS,
        description="Pipeline parameters.",
        json_schema_extra=LIST_BY_NAME,
    )
    artifact_repository_ref: ArtifactRepositoryRef | None = Field(
        default=None, description="Artifact repository (Argo's configured default when unset)."
    )
    defaults: Defaults = Field(default_factory=Defaults, description="Defaults of every step.")
    steps: list[Step] = Field(
        min_length=1,
        max_length=MAX_STEPS,
        description="The steps, run as a DAG.",
        json_schema_extra=LIST_BY_NAME,
    )
    promotion: Promotion | None = Field(
        default=None, description="Promote the trained model in MLflow after the last step."
    )
    mlflow: MLflow | None = Field(
        default=None,
        description="MLflow server used by the promotion; every step gets its tracking URI as "
        "MLFLOW_TRACKING_URI.",
    )
    schedule: Schedule | None = Field(
        default=None, description="Run on a cron schedule instead of once per spec change."
    )
    history: History = Field(default_factory=History, description="Finished runs kept.")
    suspend: bool = Field(
        default=False,
        description="Submit no run while true; the current generation's run is submitted once "
        "it is false again. A run already going on is not stopped (the mlops.gitops.dev/stop "
        "annotation stops it). A scheduled pipeline uses spec.schedule.suspend instead.",
    )
    timeout: Timeout | None = Field(
        default=None,
        description=(
            "Limit on the whole run, from its start (Argo's activeDeadlineSeconds): then its "
            "running steps are stopped and it ends Failed; the exit step still runs."
        ),
    )
    parallelism: int | None = Field(
        default=None,
        ge=1,
        le=MAX_STEPS,
        description=(
            "Most step pods running at once in a run, forEach iterations, the promotion and the "
            "exit step included (no limit when unset)."
        ),
    )
    pod_gc: PodGC = Field(
        default_factory=PodGC,
        alias="podGC",
        description="When the pods of finished steps are deleted.",
    )
    archive_logs: bool = Field(
        default=True,
        description=(
            "Keep every step's log in the artifact repository (Argo's archiveLogs), so that it "
            "can be read after its pod is deleted, for as long as the run is kept."
        ),
    )
    artifact_gc: ArtifactGC = Field(
        default_factory=ArtifactGC,
        alias="artifactGC",
        description="When a run's artifacts and archived logs are deleted.",
    )
    max_concurrent_runs: int | None = Field(
        default=None,
        ge=1,
        le=MAX_CONCURRENT_RUNS,
        description="How many runs of this pipeline may run at once (unlimited when unset): a "
        "run beyond it waits, not submitted, until one of them finishes. Every unfinished run "
        "counts (of earlier generations, reruns, run-at runs). A scheduled pipeline uses "
        "spec.schedule.concurrencyPolicy instead.",
    )
    on_exit: ExitStep | None = Field(
        default=None,
        description=(
            "A step run when the run ends, succeeded or failed (after the promotion), e.g. to "
            "notify; shown in status as the step on-exit."
        ),
    )
    image_pull_secrets: list[LocalObjectReference] | None = Field(
        default=None,
        max_length=MAX_PLACEMENT_ITEMS,
        description="Secrets of the namespace holding credentials of private registries, "
        "used by every pod of a run (the workflow's imagePullSecrets).",
        json_schema_extra=LIST_BY_NAME,
    )
    run_labels: LabelMap | None = Field(
        default=None,
        description="Labels put on every run (Workflow) and its pods, e.g. for cost attribution "
        "({team: fraud, cost-center: ml-42}); keys may not use the operator's prefix "
        "mlops.gitops.dev (nor a subdomain of it) or Argo's workflows.argoproj.io.",
    )
    volumes: list[Volume] = Field(
        default_factory=list,
        max_length=MAX_IO_ITEMS,
        description="Volumes that steps may mount (steps[].volumeMounts): an existing "
        "PersistentVolumeClaim, an emptyDir, a ConfigMap or a Secret.",
        json_schema_extra=LIST_BY_NAME,
    )
    volume_claim_templates: list[VolumeClaimTemplate] = Field(
        default_factory=list,
        max_length=MAX_IO_ITEMS,
        description="Claims made for each run and deleted when it ends, whatever its outcome; "
        "steps mount them by name like spec.volumes.",
        json_schema_extra=LIST_BY_NAME,
    )
    pod_security_context: PodSecurityContext | None = Field(
        default=None,
        description="Security settings of the pods of the steps and of spec.onExit; each field "
        "set replaces the default (runAsNonRoot, user and group 65532, seccomp RuntimeDefault: "
        "docs/compiler.md). The promotion's pod always keeps the default.",
    )


class ObjectMeta(ApiModel):
    """The parts of metadata the compiler uses; the rest of Kubernetes' metadata is ignored."""

    model_config = ConfigDict(extra="ignore")

    # A Kubernetes resource name (DNS-1123 subdomain), within the 63 characters of the names and
    # labels of the pipeline's runs; never a path ("../x"), though the local runner makes one.
    name: Annotated[str, Field(min_length=1, max_length=MAX_NAME, pattern=DNS_SUBDOMAIN_PATTERN)]
    namespace: str | None = None
    generation: int | None = None
    uid: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class MLPipeline(ApiModel):
    """An MLPipeline document as written in git or read from the cluster."""

    api_version: Literal["mlops.gitops.dev/v1alpha1"]
    kind: Literal["MLPipeline"]
    metadata: ObjectMeta
    spec: MLPipelineSpec
    # Written by the operator only; accepted here so that objects read back from the cluster parse.
    status: dict[str, Any] | None = None
