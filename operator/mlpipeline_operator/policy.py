"""The tenancy policy: what the pipelines of each namespace may use, set by the platform team.

A `TenancyPolicy` document (docs/tenancy.md) lists, as defaults and per namespace, the service
accounts, Secrets, MLflow tracking URIs and registered model names that pipelines may name.
`policy_problems` is the one check, shared by `mlpipeline validate --policy`, the reconciler
and an admission webhook; it is pure (no API calls) and returns field-path problems.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from mlpipeline_operator import yamlio
from mlpipeline_operator.api.models import EnvVar, MLPipeline
from mlpipeline_operator.core import Problem
from mlpipeline_operator.messages import quoted
from mlpipeline_operator.validation import problems_from_pydantic

POLICY_API_VERSION = "mlops.gitops.dev/v1alpha1"
POLICY_KIND = "TenancyPolicy"
# The key of the policy ConfigMap that holds the document.
POLICY_KEY = "policy.yaml"
# What a namespace may use when neither its entry nor the defaults say: its "default" service
# account, and no Secret, tracking URI or model (a policy opens what it lists, nothing else).
BUILT_IN_SERVICE_ACCOUNTS = ("default",)

Pattern = Annotated[str, Field(min_length=1, max_length=1024)]
Patterns = Annotated[list[Pattern], Field(max_length=256)]


class PolicyModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class Allowed(PolicyModel):
    """What pipelines may name. Each entry is a glob (`*`, `?`, `[abc]`, matched case
    sensitively against the whole value); an unset list falls back to the defaults."""

    service_accounts: Patterns | None = Field(
        default=None,
        description='Service accounts of spec.serviceAccountName (unset there: "default").',
    )
    secrets: Patterns | None = Field(
        default=None,
        description="Secrets referenced by the spec: env secretKeyRef, spec.mlflow."
        "credentialsSecret, spec.imagePullSecrets, spec.volumes[].secret.",
    )
    tracking_uris: Patterns | None = Field(
        default=None, description="MLflow tracking URIs of spec.mlflow.trackingUri."
    )
    models: Patterns | None = Field(
        default=None, description="Registered model names of spec.promotion.model."
    )


class Policy(PolicyModel):
    """The tenancy policy document."""

    api_version: Literal["mlops.gitops.dev/v1alpha1"]
    kind: Literal["TenancyPolicy"]
    defaults: Allowed = Field(default_factory=Allowed, description="Every namespace's rules.")
    namespaces: dict[str, Allowed] = Field(
        default_factory=dict,
        description="Rules of one namespace; each list set here replaces the default's.",
    )

    def allowed(self, namespace: str) -> Rules:
        """The effective rules of a namespace: its entry, else the defaults, else built-ins."""
        own = self.namespaces.get(namespace, Allowed())
        base = self.defaults

        def pick(
            mine: list[str] | None, default: list[str] | None, builtin: tuple[str, ...]
        ) -> tuple[str, ...]:
            if mine is not None:
                return tuple(mine)
            return tuple(default) if default is not None else builtin

        return Rules(
            service_accounts=pick(
                own.service_accounts, base.service_accounts, BUILT_IN_SERVICE_ACCOUNTS
            ),
            secrets=pick(own.secrets, base.secrets, ()),
            tracking_uris=pick(own.tracking_uris, base.tracking_uris, ()),
            models=pick(own.models, base.models, ()),
        )


@dataclass(frozen=True)
class Rules:
    """The patterns in force in one namespace."""

    service_accounts: tuple[str, ...]
    secrets: tuple[str, ...]
    tracking_uris: tuple[str, ...]
    models: tuple[str, ...]


class PolicyError(ValueError):
    """A policy document that cannot be used; the message says where and why, on one line."""


def parse_policy(text: str, source: str) -> Policy:
    """The policy in YAML `text`, read from `source` (for messages)."""
    try:
        docs = [d for d in yamlio.load_all(text) if d is not None]
    except yamlio.YamlError as error:
        raise PolicyError(f"{source}:{error.line}:{error.column}: {error.problem}") from None
    if len(docs) != 1:
        raise PolicyError(f"{source}: expected one {POLICY_KIND} document, found {len(docs)}")
    doc = docs[0]
    if not isinstance(doc, dict) or (doc.get("apiVersion"), doc.get("kind")) != (
        POLICY_API_VERSION,
        POLICY_KIND,
    ):
        got = doc if isinstance(doc, dict) else {}
        raise PolicyError(
            f"{source}: not a {POLICY_KIND}: expected apiVersion {POLICY_API_VERSION} and kind "
            f"{POLICY_KIND}, got apiVersion {quoted(got.get('apiVersion'))} and kind "
            f"{quoted(got.get('kind'))}"
        )
    try:
        return Policy.model_validate(doc)
    except ValidationError as error:
        problems = "; ".join(str(p) for p in problems_from_pydantic(error))
        raise PolicyError(f"{source}: {problems}") from None


def _matches(value: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(value, pattern) for pattern in patterns)


def _refused(
    path: str, what: str, value: str, namespace: str, patterns: tuple[str, ...]
) -> Problem:
    allowed = ", ".join(patterns) if patterns else "none"
    return Problem(
        path, f'{what}"{value}" is not allowed in namespace {namespace}; allowed: {allowed}'
    )


def secret_references(pipeline: MLPipeline) -> Iterator[tuple[str, str]]:
    """(field path, Secret name) of every Secret the spec names."""
    spec = pipeline.spec

    def env_secrets(env: list[EnvVar], path: str) -> Iterator[tuple[str, str]]:
        for index, var in enumerate(env):
            if var.value_from is not None and var.value_from.secret_key_ref is not None:
                ref = var.value_from.secret_key_ref
                yield f"{path}.env[{index}].valueFrom.secretKeyRef.name", ref.name

    for index, step in enumerate(spec.steps):
        yield from env_secrets(step.env, f"spec.steps[{index}]")
    if spec.on_exit is not None:
        yield from env_secrets(spec.on_exit.env, "spec.onExit")
    if spec.mlflow is not None and spec.mlflow.credentials_secret:
        yield "spec.mlflow.credentialsSecret", spec.mlflow.credentials_secret
    for index, reference in enumerate(spec.image_pull_secrets or []):
        yield f"spec.imagePullSecrets[{index}].name", reference.name
    for index, volume in enumerate(spec.volumes):
        if volume.secret is not None:
            yield f"spec.volumes[{index}].secret.secretName", volume.secret.secret_name


def policy_problems(pipeline: MLPipeline, namespace: str, policy: Policy) -> list[Problem]:
    """What the pipeline, in `namespace`, names that the policy does not allow there."""
    rules = policy.allowed(namespace)
    spec = pipeline.spec
    problems: list[Problem] = []
    account = spec.service_account_name or "default"
    if not _matches(account, rules.service_accounts):
        what = "" if spec.service_account_name else "unset, so "
        problems.append(
            _refused("spec.serviceAccountName", what, account, namespace, rules.service_accounts)
        )
    for path, name in secret_references(pipeline):
        if not _matches(name, rules.secrets):
            problems.append(_refused(path, "Secret ", name, namespace, rules.secrets))
    if spec.mlflow is not None and not _matches(spec.mlflow.tracking_uri, rules.tracking_uris):
        problems.append(
            _refused(
                "spec.mlflow.trackingUri",
                "",
                spec.mlflow.tracking_uri,
                namespace,
                rules.tracking_uris,
            )
        )
    if spec.promotion is not None and not _matches(spec.promotion.model, rules.models):
        problems.append(
            _refused("spec.promotion.model", "", spec.promotion.model, namespace, rules.models)
        )
    return problems


@dataclass(frozen=True)
class Tenancy:
    """The policy the operator applies: none (single-tenant mode), a policy, or the reason the
    configured policy cannot be used, which refuses every pipeline (never allows everything)."""

    policy: Policy | None = None
    broken: str | None = None

    @property
    def digest(self) -> str:
        """A short digest of what this policy says, equal for equal policies."""
        said = self.broken if self.broken is not None else ""
        if self.policy is not None:
            said = self.policy.model_dump_json()
        return hashlib.sha256(said.encode()).hexdigest()[:16]

    def problems(self, pipeline: MLPipeline, namespace: str) -> list[Problem]:
        if self.broken is not None:
            return [
                Problem(
                    "spec",
                    f"not checked: the tenancy policy cannot be used, so no pipeline runs "
                    f"until it is fixed ({self.broken})",
                )
            ]
        if self.policy is None:
            return []
        return policy_problems(pipeline, namespace, self.policy)


SINGLE_TENANT = Tenancy()
