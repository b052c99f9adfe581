"""Property-based tests of both request validators (pool request and access grant), generated from their
published JSON Schemas: every generated valid request is accepted; every mutation of one (wrong type,
unknown field, out-of-range number or time, huge or deeply nested value) is rejected with the field named,
and no input at all, bytes included, makes a validator raise."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from provisioning.grant_request import validate_access_grant
from provisioning.request import validate_request
from provisioning.settings import load_settings
from tests.request_strategies import (
    JSON_VALUES,
    mutated,
    unique_names,
    valid_grant_schema,
    valid_pool_schema,
)

from .conftest import NOW

SETTINGS = load_settings({"MAX_NODES_PER_REQUEST": "10", "MAX_ACCESS_DURATION": "P2D"})
PROPERTY_SETTINGS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


def validate(kind: str, body: Any):
    if kind == "pool":
        return validate_request(body, SETTINGS, NOW)
    return validate_access_grant(body, SETTINGS, NOW, pool_id="pool-1")


@PROPERTY_SETTINGS
@given(from_schema(valid_pool_schema()))
def test_every_generated_valid_pool_request_is_accepted(body):
    assume(unique_names(body))
    result = validate_request(json.dumps(body).encode(), SETTINGS, NOW)
    assert result.ok, result.errors_json()
    assert result.request.pool_id == body["poolId"]


@PROPERTY_SETTINGS
@given(from_schema(valid_grant_schema()))
def test_every_generated_valid_access_grant_is_accepted(body):
    assume(unique_names(body))
    body.pop("poolId", None)
    result = validate_access_grant(json.dumps(body).encode(), SETTINGS, NOW, pool_id="pool-1")
    assert result.ok, result.errors_json()


def _names(errors: list, where: str) -> bool:
    """An error names `where`, a field inside it or the object that holds it."""
    fields = {e["field"] for e in errors}
    parent = where.rsplit(".", 1)[0].rsplit("[", 1)[0] if where else "request"
    return any(
        f == where or f.startswith(where + ".") or f.startswith(where + "[") or f in (parent, "request")
        for f in fields
    )


@pytest.mark.parametrize("kind", ["pool", "grant"])
@PROPERTY_SETTINGS
@given(data=st.data())
def test_every_mutated_request_is_rejected_naming_the_field(kind, data):
    body, where = data.draw(mutated(kind))
    result = validate(kind, json.dumps(body).encode())
    assert not result.ok, (where, body)
    errors = result.errors_json()
    assert errors and all(isinstance(e["field"], str) and e["field"] and e["rule"] for e in errors)
    assert _names(errors, where), (where, errors)


@pytest.mark.parametrize("kind", ["pool", "grant"])
@PROPERTY_SETTINGS
@given(body=st.one_of(st.binary(max_size=300), JSON_VALUES.map(lambda v: json.dumps(v).encode())))
def test_no_input_makes_a_validator_raise(kind, body):
    result = validate(kind, body)
    if not result.ok:
        assert all(e["field"] and e["rule"] for e in result.errors_json())


@pytest.mark.parametrize("kind", ["pool", "grant"])
@pytest.mark.parametrize(
    "body",
    [
        b"[" * 5000,
        b'{"users": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"poolId": 1' + b"0" * 5000 + b"}",
        b'{"poolId": 1e999}',
        b'{"poolId": NaN}',
        b"\xff\xfe\x00{}",
        b'{"poolId": "' + b"x" * 2_000_000 + b'"}',
        b'"' + b'\\"' * 300_000,
    ],
    ids=["nested", "nested-users", "long-int", "inf", "nan", "not-utf8", "2MB", "escapes"],
)
def test_hostile_bodies_are_rejected_as_a_whole(kind, body):
    result = validate(kind, body)
    assert not result.ok
    assert [e["field"] for e in result.errors_json()] == ["request"]


@pytest.mark.parametrize("name", ["alice\n", "pool-1\n"])
def test_a_trailing_newline_does_not_pass_a_pattern(name, rsa_key):
    body = {"users": [{"name": name, "sshPublicKey": rsa_key}]}
    result = validate_access_grant(json.dumps(body), SETTINGS, NOW, pool_id="pool-1")
    assert not result.ok and result.errors_json()[0]["field"] == "users[0].name"
