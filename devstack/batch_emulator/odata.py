"""The OData subset Batch list operations accept: `$filter` parsed into a predicate over JSON objects, and
`$select`. Supported in `$filter`: eq ne gt ge lt le, and / or / not, parentheses, startswith(p,'x') /
endswith(p,'x'), string ('it''s'), number, true/false/null and datetime'...' literals, and property paths
(`imageReference/sku`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

Predicate = Callable[[dict], bool]


class ODataError(ValueError):
    """A `$filter` or `$select` that cannot be parsed or names an unknown property."""


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>'(?:[^']|'')*')
      | (?P<dt>datetime'[^']*')
      | (?P<num>-?\d+(?:\.\d+)?)
      | (?P<name>[A-Za-z_$][A-Za-z0-9_.]*(?:/[A-Za-z_$][A-Za-z0-9_.]*)*)
      | (?P<punct>[(),])
    )""",
    re.VERBOSE,
)
_COMPARISONS = {"eq", "ne", "gt", "ge", "lt", "le"}
_FUNCTIONS = {"startswith", "endswith"}
_KEYWORDS = {"and", "or", "not", *_COMPARISONS}


@dataclass(frozen=True)
class _Token:
    kind: str  # str dt num name punct
    text: str


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match:
            raise ODataError(f"unexpected character {text[pos:].strip()[0]!r} at position {pos}")
        kind = match.lastgroup or ""
        tokens.append(_Token(kind, match.group(kind)))
        pos = match.end()
    return tokens


@dataclass(frozen=True)
class _Literal:
    value: Any


@dataclass(frozen=True)
class _Path:
    parts: tuple[str, ...]


class _Parser:
    def __init__(self, text: str, known: set[str] | None) -> None:
        self.tokens = _tokenize(text)
        self.pos = 0
        self.known = known

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise ODataError("unexpected end of the expression")
        self.pos += 1
        return token

    def expect(self, text: str) -> None:
        if self.peek() is None:
            raise ODataError(f"expected {text!r} but the expression ended")
        token = self.take()
        if token.text != text:
            raise ODataError(f"expected {text!r} but found {token.text!r}")

    def at_keyword(self, word: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "name" and token.text.lower() == word

    def parse(self) -> Predicate:
        if not self.tokens:
            raise ODataError("the filter is empty")
        predicate = self.parse_or()
        if self.peek() is not None:
            raise ODataError(f"unexpected {self.peek().text!r} after a complete expression")
        return predicate

    def parse_or(self) -> Predicate:
        terms = [self.parse_and()]
        while self.at_keyword("or"):
            self.take()
            terms.append(self.parse_and())
        return terms[0] if len(terms) == 1 else (lambda item: any(t(item) for t in terms))

    def parse_and(self) -> Predicate:
        terms = [self.parse_not()]
        while self.at_keyword("and"):
            self.take()
            terms.append(self.parse_not())
        return terms[0] if len(terms) == 1 else (lambda item: all(t(item) for t in terms))

    def parse_not(self) -> Predicate:
        if self.at_keyword("not"):
            self.take()
            inner = self.parse_not()
            return lambda item: not inner(item)
        return self.parse_comparison()

    def parse_comparison(self) -> Predicate:
        token = self.peek()
        if token is not None and token.text == "(":
            self.take()
            inner = self.parse_or()
            self.expect(")")
            return inner
        if token is not None and token.kind == "name" and token.text.lower() in _FUNCTIONS:
            return self.parse_function()
        left = self.parse_operand()
        op_token = self.take()
        op = op_token.text.lower()
        if op_token.kind != "name" or op not in _COMPARISONS:
            raise ODataError(
                f"expected a comparison operator (eq, ne, gt, ge, lt, le) but found {op_token.text!r}"
            )
        right = self.parse_operand()
        return _comparison(left, op, right)

    def parse_function(self) -> Predicate:
        name = self.take().text.lower()
        self.expect("(")
        subject = self.parse_operand()
        self.expect(",")
        argument = self.parse_operand()
        self.expect(")")

        def call(item: dict) -> bool:
            value, arg = _value(subject, item), _value(argument, item)
            if not isinstance(value, str) or not isinstance(arg, str):
                return False
            return value.startswith(arg) if name == "startswith" else value.endswith(arg)

        return call

    def parse_operand(self) -> _Literal | _Path:
        token = self.take()
        if token.kind == "str":
            return _Literal(token.text[1:-1].replace("''", "'"))
        if token.kind == "dt":
            return _Literal(_parse_datetime(token.text[len("datetime'") : -1]))
        if token.kind == "num":
            return _Literal(float(token.text) if "." in token.text else int(token.text))
        if token.kind == "name":
            lowered = token.text.lower()
            if lowered in ("true", "false"):
                return _Literal(lowered == "true")
            if lowered == "null":
                return _Literal(None)
            if lowered in _KEYWORDS:
                raise ODataError(f"expected a property or a value but found {token.text!r}")
            parts = tuple(token.text.split("/"))
            if self.known is not None and parts[0] not in self.known:
                raise ODataError(
                    f"unknown property {parts[0]!r} (filterable: {', '.join(sorted(self.known))})"
                )
            return _Path(parts)
        raise ODataError(f"expected a property or a value but found {token.text!r}")


def _parse_datetime(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ODataError(f"invalid datetime literal {text!r}") from exc


def _value(operand: _Literal | _Path, item: dict) -> Any:
    if isinstance(operand, _Literal):
        return operand.value
    value: Any = item
    for part in operand.parts:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _comparison(left: _Literal | _Path, op: str, right: _Literal | _Path) -> Predicate:
    def compare(item: dict) -> bool:
        a, b = _value(left, item), _value(right, item)
        if isinstance(a, datetime) and isinstance(b, str):
            b = _maybe_datetime(b)
        elif isinstance(b, datetime) and isinstance(a, str):
            a = _maybe_datetime(a)
        if op == "eq":
            return a == b
        if op == "ne":
            return a != b
        if a is None or b is None:
            return False
        try:
            if op == "gt":
                return a > b
            if op == "ge":
                return a >= b
            if op == "lt":
                return a < b
            return a <= b
        except TypeError:
            return False

    return compare


def _maybe_datetime(text: str) -> Any:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text


def parse_filter(text: str, known: Iterable[str] | None = None) -> Predicate:
    """Compile an OData `$filter` into a predicate over a JSON object; `known` limits the top-level
    properties."""
    return _Parser(text, set(known) if known is not None else None).parse()


def parse_select(text: str, known: Iterable[str]) -> list[str]:
    """The property names of a `$select` clause, each checked against `known`."""
    allowed = set(known)
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise ODataError("$select names no property")
    for name in names:
        if name not in allowed:
            raise ODataError(f"unknown property {name!r} in $select")
    return names


def apply_select(item: dict, names: list[str] | None) -> dict:
    """Keep only the selected top-level properties (all of them when `names` is None)."""
    if names is None:
        return item
    return {name: item[name] for name in names if name in item}
