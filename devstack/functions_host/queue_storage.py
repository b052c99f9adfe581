"""Storage queue access for triggers and output bindings: async SDK clients per connection, queue-name
rules, and message encoding (base64 or none) as the Functions host applies it."""

from __future__ import annotations

import base64
import binascii
import re

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue.aio import QueueClient, QueueServiceClient

from devstack.functions_host.settings import storage_connection_string

_QUEUE_NAME = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")
POISON_SUFFIX = "-poison"


class MessageDecodingError(ValueError):
    """A message on a base64 queue is not valid base64."""


def check_queue_name(name: str, *, what: str) -> str:
    """Queue names: 3-63 lowercase letters, digits and single hyphens, starting and ending alphanumeric."""
    if "{" in name or "}" in name:
        raise ValueError(
            f"{what}: queue name {name!r} uses a binding expression, which the local host does not support"
        )
    if not _QUEUE_NAME.match(name):
        raise ValueError(
            f"{what}: queue name {name!r} must be 3-63 lowercase letters, digits or single hyphens, "
            "starting and ending with a letter or digit"
        )
    return name


def encode_content(body: str | bytes, encoding: str) -> str:
    """The queue text for `body`: base64 of its UTF-8 bytes, unless the encoding is none."""
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    if encoding == "base64":
        return base64.b64encode(raw).decode("ascii")
    return raw.decode("utf-8")


def decode_content(content: str | None, encoding: str) -> str | bytes:
    """The message body for the function: UTF-8 text when it decodes as such, else bytes."""
    text = content or ""
    if encoding != "base64":
        return text
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise MessageDecodingError(
            "the message is not valid base64 (host.json messageEncoding is base64)"
        ) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


class QueueClients:
    """Async queue clients, one service client per connection string; close() releases them all."""

    def __init__(self) -> None:
        self._services: dict[str, QueueServiceClient] = {}
        self._created: set[tuple[str, str]] = set()

    def queue(self, connection: str | None, name: str, *, what: str) -> QueueClient:
        conn = storage_connection_string(connection, what=what)
        service = self._services.get(conn)
        if service is None:
            service = QueueServiceClient.from_connection_string(conn)
            self._services[conn] = service
        return service.get_queue_client(name)

    async def ensure(self, client: QueueClient) -> None:
        """Create the queue unless this process has already seen it exist."""
        key = (client.url, client.queue_name)
        if key in self._created:
            return
        try:
            await client.create_queue()
        except ResourceExistsError:
            pass
        self._created.add(key)

    async def close(self) -> None:
        services, self._services = list(self._services.values()), {}
        for service in services:
            await service.close()
