"""Import an app's function_app.py, find its FunctionApp, and index its functions by trigger type the way
the Python worker does; bindings the local host cannot serve are refused here, by name, before start."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import azure.functions as func

DEFAULT_SCRIPT_FILE = "function_app.py"

HTTP_TRIGGER = "httpTrigger"
QUEUE_TRIGGER = "queueTrigger"
TIMER_TRIGGER = "timerTrigger"
ORCHESTRATION_TRIGGER = "orchestrationTrigger"
ACTIVITY_TRIGGER = "activityTrigger"
SUPPORTED_TRIGGERS = (HTTP_TRIGGER, QUEUE_TRIGGER, TIMER_TRIGGER, ORCHESTRATION_TRIGGER, ACTIVITY_TRIGGER)
SUPPORTED_BINDINGS = ("durableClient (in)", "http (out, $return)", "queue (out)")


class AppLoadError(Exception):
    """The app could not be imported or indexed, or uses something the local host does not support."""


@dataclass(frozen=True)
class BindingSpec:
    """One binding as the decorators describe it (function.json form)."""

    type: str
    name: str
    direction: str
    settings: dict[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        return self.settings.get(key, default)


@dataclass(frozen=True)
class FunctionSpec:
    """An indexed function: its trigger, its other bindings and the callable the worker would invoke."""

    name: str
    trigger: BindingSpec
    bindings: tuple[BindingSpec, ...]
    user_function: Callable[..., Any]
    is_async: bool
    wants_context: bool

    @property
    def trigger_type(self) -> str:
        return self.trigger.type

    def bindings_of(self, binding_type: str, direction: str | None = None) -> list[BindingSpec]:
        return [
            b
            for b in self.bindings
            if b.type == binding_type and (direction is None or b.direction == direction)
        ]


def import_app_module(app_dir: Path) -> Any:
    """Import the app's script (function_app.py, or PYTHON_SCRIPT_FILE_NAME) with the app dir on sys.path."""
    app_dir = Path(app_dir).resolve()
    script = os.environ.get("PYTHON_SCRIPT_FILE_NAME", DEFAULT_SCRIPT_FILE)
    if not (app_dir / script).is_file():
        raise AppLoadError(f"{script} not found in the app directory {app_dir}")
    if str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    module_name = Path(script).stem
    try:
        return importlib.import_module(module_name)
    except Exception as exc:
        raise AppLoadError(f"importing {script} failed: {type(exc).__name__}: {exc}") from exc


def find_function_app(module: Any) -> func.FunctionRegister:
    """The one top-level FunctionApp (or DFApp) instance in the module, as the worker requires."""
    apps = {id(v): (k, v) for k, v in vars(module).items() if isinstance(v, func.FunctionRegister)}
    if not apps:
        raise AppLoadError(f"no FunctionApp instance found at the top level of {module.__name__}.py")
    if len(apps) > 1:
        names = ", ".join(sorted(k for k, _ in apps.values()))
        raise AppLoadError(
            f"more than one FunctionApp instance at the top level of {module.__name__}.py: {names}"
        )
    return next(iter(apps.values()))[1]


def index_functions(app: func.FunctionRegister) -> list[FunctionSpec]:
    """Index every function (calls app.get_functions() once); AppLoadError lists every unsupported binding."""
    try:
        functions = app.get_functions()
    except ValueError as exc:
        raise AppLoadError(f"indexing the app failed: {exc}") from exc
    specs: list[FunctionSpec] = []
    problems: list[str] = []
    for function in functions:
        spec, errors = _index_one(function)
        problems.extend(errors)
        if spec is not None:
            specs.append(spec)
    if problems:
        raise AppLoadError("the app cannot run on the local host:\n  " + "\n  ".join(problems))
    return specs


def load_app(app_dir: Path) -> list[FunctionSpec]:
    """Import and index the app in `app_dir`."""
    return index_functions(find_function_app(import_app_module(app_dir)))


def _index_one(function: Any) -> tuple[FunctionSpec | None, list[str]]:
    name = function.get_function_name()
    bindings = [_binding(raw) for raw in function.get_raw_bindings()]
    trigger = bindings[function.get_bindings().index(function.get_trigger())]
    others = tuple(b for b in bindings if b is not trigger)
    errors = [f"function {name!r}: {problem}" for problem in _unsupported(trigger, others)]
    user_function = function.get_user_function()
    wants_context, signature_errors = _check_signature(user_function, bindings)
    errors += [f"function {name!r}: {problem}" for problem in signature_errors]
    if errors:
        return None, errors
    spec = FunctionSpec(
        name=name,
        trigger=trigger,
        bindings=others,
        user_function=user_function,
        is_async=inspect.iscoroutinefunction(user_function),
        wants_context=wants_context,
    )
    return spec, []


def _binding(raw: str) -> BindingSpec:
    settings = json.loads(raw)
    return BindingSpec(
        type=settings.get("type", ""),
        name=settings.get("name", ""),
        direction=str(settings.get("direction", "IN")).upper(),
        settings=settings,
    )


def _unsupported(trigger: BindingSpec, others: tuple[BindingSpec, ...]) -> list[str]:
    problems = []
    if trigger.type not in SUPPORTED_TRIGGERS:
        problems.append(
            f"trigger type {trigger.type!r} (binding {trigger.name!r}) is not supported by the local host; "
            f"supported triggers: {', '.join(SUPPORTED_TRIGGERS)}"
        )
    for b in others:
        if b.type == "durableClient" and b.direction == "IN":
            continue
        if b.type == "queue" and b.direction == "OUT":
            continue
        if b.type == "http" and b.direction == "OUT" and b.name == "$return" and trigger.type == HTTP_TRIGGER:
            continue
        problems.append(
            f"binding type {b.type!r} (direction {b.direction.lower()}, name {b.name!r}) is not supported by "
            f"the local host; supported bindings: {', '.join(SUPPORTED_BINDINGS)}"
        )
    return problems


def _check_signature(fn: Callable[..., Any], bindings: list[BindingSpec]) -> tuple[bool, list[str]]:
    """The worker's parameter checks: every parameter has a binding (or is `context`) and vice versa."""
    try:
        params = dict(inspect.signature(fn).parameters)
    except (TypeError, ValueError) as exc:
        return False, [f"cannot read the function's signature: {exc}"]
    bound = {b.name: b for b in bindings if b.name != "$return"}
    wants_context = "context" in params and "context" not in bound
    if wants_context:
        params.pop("context")
    problems = []
    missing_bindings = sorted(set(params) - set(bound))
    if missing_bindings:
        problems.append(
            "these parameters are declared in Python but have no binding: " + ", ".join(missing_bindings)
        )
    missing_params = sorted(set(bound) - set(params))
    if missing_params:
        problems.append(
            "these bindings have no parameter of the same name in Python: " + ", ".join(missing_params)
        )
    hints = _annotations(fn)
    for b in bound.values():
        if b.direction == "OUT" and b.name in params and not _is_out_annotation(hints.get(b.name)):
            problems.append(f"output binding {b.name!r} must be annotated func.Out[...] in Python")
    return wants_context, problems


def _annotations(fn: Callable[..., Any]) -> dict[str, Any]:
    target = inspect.unwrap(fn)
    try:
        return typing.get_type_hints(target)
    except Exception:
        return dict(getattr(target, "__annotations__", {}))


def _is_out_annotation(annotation: Any) -> bool:
    if annotation is None:
        return False
    if isinstance(annotation, str):
        return "Out[" in annotation
    origin = typing.get_origin(annotation) or annotation
    return isinstance(origin, type) and issubclass(origin, func.Out)
