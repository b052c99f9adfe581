"""Helpers for engine tests: turn a real DFApp into the engine's orchestrator handles and activity invokers
(as the host does: handle called with the context JSON under its binding name, activities through the SDK's
activity codec), and run an engine over a store in a temp directory."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import azure.durable_functions as df
from azure.functions import meta
from azure.functions.durable_functions import ActivityTriggerConverter

from devstack.functions_host.durable.engine import ActivityInvoker, DurableEngine, OrchestratorHandle

TEST_TIMEOUT = 120


def functions_of(app: df.DFApp) -> tuple[dict[str, OrchestratorHandle], dict[str, ActivityInvoker]]:
    """(orchestrators, activities) of a DFApp; cached on it, since get_functions() works only once."""
    cached = getattr(app, "_engine_functions", None)
    if cached is None:
        cached = _index(app)
        app._engine_functions = cached
    return cached


def _index(app: df.DFApp) -> tuple[dict[str, OrchestratorHandle], dict[str, ActivityInvoker]]:
    orchestrators: dict[str, OrchestratorHandle] = {}
    activities: dict[str, ActivityInvoker] = {}
    for fn in app.get_functions():
        trigger = fn.get_trigger()
        if trigger.type == "orchestrationTrigger":
            orchestrators[fn.get_function_name()] = _orchestrator(fn.get_user_function(), trigger.name)
        elif trigger.type == "activityTrigger":
            activities[fn.get_function_name()] = _activity(fn.get_user_function(), trigger.name)
    return orchestrators, activities


def _orchestrator(user_function: Callable, argument: str) -> OrchestratorHandle:
    def handle(context_json: str) -> str:
        return user_function(**{argument: context_json})

    return handle


def _activity(user_function: Callable, argument: str) -> ActivityInvoker:
    async def invoke(input_json: str | None) -> str:
        value = ActivityTriggerConverter.decode(
            meta.Datum(type="json", value=input_json), trigger_metadata=None
        )
        if inspect.iscoroutinefunction(user_function):
            result = await user_function(**{argument: value})
        else:
            result = await asyncio.to_thread(user_function, **{argument: value})
        return ActivityTriggerConverter.encode(result, expected_type=None).value

    return invoke


def run[T](coro: Coroutine[Any, Any, T], timeout: float = TEST_TIMEOUT) -> T:
    """Run a test coroutine to completion (no pytest-asyncio here)."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


@contextlib.asynccontextmanager
async def running_engine(app: df.DFApp, store: Path, **options: Any) -> AsyncIterator[DurableEngine]:
    orchestrators, activities = functions_of(app)
    orchestrators = {**orchestrators, **options.pop("orchestrators", {})}
    engine = DurableEngine(
        store_path=store,
        task_hub=options.pop("task_hub", "TestHub"),
        orchestrators=orchestrators,
        activities=activities,
        logger=options.pop("logger", logging.getLogger("tests.durable")),
        **options,
    )
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()


async def wait_for_status(
    engine: DurableEngine, instance_id: str, predicate: Callable[[dict], bool], timeout: float = 30
) -> dict:
    """Poll get_status until `predicate(status)` holds (a condition, not a fixed sleep)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        status = await engine.get_status(instance_id)
        if status is not None and predicate(status):
            return status
        if loop.time() > deadline:
            raise TimeoutError(f"instance {instance_id} never reached the expected state; last: {status}")
        await asyncio.sleep(0.02)
