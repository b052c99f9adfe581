"""The pool request: JSON Schema validation plus the rules that need settings; errors name field and rule.

A valid request becomes a `ValidatedRequest`: normalised JSON for the orchestration (absolute expiry times,
key fingerprints, defaults filled in) with user passwords held apart, so only their ciphertext leaves the
entry point.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from provisioning.bounded_json import JsonRejected, StrictValidator, loads_bounded
from provisioning.durations import (
    DurationError,
    format_duration,
    format_timestamp,
    parse_duration,
    parse_timestamp,
)
from provisioning.identity import default_request_id
from provisioning.passwords import PasswordCipher
from provisioning.settings import Settings
from provisioning.sshkeys import KeyRejected, parse_public_key

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "request.schema.json"

RESERVED_PORTS = range(50000, 55001)  # Batch keeps 50000-55000 for itself
MIN_FRONTEND_PORTS = 40
DEFAULT_FRONTEND_START = 40000
RESERVED_USER_NAMES = frozenset(
    {
        "root",
        "daemon",
        "bin",
        "sys",
        "sync",
        "games",
        "man",
        "lp",
        "mail",
        "news",
        "nobody",
        "sshd",
        "_azbatch",
    }
)
_TYPE_NAMES = {
    "object": "a JSON object",
    "array": "a JSON array",
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
}


@dataclass(frozen=True)
class FieldError:
    """One broken rule: `field` is a path such as `users[0].name`, `rule` says what it must be."""

    field: str
    rule: str

    @property
    def message(self) -> str:
        return f"{self.field}: {self.rule}"

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "rule": self.rule, "message": self.message}


@dataclass
class ValidatedRequest:
    """A request that passed every rule. `body` is JSON-able and secret-free; passwords are kept apart."""

    body: dict[str, Any]
    passwords: dict[str, str] = field(default_factory=dict, repr=False)
    warnings: list[FieldError] = field(default_factory=list)

    @property
    def pool_id(self) -> str:
        return self.body["poolId"]

    @property
    def request_id(self) -> str:
        return self.body["requestId"]

    def orchestration_input(self, cipher: PasswordCipher | None) -> dict[str, Any]:
        """The request as the orchestration receives it: passwords replaced by their ciphertext."""
        body = copy.deepcopy(self.body)
        for user in body["users"]:
            password = self.passwords.get(user["name"])
            if password is not None:
                if cipher is None:
                    raise ValueError("passwords need a PASSWORD_ENCRYPTION_KEY setting")
                user["passwordCiphertext"] = cipher.encrypt(password)
        return body


@dataclass
class ValidationResult:
    request: ValidatedRequest | None
    errors: list[FieldError]

    @property
    def ok(self) -> bool:
        return self.request is not None and not self.errors

    def errors_json(self) -> list[dict[str, str]]:
        return [e.to_json() for e in self.errors]


@cache
def request_schema() -> dict[str, Any]:
    """The published JSON Schema (schemas/request.schema.json)."""
    return json.loads(SCHEMA_PATH.read_text())


@cache
def _validator() -> Draft202012Validator:
    schema = request_schema()
    Draft202012Validator.check_schema(schema)
    return StrictValidator(schema)


def field_path(parts: Any) -> str:
    """`["users", 0, "name"]` -> `users[0].name`; the empty path is `request`."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "request"


MAX_NAME_SHOWN = 64  # an unknown field's name is shown at most this long


def _join(parent: str, name: str) -> str:
    if not name.isprintable() or not name or len(name) > MAX_NAME_SHOWN:
        name = json.dumps(name[:MAX_NAME_SHOWN])  # quoted, so an empty or odd name is still visible
    return name if parent == "request" else f"{parent}.{name}"


