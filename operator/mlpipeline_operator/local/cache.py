"""The local runner's step cache: Argo's memoization, on disk.

One directory per pipeline (.mlpipeline/cache/PIPELINE by default), one entry per key that
`caching.cache_keys` gives, so a step is reused under the conditions the cluster reuses it:

    CACHE/KEY/entry.json           when the entry was made, the output parameters
    CACHE/KEY/artifacts/NAME       a copy of each output artifact (file or directory)

An entry older than the step's maxAge is ignored, as Argo ignores it, and replaced by the
step's next success. An entry that cannot be read is a miss, never the step's failure.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpipeline_operator.api.models import Step
from mlpipeline_operator.core import duration_seconds
from mlpipeline_operator.local.plan import RunLayout

ENTRY_FILE = "entry.json"
ARTIFACTS_DIR = "artifacts"


class CacheError(Exception):
    """An entry that cannot be read, restored or written: a miss, said as a note."""


@dataclass(frozen=True)
class Entry:
    """A step's result kept in the cache."""

    path: Path
    created: float  # time.time() when the step succeeded
    outputs: dict[str, str]  # output parameter values


def _reason(error: OSError) -> str:
    where = f"{error.filename}: " if error.filename else ""
    return f"{where}{error.strerror or error}"


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, symlinks=False, dirs_exist_ok=True)
    else:
        shutil.copy2(source, target)


@dataclass(frozen=True)
class LocalCache:
    """The cache directory of one pipeline."""

    root: Path

    def lookup(self, key: str, max_age: str, now: float) -> Entry | None:
        """The entry under `key` if it is at most `max_age` old; None otherwise.
        Raises CacheError when an entry is there but cannot be read."""
        path = self.root / key
        try:
            raw: Any = json.loads((path / ENTRY_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            why = _reason(error) if isinstance(error, OSError) else f"not JSON: {error}"
            raise CacheError(f"cache entry {path} cannot be read: {why}") from None
        try:
            created = float(raw["created"])
            outputs = {str(k): str(v) for k, v in dict(raw["outputs"]).items()}
        except (KeyError, TypeError, ValueError):
            raise CacheError(f"cache entry {path / ENTRY_FILE} is not an entry") from None
        if now - created > duration_seconds(max_age):
            return None
        return Entry(path, created, outputs)

    def restore(self, entry: Entry, step: Step, layout: RunLayout) -> None:
        """Put the entry's output artifacts where the step leaves them, in fresh directories
        (as a run of the step would). Raises CacheError."""
        try:
            for directory in (layout.work_dir(step.name), layout.fs_root(step.name)):
                if directory.exists():
                    shutil.rmtree(directory)
                directory.mkdir(parents=True)
            for artifact in step.outputs.artifacts:
                source = entry.path / ARTIFACTS_DIR / artifact.name
                if not source.exists():
                    raise CacheError(
                        f'cache entry {entry.path}: artifact "{artifact.name}" is missing'
                    )
                _copy(source, layout.container_path(step.name, artifact.path))
        except OSError as error:
            raise CacheError(
                f"cache entry {entry.path} cannot be restored: {_reason(error)}"
            ) from None
        missing = [p.name for p in step.outputs.parameters if p.name not in entry.outputs]
        if missing:
            raise CacheError(
                f'cache entry {entry.path}: output parameter "{missing[0]}" is missing'
            )

    def store(
        self, key: str, step: Step, layout: RunLayout, outputs: dict[str, str], now: float
    ) -> None:
        """Keep the step's result under `key`, replacing what was there. Raises CacheError."""
        final = self.root / key
        staging = self.root / f".{key}.{os.getpid()}"
        try:
            if staging.exists():
                shutil.rmtree(staging)
            for artifact in step.outputs.artifacts:
                source = layout.container_path(step.name, artifact.path)
                _copy(source, staging / ARTIFACTS_DIR / artifact.name)
            staging.mkdir(parents=True, exist_ok=True)
            entry = {"step": step.name, "key": key, "created": now, "outputs": outputs}
            (staging / ENTRY_FILE).write_text(json.dumps(entry, indent=2), encoding="utf-8")
            if final.exists():
                shutil.rmtree(final)
            staging.rename(final)
        except OSError as error:
            shutil.rmtree(staging, ignore_errors=True)
            raise CacheError(f"cannot keep the result in {final}: {_reason(error)}") from None
