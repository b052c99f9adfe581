"""HTTP trigger route templates in the ASP.NET form the Functions host uses (`pools/{poolId}`,
`items/{id:int?}`, `files/{*path}`): parse, order by precedence, match, and check constraints."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import unquote

_PARAM_NAME = re.compile(r"^(?P<star>\*{1,2})?(?P<name>[A-Za-z_][A-Za-z0-9_]*)")


class RouteError(ValueError):
    """A route template that cannot be parsed, or that uses an unknown constraint."""


def _int_in(bits: int) -> Callable[[str], bool]:
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def check(value: str) -> bool:
        return bool(re.fullmatch(r"-?\d+", value)) and low <= int(value) <= high

    return check


def _is_float(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


_SIMPLE: dict[str, Callable[[str], bool]] = {
    "int": _int_in(32),
    "long": _int_in(64),
    "bool": lambda v: v.lower() in ("true", "false"),
    "guid": _is_guid,
    "alpha": lambda v: bool(re.fullmatch(r"[A-Za-z]+", v)),
    "datetime": _is_datetime,
    "decimal": _is_float,
    "double": _is_float,
    "float": _is_float,
    "required": lambda v: v != "",
}


def _constraint(name: str, args: str | None, template: str) -> Callable[[str], bool]:
    key = name.lower()
    if key in _SIMPLE and args is None:
        return _SIMPLE[key]
    try:
        numbers = [int(a) for a in args.split(",")] if args is not None and key != "regex" else []
    except ValueError:
        raise RouteError(f"route {template!r}: constraint {name}({args}) needs integer arguments") from None
    if key == "minlength" and len(numbers) == 1:
        return lambda v: len(v) >= numbers[0]
    if key == "maxlength" and len(numbers) == 1:
        return lambda v: len(v) <= numbers[0]
    if key == "length" and len(numbers) in (1, 2):
        low, high = (numbers[0], numbers[0]) if len(numbers) == 1 else numbers
        return lambda v: low <= len(v) <= high
    if key in ("min", "max", "range") and len(numbers) == (2 if key == "range" else 1):
        low = numbers[0] if key != "max" else None
        high = numbers[-1] if key != "min" else None
        is_long = _int_in(64)
        return lambda v: is_long(v) and (low is None or int(v) >= low) and (high is None or int(v) <= high)
    if key == "regex" and args is not None:
        try:
            pattern = re.compile(args, re.IGNORECASE)
        except re.error as exc:
            raise RouteError(f"route {template!r}: regex constraint {args!r} is invalid: {exc}") from None
        return lambda v: bool(pattern.search(v))
    raise RouteError(f"route {template!r}: unknown or malformed route constraint {name!r}")


@dataclass(frozen=True)
class RouteParameter:
    name: str
    group: str
    optional: bool
    catch_all: bool
    default: str | None
    checks: tuple[Callable[[str], bool], ...] = field(default=())


@dataclass(frozen=True)
class RouteTemplate:
    """A compiled route: `match(path)` gives the route parameters, or None."""

    template: str
    regex: re.Pattern[str]
    parameters: tuple[RouteParameter, ...]
    precedence: tuple[int, ...]

    def match(self, path: str) -> dict[str, str] | None:
        found = self.regex.fullmatch(path.strip("/"))
        if not found:
            return None
        values: dict[str, str] = {}
        for param in self.parameters:
            raw = found.group(param.group)
            if raw is None or raw == "":
                if param.default is not None:
                    values[param.name] = param.default
                elif not (param.optional or param.catch_all):
                    return None
                continue
            value = unquote(raw)
            if not all(check(value) for check in param.checks):
                return None
            values[param.name] = value
        return values


def parse_route(template: str) -> RouteTemplate:
    """Compile an ASP.NET-style route template (without the route prefix)."""
    text = template.strip().strip("/")
    segments = text.split("/") if text else []
    pattern = ""
    params: list[RouteParameter] = []
    precedence: list[int] = []
    for index, segment in enumerate(segments):
        if not segment:
            raise RouteError(f"route {template!r}: empty path segment")
        parts = _segment_parts(segment, template)
        separator = "/" if index else ""
        last = index == len(segments) - 1
        if len(parts) == 1 and parts[0][0] == "param":
            param = _parameter(parts[0][1], f"p{len(params)}", template)
            params.append(param)
            if param.catch_all and not last:
                raise RouteError(f"route {template!r}: a catch-all parameter must be the last segment")
            if param.catch_all:
                pattern += f"(?:{separator}(?P<{param.group}>.*))?"
                precedence.append(5)
            elif param.optional or param.default is not None:
                if not last:
                    raise RouteError(f"route {template!r}: optional parameter {param.name!r} must be last")
                pattern += f"(?:{separator}(?P<{param.group}>[^/]+))?"
                precedence.append(4)
            else:
                pattern += f"{separator}(?P<{param.group}>[^/]+)"
                precedence.append(2 if param.checks else 3)
            continue
        piece = ""
        for kind, value in parts:
            if kind == "text":
                piece += re.escape(value)
                continue
            param = _parameter(value, f"p{len(params)}", template)
            if param.catch_all or param.optional:
                raise RouteError(f"route {template!r}: {segment!r} mixes text with an optional parameter")
            params.append(param)
            piece += f"(?P<{param.group}>[^/]+?)"
        pattern += separator + piece
        precedence.append(1 if all(kind == "text" for kind, _ in parts) else 2)
    names = [p.name.lower() for p in params]
    if len(set(names)) != len(names):
        raise RouteError(f"route {template!r}: a parameter name is used twice")
    return RouteTemplate(
        template=template,
        regex=re.compile(pattern, re.IGNORECASE),
        parameters=tuple(params),
        precedence=tuple(precedence),
    )


def _segment_parts(segment: str, template: str) -> list[tuple[str, str]]:
    """Split a segment into ("text", literal) and ("param", body) parts; `{{` and `}}` are literal braces."""
    parts: list[tuple[str, str]] = []
    literal, i = "", 0
    while i < len(segment):
        char = segment[i]
        if char in "{}" and segment[i + 1 : i + 2] == char:
            literal, i = literal + char, i + 2
        elif char == "}":
            raise RouteError(f"route {template!r}: unbalanced brace in segment {segment!r}")
        elif char == "{":
            body, i = _parameter_body(segment, i + 1, template)
            if literal:
                parts.append(("text", literal))
                literal = ""
            parts.append(("param", body))
        else:
            literal, i = literal + char, i + 1
    if literal:
        parts.append(("text", literal))
    return parts


def _parameter_body(segment: str, i: int, template: str) -> tuple[str, int]:
    body, depth = "", 0
    while i < len(segment):
        char = segment[i]
        if depth and char in "{}" and segment[i + 1 : i + 2] == char:
            body, i = body + char, i + 2
            continue
        if char == "}" and depth == 0:
            return body, i + 1
        depth += {"(": 1, ")": -1}.get(char, 0)
        body, i = body + char, i + 1
    raise RouteError(f"route {template!r}: unbalanced brace in segment {segment!r}")


def _parameter(body: str, group: str, template: str) -> RouteParameter:
    found = _PARAM_NAME.match(body)
    if not found:
        raise RouteError(f"route {template!r}: cannot parse the parameter {{{body}}}")
    rest, checks = body[found.end() :], []
    while rest.startswith(":"):
        name_match = re.match(r":([A-Za-z]+)", rest)
        if not name_match:
            raise RouteError(f"route {template!r}: cannot parse the constraints of {{{body}}}")
        rest, args = rest[name_match.end() :], None
        if rest.startswith("("):
            end = _closing_parenthesis(rest)
            if end < 0:
                raise RouteError(f"route {template!r}: unbalanced parenthesis in {{{body}}}")
            args, rest = rest[1:end], rest[end + 1 :]
        checks.append(_constraint(name_match.group(1), args, template))
    if rest not in ("", "?") and not rest.startswith("="):
        raise RouteError(f"route {template!r}: cannot parse the parameter {{{body}}}")
    return RouteParameter(
        name=found["name"],
        group=group,
        optional=rest == "?",
        catch_all=bool(found["star"]),
        default=rest[1:] if rest.startswith("=") else None,
        checks=tuple(checks),
    )


def _closing_parenthesis(text: str) -> int:
    """Index of the parenthesis closing the one at text[0], or -1."""
    depth = 0
    for index, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0:
            return index
    return -1
