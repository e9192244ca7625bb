"""Exit codes of `mlpipeline promote`, and the failure that carries one."""

from __future__ import annotations

import enum
from urllib.parse import urlsplit, urlunsplit


class ExitCode(enum.IntEnum):
    """What `mlpipeline promote` exits with (docs/promotion.md lists them too)."""

    DECIDED = 0  # Promoted, or Rejected without --fail-on-reject
    INTERNAL = 1  # a bug: an unexpected exception (Python's own exit code for it)
    USAGE = 2  # bad flags or environment variables (argparse)
    REJECTED = 3  # Rejected with --fail-on-reject
    UNAVAILABLE = 4  # MLflow unreachable, timing out or answering 5xx/429 after every attempt
    UNAUTHORIZED = 5  # MLflow refused the credentials (401) or the permission (403)
    NOT_FOUND = 6  # the run id is empty or unknown, or the run has no model at the artifact path
    MLFLOW_ERROR = 7  # MLflow refused a request for another reason (the message says which)


class PromotionFailure(Exception):
    """An operational failure: no decision could be made. `str()` is the whole message."""

    def __init__(self, code: ExitCode, message: str, *, version: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        # The model version already registered when it failed, if any.
        self.version = version


def redact_uri(uri: str) -> str:
    """A URI safe to print: any user:password@ in it becomes ***@."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri
    if parts.username is None and parts.password is None:
        return uri
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))
