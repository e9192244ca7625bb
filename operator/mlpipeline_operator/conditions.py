"""A step's condition, `steps[].when`: its grammar, its syntax tree, its value and its Argo form.

    condition  := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | "(" or ")" | comparison
    comparison := value ("==" | "!=" | "<" | "<=" | ">" | ">=") value
    value      := PLACEHOLDER | NUMBER | STRING | WORD

- PLACEHOLDER: `{{pipeline.parameters.NAME}}`, `{{inputs.parameters.NAME}}` (the step's own
  input parameters, those taken `from` another step included), `{{promotion.decision}}`,
  `{{promotion.version}}` or `{{promotion.alias}}`.
- NUMBER: a decimal number, `3`, `-1`, `0.95`.
- STRING: text in double or single quotes; a backslash escapes the quote or a backslash.
- WORD: a bare word such as `Promoted` (letters, digits, `_`, `-`, `.`; not starting with a
  digit or `-`) is a string; `and`, `or` and `not` are keywords (quote them to compare with them).

A comparison with a NUMBER on one side is numeric: the value on the other side must be a decimal
number (NUMBER_PATTERN), or the condition cannot be decided and the step ends in error. Any other
comparison compares text, character by character. Every comparison names at least one
placeholder: a condition on constants alone is refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from mlpipeline_operator import placeholders

Operator = Literal["==", "!=", "<", "<=", ">", ">="]
OPERATORS: tuple[Operator, ...] = ("==", "!=", "<=", ">=", "<", ">")
# A value compared with a number must be written like this (Argo's side checks the same).
NUMBER_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
_NUMBER = re.compile(NUMBER_PATTERN)
_KEYWORDS = frozenset({"and", "or", "not"})
# Placeholders a condition may read.
CONDITION_KINDS = frozenset({"pipeline.parameters", "inputs.parameters", "promotion"})
CONDITION_FORMS = (
    "{{pipeline.parameters.NAME}}, {{inputs.parameters.NAME}}, {{promotion.decision}}, "
    "{{promotion.version}}, {{promotion.alias}}"
)


class ConditionError(ValueError):
    """A condition that cannot be parsed, or whose value cannot be decided."""

    def __init__(self, message: str, position: int | None = None) -> None:
        self.position = position
        super().__init__(message if position is None else f"at position {position}: {message}")


# --- Syntax tree ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Constant:
    """A number or a string written in the condition."""

    text: str
    number: bool
    position: int


@dataclass(frozen=True)
class Reference:
    """A placeholder: a value known only when the step is about to run."""

    placeholder: placeholders.Placeholder
    text: str  # as written, "{{inputs.parameters.x}}"
    position: int


Value = Constant | Reference


@dataclass(frozen=True)
class Comparison:
    left: Value
    operator: Operator
    right: Value

    @property
    def numeric(self) -> bool:
        return any(isinstance(v, Constant) and v.number for v in (self.left, self.right))


@dataclass(frozen=True)
class Not:
    operand: Condition


@dataclass(frozen=True)
class Junction:
    """`and` or `or` over two or more conditions."""

    operator: Literal["and", "or"]
    operands: tuple[Condition, ...]


Condition = Comparison | Not | Junction


def references(condition: Condition) -> Iterator[Reference]:
    """Every placeholder of a condition, in the order written."""
    if isinstance(condition, Comparison):
        for value in (condition.left, condition.right):
            if isinstance(value, Reference):
                yield value
    elif isinstance(condition, Not):
        yield from references(condition.operand)
    else:
        for operand in condition.operands:
            yield from references(operand)


# --- Tokens and parser ---------------------------------------------------------------------------

TokenKind = Literal["placeholder", "number", "string", "word", "operator", "(", ")", "end"]


@dataclass(frozen=True)
class Token:
    kind: TokenKind
    text: str  # the value: a string's content, a placeholder's inside
    position: int  # 1-based character position in the condition
    source: str  # as written


_TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<placeholder>\{\{(?P<inside>.*?)\}\})
      | (?P<operator>==|!=|<=|>=|<|>)
      | (?P<paren>[()])
      | (?P<number>-?[0-9]+(\.[0-9]+)?(?![A-Za-z0-9_.-]))
      | (?P<word>[A-Za-z_][A-Za-z0-9_.-]*)
      | (?P<string>"(\\.|[^"\\])*"|'(\\.|[^'\\])*')
    """,
    re.VERBOSE,
)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    at = 0
    while at < len(text):
        match = _TOKEN.match(text, at)
        position = at + 1
        if match is None:
            char = text[at]
            if text.startswith("{{", at):
                raise ConditionError('"{{" without its closing "}}"', position)
            if char in "\"'":
                raise ConditionError(f"string without its closing {char}", position)
            if text.startswith(("&&", "||"), at) or char == "!":
                shown = char if char == "!" else text[at : at + 2]
                raise ConditionError(f'unexpected "{shown}": use and, or, not', position)
            if char == "=":
                raise ConditionError('unexpected "=": compare with "=="', position)
            raise ConditionError(f"unexpected character {json.dumps(char)}", position)
        at = match.end()
        group = match.lastgroup
        source = match[0]
        if group == "space":
            continue
        if group == "placeholder":
            tokens.append(Token("placeholder", match["inside"], position, source))
        elif group == "paren":
            tokens.append(Token("(" if source == "(" else ")", source, position, source))
        elif group == "string":
            content = re.sub(r"\\(.)", r"\1", source[1:-1])
            tokens.append(Token("string", content, position, source))
        else:
            assert group in ("operator", "number", "word")
            tokens.append(Token(group, source, position, source))  # type: ignore[arg-type]
    tokens.append(Token("end", "", len(text) + 1, ""))
    return tokens


