"""Untrusted JSON read within bounds: size, nesting depth and number sizes are checked before or while
parsing, so no body can make the parser recurse, allocate or compute without limit. Also the JSON Schema
validator class whose `pattern` has JSON Schema's (ECMA 262) meaning, where `$` is the end of the text."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError

MAX_BODY_BYTES = 1024 * 1024  # a request with 20 users, long keys and a start task fits many times over
MAX_DEPTH = 32  # the request schemas nest 4 deep
MAX_INTEGER_DIGITS = 20
_TOKEN = re.compile(r'"(?:[^"\\]+|\\.)*"|[\[\]{}]|"', re.DOTALL)  # a whole string, a bracket, a lone quote


class JsonRejected(ValueError):
    """The text is not JSON the app will read; the message is the rule it broke."""


def _depth(text: str) -> int:
    """How deep the brackets outside strings nest (one linear pass; an unterminated string ends it, the
    parser then rejects the text)."""
    deepest = depth = 0
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token == '"':
            break
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif token in "]}":
            depth -= 1
    return deepest


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise JsonRejected(f"has a number with more than {MAX_INTEGER_DIGITS} digits")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonRejected("has a number out of range")
    return value


def _constant(name: str) -> Any:
    raise JsonRejected(f"is not valid JSON ({name} is not a JSON value)")


def loads_bounded(body: bytes | str) -> Any:
    """The JSON value of `body`, or JsonRejected naming the broken rule (never another exception)."""
    if len(body) > MAX_BODY_BYTES:
        raise JsonRejected(f"is larger than {MAX_BODY_BYTES // 1024} KiB")
    try:
        text = body.decode("utf-8") if isinstance(body, bytes | bytearray) else body
    except UnicodeDecodeError:
        raise JsonRejected("is not UTF-8 text") from None
    if _depth(text) > MAX_DEPTH:
        raise JsonRejected(f"nests deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(text, parse_int=_integer, parse_float=_float, parse_constant=_constant)
    except JsonRejected:
        raise
    except (ValueError, RecursionError):
        raise JsonRejected("is not valid JSON") from None


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: dict) -> Any:
    if not validator.is_type(instance, "string"):
        return
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"  # Python's `$` also matches before a final newline
    if re.search(pattern, instance) is None:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


StrictValidator = validators.extend(Draft202012Validator, {"pattern": _ecma_pattern})
