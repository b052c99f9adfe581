"""Invoke a user function as the Python worker does: keyword arguments named after the bindings, `func.Out`
objects for outputs, an optional `context`; sync functions on a thread pool, async ones on the loop; output
bindings written only after success; one log line per invocation (never with secrets)."""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from typing import Any, TypeVar

import azure.functions as func
from azure.functions import _abc

from devstack.functions_host.app_loader import FunctionSpec
from devstack.functions_host.queue_storage import QueueClients, check_queue_name, encode_content
from devstack.functions_host.settings import resolve_setting_refs

T = TypeVar("T")
RETURN = "$return"


class Out[T](func.Out[T]):
    """The value an output binding parameter was set to."""

    def __init__(self) -> None:
        self._value: T | None = None

    def set(self, val: T) -> None:
        self._value = val

    def get(self) -> T | None:
        return self._value


class _TraceContext(_abc.TraceContext):
    trace_state = ""
    trace_parent = ""
    attributes: dict[str, str] = {}


class _RetryContext(_abc.RetryContext):
    retry_count = 0
    max_retry_count = 0
    exception = None


class InvocationContext(func.Context):
    """The `context` argument a function may declare."""

    def __init__(self, invocation_id: str, function_name: str, function_directory: str) -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._function_directory = function_directory
        self._local = threading.local()
        self._local.invocation_id = invocation_id

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> threading.local:
        return self._local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> _abc.TraceContext:
        return _TraceContext()

    @property
    def retry_context(self) -> _abc.RetryContext:
        return _RetryContext()


class OutputBindingError(Exception):
    """A function set an output binding to a value the binding cannot carry."""


def queue_messages(value: Any, *, what: str) -> list[str | bytes]:
    """The messages a queue output value stands for (str, bytes, QueueMessage, or a list of them)."""
    if value is None:
        return []
    if isinstance(value, str | bytes | bytearray):
        return [bytes(value) if isinstance(value, bytearray) else value]
    if isinstance(value, _abc.QueueMessage):
        return [value.get_body()]
    if isinstance(value, Iterable) and not isinstance(value, dict):
        messages: list[str | bytes] = []
        for item in value:
            if isinstance(item, str | bytes | bytearray | _abc.QueueMessage):
                messages.extend(queue_messages(item, what=what))
            else:
                raise OutputBindingError(
                    f"{what}: a list item of type {type(item).__name__} cannot be a queue message"
                )
        return messages
    raise OutputBindingError(
        f"{what}: a value of type {type(value).__name__} cannot be a queue message (use str, bytes or a list)"
    )


class Invoker:
    """Runs functions and writes their output bindings; logs `function trigger ... duration_ms outcome`."""

    def __init__(
        self,
        *,
        executor: Executor,
        queues: QueueClients,
        queue_encoding: str,
        function_directory: str,
        logger: logging.Logger,
    ) -> None:
        self._executor = executor
        self._queues = queues
        self._encoding = queue_encoding
        self._directory = function_directory
        self._log = logger
        self.durable_client: Callable[[Any], str] | None = None  # set once the durable engine runs

    def input_values(self, spec: FunctionSpec) -> dict[str, Any]:
        """Input binding values: a durableClient gets its binding JSON, whatever the trigger type."""
        clients = spec.bindings_of("durableClient")
        if clients and self.durable_client is None:
            raise RuntimeError(f"function {spec.name!r} has a durableClient binding but no durable engine")
        return {b.name: self.durable_client(b) for b in clients}

    async def invoke(
        self,
        spec: FunctionSpec,
        trigger_value: Any,
        *,
        inputs: dict[str, Any] | None = None,
        finish: Callable[[Any], Any] | None = None,
        describe: Callable[[Any], str] | None = None,
        summary: bool = True,
    ) -> Any:
        """Call the function and return what it returned (passed through `finish`, which may reject it),
        or raise what it raised; either way log one line (unless `summary` is False, for callers that
        log their own), with `describe(result)` appended on success."""
        invocation_id = str(uuid.uuid4())
        outs = {b.name: Out() for b in spec.bindings if b.direction == "OUT" and b.name != RETURN}
        kwargs: dict[str, Any] = {
            spec.trigger.name: trigger_value,
            **self.input_values(spec),
            **(inputs or {}),
            **outs,
        }
        if spec.wants_context:
            kwargs["context"] = InvocationContext(invocation_id, spec.name, self._directory)
        started = time.perf_counter()
        try:
            returned = await self.call(spec, kwargs)
            result = finish(returned) if finish else returned
            await self._write_outputs(spec, outs, returned)
        except BaseException as exc:
            cancelled = isinstance(exc, asyncio.CancelledError)
            if summary:
                outcome = "cancelled" if cancelled else f"failed ({type(exc).__name__})"
                self._log_line(spec, invocation_id, started, outcome)
            if not cancelled:
                self._log.error("function %s failed", spec.name, exc_info=exc)
            raise
        if summary:
            self._log_line(spec, invocation_id, started, "succeeded", describe(result) if describe else "")
        return result

    async def call(self, spec: FunctionSpec, kwargs: dict[str, Any]) -> Any:
        """Run the user function: awaited when async, else on the thread pool."""
        if spec.is_async:
            return await spec.user_function(**kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(spec.user_function, **kwargs))

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

    async def _write_outputs(self, spec: FunctionSpec, outs: dict[str, Out], result: Any) -> None:
        for binding in spec.bindings_of("queue", "OUT"):
            value = result if binding.name == RETURN else outs[binding.name].get()
            what = f"function {spec.name!r} output binding {binding.name!r}"
            messages = queue_messages(value, what=what)
            if not messages:
                continue
            name = check_queue_name(resolve_setting_refs(binding.get("queueName", ""), what=what), what=what)
            client = self._queues.queue(binding.get("connection"), name, what=what)
            await self._queues.ensure(client)
            for message in messages:
                await client.send_message(encode_content(message, self._encoding))
