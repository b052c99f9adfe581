"""The OpenAPI document (schemas/openapi.json): current with its generator, one path and method per HTTP route
the app registers (and no other), request bodies that are the published schemas, and served as the app
answers it."""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path

import jsonschema
import pytest
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from tools import build_openapi

REPO_ROOT = Path(__file__).resolve().parents[3]
DOCUMENT = json.loads((REPO_ROOT / "schemas" / "openapi.json").read_text())
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def _fresh_app():
    """function_app.py's app from a fresh import (get_functions() works once per app object, and other tests
    index the imported module)."""
    spec = importlib.util.spec_from_file_location("function_app_for_openapi", REPO_ROOT / "function_app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


@functools.cache
def app_routes() -> dict[tuple[str, str], dict]:
    """(METHOD, /prefix/route) -> {"name", "anonymous"} for every HTTP trigger of function_app.py."""
    prefix = json.loads((REPO_ROOT / "host.json").read_text())["extensions"]["http"]["routePrefix"]
    routes = {}
    for function in _fresh_app().get_functions():
        trigger = function.get_trigger()
        if trigger.type != "httpTrigger":
            continue
        for method in trigger.methods:
            key = (str(getattr(method, "value", method)).upper(), f"/{prefix}/{trigger.route}")
            routes[key] = {
                "name": function.get_function_name(),
                "anonymous": str(trigger.auth_level).upper().endswith("ANONYMOUS"),
            }
    return routes


def document_routes(document: dict) -> dict[tuple[str, str], dict]:
    return {
        (method.upper(), path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


def test_the_committed_document_is_what_the_generator_builds():
    assert build_openapi.main(["--check"]) == 0, "run .venv/bin/python tools/build_openapi.py"


def test_every_route_of_the_app_is_in_the_document_and_nothing_else():
    app, documented = app_routes(), document_routes(DOCUMENT)
    assert set(app) == set(documented), {
        "routes without a path in the document": sorted(set(app) - set(documented)),
        "paths in the document without a route": sorted(set(documented) - set(app)),
    }
    for key, route in app.items():
        assert documented[key]["operationId"] == route["name"], key
        assert (documented[key].get("security") == []) == route["anonymous"], f"{key}: auth level differs"


def test_the_check_fails_when_a_route_is_missing_from_the_document():
    document = json.loads(json.dumps(DOCUMENT))
    del document["paths"]["/api/users/{user}/access"]
    assert set(app_routes()) - set(document_routes(document)) == {("GET", "/api/users/{user}/access")}


def test_the_check_fails_when_the_committed_file_is_stale(tmp_path, monkeypatch):
    stale = tmp_path / "openapi.json"
    stale.write_text(json.dumps({**DOCUMENT, "paths": {}}))
    monkeypatch.setattr(build_openapi, "OUTPUT", stale)
    monkeypatch.setattr(build_openapi, "REPO_ROOT", tmp_path)
    assert build_openapi.main(["--check"]) == 1


def _validator(component: str) -> jsonschema.Draft202012Validator:
    """A validator for a component of the document, resolving its $refs inside the document."""
    registry = Registry().with_resource("urn:openapi", DRAFT202012.create_resource(DOCUMENT))
    return jsonschema.Draft202012Validator(
        {"$ref": f"urn:openapi#/components/schemas/{component}"}, registry=registry
    )


@pytest.mark.parametrize(
    ("component", "schema_file"),
    [("PoolRequest", "request.schema.json"), ("AccessGrant", "access-grant.schema.json")],
)
def test_request_bodies_are_the_published_schemas(component, schema_file):
    published = json.loads((REPO_ROOT / "schemas" / schema_file).read_text())
    embedded = DOCUMENT["components"]["schemas"][component]
    assert embedded["properties"].keys() == published["properties"].keys()
    assert embedded["required"] == published["required"]
    assert embedded["additionalProperties"] is False
    example_file = "request.json" if component == "PoolRequest" else "grant.json"
    example = json.loads((REPO_ROOT / "examples" / example_file).read_text())
    _validator(component).validate(example)
    example["surprise"] = True
    with pytest.raises(jsonschema.ValidationError):
        _validator(component).validate(example)
    example.pop("surprise")
    example["users"][0]["name"] = "Not A Linux Name"
    with pytest.raises(jsonschema.ValidationError):
        _validator(component).validate(example)