def _shown(token: Token) -> str:
    return "the end" if token.kind == "end" else f'"{token.source}"'


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.at = 0

    def _current(self) -> Token:
        # A method, not a property: each call reads the token anew after _take.
        return self.tokens[self.at]

    def _take(self) -> Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def _keyword(self, word: str) -> bool:
        return self._current().kind == "word" and self._current().text == word

    def condition(self) -> Condition:
        if self._current().kind == "end":
            raise ConditionError("empty condition", self._current().position)
        result = self._or()
        token = self._current()
        if token.kind != "end":
            raise ConditionError(
                f'expected "and", "or" or the end, found {_shown(token)}', token.position
            )
        return result

    def _junction(self, word: Literal["and", "or"], operand: Callable[[], Condition]) -> Condition:
        operands = [operand()]
        while self._keyword(word):
            self._take()
            operands.append(operand())
        return operands[0] if len(operands) == 1 else Junction(word, tuple(operands))

    def _or(self) -> Condition:
        return self._junction("or", self._and)

    def _and(self) -> Condition:
        return self._junction("and", self._not)

    def _not(self) -> Condition:
        if self._keyword("not"):
            self._take()
            return Not(self._not())
        if self._current().kind == "(":
            opening = self._take()
            inner = self._or()
            if self._current().kind != ")":
                raise ConditionError(
                    f'expected ")" to close the "(" at position {opening.position}, found '
                    f"{_shown(self._current())}",
                    self._current().position,
                )
            self._take()
            return inner
        return self._comparison()

    def _comparison(self) -> Comparison:
        left = self._value("a value to compare")
        if self._current().kind != "operator":
            raise ConditionError(
                f"expected a comparison (==, !=, <, <=, >, >=) after {_shown_value(left)}, found "
                f"{_shown(self._current())}",
                self._current().position,
            )
        operator_token = self._take()
        right = self._value(f'a value after "{operator_token.text}"')
        if isinstance(left, Constant) and isinstance(right, Constant):
            raise ConditionError(
                "compares two constants; one side must be a placeholder such as "
                "{{pipeline.parameters.NAME}}",
                left.position,
            )
        return Comparison(left, operator_token.text, right)  # type: ignore[arg-type]

    def _value(self, expected: str) -> Value:
        token = self._current()
        if token.kind == "placeholder":
            self._take()
            try:
                placeholder = placeholders.parse(token.text)
            except placeholders.PlaceholderError:
                placeholder = None
            if placeholder is None or placeholder.kind not in CONDITION_KINDS:
                raise ConditionError(
                    f'"{token.source}" cannot be used in a condition; use one of {CONDITION_FORMS}',
                    token.position,
                )
            return Reference(placeholder, token.source, token.position)
        if token.kind == "number" and abs(float(token.text)) == float("inf"):
            raise ConditionError(f"{token.text} is too large a number", token.position)
        if token.kind in ("number", "string") or (
            token.kind == "word" and token.text not in _KEYWORDS
        ):
            self._take()
            return Constant(token.text, token.kind == "number", token.position)
        raise ConditionError(f"expected {expected}, found {_shown(token)}", token.position)


