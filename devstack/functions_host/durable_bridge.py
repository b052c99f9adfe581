"""Connect the app's durable functions to the durable engine: orchestrator handles called with the context
JSON as the worker calls them, activities decoded and encoded with the SDK's activity codec, and the
durableClient binding JSON that points the SDK client at this host."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from azure.functions import meta
from azure.functions.durable_functions import ActivityTriggerConverter

from devstack.functions_host.app_loader import (
    ACTIVITY_TRIGGER,
    ORCHESTRATION_TRIGGER,
    BindingSpec,
    FunctionSpec,
)
from devstack.functions_host.host_config import DurableSettings
from devstack.functions_host.invocation import Invoker

if TYPE_CHECKING:
    from devstack.functions_host.durable.engine import DurableEngine

DURABLE_STORE = "durable.sqlite3"


def uses_durable(specs: list[FunctionSpec]) -> bool:
    return any(
        s.trigger_type in (ORCHESTRATION_TRIGGER, ACTIVITY_TRIGGER) or s.bindings_of("durableClient")
        for s in specs
    )


def orchestrator_handle(spec: FunctionSpec) -> Callable[[str], str]:
    """context JSON text -> result JSON text, by calling the SDK-wrapped orchestrator as the worker does
    (keyword argument named after the trigger binding). The engine logs each episode."""
    handle = spec.user_function
    argument = spec.trigger.name

    def run_episode(context_json: str) -> str:
        return handle(**{argument: context_json})

    return run_episode


def decode_activity_input(input_json: str | None) -> Any:
    """The activity's argument, decoded as the worker's activity trigger converter decodes it."""
    text = "null" if input_json is None else input_json
    return ActivityTriggerConverter.decode(meta.Datum(type="json", value=text), trigger_metadata=None)


def encode_activity_result(result: Any) -> str:
    """The activity's return value as JSON text (the durable codec), or ValueError if not serializable."""
    return ActivityTriggerConverter.encode(result, expected_type=None).value


def activity_invoker(spec: FunctionSpec, invoker: Invoker) -> Callable[[str], Awaitable[str]]:
    """input JSON text -> result JSON text; raises what the activity raised. The engine logs each call."""

    async def run_activity(input_json: str) -> str:
        value = decode_activity_input(input_json)
        return await invoker.invoke(spec, value, finish=encode_activity_result, summary=False)

    return run_activity


def build_engine(
    specs: list[FunctionSpec],
    *,
    invoker: Invoker,
    settings: DurableSettings,
    data_dir: Path,
    logger: logging.Logger,
) -> DurableEngine:
    """A DurableEngine over the app's orchestrators and activities, stored in `<data dir>/durable.sqlite3`."""
    from devstack.functions_host.durable.engine import DurableEngine

    return DurableEngine(
        store_path=Path(data_dir) / DURABLE_STORE,
        task_hub=settings.hub_name,
        orchestrators={
            s.name: orchestrator_handle(s) for s in specs if s.trigger_type == ORCHESTRATION_TRIGGER
        },
        activities={
            s.name: activity_invoker(s, invoker) for s in specs if s.trigger_type == ACTIVITY_TRIGGER
        },
        max_concurrent_activities=settings.max_concurrent_activities,
        max_concurrent_orchestrators=settings.max_concurrent_orchestrators,
        logger=logger.getChild("durable"),
    )


def client_binding_factory(*, base_url: str, default_hub: str, key: str) -> Callable[[BindingSpec], str]:
    """The JSON string a durableClient binding receives, per binding (its taskHub/connection override)."""
    from devstack.functions_host.durable.http_api import DEFAULT_CONNECTION, client_binding_json

    cache: dict[tuple[str, str], str] = {}

    def for_binding(binding: BindingSpec) -> str:
        hub = binding.get("taskHub") or default_hub
        connection = binding.get("connectionName") or DEFAULT_CONNECTION
        if (hub, connection) not in cache:
            cache[hub, connection] = client_binding_json(
                base_url=base_url, task_hub=hub, connection=connection, key=key
            )
        return cache[hub, connection]

    return for_binding
