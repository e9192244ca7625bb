"""YAML in and out, with libyaml's C loader and dumper when PyYAML was built with them.

Documents are read as kubectl reads them, into JSON: strings, finite numbers, booleans, null,
lists and mappings with string keys, nothing else. A duplicate key is an error (kubectl refuses
it; silently keeping the last one can drop a whole `steps:` list), and so is every value JSON
cannot hold (`!!binary`, `.nan`, `.inf`, `1e999`, sets). Dates and times stay the strings they
were written as, as kubectl keeps them. Every problem is a `YamlError` at a line and column.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, ClassVar

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from mlpipeline_operator.messages import described, quoted

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BaseDumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

_TAG = "tag:yaml.org,2002:"
# Integers of the Kubernetes API are 64-bit.
_INT64 = 2**63


class YamlError(ValueError):
    """Why a YAML stream cannot be read, at a 1-based line and column."""

    def __init__(self, problem: str, line: int, column: int) -> None:
        super().__init__(f"line {line}, column {column}: {problem}")
        self.problem = problem
        self.line = line
        self.column = column


def _error(node: Node, problem: str) -> ConstructorError:
    return ConstructorError(None, None, problem, node.start_mark)


class _JsonLoader(_BaseLoader):  # type: ignore[misc,valid-type]
    """A safe loader that builds only what JSON has, and refuses duplicate keys.

    Lists and mappings are built in one call (not PyYAML's two-step generators), so an alias to
    a node that contains it ("a: &x [*x]") is refused instead of building a cycle.
    """

    yaml_constructors: ClassVar[dict[str | None, Callable[[Any, Any], Any]]] = {}
    # The node being built, to say where an unexpected failure happened.
    current: Node | None = None

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        self.current = node
        if node in self.recursive_objects:
            raise _error(node, "an alias refers to a list or mapping that contains it (a cycle)")
        return super().construct_object(node, deep)

    def construct_json_float(self, node: ScalarNode) -> float:
        value: float = self.construct_yaml_float(node)
        if not math.isfinite(value):
            raise _error(
                node, f"{quoted(node.value)} is not a finite number (JSON has no NaN or infinity)"
            )
        return value

    def construct_json_int(self, node: ScalarNode) -> int:
        try:
            value: int = self.construct_yaml_int(node)
        except ValueError:  # more digits than Python converts
            value = _INT64
        if not -_INT64 <= value < _INT64:
            raise _error(node, f"{quoted(node.value)} does not fit a 64-bit integer")
        return value

    def construct_as_written(self, node: ScalarNode) -> str:
        text: str = self.construct_scalar(node)
        return text

    def construct_json_list(self, node: SequenceNode) -> list[Any]:
        return [self.construct_object(child, deep=True) for child in node.value]

    def construct_json_mapping(self, node: MappingNode) -> dict[str, Any]:
        merge_tag = f"{_TAG}merge"
        own = sum(1 for key, _ in node.value if key.tag != merge_tag)
        self.flatten_mapping(node)
        merged, written = node.value[: len(node.value) - own], node.value[len(node.value) - own :]
        mapping: dict[str, Any] = {}
        for key_node, value_node in merged:  # `<<: *base`: the keys written here win
            mapping[self._key(key_node)] = self.construct_object(value_node, deep=True)
        first: dict[str, Node] = {}
        for key_node, value_node in written:
            key = self._key(key_node)
            if key in first:
                mark = first[key].start_mark
                raise _error(
                    key_node,
                    f"duplicate key {quoted(key)} (first at line {mark.line + 1}, "
                    f"column {mark.column + 1})",
                )
            first[key] = key_node
            mapping[key] = self.construct_object(value_node, deep=True)
        return mapping

    def _key(self, node: Node) -> str:
        key = self.construct_object(node, deep=True)
        if not isinstance(key, str):
            raise _error(node, f"a key must be a string, got {described(key)}")
        return key

    def construct_unsupported(self, node: Node) -> Any:
        tag = node.tag.replace(_TAG, "!!")
        raise _error(
            node,
            f"{tag} values are not supported: a Kubernetes object holds only strings, numbers, "
            "booleans, null, lists and mappings",
        )


for _name, _constructor in {
    "null": _JsonLoader.construct_yaml_null,
    "bool": _JsonLoader.construct_yaml_bool,
    "int": _JsonLoader.construct_json_int,
    "float": _JsonLoader.construct_json_float,
    "str": _JsonLoader.construct_yaml_str,
    "timestamp": _JsonLoader.construct_as_written,
    "value": _JsonLoader.construct_as_written,  # a plain "="
    "merge": _JsonLoader.construct_as_written,  # a plain "<<" that is not a key
    "seq": _JsonLoader.construct_json_list,
    "map": _JsonLoader.construct_json_mapping,
}.items():
    _JsonLoader.add_constructor(f"{_TAG}{_name}", _constructor)
_JsonLoader.add_constructor(None, _JsonLoader.construct_unsupported)
# YAML 1.1 wants a dot in a float ("1.0e3"); kubectl, like YAML 1.2 and JSON, reads "1e3" too.
_JsonLoader.add_implicit_resolver(
    f"{_TAG}float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"), list("-+0123456789")
)


class _Dumper(_BaseDumper):  # type: ignore[misc,valid-type]
    """Safe dumper that writes repeated values out instead of as anchors and aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _position(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _from_marked(error: yaml.MarkedYAMLError, text: str) -> YamlError:
    mark = error.problem_mark or error.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = error.problem or error.context or "cannot be read"
    if isinstance(error, ConstructorError):
        return YamlError(problem, line, column)
    if mark is not None and text[mark.index : mark.index + 1] == "\t":
        problem = "a tab character where YAML expects spaces (indent with spaces, not tabs)"
    return YamlError(f"YAML syntax error: {problem}", line, column)


def load_all(text: str) -> list[Any]:
    """Every document of a YAML stream, as JSON values; raises YamlError."""
    loader = _JsonLoader(text)
    try:
        documents = []
        while loader.check_data():
            documents.append(loader.get_data())
        return documents
    except yaml.MarkedYAMLError as error:
        raise _from_marked(error, text) from None
    except yaml.reader.ReaderError as error:
        index = error.position
        if _BaseLoader is not yaml.SafeLoader:  # libyaml counts bytes of UTF-8, not characters
            index = len(text.encode()[:index].decode(errors="ignore"))
        line, column = _position(text, index)
        character = error.character
        code = character if isinstance(character, int) else ord(character or "\0")
        raise YamlError(f"{error.reason} (character #x{code:04x})", line, column) from None
    except RecursionError:
        line, column = _where(loader.current)
        raise YamlError("the document nests too deeply", line, column) from None
    except Exception as error:  # anything else PyYAML or a constructor raised: still one line
        line, column = _where(loader.current)
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise YamlError(f"cannot be read: {first}", line, column) from None
    finally:
        loader.dispose()


def _where(node: Node | None) -> tuple[int, int]:
    if node is None:
        return 1, 1
    return node.start_mark.line + 1, node.start_mark.column + 1


def dump(obj: Any) -> str:
    """One YAML document, keys in the order given."""
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)


def dump_all(objs: list[Any]) -> str:
    """Several YAML documents separated by `---`."""
    return yaml.dump_all(objs, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)
