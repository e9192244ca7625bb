"""YAML in and out, with libyaml's C loader and dumper when PyYAML was built with them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BaseDumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Dumper(_BaseDumper):  # type: ignore[misc,valid-type]
    """Safe dumper that writes repeated values out instead of as anchors and aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def load_all(text: str) -> Iterator[Any]:
    """Every document of a YAML stream (raises yaml.YAMLError on bad syntax)."""
    return yaml.load_all(text, Loader=_Loader)


def dump(obj: Any) -> str:
    """One YAML document, keys in the order given."""
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)


def dump_all(objs: list[Any]) -> str:
    """Several YAML documents separated by `---`."""
    return yaml.dump_all(objs, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)
