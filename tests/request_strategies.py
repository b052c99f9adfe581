"""Hypothesis strategies for request bodies, built from the published JSON Schemas: requests every rule
accepts (a real key, times within the limits), and mutations of them that a rule must reject, each with the
field the rejection has to name."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from provisioning.grant_request import grant_schema
from provisioning.request import RESERVED_USER_NAMES, field_path, request_schema

KEY = (
    rsa.generate_private_key(public_exponent=65537, key_size=2048)
    .public_key()
    .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    .decode()
)


def _ecma(schema: Any) -> Any:
    """Each pattern's final `$` as `\\Z`: JSON Schema's `$` ends the text, Python's does not."""
    if isinstance(schema, dict):
        return {
            k: (re.sub(r"(?<!\\)\$$", r"\\Z", v) if k == "pattern" else _ecma(v)) for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [_ecma(v) for v in schema]
    return schema


def _valid_user_schema(schema: dict) -> dict:
    """Users the rules beyond the schema accept: a real key, an expiry within MAX_ACCESS_DURATION."""
    user = copy.deepcopy(schema["$defs"]["user"])
    user["properties"].pop("password")
    user["properties"]["sshPublicKey"] = {"const": KEY}
    user["properties"]["expiry"] = {"enum": ["PT8H", "P1D", "PT30M", "2030-01-02T00:00:00Z"]}
    user["required"] = ["name", "sshPublicKey"]
    return user


def valid_pool_schema() -> dict:
    schema = _ecma(copy.deepcopy(request_schema()))
    props = schema["properties"]
    schema["$defs"]["user"] = _valid_user_schema(schema)
    props["users"]["maxItems"] = 3
    props["nodes"] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["dedicated"],
        "properties": {
            "dedicated": {"type": "integer", "minimum": 1, "maximum": 4},
            "spot": {"type": "integer", "minimum": 0, "maximum": 4},
        },
    }
    schema["required"] = [*schema["required"], "ssh"]  # the app has no DEFAULT_SSH_SOURCE_PREFIXES here
    props["ssh"] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["allowedSourcePrefixes"],
        "properties": {
            "allowedSourcePrefixes": {
                "type": "array",
                "minItems": 1,
                "maxItems": 3,
                "uniqueItems": True,
                "items": {"enum": ["10.0.0.0/8", "192.168.1.0/24", "203.0.113.7", "2001:db8::/32"]},
            }
        },
    }
    props["deleteAfter"] = {"enum": ["P7D", "PT2H", "2030-01-05T00:00:00+02:00"]}
    props["startTask"]["properties"]["environment"]["maxProperties"] = 3
    return schema


def valid_grant_schema() -> dict:
    schema = _ecma(copy.deepcopy(grant_schema()))
    pool = valid_pool_schema()
    schema["properties"]["users"] = {
        "type": "array",
        "minItems": 1,
        "maxItems": 3,
        "items": pool["$defs"]["user"],
    }
    schema["properties"].pop("kind")
    return schema


def unique_names(body: dict) -> bool:
    names = [u["name"] for u in body["users"]]
    return len(set(names)) == len(names) and not set(names) & RESERVED_USER_NAMES


# ---- mutations --------------------------------------------------------------------------------------------

BAD_TIMES = [
    "9999-12-31T23:59:59-01:00",
    "0001-01-01T00:00:00+01:00",
    "P999999999D",
    "P99999999999999999999D",
    "PT1e308S",
    "1e308",
    "nan",
    "inf",
    "-P1D",
    "PT0S",
    "P1Y",
    "2030-01-02T03:04:05",
    "yesterday",
    "",
]
NESTED = json.loads("[" * 30 + "]" * 30)


def _paths(value: Any, path: tuple = ()) -> list[tuple]:
    """Every path into a JSON value (the root excluded)."""
    found = []
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return found
    for key, child in items:
        found.append((*path, key))
        found.extend(_paths(child, (*path, key)))
    return found


def _set(body: Any, path: tuple, value: Any) -> None:
    node = body
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def _other_type(value: Any) -> list[Any]:
    candidates = [7, -1, 1.5, "text", True, None, [], {}, ["x"], {"x": 1}]
    return [
        c for c in candidates if type(c) is not type(value) and not (value == c and type(value) is type(c))
    ]


@st.composite
def mutated(draw, kind: str):
    """(mutated body, the field the rejection must name or None for the body as a whole)."""
    valid = valid_pool_schema() if kind == "pool" else valid_grant_schema()
    body = draw(from_schema(valid))
    assume(unique_names(body))
    if kind == "grant":
        body.pop("poolId", None)
    mutation = draw(st.sampled_from(["type", "extra", "number", "huge", "nested", "time", "missing"]))
    if mutation == "extra":
        paths = [p for p in _paths(body) if isinstance(_get(body, p), dict)] + [()]
        path = draw(st.sampled_from(paths))
        name = draw(st.sampled_from(["colour", "__proto__", "x" * 300, "Users"]))
        _get(body, path)[name] = 1
        shown = json.dumps(name[:64]) if len(name) > 64 else name  # a long name is shown cut and quoted
        return body, field_path((*path, shown))
    if mutation == "missing":
        required = ["users"] if kind == "grant" else ["poolId", "vmSize", "nodes", "image", "users"]
        name = draw(st.sampled_from(required))
        del body[name]
        return body, name
    if mutation == "time":
        index = draw(st.integers(0, len(body["users"]) - 1))
        target = draw(st.sampled_from(["expiry", "deleteAfter"] if kind == "pool" else ["expiry"]))
        path = ("users", index, "expiry") if target == "expiry" else ("deleteAfter",)
        _set(body, path, draw(st.sampled_from(BAD_TIMES)))
        return body, field_path(path)
    if mutation == "number":
        path = ("users", 0, "admin") if kind == "grant" else ("nodes", "dedicated")
        _set(body, path, draw(st.sampled_from([-1, 10**19, -(10**19), 1e300, 2.5, 0.5])))
        return body, field_path(path)
    paths = [p for p in _paths(body) if not isinstance(p[-1], int) or len(p) > 1]
    path = draw(st.sampled_from(paths))
    if mutation == "type":
        _set(body, path, draw(st.sampled_from(_other_type(_get(body, path)))))
    elif mutation == "huge":
        _set(body, path, "x" * draw(st.sampled_from([20_000, 200_000])))
    else:
        _set(body, path, NESTED)
    return body, field_path(path)


def _get(body: Any, path: tuple) -> Any:
    for part in path:
        body = body[part]
    return body


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=30,
)
