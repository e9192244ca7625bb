"""Fan-out and fan-in of the local runner, with the values Argo gives.

- The items: `forEach.items` as written, or the JSON list held by the output parameter named by
  `forEach.from`, checked before any iteration starts (a list; items that are strings, numbers,
  booleans, lists or objects; every `{{item.KEY}}` of the step a key of every item).
- `{{item}}`: a string item itself, a number as its JSON text, an object or list as compact JSON
  (keys sorted); `{{item.KEY}}`: the key's value, a string itself, anything else as JSON.
- Fan-in: an output parameter of a fanned-out step is the JSON list of every iteration's value in
  item order: a list of strings, or, when every value is a JSON object or list, of those values.
- JSON as Go writes it: compact, '<', '>' and '&' escaped in strings, non-ASCII kept.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from mlpipeline_operator import placeholders
from mlpipeline_operator.api.models import Step
from mlpipeline_operator.core import split_ref
from mlpipeline_operator.messages import quoted

# A value shown in a message (the JSON of a runtime list can be long).
SHOWN = 200


class FanOutError(ValueError):
    """Why a step's iterations cannot start: its `forEach.from` value, or one of its items."""


def _go_numbers(value: Any) -> Any:
    """Numbers as Go's encoding/json round-trips them (float64: 1.0 is written 1)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, list):
        return [_go_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: _go_numbers(v) for k, v in value.items()}
    return value


def go_json(value: Any) -> str:
    """Compact JSON as Go's json.Marshal writes it (map keys sorted, HTML characters escaped)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escaped)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _shown(text: str) -> str:
    return quoted(text if len(text) <= SHOWN else text[:SHOWN] + "...")


def item_text(item: Any, key: str = "") -> str:
    """`{{item}}` (key "") or `{{item.KEY}}` of an item whose keys were checked."""
    value = item[key] if key else item
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list) and key:
        # Argo prints a nested value as it was written, HTML characters as they are.
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return go_json(value)


def item_label(item: Any) -> str:
    """The item as Argo names its iteration: "a", "1", "model:forest,size:2"."""
    if isinstance(item, dict):
        return ",".join(sorted(f"{k}:{item_text(item, k)}" for k in item))
    return item_text(item).replace("(", "").replace(")", "")


def _step_texts(step: Step) -> list[str]:
    literal_values = [p.value or "" for p in step.inputs.parameters if p.from_ is None]
    env_values = [e.value or "" for e in step.env]
    return [*step.command, *step.args, *env_values, *literal_values]


def items_of(step: Step, outputs: Mapping[str, Mapping[str, str]]) -> list[Any]:
    """The items of a step with forEach; FanOutError when a runtime list does not fit."""
    for_each = step.for_each
    assert for_each is not None
    if for_each.items is not None:
        return list(for_each.items)
    assert for_each.from_ is not None
    source, name = split_ref(for_each.from_)
    text = outputs[source][name]
    where = f"forEach.from {quoted(for_each.from_)}"
    try:
        items = json.loads(text, parse_constant=lambda _: math.nan)
    except ValueError:
        raise FanOutError(f"{where}: the value is not JSON: {_shown(text)}") from None
    if not isinstance(items, list):
        raise FanOutError(f"{where}: the value is not a JSON list: {_shown(text)}")
    keys = [k for k in placeholders.item_keys(_step_texts(step)) if k]
    for index, item in enumerate(items):
        if item is None or (isinstance(item, float) and not math.isfinite(item)):
            raise FanOutError(
                f"{where}: item {index} is {go_json(item)}; an item is a string, a number, "
                "a boolean, a list or an object"
            )
        for key in keys:
            if not isinstance(item, dict) or key not in item:
                raise FanOutError(
                    f'{where}: item {index} ({_shown(go_json(item))}) has no key "{key}", '
                    f"which {{{{item.{key}}}}} needs"
                )
    return items


def _parsed_container(value: str) -> tuple[bool, Any]:
    try:
        parsed = json.loads(value)
    except ValueError:
        return False, None
    return isinstance(parsed, dict | list), parsed


def aggregate(values: Sequence[str]) -> str:
    """The fan-in of one output parameter: Argo's JSON list of every iteration's value."""
    parsed = [_parsed_container(v) for v in values]
    if parsed and all(ok for ok, _ in parsed):
        return go_json([_go_numbers(value) for _, value in parsed])
    return go_json(list(values))
