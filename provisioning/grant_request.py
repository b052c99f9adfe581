"""The access grant request (`POST /api/pools/{poolId}/access`, queue kind `grant-access`): schema and rules,
with the same user rules as the pool request; errors name the field and the rule."""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from provisioning.bounded_json import StrictValidator
from provisioning.identity import digest
from provisioning.request import (
    FieldError,
    ValidatedRequest,
    ValidationResult,
    check_users,
    parse_body,
    request_fingerprint,
    request_schema,
    schema_errors,
)
from provisioning.settings import Settings

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "access-grant.schema.json"
GRANT_KIND = "grant-access"


@cache
def grant_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


@cache
def _validator() -> Draft202012Validator:
    pool_schema = request_schema()
    registry = Registry().with_resource(pool_schema["$id"], Resource.from_contents(pool_schema))
    schema = grant_schema()
    Draft202012Validator.check_schema(schema)
    return StrictValidator(schema, registry=registry)


def default_grant_request_id(data: dict[str, Any]) -> str:
    """A grant without requestId: derived from what was sent, so the same grant resent is a duplicate."""
    return f"grant-{digest(request_fingerprint(data))}"


def validate_access_grant(
    body: bytes | str | dict[str, Any], settings: Settings, now: datetime, *, pool_id: str | None = None
) -> ValidationResult:
    """Check a grant; `pool_id` is the pool named by the URL (the body may then leave poolId out)."""
    data, errors = parse_body(body)
    if data is None:
        return ValidationResult(None, errors)
    if pool_id is not None:
        if "poolId" in data and data["poolId"] != pool_id:
            errors.append(FieldError("poolId", "must be the pool named in the URL (or left out)"))
        data = {**data, "poolId": pool_id}
    elif "poolId" not in data:
        errors.append(FieldError("poolId", "is required"))
    for error in sorted(_validator().iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        errors.extend(schema_errors(error))
    bad_fields = {e.field for e in errors}

    def clean(path: str) -> bool:
        return not any(f == path or f.startswith(path + ".") or f.startswith(path + "[") for f in bad_fields)

    warnings: list[FieldError] = []
    users, passwords = [], {}
    if isinstance(data.get("users"), list):
        users, passwords = check_users(data["users"], settings, now, errors, warnings, clean)
    if errors:
        return ValidationResult(None, errors)
    data.pop("kind", None)
    normalised = {
        "kind": GRANT_KIND,
        "requestId": data.get("requestId") or default_grant_request_id(data),
        "poolId": data["poolId"],
        "users": users,
        "fingerprint": request_fingerprint(data),
    }
    return ValidationResult(ValidatedRequest(normalised, passwords, warnings), [])