def schema_errors(error: ValidationError) -> list[FieldError]:
    """Turn one jsonschema error into field errors, never echoing the value (it may be a secret)."""
    where = field_path(error.absolute_path)
    kind, limit, schema = error.validator, error.validator_value, error.schema
    if kind == "required":
        return [FieldError(_join(where, name), "is required") for name in limit if name not in error.instance]
    if kind == "additionalProperties":
        known = set(schema.get("properties", {}))
        return [
            FieldError(_join(where, str(name)), "is not a known field (see schemas/request.schema.json)")
            for name in error.instance
            if name not in known
        ]
    if "propertyNames" in error.schema_path:  # a bad key inside an object (e.g. an environment variable name)
        return [FieldError(f"{where}.{error.instance}", schema.get("x-rule") or "is not an allowed name")]
    if kind == "pattern":
        rule = schema.get("x-rule") or f"must match the pattern {limit}"
        return [FieldError(where, f"must be {rule}" if not rule.startswith("must") else rule)]
    rules = {
        "type": lambda: (
            f"must be {_TYPE_NAMES.get(limit, limit) if isinstance(limit, str) else ' or '.join(limit)}"
        ),
        "minLength": lambda: f"must be at least {limit} characters" if limit > 1 else "must not be empty",
        "maxLength": lambda: f"must be at most {limit} characters",
        "minimum": lambda: f"must be at least {limit}",
        "maximum": lambda: f"must be at most {limit}",
        "minItems": lambda: f"must have at least {limit} item{'s' if limit != 1 else ''}",
        "maxItems": lambda: f"must have at most {limit} items",
        "maxProperties": lambda: f"must have at most {limit} entries",
        "minProperties": lambda: schema.get("x-rule") or f"must have at least {limit} entries",
        "uniqueItems": lambda: "must not repeat an item",
        "enum": lambda: "must be one of " + ", ".join(json.dumps(v) for v in limit),
        "const": lambda: f"must be {json.dumps(limit)}",
    }
    make = rules.get(kind)
    return [FieldError(where, make() if make else f"breaks the schema rule '{kind}'")]


def parse_body(body: bytes | str | dict[str, Any]) -> tuple[dict[str, Any] | None, list[FieldError]]:
    """Decode a queue message or HTTP body into a JSON object."""
    if isinstance(body, dict):
        return body, []
    try:
        data = loads_bounded(body)
    except JsonRejected as exc:
        return None, [FieldError("request", f"must be a JSON object (the body {exc})")]
    if not isinstance(data, dict):
        return None, [FieldError("request", "must be a JSON object")]
    return data, []


