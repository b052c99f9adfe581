"""One invocation as the Functions host makes it: the trigger's data plus the input bindings the host owns
(durableClient) go to the Python runtime, and on success the output bindings the host owns (queue) are
written; one log line per invocation (never with secrets)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from devstack.functions_host.queue_storage import QueueClients, check_queue_name, encode_content
from devstack.functions_host.settings import resolve_setting_refs
from devstack.functions_host.worker import FunctionSpec, PythonWorker

RETURN = "$return"


def queue_messages(data: Any) -> list[str | bytes]:
    """The queue messages an output binding's TypedData stands for, as the Functions host reads it: a string
    or bytes is one message; JSON is a list of messages (strings, or {"id", "body"} objects) or one."""
    if data is None:
        return []
    kind = data.WhichOneof("data")
    if kind is None:
        return []
    if kind in ("string", "bytes"):
        return [getattr(data, kind)]
    if kind in ("int", "double"):
        return [str(getattr(data, kind))]
    if kind == "json":
        value = json.loads(data.json)
        items = value if isinstance(value, list) else [value]
        return [_message_text(item) for item in items]
    raise ValueError(f"a queue output binding cannot carry TypedData of kind {kind!r}")


def _message_text(item: Any) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, dict) and "body" in item:
        return str(item["body"])
    return json.dumps(item)


class Invoker:
    """Runs functions through the Python worker and writes their queue outputs; logs
    `invocation function trigger id duration_ms outcome` per call."""

    def __init__(
        self,
        *,
        worker: PythonWorker,
        queues: QueueClients,
        queue_encoding: str,
        logger: logging.Logger,
    ) -> None:
        self.worker = worker
        self.protos = worker.protos
        self._queues = queues
        self._encoding = queue_encoding
        self._log = logger
        self.durable_client: Callable[[Any], str] | None = None  # set once the durable engine runs

    def _host_inputs(self, spec: FunctionSpec) -> dict[str, Any]:
        """Input bindings the host provides: a durableClient gets its binding JSON, whatever the trigger."""
        clients = spec.bindings_of("durableClient")
        if clients and self.durable_client is None:
            raise RuntimeError(f"function {spec.name!r} has a durableClient binding but no durable engine")
        return {b.name: self.protos.TypedData(string=self.durable_client(b)) for b in clients}

    async def invoke(
        self,
        spec: FunctionSpec,
        trigger_data: Any,
        *,
        trigger_metadata: dict[str, Any] | None = None,
        describe: Callable[[Any], str] | None = None,
        summary: bool = True,
    ) -> Any:
        """Invoke the function with its trigger's TypedData; return the `$return` TypedData (or None), or
        raise what the runtime reported (FunctionFailed). Either way log one line (unless `summary` is
        False, for callers that log their own), with `describe(return value)` appended on success."""
        invocation_id = str(uuid.uuid4())
        started = time.perf_counter()
        try:
            inputs = {spec.trigger.name: trigger_data, **self._host_inputs(spec)}
            result = await self.worker.invoke(spec, inputs, trigger_metadata=trigger_metadata)
            await self._write_outputs(spec, result.outputs, result.return_value)
        except BaseException as exc:
            cancelled = isinstance(exc, asyncio.CancelledError)
            if summary:
                error_type = getattr(exc, "error_type", type(exc).__name__)
                outcome = "cancelled" if cancelled else f"failed ({error_type})"
                self._log_line(spec, invocation_id, started, outcome)
            if not cancelled:
                self._log.error("function %s failed: %s", spec.name, exc)
            raise
        if summary:
            extra = describe(result.return_value) if describe else ""
            self._log_line(spec, invocation_id, started, "succeeded", extra)
        return result.return_value

    def _log_line(
        self, spec: FunctionSpec, invocation_id: str, started: float, outcome: str, extra: str = ""
    ) -> None:
        self._log.info(
            "invocation function=%s trigger=%s id=%s duration_ms=%.1f outcome=%s%s",
            spec.name,
            spec.trigger_type,
            invocation_id,
            (time.perf_counter() - started) * 1000,
            outcome,
            f" {extra}" if extra else "",
        )

    async def _write_outputs(self, spec: FunctionSpec, outputs: dict[str, Any], returned: Any) -> None:
        for binding in spec.bindings_of("queue", "OUT"):
            data = returned if binding.name == RETURN else outputs.get(binding.name)
            messages = queue_messages(data)
            if not messages:
                continue
            what = f"function {spec.name!r} output binding {binding.name!r}"
            name = check_queue_name(resolve_setting_refs(binding.get("queueName", ""), what=what), what=what)
            client = self._queues.queue(binding.get("connection"), name, what=what)
            await self._queues.ensure(client)
            for message in messages:
                await client.send_message(encode_content(message, self._encoding))
