"""The durable client as the entry points use it: an instance's status as plain JSON, starting an instance
once, waiting a little for an instance to get somewhere."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import azure.durable_functions as df

ACTIVE_STATES = ("Pending", "Running", "ContinuedAsNew", "Suspended")
TERMINAL_STATES = ("Completed", "Failed", "Terminated", "Canceled")


async def instance_status(
    client: df.DurableOrchestrationClient, instance_id: str, *, show_input: bool = False
) -> dict[str, Any] | None:
    """The orchestration status as plain JSON, or None when no such instance exists."""
    status = await client.get_status(instance_id, show_input=show_input)
    if not status or status.runtime_status is None:
        return None
    return {
        "runtimeStatus": status.runtime_status.value,
        "customStatus": status.custom_status,
        "output": status.output,
        "input": status.input_ if show_input else None,
        "createdTime": status.created_time.isoformat() if status.created_time else None,
        "lastUpdatedTime": status.last_updated_time.isoformat() if status.last_updated_time else None,
    }


async def start_once(client: df.DurableOrchestrationClient, name: str, instance_id: str, data: Any) -> bool:
    """Start an instance; False when a concurrent start of the same id won the race."""
    try:
        await client.start_new(name, instance_id, data)
        return True
    except Exception:
        status = await instance_status(client, instance_id)
        if status and status["runtimeStatus"] in ACTIVE_STATES:
            return False
        raise


async def start_unless_running(
    client: df.DurableOrchestrationClient, name: str, instance_id: str, data: Any
) -> None:
    """Start (or start again, once the last run finished) a fixed-id instance unless it is still running."""
    status = await instance_status(client, instance_id)
    if not status or status["runtimeStatus"] not in ACTIVE_STATES:
        await start_once(client, name, instance_id, data)


async def wait_for(
    client: df.DurableOrchestrationClient,
    instance_id: str,
    done: Callable[[dict[str, Any]], bool],
    seconds: float,
) -> dict[str, Any] | None:
    """Poll the status until `done(status)` or the instance ends, for at most `seconds`; the last status."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    status = None
    while loop.time() < deadline:
        status = await instance_status(client, instance_id)
        if status and (status["runtimeStatus"] in TERMINAL_STATES or done(status)):
            return status
        await asyncio.sleep(0.25)
    return status