def validate_request(
    body: bytes | str | dict[str, Any], settings: Settings, now: datetime
) -> ValidationResult:
    """Check `body` against the schema and every rule; all broken rules are reported, not just the first."""
    data, errors = parse_body(body)
    if data is None:
        return ValidationResult(None, errors)
    for error in sorted(_validator().iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        errors.extend(schema_errors(error))
    bad_fields = {e.field for e in errors}

    def clean(path: str) -> bool:
        """No schema error at `path` or inside it."""
        return not any(f == path or f.startswith(path + ".") or f.startswith(path + "[") for f in bad_fields)

    warnings: list[FieldError] = []
    total_nodes = _check_nodes(data, settings, errors) if clean("nodes") and "nodes" in data else 0
    ssh = _check_ssh(data.get("ssh") or {}, total_nodes, settings, errors, warnings) if clean("ssh") else {}
    delete_after = None
    if isinstance(data.get("deleteAfter"), str) and clean("deleteAfter"):
        delete_after = _resolve_delete_after(data["deleteAfter"], settings, now, errors)
    users, passwords = [], {}
    if isinstance(data.get("users"), list):
        users, passwords = check_users(data["users"], settings, now, errors, warnings, clean)
    if errors:
        return ValidationResult(None, errors)

    start_task = data.get("startTask")
    normalised = {
        "requestId": data.get("requestId") or default_request_id(data["poolId"]),
        "poolId": data["poolId"],
        "vmSize": data["vmSize"],
        "nodes": {"dedicated": data["nodes"].get("dedicated", 0), "spot": data["nodes"].get("spot", 0)},
        "image": data["image"],
        "startTask": None
        if start_task is None
        else {
            "commandLine": start_task["commandLine"],
            "elevated": start_task.get("elevated", False),
            "waitForSuccess": start_task.get("waitForSuccess", True),
            "maxRetries": start_task.get("maxRetries", 0),
            "environment": start_task.get("environment", {}),
        },
        "ssh": ssh,
        "users": users,
        "deleteAfter": delete_after,
        "fingerprint": request_fingerprint(data),
    }
    return ValidationResult(ValidatedRequest(normalised, passwords, warnings), [])


def _resolve_delete_after(
    text: str, settings: Settings, now: datetime, errors: list[FieldError]
) -> str | None:
    """`deleteAfter`: an ISO 8601 time with offset or a duration from now, at most MAX_POOL_LIFETIME ahead."""
    try:
        when = now + parse_duration(text) if text.strip().upper().startswith("P") else parse_timestamp(text)
    except (DurationError, OverflowError):
        errors.append(
            FieldError(
                "deleteAfter",
                "must be an ISO 8601 time with an offset (2030-01-02T03:04:05Z) or a duration (PT8H, P1D)",
            )
        )
        return None
    if when <= now:
        errors.append(FieldError("deleteAfter", "must be in the future"))
        return None
    if when - now > settings.max_pool_lifetime + timedelta(seconds=1):
        cap = format_duration(settings.max_pool_lifetime)
        rule = f"must be at most {cap} from now (MAX_POOL_LIFETIME setting)"
        errors.append(FieldError("deleteAfter", rule))
        return None
    return format_timestamp(when)


def request_fingerprint(data: dict[str, Any]) -> str:
    """A digest of the request as sent, without passwords: equal for a resend, else different."""
    stripped = copy.deepcopy(data)
    for user in stripped.get("users") or []:
        if isinstance(user, dict):
            user.pop("password", None)
    canonical = json.dumps(stripped, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def _check_nodes(data: dict[str, Any], settings: Settings, errors: list[FieldError]) -> int:
    nodes = data["nodes"]
    total = nodes.get("dedicated", 0) + nodes.get("spot", 0)
    if total < 1:
        errors.append(FieldError("nodes", "dedicated + spot must be at least 1"))
    elif total > settings.max_nodes_per_request:
        errors.append(
            FieldError(
                "nodes",
                f"dedicated + spot must be at most {settings.max_nodes_per_request} "
                "(MAX_NODES_PER_REQUEST setting)",
            )
        )
    return total


def default_port_range(total_nodes: int) -> dict[str, int]:
    """40000 upwards, one port per node and at least 40 (above the reserved block if that does not fit)."""
    size = max(MIN_FRONTEND_PORTS, total_nodes)
    start = DEFAULT_FRONTEND_START if DEFAULT_FRONTEND_START + size - 1 < RESERVED_PORTS.start else 55001
    return {"start": start, "end": start + size - 1}


OPEN_SSH_WARNING = (
    '"*" lets every address on the internet reach SSH on every node: give the networks that need access '
    "instead (IP addresses or CIDR prefixes)"
)


def _check_ssh(
    ssh: dict[str, Any],
    total_nodes: int,
    settings: Settings,
    errors: list[FieldError],
    warnings: list[FieldError],
) -> dict[str, Any]:
    where = "ssh.frontendPortRange"
    ports = ssh.get("frontendPortRange") or default_port_range(total_nodes)
    start, end = ports["start"], ports["end"]
    if start > end:
        errors.append(FieldError(where, "start must not be greater than end"))
    elif start <= RESERVED_PORTS.stop - 1 and end >= RESERVED_PORTS.start:
        errors.append(FieldError(where, "must not overlap 50000-55000 (reserved by Azure Batch)"))
    elif end - start + 1 < MIN_FRONTEND_PORTS:
        errors.append(FieldError(where, f"must hold at least {MIN_FRONTEND_PORTS} ports (Azure Batch rule)"))
    elif end - start + 1 < total_nodes:
        errors.append(
            FieldError(where, f"must hold at least one port per node ({total_nodes} nodes requested)")
        )
    prefixes = ssh.get("allowedSourcePrefixes") or list(settings.default_ssh_source_prefixes)
    if not prefixes:
        errors.append(
            FieldError(
                "ssh.allowedSourcePrefixes",
                "is required: the app has no DEFAULT_SSH_SOURCE_PREFIXES setting (give the IP addresses or "
                'CIDR prefixes allowed to connect, or "*" for any address)',
            )
        )
    elif prefixes == ["*"]:
        warnings.append(FieldError("ssh.allowedSourcePrefixes", OPEN_SSH_WARNING))
    for index, prefix in enumerate(prefixes):
        if prefix == "*":
            continue
        try:
            ipaddress.ip_network(prefix, strict=False)
        except ValueError:
            errors.append(
                FieldError(
                    f"ssh.allowedSourcePrefixes[{index}]",
                    'must be "*", an IP address or a CIDR prefix such as 10.0.0.0/8',
                )
            )
    if "*" in prefixes and len(prefixes) > 1:
        errors.append(FieldError("ssh.allowedSourcePrefixes", 'must not combine "*" with other prefixes'))
    return {"frontendPortRange": {"start": start, "end": end}, "allowedSourcePrefixes": list(prefixes)}


def _resolve_expiry(
    text: str | None, settings: Settings, now: datetime
) -> tuple[datetime | None, str | None]:
    if text is None:
        return now + settings.default_access_duration, None
    try:
        when = now + parse_duration(text) if text.strip().upper().startswith("P") else parse_timestamp(text)
    except (DurationError, OverflowError):
        return (
            None,
            "must be an ISO 8601 time with an offset (2030-01-02T03:04:05Z) or a duration (PT8H, P1D)",
        )
    if when <= now:
        return None, "must be in the future"
    if when - now > settings.max_access_duration + timedelta(seconds=1):
        cap = format_duration(settings.max_access_duration)
        return None, f"must be at most {cap} from now (MAX_ACCESS_DURATION setting)"
    return when, None


def check_users(
    users: list[Any],
    settings: Settings,
    now: datetime,
    errors: list[FieldError],
    warnings: list[FieldError],
    clean: Any,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    normalised: list[dict[str, Any]] = []
    passwords: dict[str, str] = {}
    seen: dict[str, int] = {}
    for index, user in enumerate(users):
        where = f"users[{index}]"
        if not isinstance(user, dict):
            continue
        name = user.get("name")
        if isinstance(name, str) and clean(f"{where}.name"):
            if name in RESERVED_USER_NAMES:
                errors.append(
                    FieldError(f"{where}.name", "is reserved by the system; choose another user name")
                )
            elif name in seen:
                errors.append(
                    FieldError(
                        f"{where}.name", f"must be unique in the request (users[{seen[name]}] has it too)"
                    )
                )
            seen.setdefault(name, index)
        if "sshPublicKey" not in user and "password" not in user:
            errors.append(FieldError(where, "needs an sshPublicKey or a password"))
        entry: dict[str, Any] = {"name": name, "admin": bool(user.get("admin", False))}
        key = user.get("sshPublicKey")
        if isinstance(key, str) and clean(f"{where}.sshPublicKey"):
            try:
                info = parse_public_key(key)
            except KeyRejected as exc:
                errors.append(FieldError(f"{where}.sshPublicKey", str(exc)))
            else:
                entry.update(sshPublicKey=key.strip(), keyType=info.key_type, keyFingerprint=info.fingerprint)
                if info.warning:
                    warnings.append(FieldError(f"{where}.sshPublicKey", info.warning))
        if "password" in user and clean(f"{where}.password"):
            if not settings.passwords_enabled:
                errors.append(
                    FieldError(
                        f"{where}.password",
                        "is not accepted: the app has no PASSWORD_ENCRYPTION_KEY setting (use sshPublicKey)",
                    )
                )
            elif isinstance(name, str):
                passwords[name] = user["password"]
                entry["hasPassword"] = True
        expiry = user.get("expiry")
        if expiry is None or (isinstance(expiry, str) and clean(f"{where}.expiry")):
            when, problem = _resolve_expiry(expiry, settings, now)
            if problem:
                errors.append(FieldError(f"{where}.expiry", problem))
            elif when is not None:
                entry["expiryTime"] = format_timestamp(when)
        normalised.append(entry)
    return normalised, passwords
