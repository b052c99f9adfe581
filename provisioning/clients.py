"""Client factories: Batch (shared key locally, Microsoft Entra ID in Azure), Table and Queue clients
(a connection string locally, the identity-based connection Azure Functions defines in Azure); and the SDKs'
asyncio Batch and Table clients the grant activity uses, one per event loop."""

from __future__ import annotations

import asyncio
import os
import weakref
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from provisioning.settings import MANAGED_IDENTITY, Settings

if TYPE_CHECKING:
    from azure.batch import BatchClient
    from azure.core.credentials import TokenCredential
    from azure.data.tables import TableClient
    from azure.storage.queue import QueueClient


@lru_cache(maxsize=8)
def entra_credential(
    kind: str, client_id: str | None = None, resource_id: str | None = None
) -> TokenCredential:
    """One credential per identity, shared by every client (so tokens are cached once).

    `kind` is `managedidentity` (only the managed identity, user-assigned when `client_id` or `resource_id`
    names it) or `default` (DefaultAzureCredential: the managed identity in Azure, a developer's sign-in
    locally; `client_id` selects a user-assigned identity).
    """
    if kind == MANAGED_IDENTITY:
        from azure.identity import ManagedIdentityCredential

        if resource_id:
            return ManagedIdentityCredential(identity_config={"resource_id": resource_id})
        return ManagedIdentityCredential(client_id=client_id)
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=client_id)


def storage_credential(settings: Settings) -> TokenCredential:
    """The credential of the identity-based AzureWebJobsStorage connection (`__credential`, `__clientId`)."""
    if settings.storage_credential == MANAGED_IDENTITY:
        return entra_credential(
            MANAGED_IDENTITY, settings.storage_client_id, settings.storage_identity_resource_id
        )
    return entra_credential("default", settings.storage_client_id or settings.azure_client_id)


@lru_cache(maxsize=4)
def _batch_client(
    url: str, account: str | None, key: str | None, client_id: str | None, scope: str | None
) -> BatchClient:
    from azure.batch import BatchClient

    if key:
        from azure.core.credentials import AzureNamedKeyCredential

        return BatchClient(url, AzureNamedKeyCredential(account or "", key))
    options = {"credential_scopes": [scope]} if scope else {}
    return BatchClient(url, entra_credential("default", client_id), **options)


def batch_client(settings: Settings) -> BatchClient:
    """A Batch client: shared key when BATCH_ACCOUNT_KEY is set, else Microsoft Entra ID through
    DefaultAzureCredential with the user-assigned identity named by AZURE_CLIENT_ID (scope BATCH_AUTH_SCOPE
    outside the public cloud)."""
    settings.require_batch()
    return _batch_client(
        settings.batch_account_url,
        settings.batch_account_name,
        settings.batch_account_key,
        settings.azure_client_id,
        settings.batch_auth_scope,
    )


_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple, Any]] = (
    weakref.WeakKeyDictionary()
)


def _lean_pipeline() -> dict[str, Any]:
    """Options that trim an asyncio client's per-request CPU without changing what it sends."""
    from azure.core.pipeline.policies import SansIOHTTPPolicy

    # No per-request log records: azure-core's HttpLoggingPolicy writes "Request URL/method/headers" and
    # "Response status/headers" at INFO for every call, which costs ~0.2 ms of CPU per create wherever the
    # 'azure' logger is at INFO (Azure's Python worker; the dev host keeps it at WARNING), more when the
    # Azure Monitor distro exports them. NetworkTraceLoggingPolicy logs only with logging_enable (unset).
    options: dict[str, Any] = {
        "http_logging_policy": SansIOHTTPPolicy(),
        "logging_policy": SansIOHTTPPolicy(),
    }
    if not _uses_proxy_settings():
        from azure.core.pipeline.transport import AioHttpTransport

        # Without proxy settings to honour, skip aiohttp's per-request look-ups of the proxy variables and
        # ~/.netrc (two thread-pool hops per call, a quarter of the client's CPU per call).
        options["transport"] = AioHttpTransport(use_env_settings=False)
    return options


