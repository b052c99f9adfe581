"""Connect the app's durable functions to the durable engine: orchestrator episodes and activity calls go to
the Python runtime as the Durable extension sends them (the orchestration context as a string, activity
input as JSON), and the durableClient binding JSON points the SDK client at this host."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from devstack.functions_host.host_bindings import ACTIVITY_TRIGGER, ORCHESTRATION_TRIGGER
from devstack.functions_host.host_config import DurableSettings
from devstack.functions_host.invocation import Invoker
from devstack.functions_host.worker import BindingSpec, FunctionSpec

if TYPE_CHECKING:
    from devstack.functions_host.durable.engine import DurableEngine

DURABLE_STORE = "durable.sqlite3"


def uses_durable(specs: list[FunctionSpec]) -> bool:
    return any(
        s.trigger_type in (ORCHESTRATION_TRIGGER, ACTIVITY_TRIGGER) or s.bindings_of("durableClient")
        for s in specs
    )


def _json_text(returned) -> str:
    kind = returned.WhichOneof("data") if returned is not None else None
    return "null" if kind is None else str(getattr(returned, kind))


def orchestrator_handle(
    spec: FunctionSpec, invoker: Invoker, loop: asyncio.AbstractEventLoop
) -> Callable[[str], str]:
    """context JSON text -> the orchestrator's answer JSON text, called from an episode thread: the
    invocation runs on the host's loop (the runtime runs the orchestrator on its thread pool); what the
    orchestrator raised comes back as FunctionFailed. The engine logs each episode."""
    protos = invoker.protos

    def run_episode(context_json: str) -> str:
        invocation = invoker.invoke(spec, protos.TypedData(string=context_json), summary=False)
        return _json_text(asyncio.run_coroutine_threadsafe(invocation, loop).result())

    return run_episode


def activity_invoker(spec: FunctionSpec, invoker: Invoker) -> Callable[[str], Awaitable[str]]:
    """input JSON text -> result JSON text; raises what the runtime reported. The engine logs each call."""
    protos = invoker.protos

    async def run_activity(input_json: str | None) -> str:
        data = protos.TypedData(json="null" if input_json is None else input_json)
        return _json_text(await invoker.invoke(spec, data, summary=False))

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
            s.name: orchestrator_handle(s, invoker, asyncio.get_running_loop())
            for s in specs
            if s.trigger_type == ORCHESTRATION_TRIGGER
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
