"""Helpers for the host's queue tests: SDK clients on the test's Azurite and awaiting messages."""

from __future__ import annotations

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient, TextBase64DecodePolicy

from devstack.process import wait_until


def queue_client(connection_string: str, name: str, **policies) -> QueueClient:
    client = QueueClient.from_connection_string(connection_string, name, **policies)
    try:
        client.create_queue()
    except ResourceExistsError:
        pass
    return client


def await_messages(client: QueueClient, count: int, timeout: float = 30) -> list[str]:
    """Receive and delete messages until `count` have arrived; their contents in arrival order."""
    contents: list[str] = []

    def enough() -> bool:
        for message in client.receive_messages(max_messages=32):
            contents.append(message.content)
            client.delete_message(message)
        return len(contents) >= count

    wait_until(enough, timeout, f"{count} message(s) on queue {client.queue_name}", interval=0.1)
    return contents


def decoded(connection_string: str, name: str) -> QueueClient:
    """A client that decodes base64 text messages (what the host writes with messageEncoding base64)."""
    return queue_client(connection_string, name, message_decode_policy=TextBase64DecodePolicy())


def queue_is_empty(client: QueueClient) -> bool:
    return client.get_queue_properties().approximate_message_count == 0
