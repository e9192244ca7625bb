"""Pipelines read from files: every document of a YAML file validated, or the problems found.

Shared by `mlpipeline validate`, `render` and `run`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from mlpipeline_operator import yamlio
from mlpipeline_operator.api.models import MLPipeline
from mlpipeline_operator.validation import validate_document, warnings


@dataclass(frozen=True)
class Loaded:
    """The pipelines of one file, or the problems that stop it from being read."""

    label: str
    pipelines: list[MLPipeline]
    problems: list[str]
    # What valid pipelines likely do not mean to do (`validation.warnings`), as printed lines.
    warnings: list[str] = field(default_factory=list)


def load_pipelines(path: str) -> Loaded:
    """Read and validate every document of a file ("-" is standard input)."""
    label = "<stdin>" if path == "-" else path
    try:
        data = _stdin_bytes() if path == "-" else Path(path).read_bytes()
    except OSError as error:
        return Loaded(label, [], [f"{label}: cannot read: {error.strerror or error}"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line, column = _text_position(data, error.start)
        return Loaded(
            label,
            [],
            [f"{label}:{line}:{column}: not UTF-8 text (byte 0x{data[error.start]:02x})"],
        )
    try:
        docs = [d for d in yamlio.load_all(text) if d is not None]
    except yamlio.YamlError as error:
        return Loaded(label, [], [f"{label}:{error.line}:{error.column}: {error.problem}"])
    if not docs:
        return Loaded(label, [], [f"{label}: no document found"])
    pipelines: list[MLPipeline] = []
    messages: list[str] = []
    shown: list[str] = []
    for index, doc in enumerate(docs):
        where = label if len(docs) == 1 else f"{label} (document {index + 1})"
        pipeline, problems = validate_document(doc)
        if pipeline is not None:
            pipelines.append(pipeline)
            shown += [f"{where}: warning: {w}" for w in warnings(pipeline)]
        messages += [f"{where}: {p}" for p in problems]
    return Loaded(label, pipelines, messages, shown)


def _stdin_bytes() -> bytes:
    # Bytes, decoded as files are: the locale's encoding would garble or refuse UTF-8 YAML.
    stream = getattr(sys.stdin, "buffer", None)
    return stream.read() if stream is not None else sys.stdin.read().encode()


def _text_position(data: bytes, index: int) -> tuple[int, int]:
    """1-based line and column (in characters) of byte `index` of mostly-UTF-8 data."""
    start = data.rfind(b"\n", 0, index) + 1
    return data.count(b"\n", 0, index) + 1, len(data[start:index].decode(errors="replace")) + 1