def _shown_value(value: Value) -> str:
    return value.text if isinstance(value, Reference) else json.dumps(value.text)


def parse(text: str) -> Condition:
    """The syntax tree of a condition; ConditionError says what is wrong and where."""
    return _Parser(text).condition()


# --- Value ---------------------------------------------------------------------------------------


def _number(value: Value, text: str) -> float:
    if not _NUMBER.match(text):
        shown = _shown_value(value)
        raise ConditionError(
            f"{shown} is {json.dumps(text)}, not a number, and is compared with a number"
        )
    return float(text)


_COMPARE: dict[Operator, Callable[[object, object], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,  # type: ignore[operator]
    "<=": lambda a, b: a <= b,  # type: ignore[operator]
    ">": lambda a, b: a > b,  # type: ignore[operator]
    ">=": lambda a, b: a >= b,  # type: ignore[operator]
}


def evaluate(condition: Condition, value_of: Callable[[Reference], str]) -> bool:
    """Whether a condition holds with these values; ConditionError when a value compared with a
    number is not one."""
    if isinstance(condition, Not):
        return not evaluate(condition.operand, value_of)
    if isinstance(condition, Junction):
        results = (evaluate(c, value_of) for c in condition.operands)
        return all(results) if condition.operator == "and" else any(results)
    values = (condition.left, condition.right)
    sides = [v.text if isinstance(v, Constant) else value_of(v) for v in values]
    if condition.numeric:
        left: object = _number(condition.left, sides[0])
        right: object = _number(condition.right, sides[1])
    else:
        left, right = sides
    return _COMPARE[condition.operator](left, right)


# --- Argo ----------------------------------------------------------------------------------------


def expr_string(text: str) -> str:
    """A string literal of Argo's expression language (expr) for any text.

    Braces are escaped too: Argo finds its `{{...}}` tags in the text before expr reads it, so
    a "}}" inside a literal would end the expression early.
    """
    # Non-ASCII stays as it is: expr reads UTF-8, but not JSON's surrogate pairs.
    escaped = json.dumps(text, ensure_ascii=False)
    return escaped.replace("{", "\\u007b").replace("}", "\\u007d")


_EXPR_OPERATORS = {"and": " && ", "or": " || "}


def to_expr(condition: Condition, value_of: Callable[[Reference], str]) -> str:
    """The condition in Argo's expression language; `value_of` gives the expr expression of a
    placeholder's value (a variable, never its text)."""
    if isinstance(condition, Not):
        return f"!({to_expr(condition.operand, value_of)})"
    if isinstance(condition, Junction):
        joined = _EXPR_OPERATORS[condition.operator].join(
            f"({to_expr(c, value_of)})" for c in condition.operands
        )
        return joined
    sides = []
    for value in (condition.left, condition.right):
        if isinstance(value, Constant):
            sides.append(repr(float(value.text)) if value.number else expr_string(value.text))
        elif condition.numeric:
            # A value that is not a decimal number makes float() fail: the task ends in error.
            inner = value_of(value)
            sides.append(
                f"float({inner} matches {expr_string(NUMBER_PATTERN)} ? {inner} : "
                f"{expr_string(f'{value.text} is not a number')})"
            )
        else:
            sides.append(value_of(value))
    return f"{sides[0]} {condition.operator} {sides[1]}"
