"""Client factories: Batch (shared key locally, managed identity in Azure), Table and Queue clients."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from provisioning.settings import Settings

if TYPE_CHECKING:
    from azure.batch import BatchClient
    from azure.data.tables import TableClient
    from azure.storage.queue import QueueClient


@lru_cache(maxsize=4)
def _batch_client(url: str, account: str | None, key: str | None) -> BatchClient:
    from azure.batch import BatchClient

    if key:
        from azure.core.credentials import AzureNamedKeyCredential

        return BatchClient(url, AzureNamedKeyCredential(account or "", key))
    from azure.identity import DefaultAzureCredential

    return BatchClient(url, DefaultAzureCredential())


def batch_client(settings: Settings) -> BatchClient:
    """A Batch client: shared key when BATCH_ACCOUNT_KEY is set, else managed identity."""
    settings.require_batch()
    return _batch_client(settings.batch_account_url, settings.batch_account_name, settings.batch_account_key)


def _storage_credential() -> object:
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def table_client(settings: Settings, table_name: str) -> TableClient:
    """A Table client from AzureWebJobsStorage, or AzureWebJobsStorage__accountName + managed identity."""
    from azure.data.tables import TableClient

    settings.require_storage()
    if settings.storage_connection:
        return TableClient.from_connection_string(settings.storage_connection, table_name)
    endpoint = f"https://{settings.storage_account_name}.table.core.windows.net"
    return TableClient(endpoint, table_name, credential=_storage_credential())


def queue_client(settings: Settings, queue_name: str) -> QueueClient:
    """A Queue client whose messages are base64 text, as the Functions host reads and writes them."""
    from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

    settings.require_storage()
    policies = {
        "message_encode_policy": TextBase64EncodePolicy(),
        "message_decode_policy": TextBase64DecodePolicy(),
    }
    if settings.storage_connection:
        return QueueClient.from_connection_string(settings.storage_connection, queue_name, **policies)
    endpoint = f"https://{settings.storage_account_name}.queue.core.windows.net"
    return QueueClient(endpoint, queue_name, credential=_storage_credential(), **policies)
