"""Value types of the `mlpipeline` commands' flags, and flag defaults read from `MLPIPELINE_*`.

A type turns a flag's text into a value or raises `argparse.ArgumentTypeError` with the text and
what would be valid (`"abc": expected an integer`); argparse prefixes the flag
(`argument --priority: ...`).

A flag that defaults from an environment variable gets an `EnvDefault`, which `ArgumentParser`
reads only once the command line is parsed and only when the flag was not given: a bad variable
stops only the command that uses it, and the error names the variable, not a flag nobody typed:
`mlpipeline operator: MLPIPELINE_PRIORITY="abc": expected an integer` (exit 2, as any usage
error). An empty variable counts as unset, unless the flag says an empty value means something.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Generic, TypeVar, overload
from urllib.parse import urlsplit

from mlpipeline_operator.messages import quoted

T = TypeVar("T")
N = TypeVar("N")

USAGE_EXIT_CODE = 2  # argparse's


def integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{quoted(text)}: expected an integer") from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{quoted(text)}: expected a positive integer")
    return value


def non_negative_number(text: str) -> float:
    """A finite number >= 0 (a scale, a factor)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"{quoted(text)}: expected a finite number >= 0")
    return value


def seconds(text: str) -> float:
    """A duration in seconds, >= 0: "30", "0.5"."""
    try:
        return non_negative_number(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"{quoted(text)}: expected a number of seconds >= 0, e.g. 30 or 0.5"
        ) from None


def config_map_ref(text: str) -> tuple[str, str]:
    """A ConfigMap as NAMESPACE/NAME."""
    namespace, slash, name = text.partition("/")
    if not (namespace and slash and name) or "/" in name:
        raise argparse.ArgumentTypeError(
            f"{quoted(text)}: expected NAMESPACE/NAME, e.g. mlpipeline-system/tenancy-policy"
        )
    return namespace, name


def positive_seconds(text: str) -> float:
    """A duration in seconds, > 0: an interval or a timeout that must let time pass."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(
            f"{quoted(text)}: expected a number of seconds > 0, e.g. 30 or 0.5"
        )
    return value


def one_of(choices: Sequence[str]) -> Callable[[str], str]:
    """A type accepting exactly these words (for variables; flags use argparse's `choices`)."""

    def parse(text: str) -> str:
        if text not in choices:
            raise argparse.ArgumentTypeError(
                f"{quoted(text)}: expected one of {', '.join(choices)}"
            )
        return text

    return parse


def _endpoint(scheme: str, example: str) -> Callable[[str], str]:
    """A parser of an endpoint to serve, `SCHEME://HOST:PORT/PATH`; empty: none."""

    def parse(text: str) -> str:
        if not text:
            return text
        try:
            parts = urlsplit(text)
            valid = parts.scheme == scheme and bool(parts.hostname and parts.port and parts.path)
        except ValueError:  # a port that is not a number, a bracket left open
            valid = False
        if not valid:
            raise argparse.ArgumentTypeError(
                f"{quoted(text)}: expected {scheme}://HOST:PORT/PATH, e.g. {example},"
                " or empty to disable"
            )
        return text

    return parse


# An endpoint served over plain HTTP (metrics, liveness), and one over TLS (the webhook).
http_endpoint = _endpoint("http", "http://0.0.0.0:9090/metrics")
https_endpoint = _endpoint("https", "https://0.0.0.0:9443/validate")


def comma_list(text: str) -> tuple[str, ...]:
    """Comma-separated words, blanks around them and empty items dropped: "a, b," is (a, b)."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


class EnvVariableError(ValueError):
    """An environment variable whose value its flag's type refuses."""


class EnvDefault(Generic[T]):
    """A flag's default: environment variable `name` read with `parse`, else `default`.

    `env` is read when the default is resolved, not when the parser is built (None: os.environ).
    """

    def __init__(
        self,
        name: str,
        parse: Callable[[str], T],
        default: T,
        *,
        keep_empty: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.parse = parse
        self.default = default
        self.keep_empty = keep_empty
        self.env = env

    def resolve(self) -> T:
        env = os.environ if self.env is None else self.env
        text = env.get(self.name)
        if text is None or (text == "" and not self.keep_empty):
            return self.default
        try:
            return self.parse(text)
        except argparse.ArgumentTypeError as error:
            raise EnvVariableError(f"{self.name}={error}") from None

    def __str__(self) -> str:
        # What `%(default)s` shows in --help.
        return f"${self.name}, else {self.default}"


def resolve_env_defaults(namespace: argparse.Namespace) -> None:
    """Replace every `EnvDefault` left in `namespace` by its value (raises EnvVariableError)."""
    for key, value in list(vars(namespace).items()):
        if isinstance(value, EnvDefault):
            setattr(namespace, key, value.resolve())


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, resolving `EnvDefault`s of the flags not given after parsing.

    Sub-commands' parsers are of this class too, so each resolves only its own defaults: the
    variables of other commands are never read.
    """

    @overload
    def parse_known_args(
        self, args: Iterable[str] | None = None, namespace: None = None
    ) -> tuple[argparse.Namespace, list[str]]: ...

    @overload
    def parse_known_args(self, args: Iterable[str] | None, namespace: N) -> tuple[N, list[str]]: ...

    @overload
    def parse_known_args(self, *, namespace: N) -> tuple[N, list[str]]: ...

    def parse_known_args(
        self, args: Iterable[str] | None = None, namespace: object = None
    ) -> tuple[object, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if isinstance(parsed, argparse.Namespace):
            try:
                resolve_env_defaults(parsed)
            except EnvVariableError as error:
                self.exit(USAGE_EXIT_CODE, f"{self.prog}: {error}\n")
        return parsed, extras
