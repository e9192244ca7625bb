"""The MLflow side of the promotion step: every call to the tracking server and model registry.

Only `mlflow-skinny` is needed (the operator image has nothing more). Every call is retried on
transient errors (connection refused or reset, timeouts, HTTP 408/429/5xx) within the
`RetryPolicy`, with MLflow's own HTTP retries turned off (see `mlflow_http_settings`); every
other error becomes a `PromotionFailure` with the exit code for it and a message that names the
tracking URI (without credentials) and what was being done.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import requests
import urllib3
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mlpipeline_operator import lineage
from mlpipeline_operator.promotion.decision import Holder
from mlpipeline_operator.promotion.errors import ExitCode, PromotionFailure, redact_uri
from mlpipeline_operator.promotion.retry import RetriesExhausted, RetryPolicy, call_with_retries

T = TypeVar("T")

# Tags written on the model version (lineage keys become TAG_PREFIX + key).
TAG_PREFIX = lineage.TAG_PREFIX
TAG_ARTIFACT_PATH = TAG_PREFIX + "artifact-path"
TAG_DECISION = TAG_PREFIX + "decision"
TAG_REASON = TAG_PREFIX + "reason"
MAX_TAG_VALUE = 5000  # MLflow's smallest limit for a model version tag value

# MLflow's rule for run ids; checking it first also keeps the id safe inside a search filter.
RUN_ID_RE = re.compile(r"^[a-zA-Z0-9][\w\-]{0,255}$")
MLMODEL = "MLmodel"

CREDENTIAL_VARIABLES = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
TOKEN_VARIABLE = "MLFLOW_TRACKING_TOKEN"

_TRANSIENT_CODES = frozenset(
    {"TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"}
)
_AUTH_CODES = frozenset({"UNAUTHENTICATED", "CUSTOMER_UNAUTHORIZED"})
_ALREADY_EXISTS = frozenset({"RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"})
_NOT_FOUND = frozenset({"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"})
_NO_ENDPOINT = frozenset({"ENDPOINT_NOT_FOUND", "NOT_IMPLEMENTED"})
_NOT_TRANSIENT_REQUESTS = (
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidSchema,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidHeader,
)


@contextlib.contextmanager
def mlflow_http_settings(policy: RetryPolicy) -> Iterator[None]:
    """MLflow's HTTP client without its own retries (ours bound them) and with our timeout;
    MLflow's INFO chatter silenced. The environment is restored afterwards."""
    settings = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(policy.request_timeout),
    }
    saved = {name: os.environ.get(name) for name in settings}
    mlflow_logger = logging.getLogger("mlflow")
    level = mlflow_logger.level
    os.environ.update(settings)
    mlflow_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        mlflow_logger.setLevel(level)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_transient(error: BaseException) -> bool:
    """Worth another try: no connection, no answer in time, or an HTTP 408/429/5xx."""
    for cause in _chain(error):
        if isinstance(cause, _NOT_TRANSIENT_REQUESTS):
            return False
        if isinstance(cause, requests.exceptions.RequestException):
            return True
    return isinstance(error, MlflowException) and error.error_code in _TRANSIENT_CODES


def _first_line(text: str, limit: int = 300) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def describe_error(error: BaseException, timeout: int | None = None) -> str:
    """A transient or MLflow error in a few words ("connection refused", "HTTP 503")."""
    for cause in _chain(error):
        if isinstance(cause, requests.exceptions.Timeout):
            return f"no answer within {timeout}s" if timeout else "timed out"
        if isinstance(cause, requests.exceptions.RetryError):
            status = re.search(r"too many (\d+) error responses", str(cause))
            return f"HTTP {status[1]}" if status else "HTTP error"
        if isinstance(cause, requests.exceptions.ConnectionError):
            # Without retries, urllib3 reports a read timeout as a connection error.
            reason = getattr(cause.args[0] if cause.args else None, "reason", None)
            timed_out = isinstance(reason, urllib3.exceptions.TimeoutError)
            # NewConnectionError (refused, unresolvable) is a ConnectTimeoutError in urllib3.
            if timed_out and not isinstance(reason, urllib3.exceptions.NewConnectionError):
                return f"no answer within {timeout}s" if timeout else "timed out"
            errno = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(cause))
            return f"connection failed: {errno[1].strip()}" if errno else "connection failed"
    message = error.message if isinstance(error, MlflowException) else str(error)
    return _first_line(str(message)) or type(error).__name__


def credentials_hint() -> str:
    """Which credential variables are set (names only: values are never printed)."""
    present = [n for n in (*CREDENTIAL_VARIABLES, TOKEN_VARIABLE) if os.environ.get(n)]
    if not present:
        return (
            "no credentials in the environment: set MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN (spec.mlflow.credentialsSecret)"
        )
    return f"the credentials in {', '.join(present)} were not accepted"


