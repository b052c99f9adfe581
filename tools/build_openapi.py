"""Build schemas/openapi.json, the OpenAPI 3.1 description of the app's HTTP routes, with the request bodies
embedded from schemas/request.schema.json and schemas/access-grant.schema.json at build time (one source).

    .venv/bin/python tools/build_openapi.py          # write schemas/openapi.json
    .venv/bin/python tools/build_openapi.py --check  # exit 1 when the committed file is not current
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = REPO_ROOT / "schemas"
OUTPUT = SCHEMAS / "openapi.json"
# The embedded schemas: component name -> file. Their $defs become components of their own.
BODY_SCHEMAS = {"PoolRequest": "request.schema.json", "AccessGrant": "access-grant.schema.json"}
JSON = "application/json"


def _component_name(name: str) -> str:
    return name[:1].upper() + name[1:]


def embedded_schemas() -> dict[str, Any]:
    """The request schemas as OpenAPI components: `$id`/`$schema` dropped (3.1's default dialect is 2020-12),
    `$defs` hoisted to components, and every $ref (local or by `$id`) pointed at the component."""
    loaded = {name: json.loads((SCHEMAS / file).read_text()) for name, file in BODY_SCHEMAS.items()}
    components: dict[str, Any] = {}
    refs: dict[str, str] = {}
    for name, schema in loaded.items():
        base = schema.get("$id", "")
        for def_name in schema.get("$defs", {}):
            target = f"#/components/schemas/{_component_name(def_name)}"
            refs[f"{base}#/$defs/{def_name}"] = target
            refs[f"{name}:#/$defs/{def_name}"] = target
    for name, schema in loaded.items():
        schema = copy.deepcopy(schema)
        for key in ("$id", "$schema"):
            schema.pop(key, None)
        defs = schema.pop("$defs", {})
        components[name] = _rewrite(schema, name, refs)
        for def_name, definition in defs.items():
            component = _component_name(def_name)
            if component in components or component in BODY_SCHEMAS:
                raise SystemExit(f"two schemas define {component}")
            components[component] = _rewrite(definition, name, refs)
    return components


def _rewrite(node: Any, owner: str, refs: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref":
                target = refs.get(value) or refs.get(f"{owner}:{value}")
                if target is None:
                    raise SystemExit(f"{owner}: cannot resolve $ref {value}")
                out[key] = target
            else:
                out[key] = _rewrite(value, owner, refs)
        return out
    if isinstance(node, list):
        return [_rewrite(item, owner, refs) for item in node]
    return node


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": _ref(name)}}}


NULLABLE_STRING = {"type": ["string", "null"]}
ANY_OBJECT = {"type": "object"}

ANSWER_SCHEMAS: dict[str, Any] = {
    "FieldError": {
        "type": "object",
        "required": ["field", "rule"],
        "properties": {
            "field": {"type": "string"},
            "rule": {"type": "string"},
            "message": {"type": "string"},
        },
    },
    "Problem": {
        "description": "An error: `error` (a message, with `code` for Batch-side refusals) and/or `errors` "
        "naming each field and rule.",
        "type": "object",
        "anyOf": [{"required": ["error"]}, {"required": ["errors"]}],
        "properties": {
            "error": {"type": "string"},
            "code": {"type": "string"},
            "errors": {"type": "array", "items": _ref("FieldError")},
        },
    },
    "Accepted": {
        "description": "202: the durable check-status URLs (they carry a key of their own) and the request.",
        "type": "object",
        "required": ["id", "statusQueryGetUri"],
        "properties": {
            "id": {"type": "string"},
            "instanceId": {"type": "string"},
            "statusQueryGetUri": {"type": "string"},
            "sendEventPostUri": {"type": "string"},
            "terminatePostUri": {"type": "string"},
            "purgeHistoryDeleteUri": {"type": "string"},
            "poolId": {"type": "string"},
            "requestId": {"type": "string"},
            "result": {"type": "string", "enum": ["accepted", "duplicate"]},
            "warnings": {"type": "array"},
            "poolStatusUri": {"type": "string"},
        },
    },
    "ConnectionRecord": {
        "type": "object",
        "required": ["poolId", "nodeId", "user", "state"],
        "properties": {
            "poolId": {"type": "string"},
            "nodeId": {"type": "string"},
            "user": {"type": "string"},
            "ip": NULLABLE_STRING,
            "port": {"type": ["integer", "null"]},
            "state": {
                "type": "string",
                "enum": ["pending", "active", "revoked", "expired", "gone", "deleted"],
            },
            "nodeState": NULLABLE_STRING,
            "isAdmin": {"type": "boolean"},
            "authMethod": {"type": "string"},
            "keyFingerprint": NULLABLE_STRING,
            "keyType": NULLABLE_STRING,
            "expiresAt": NULLABLE_STRING,
            "grantedAt": NULLABLE_STRING,
            "stateChangedAt": NULLABLE_STRING,
            "requestId": NULLABLE_STRING,
        },
    },
    "Connections": {
        "type": "object",
        "required": ["poolId", "connections"],
        "properties": {
            "poolId": {"type": "string"},
            "connections": {"type": "array", "items": _ref("ConnectionRecord")},
        },
    },
    "PoolView": {
        "description": "The pool as it is: the latest request's phase, progress and outcome, the pool as the "
        "app manages it (`pool`), and every record.",
        "type": "object",
        "required": ["poolId", "phase", "records"],
        "properties": {
            "poolId": {"type": "string"},
            "requestId": NULLABLE_STRING,
            "instanceId": NULLABLE_STRING,
            "kind": NULLABLE_STRING,
            "phase": {"type": "string"},
            "runtimeStatus": NULLABLE_STRING,
            "progress": {"type": ["object", "null"]},
            "outcome": {"type": ["object", "null"]},
            "warnings": {"type": "array"},
            "errors": {"type": "array"},
            "pool": ANY_OBJECT,
            "records": {"type": "array", "items": _ref("ConnectionRecord")},
        },
    },
    "PoolSummary": {
        "type": "object",
        "required": ["poolId", "createdByApp", "state"],
        "properties": {
            "poolId": {"type": "string"},
            "createdByApp": {"type": "boolean"},
            "state": {"type": "string"},
            "phase": NULLABLE_STRING,
            "nodeCounts": {"type": ["object", "null"]},
            "activeUsers": {"type": "array", "items": {"type": "string"}},
            "deleteAfter": NULLABLE_STRING,
            "latestRequestId": NULLABLE_STRING,
        },
    },
    "PoolList": {
        "type": "object",
        "required": ["pools"],
        "properties": {"pools": {"type": "array", "items": _ref("PoolSummary")}},
    },
    "UserAccess": {
        "type": "object",
        "required": ["user", "pools", "access"],
        "properties": {
            "user": {"type": "string"},
            "pools": {"type": "array", "items": {"type": "string"}},
            "access": {"type": "array", "items": _ref("ConnectionRecord")},
        },
    },
    "Revoked": {
        "type": "object",
        "required": ["revoked"],
        "properties": {"revoked": ANY_OBJECT},
    },
    "OpenApiDocument": {"type": "object", "required": ["openapi", "paths"]},
}


def _problem(description: str) -> dict[str, Any]:
    return _json("Problem", description)


NO_ROUTE = {
    "description": "no such pool/user (a JSON error), or no route matched (a text answer from the host)",
    "content": {JSON: {"schema": _ref("Problem")}, "text/plain": {"schema": {"type": "string"}}},
}
UNAUTHORIZED = {"description": "the function key is missing or wrong"}
ACCEPTED = {
    "description": "accepted: the run goes on; follow it at statusQueryGetUri or poolStatusUri",
    "headers": {"Location": {"description": "statusQueryGetUri", "schema": {"type": "string"}}},
    "content": {JSON: {"schema": _ref("Accepted")}},
}


def _param(name: str, schema: dict, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": schema}


def paths(components: dict[str, Any]) -> dict[str, Any]:
    """Every HTTP route of function_app.py (tests/unit/test_openapi.py keeps the two in step)."""
    pool_id = _param("poolId", copy.deepcopy(components["PoolRequest"]["properties"]["poolId"]), "a pool id")
    user = _param("user", copy.deepcopy(components["User"]["properties"]["name"]), "a Linux user name")
    for param in (pool_id, user):
        param["schema"].pop("x-rule", None)
    return {
        "/api/pools": {
            "post": {
                "operationId": "start_pool",
                "summary": "Create a pool with SSH access",
                "requestBody": {"required": True, "content": {JSON: {"schema": _ref("PoolRequest")}}},
                "responses": {
                    "202": ACCEPTED,
                    "400": _problem("the request breaks a rule; each field is named"),
                    "401": UNAUTHORIZED,
                    "409": _problem("the requestId was used by a different request"),
                },
            },
            "get": {
                "operationId": "list_pools",
                "summary": "Every pool the app manages",
                "responses": {"200": _json("PoolList", "the managed pools"), "401": UNAUTHORIZED},
            },
        },
        "/api/pools/{poolId}": {
            "parameters": [pool_id],
            "get": {
                "operationId": "get_pool",
                "summary": "The pool as it is, and the latest request's phase",
                "responses": {
                    "200": _json("PoolView", "the pool"),
                    "400": _problem("the pool id breaks the rules"),
                    "401": UNAUTHORIZED,
                    "404": NO_ROUTE,
                },
            },
            "delete": {
                "operationId": "remove_pool",
                "summary": "Delete a pool the app created",
                "responses": {
                    "202": ACCEPTED,
                    "400": _problem("the pool id breaks the rules"),
                    "401": UNAUTHORIZED,
                    "404": NO_ROUTE,
                    "409": _problem("the app only manages access on this pool: revoke its users instead"),
                },
            },
        },
        "/api/pools/{poolId}/access": {
            "parameters": [pool_id],
            "post": {
                "operationId": "grant_access",
                "summary": "Grant, rotate or extend SSH access on an existing pool",
                "requestBody": {"required": True, "content": {JSON: {"schema": _ref("AccessGrant")}}},
                "responses": {
                    "202": ACCEPTED,
                    "400": _problem("the grant breaks a rule; each field is named"),
                    "401": UNAUTHORIZED,
                    "404": NO_ROUTE,
                    "409": _problem(
                        "the pool cannot take SSH users (says what to do), or a reused requestId"
                    ),
                },
            },
        },
        "/api/pools/{poolId}/connections": {
            "parameters": [pool_id],
            "get": {
                "operationId": "get_connections",
                "summary": "The pool's SSH connection records",
                "parameters": [
                    {
                        "name": "format",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["json", "table", "ssh_config"]},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "JSON records; `format=table` or `ssh_config` as text",
                        "content": {
                            JSON: {"schema": _ref("Connections")},
                            "text/plain": {"schema": {"type": "string"}},
                        },
                    },
                    "400": _problem("the pool id or format breaks the rules"),
                    "401": UNAUTHORIZED,
                    "404": NO_ROUTE,
                },
            },
        },
        "/api/pools/{poolId}/users/{user}": {
            "parameters": [pool_id, user],
            "delete": {
                "operationId": "revoke_user",
                "summary": "Take away access the app granted",
                "responses": {
                    "200": _json("Revoked", "revoked"),
                    "202": ACCEPTED,
                    "400": _problem("the pool id or user name breaks the rules"),
                    "401": UNAUTHORIZED,
                    "404": NO_ROUTE,
                },
            },
        },
        "/api/users/{user}/access": {
            "parameters": [user],
            "get": {
                "operationId": "get_user_access",
                "summary": "The user's active access across pools",
                "responses": {
                    "200": _json("UserAccess", "the user's active records"),
                    "400": _problem("the user name breaks the rules"),
                    "401": UNAUTHORIZED,
                    "404": NO_ROUTE,
                },
            },
        },
        "/api/openapi.json": {
            "get": {
                "operationId": "openapi_document",
                "summary": "This document",
                "security": [],
                "responses": {"200": _json("OpenApiDocument", "the OpenAPI document")},
            },
        },
    }


def build() -> dict[str, Any]:
    components = embedded_schemas()
    for name, schema in ANSWER_SCHEMAS.items():
        if name in components:
            raise SystemExit(f"two schemas define {name}")
        components[name] = schema
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Batch SSH access",
            "version": "1.0.0",
            "description": "Azure Batch pools with SSH access, and access on existing pools. Request bodies "
            "are the published JSON Schemas (schemas/*.schema.json). Every route but this document needs a "
            "function key (x-functions-key header or ?code=). Generated by tools/build_openapi.py.",
        },
        "servers": [{"url": "/", "description": "the Function app's base URL"}],
        "security": [{"functionKeyHeader": []}, {"functionKeyQuery": []}],
        "paths": paths(components),
        "components": {
            "schemas": components,
            "securitySchemes": {
                "functionKeyHeader": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
                "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code"},
            },
        },
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="fail when the committed file is not current")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(
                f"{OUTPUT.relative_to(REPO_ROOT)} is not current: run tools/build_openapi.py", file=sys.stderr
            )
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