def async_batch_client(settings: Settings) -> Any:
    """The SDK's asyncio Batch client (`azure.batch.aio`), one per event loop and account, with the same
    credentials as `batch_client` (an async DefaultAzureCredential in Azure). Its HTTP session lives as long
    as its loop: activities share it, so connections are reused across calls."""
    settings.require_batch()
    loop = asyncio.get_running_loop()
    key = (
        "batch",
        settings.batch_account_url,
        settings.batch_account_name,
        settings.batch_account_key,
        settings.azure_client_id,
        settings.batch_auth_scope,
    )
    clients = _async_clients.setdefault(loop, {})
    if key not in clients:
        from azure.batch.aio import BatchClient

        if settings.batch_account_key:
            from azure.core.credentials import AzureNamedKeyCredential

            credential: Any = AzureNamedKeyCredential(
                settings.batch_account_name or "", settings.batch_account_key
            )
            options: dict[str, Any] = {}
        else:
            from azure.identity.aio import DefaultAzureCredential

            credential = DefaultAzureCredential(managed_identity_client_id=settings.azure_client_id)
            options = {"credential_scopes": [settings.batch_auth_scope]} if settings.batch_auth_scope else {}
        clients[key] = BatchClient(settings.batch_account_url, credential, **options, **_lean_pipeline())
    return clients[key]


def _uses_proxy_settings() -> bool:
    names = {"http_proxy", "https_proxy", "all_proxy", "netrc"}
    return any(name.lower() in names and value for name, value in os.environ.items())


def async_table_client(settings: Settings, table_name: str) -> Any:
    """The SDK's asyncio Table client (`azure.data.tables.aio`), one per event loop, account and table, with
    the same connection as `table_client` (the same identity, as an asyncio credential, in Azure). Its
    transactions build their parts on the loop, where the blocking client's start two thread pools each."""
    settings.require_storage()
    clients = _async_clients.setdefault(asyncio.get_running_loop(), {})
    identity = (
        settings.storage_credential,
        settings.storage_client_id,
        settings.storage_identity_resource_id,
        settings.azure_client_id,
    )
    endpoint = settings.storage_connection or settings.storage_service_uri("table")
    key = ("table", endpoint, identity, table_name)
    if key not in clients:
        from azure.data.tables.aio import TableClient

        if settings.storage_connection:
            clients[key] = TableClient.from_connection_string(endpoint, table_name, **_lean_pipeline())
        else:
            if ("credential", identity) not in clients:
                clients["credential", identity] = _async_storage_credential(settings)
            credential = clients["credential", identity]
            clients[key] = TableClient(endpoint, table_name, credential=credential, **_lean_pipeline())
    return clients[key]


def _async_storage_credential(settings: Settings) -> Any:
    """`storage_credential`'s identity as an asyncio credential."""
    from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential

    if settings.storage_credential == MANAGED_IDENTITY:
        if settings.storage_identity_resource_id:
            return ManagedIdentityCredential(
                identity_config={"resource_id": settings.storage_identity_resource_id}
            )
        return ManagedIdentityCredential(client_id=settings.storage_client_id)
    return DefaultAzureCredential(
        managed_identity_client_id=settings.storage_client_id or settings.azure_client_id
    )


async def close_async_clients() -> None:
    """Close the asyncio clients of the running loop (for callers that run a loop only for a while)."""
    for client in (_async_clients.pop(asyncio.get_running_loop(), None) or {}).values():
        await client.close()


def table_client(settings: Settings, table_name: str) -> TableClient:
    """A Table client from the AzureWebJobsStorage connection string, or its identity-based settings."""
    from azure.data.tables import TableClient

    settings.require_storage()
    if settings.storage_connection:
        return TableClient.from_connection_string(settings.storage_connection, table_name)
    return TableClient(
        settings.storage_service_uri("table"), table_name, credential=storage_credential(settings)
    )


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
    return QueueClient(
        settings.storage_service_uri("queue"), queue_name, credential=storage_credential(settings), **policies
    )