@dataclass(frozen=True)
class RunInfo:
    """What the promotion needs from an MLflow run."""

    run_id: str
    experiment_id: str
    artifact_uri: str
    metrics: dict[str, float]
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class VersionInfo:
    """A model version: number, source run and tags."""

    version: str
    run_id: str | None
    tags: dict[str, str]


def _version_info(mv: Any) -> VersionInfo:
    return VersionInfo(str(mv.version), mv.run_id or None, dict(mv.tags or {}))


class Registry:
    """The MLflow calls of one promotion, each retried within the policy."""

    def __init__(
        self,
        tracking_uri: str,
        policy: RetryPolicy,
        *,
        log: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.uri = redact_uri(tracking_uri)
        self._policy = policy
        self._log = log
        try:
            self._client = MlflowClient(tracking_uri=tracking_uri)
        except (MlflowException, ImportError) as error:
            raise PromotionFailure(
                ExitCode.MLFLOW_ERROR,
                f"cannot use tracking URI {self.uri}: {describe_error(error)}",
            ) from None

    # --- plumbing ------------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """`fn()` with retries; a failure becomes a PromotionFailure that says `what` failed."""

        def on_retry(attempt: int, delay: float, error: BaseException) -> None:
            self._log(
                f"MLflow at {self.uri}: {what} failed "
                f"({describe_error(error, self._policy.request_timeout)}); "
                f"attempt {attempt} of {self._policy.attempts} in {delay:g}s"
            )

        try:
            return call_with_retries(fn, self._policy, is_transient, on_retry=on_retry)
        except RetriesExhausted as exhausted:
            raise PromotionFailure(
                ExitCode.UNAVAILABLE,
                f"MLflow at {self.uri} is unavailable: {what} failed {exhausted.attempts} "
                f"time{'s' if exhausted.attempts != 1 else ''} in {exhausted.elapsed:.1f}s "
                f"(last: {describe_error(exhausted.last, self._policy.request_timeout)}). "
                "Attempts and waits: --attempts, --backoff, --request-timeout.",
            ) from None
        except MlflowException as error:
            raise self._failure(what, error) from None
        except _NoModel as error:
            raise PromotionFailure(ExitCode.NOT_FOUND, f"MLflow at {self.uri}: {error}") from None
        except ImportError as error:
            # A store this image cannot use (mlflow-skinny has no SQLAlchemy for sqlite:// URIs).
            raise PromotionFailure(
                ExitCode.MLFLOW_ERROR,
                f"cannot {what} at {self.uri}: a module is missing ({error}); "
                "use an http(s):// tracking server",
            ) from None

    def _failure(self, what: str, error: MlflowException) -> PromotionFailure:
        code = error.error_code
        if code in _AUTH_CODES:
            return PromotionFailure(
                ExitCode.UNAUTHORIZED,
                f"MLflow at {self.uri} refused to {what}: not authenticated (HTTP 401); "
                f"{credentials_hint()}",
            )
        if code == "PERMISSION_DENIED":
            return PromotionFailure(
                ExitCode.UNAUTHORIZED,
                f"MLflow at {self.uri} refused to {what}: permission denied (HTTP 403); "
                "the user needs EDIT permission on the registered model (and, the first time, "
                "the right to create registered models)",
            )
        return PromotionFailure(
            ExitCode.MLFLOW_ERROR,
            f"MLflow at {self.uri} could not {what}: {describe_error(error)}",
        )

    # --- runs ----------------------------------------------------------------------------------

    def get_run(self, run_id: str) -> RunInfo:
        """The run that logged the model; NOT_FOUND when there is no such run."""
        if not RUN_ID_RE.match(run_id):
            reason = "is empty" if not run_id else f'"{run_id[:80]}" is not a valid MLflow run id'
            raise PromotionFailure(
                ExitCode.NOT_FOUND, f"the run id {reason} (the output of promotion.from)"
            )

        def get() -> RunInfo | None:
            try:
                run = self._client.get_run(run_id)
            except MlflowException as error:
                if error.error_code in _NOT_FOUND:
                    return None
                raise
            return RunInfo(
                run.info.run_id,
                str(run.info.experiment_id),
                run.info.artifact_uri,
                dict(run.data.metrics),
                dict(run.data.tags),
            )

        info = self._call(f"read run {run_id}", get)
        if info is None:
            raise PromotionFailure(ExitCode.NOT_FOUND, f"MLflow at {self.uri} has no run {run_id}")
        return info

    def holder(self, model: str, version: str, metric: str) -> Holder:
        """The version holding an alias, with `metric` from its source run (None if absent)."""
        info = self._call(
            f"read {model} version {version}",
            lambda: _version_info(self._client.get_model_version(model, version)),
        )
        if info.run_id is None:
            return Holder(version, None, None)
        run_id = info.run_id

        def value() -> float | None:
            try:
                metrics: dict[str, float] = self._client.get_run(run_id).data.metrics
            except MlflowException as error:
                if error.error_code in _NOT_FOUND:
                    return None
                raise
            return metrics.get(metric)

        return Holder(version, run_id, self._call(f"read run {run_id}", value))

    # --- registered model and versions ----------------------------------------------------------

    def ensure_registered_model(self, model: str) -> dict[str, str]:
        """Create the registered model if it does not exist; its aliases (alias -> version)."""

        def ensure() -> dict[str, str]:
            try:
                registered = self._client.get_registered_model(model)
            except MlflowException as error:
                if error.error_code not in _NOT_FOUND:
                    raise
                try:
                    registered = self._client.create_registered_model(model)
                except MlflowException as create_error:
                    if create_error.error_code not in _ALREADY_EXISTS:
                        raise
                    registered = self._client.get_registered_model(model)
            aliases: Mapping[str, Any] = registered.aliases or {}
            return {str(k): str(v) for k, v in aliases.items()}

        return self._call(f"read or create registered model {model}", ensure)

    def find_or_register(
        self, model: str, run: RunInfo, artifact_path: str, tags: Mapping[str, str]
    ) -> tuple[VersionInfo, bool]:
        """The version of `model` registered from the run's model at `artifact_path`, creating
        it (with `tags`) only if there is none; True when it was created now.

        Looked up and created in one retried unit, so that a retry after a lost answer finds
        the version the lost request created instead of creating a second one.
        """
        return self._call(
            f"register {model} from run {run.run_id}",
            lambda: self._find_or_register(model, run, artifact_path, tags),
        )

    def _find_or_register(
        self, model: str, run: RunInfo, artifact_path: str, tags: Mapping[str, str]
    ) -> tuple[VersionInfo, bool]:
        from_run = [
            mv
            for mv in self._client.search_model_versions(f"run_id = '{run.run_id}'")
            if mv.name == model
        ]
        ours = [mv for mv in from_run if (mv.tags or {}).get(TAG_ARTIFACT_PATH) == artifact_path]
        if ours:
            return _version_info(min(ours, key=lambda mv: int(mv.version))), False
        source, model_id = self._model_source(run, artifact_path)
        # A version registered by other means (by hand, or by mlflow.register_model) counts.
        same = [mv for mv in from_run if mv.source == source]
        if same:
            return _version_info(min(same, key=lambda mv: int(mv.version))), False
        created = self._client.create_model_version(
            name=model,
            source=source,
            run_id=run.run_id,
            tags={TAG_ARTIFACT_PATH: artifact_path, **tags},
            model_id=model_id,
        )
        return _version_info(created), True

    def _model_source(self, run: RunInfo, artifact_path: str) -> tuple[str, str | None]:
        """Where the run's model is, as MLflow 3's `register_model("runs:/...")` finds it: a
        logged model named `artifact_path` from the run (`models:/<id>`), else an MLmodel file
        under the run's artifacts (MLflow 2 layout)."""
        query = f"source_run_id = '{run.run_id}'"
        if "'" not in artifact_path:  # else filtered below, from the first page
            query += f" AND name = '{artifact_path}'"
        try:
            found: list[Any] = list(
                self._client.search_logged_models(
                    experiment_ids=[run.experiment_id], filter_string=query
                )
            )
        except MlflowException as error:
            # An MLflow 2 server has no logged models: its models are run artifacts.
            if error.error_code not in _NO_ENDPOINT:
                raise
            found = []
        logged = [lm for lm in found if lm.name == artifact_path]
        if logged:
            newest = max(logged, key=lambda lm: lm.creation_timestamp or 0)
            return f"models:/{newest.model_id}", str(newest.model_id)
        files = self._client.list_artifacts(run.run_id, artifact_path)
        if any(f.path.rsplit("/", 1)[-1] == MLMODEL for f in files):
            return f"{run.artifact_uri.rstrip('/')}/{artifact_path.strip('/')}", None
        raise _NoModel(run.run_id, artifact_path)

    def set_tags(self, model: str, version: VersionInfo, tags: Mapping[str, str]) -> None:
        """Set the tags whose value differs from the version's (a re-run writes nothing)."""
        for key, value in tags.items():
            value = value[:MAX_TAG_VALUE]
            if version.tags.get(key) == value:
                continue
            self._call(
                f"tag {model} version {version.version} with {key}",
                functools.partial(
                    self._client.set_model_version_tag, model, version.version, key, value
                ),
            )
            version.tags[key] = value

    def set_alias(self, model: str, alias: str, version: str) -> None:
        self._call(
            f"move alias {alias} of {model} to version {version}",
            lambda: self._client.set_registered_model_alias(model, alias, version),
        )


class _NoModel(Exception):
    """The run has no model at the artifact path."""

    def __init__(self, run_id: str, artifact_path: str) -> None:
        super().__init__(
            f'run {run_id} has no model at artifact path "{artifact_path}" (no logged model '
            f"of that name, no {MLMODEL} file under the run's artifacts)"
        )
