"""Azure's Python runtime (azure-functions-runtime, pinned) loads every function of the app: it refuses a
bound parameter annotated with a subscripted generic such as dict[str, Any], and one refusal loads nothing."""

from __future__ import annotations

import types
from pathlib import Path

from azure_functions_runtime import functions, loader
from azure_functions_runtime.bindings import meta

APP = Path(__file__).resolve().parents[3] / "function_app.py"
# The parts of the worker protocol messages that loading a function reads: binding directions.
PROTOS = types.SimpleNamespace(BindingInfo=types.SimpleNamespace(inout=2, out=1, **{"in": 0}))


def test_the_runtime_loads_every_function_of_the_app():
    meta.load_binding_registry()
    indexed = loader.index_function_app(str(APP))
    registry = functions.Registry()
    refused = {}
    for function in indexed:
        try:
            registry.add_indexed_function(function=function, protos=PROTOS)
        except Exception as exc:  # noqa: BLE001 - collect every refusal, not just the first
            refused[function.get_function_name()] = str(exc)
    assert refused == {}
    names = {f.get_function_name() for f in indexed}
    assert {"grant_access", "grant_pool_access", "reconcile_access_timer", "reconcile_pool"} <= names
