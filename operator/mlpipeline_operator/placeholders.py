"""The `{{...}}` placeholders that a step may use, shared by validation, compiler and local runner.

A step may write, in its command, args, env values and input parameter values:

    {{pipeline.parameters.NAME}}      a pipeline parameter
    {{inputs.parameters.NAME}}        one of the step's input parameters
    {{inputs.artifacts.NAME.path}}    where an input artifact is placed
    {{outputs.artifacts.NAME.path}}   where the step must leave an output artifact
    {{outputs.parameters.NAME.path}}  the file whose content becomes an output parameter
    {{volumes.NAME.path}}             where the step mounts volume NAME (its volumeMounts)
    {{item}}                          the current item of a step with forEach
    {{item.KEY}}                      a key of the current item (an object)
    {{promotion.decision}}            the promotion's decision (also .version and .alias): the
                                      step then runs after the promotion
    {{pipeline.scheduledTime}}        when the run is scheduled for (RFC 3339; see docs/compiler.md)
    {{pipeline.runName}}              the run's name (the Argo Workflow's)
    {{pipeline.generation}}           the metadata.generation the run was compiled from
    {{pipeline.status}}               in spec.onExit only: how the run ended
    {{pipeline.failures}}             in spec.onExit only: the failed steps, as JSON

and a step's condition (`when`, see `conditions`) may read the promotion's decision:

    {{promotion.decision}}, {{promotion.version}}, {{promotion.alias}}

Anything else between `{{` and `}}` is an error.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

PlaceholderKind = Literal[
    "pipeline.parameters",
    "inputs.parameters",
    "inputs.artifacts",
    "outputs.artifacts",
    "outputs.parameters",
    "volumes",
    "item",
    "promotion",
    "pipeline",
    "run",
]

# Non-greedy, so "{{a}} and {{b}}" are two placeholders; an unclosed "{{" is reported apart.
PLACEHOLDER_RE = re.compile(r"\{\{(.*?)\}\}")
_FORM_RE = re.compile(
    r"^(?P<kind>pipeline\.parameters|inputs\.parameters|inputs\.artifacts|outputs\.artifacts"
    r"|outputs\.parameters|volumes)\.(?P<name>[a-zA-Z0-9_][-a-zA-Z0-9_]*)(?P<suffix>\.path)?$"
)
# `{{item}}` (name "") and `{{item.KEY}}` (name KEY).
_ITEM_RE = re.compile(r"^item(?:\.(?P<key>[a-zA-Z_][a-zA-Z0-9_]*))?$")
# Placeholders with a fixed set of names: `{{promotion.decision}}`, `{{pipeline.status}}`...
_NAMED_FORM_RE = re.compile(r"^(?P<kind>promotion|pipeline)\.(?P<name>[a-z]+)$")
NAMED_FORMS: dict[str, tuple[str, ...]] = {
    "promotion": ("decision", "version", "alias"),
    "pipeline": ("status", "failures"),
}
# The run's time and identity, `{{pipeline.scheduledTime}}`...: kind "run", named as written.
RUN_NAMES = ("scheduledTime", "runName", "generation")
_RUN_FORM_RE = re.compile(r"^pipeline\.(?P<name>scheduledTime|runName|generation)$")
_NEEDS_PATH = frozenset({"inputs.artifacts", "outputs.artifacts", "outputs.parameters", "volumes"})

ALLOWED_FORMS = (
    "{{pipeline.parameters.NAME}}, {{inputs.parameters.NAME}}, {{inputs.artifacts.NAME.path}}, "
    "{{outputs.artifacts.NAME.path}}, {{outputs.parameters.NAME.path}}, {{volumes.NAME.path}}, "
    "{{promotion.decision}}, {{promotion.version}}, {{promotion.alias}}, "
    "{{pipeline.scheduledTime}}, {{pipeline.runName}}, {{pipeline.generation}}, and in "
    "spec.onExit {{pipeline.status}} and "
    "{{pipeline.failures}}"
)


@dataclass(frozen=True)
class Placeholder:
    """A parsed placeholder: what it refers to (for "item": the key, or "" for the item)."""

    kind: PlaceholderKind
    name: str


class PlaceholderError(ValueError):
    """A `{{...}}` that is not one of the allowed forms."""


@functools.lru_cache(maxsize=4096)
def parse(expression: str) -> Placeholder:
    """Parse the inside of `{{...}}` (surrounding spaces allowed)."""
    item = _ITEM_RE.match(expression.strip())
    if item is not None:
        return Placeholder("item", item["key"] or "")
    run = _RUN_FORM_RE.match(expression.strip())
    if run is not None:
        return Placeholder("run", run["name"])
    match = _FORM_RE.match(expression.strip())
    named = _NAMED_FORM_RE.match(expression.strip()) if match is None else None
    if named is not None and named["name"] in NAMED_FORMS[named["kind"]]:
        return Placeholder(named["kind"], named["name"])  # type: ignore[arg-type]
    if match is None:
        raise PlaceholderError(
            f'"{{{{{expression}}}}}" is not a known placeholder; use one of {ALLOWED_FORMS}'
        )
    kind: PlaceholderKind = match["kind"]  # type: ignore[assignment]
    has_path = match["suffix"] is not None
    if has_path != (kind in _NEEDS_PATH):
        form = f"{{{{{kind}.{match['name']}{'' if has_path else '.path'}}}}}"
        raise PlaceholderError(
            f'"{{{{{expression}}}}}" is not a known placeholder; did you mean "{form}"?'
        )
    return Placeholder(kind, match["name"])


def uses(texts: Iterable[str], kind: PlaceholderKind) -> bool:
    """Whether any text has a valid placeholder of `kind` (invalid ones are validation's)."""
    for text in texts:
        if "{{" not in text:
            continue
        for expression in find(text):
            try:
                if parse(expression).kind == kind:
                    return True
            except PlaceholderError:
                continue
    return False


def find(text: str) -> list[str]:
    """The expressions inside every `{{...}}` of a text."""
    return PLACEHOLDER_RE.findall(text)


def item_keys(texts: Iterable[str]) -> list[str]:
    """The item placeholders of validated texts as item keys ("" for `{{item}}`), in order of
    first use."""
    keys: dict[str, None] = {}
    for text in texts:
        for expression in find(text):
            ref = parse(expression)
            if ref.kind == "item":
                keys.setdefault(ref.name)
    return list(keys)


def has_unclosed(text: str) -> bool:
    """Whether a `{{` is left open once every complete placeholder is removed."""
    return "{{" in PLACEHOLDER_RE.sub("", text)


def substitute(text: str, replace: Callable[[Placeholder], str]) -> str:
    """Replace every placeholder of an already validated text."""
    if "{{" not in text:
        return text
    return PLACEHOLDER_RE.sub(lambda m: replace(parse(m[1])), text)
