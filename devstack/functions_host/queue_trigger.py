"""Queue triggers: poll a Storage queue the way the Functions host does (batches, new-batch threshold,
exponential back-off when empty), invoke the function per message, delete on success, make the message
visible again after visibilityTimeout on failure, and move it to `<queue>-poison` after maxDequeueCount."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from azure.core.exceptions import AzureError
from azure.storage.queue import QueueMessage

from devstack.functions_host.host_config import QueueSettings
from devstack.functions_host.invocation import Invoker
from devstack.functions_host.queue_storage import (
    POISON_SUFFIX,
    MessageDecodingError,
    QueueClients,
    check_queue_name,
    decode_content,
)
from devstack.functions_host.settings import resolve_setting_refs
from devstack.functions_host.worker import FunctionSpec

MIN_POLLING_INTERVAL = timedelta(milliseconds=100)
RECEIVE_VISIBILITY = timedelta(minutes=10)


class QueueListener:
    """Polls one queue for one queue-triggered function until stopped."""

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        queues: QueueClients,
        settings: QueueSettings,
        invoker: Invoker,
        logger: logging.Logger,
    ) -> None:
        self.spec = spec
        self._what = f"function {spec.name!r} queue trigger"
        self.queue_name = check_queue_name(
            resolve_setting_refs(spec.trigger.get("queueName", ""), what=self._what), what=self._what
        )
        connection = spec.trigger.get("connection")
        self._client = queues.queue(connection, self.queue_name, what=self._what)
        self._poison = queues.queue(connection, self.queue_name + POISON_SUFFIX, what=self._what)
        self._queues = queues
        self._settings = settings
        self._invoker = invoker
        self._log = logger
        self._stopping = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._in_flight: set[asyncio.Task] = set()

    def stop(self) -> None:
        """Stop polling; in-flight messages keep running until drain()."""
        self._stopping.set()

    async def run(self) -> None:
        """Poll until stop(); storage errors are logged and retried with back-off."""
        minimum = MIN_POLLING_INTERVAL.total_seconds()
        maximum = max(self._settings.max_polling_interval.total_seconds(), minimum)
        delay = minimum
        while not self._stopping.is_set():
            while len(self._in_flight) > self._settings.new_batch_threshold and not self._stopping.is_set():
                self._slot_freed.clear()
                await self._wait_either(self._slot_freed)
            if self._stopping.is_set():
                break
            try:
                await self._queues.ensure(self._client)
                messages = await self._receive()
            except AzureError as exc:
                self._log.warning(
                    "%s: polling %r failed: %s", self._what, self.queue_name, type(exc).__name__
                )
                messages = []
            if messages:
                delay = minimum
                for message in messages:
                    task = asyncio.create_task(self._process(message))
                    self._in_flight.add(task)
                    task.add_done_callback(self._finished)
                continue
            await self._wait_either(None, timeout=delay)
            delay = min(delay * 2, maximum)

    async def drain(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for in-flight messages, then abandon the rest."""
        if not self._in_flight:
            return
        _, pending = await asyncio.wait(set(self._in_flight), timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)

    def _finished(self, task: asyncio.Task) -> None:
        self._in_flight.discard(task)
        self._slot_freed.set()

    async def _wait_either(self, event: asyncio.Event | None, timeout: float | None = None) -> None:
        waiters = {asyncio.create_task(self._stopping.wait())}
        if event is not None:
            waiters.add(asyncio.create_task(event.wait()))
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _receive(self) -> list[QueueMessage]:
        size = self._settings.batch_size
        pages = self._client.receive_messages(
            max_messages=size,
            messages_per_page=size,
            visibility_timeout=int(RECEIVE_VISIBILITY.total_seconds()),
        )
        return [message async for message in pages]

    async def _process(self, message: QueueMessage) -> None:
        limit = self._settings.max_dequeue_count
        if message.dequeue_count and message.dequeue_count > limit:
            await self._to_poison(
                message, message.pop_receipt, "it was dequeued more than maxDequeueCount times"
            )
            return
        try:
            body = decode_content(message.content, self._settings.message_encoding)
        except MessageDecodingError as exc:
            await self._to_poison(message, message.pop_receipt, str(exc))
            return
        receipt = [message.pop_receipt]
        keeper = asyncio.create_task(self._keep_invisible(message, receipt))
        succeeded = False
        try:
            await self._invoker.invoke(
                self.spec, self._message_data(body), trigger_metadata=self._message_metadata(message)
            )
            succeeded = True
        except asyncio.CancelledError:
            await asyncio.shield(self._release(message, receipt, timedelta(0)))
            raise
        except Exception:
            pass
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        if succeeded:
            await self._storage_step(
                "deleting the message", self._client.delete_message(message.id, receipt[0])
            )
        elif (message.dequeue_count or 0) >= limit:
            await self._to_poison(message, receipt[0], f"the function failed {limit} times (maxDequeueCount)")
        else:
            await self._release(message, receipt, self._settings.visibility_timeout)

    def _message_data(self, body: str | bytes) -> object:
        """The message body as the host sends it: a string when it is text, else bytes."""
        protos = self._invoker.protos
        return protos.TypedData(string=body) if isinstance(body, str) else protos.TypedData(bytes=body)

    def _message_metadata(self, message: QueueMessage) -> dict[str, object]:
        """The queue trigger's metadata (Id, DequeueCount, times, PopReceipt) as the host sends it."""
        protos = self._invoker.protos
        texts = {
            "Id": message.id,
            "PopReceipt": message.pop_receipt,
            "InsertionTime": _iso(message.inserted_on),
            "ExpirationTime": _iso(message.expires_on),
            "NextVisibleTime": _iso(message.next_visible_on),
        }
        metadata = {k: protos.TypedData(string=v) for k, v in texts.items() if v is not None}
        metadata["DequeueCount"] = protos.TypedData(json=str(message.dequeue_count or 1))
        return metadata

    async def _keep_invisible(self, message: QueueMessage, receipt: list[str]) -> None:
        """Renew the message's invisibility at half its timeout while the function runs."""
        seconds = int(RECEIVE_VISIBILITY.total_seconds())
        while True:
            await asyncio.sleep(seconds / 2)
            try:
                updated = await self._client.update_message(
                    message.id, receipt[0], visibility_timeout=seconds
                )
                receipt[0] = updated.pop_receipt
            except AzureError as exc:
                self._log.warning(
                    "%s: renewing message visibility failed: %s", self._what, type(exc).__name__
                )

    async def _release(self, message: QueueMessage, receipt: list[str], after: timedelta) -> None:
        await self._storage_step(
            "making the message visible again",
            self._client.update_message(
                message.id, receipt[0], visibility_timeout=int(after.total_seconds())
            ),
        )

    async def _to_poison(self, message: QueueMessage, receipt: str, reason: str) -> None:
        self._log.warning(
            "%s: moving message %s to %s: %s", self._what, message.id, self.queue_name + POISON_SUFFIX, reason
        )
        try:
            await self._queues.ensure(self._poison)
            await self._poison.send_message(message.content)
        except AzureError as exc:
            self._log.warning("%s: writing to the poison queue failed: %s", self._what, type(exc).__name__)
            return
        await self._storage_step(
            "deleting the poisoned message", self._client.delete_message(message.id, receipt)
        )

    async def _storage_step(self, what: str, step) -> None:
        try:
            await step
        except AzureError as exc:
            self._log.warning("%s: %s failed: %s", self._what, what, type(exc).__name__)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
