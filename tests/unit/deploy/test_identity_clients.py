"""The app builds its storage and Batch clients from the settings the template gives it: identity-based,
user-assigned, with the endpoints and token scope of whichever cloud it is deployed to (here Azure China,
whose suffixes differ from the public cloud's). No client talks to the network when it is built."""

from __future__ import annotations

import asyncio
import re

import pytest
from azure.identity.aio import ManagedIdentityCredential

from provisioning.clients import (
    async_table_client,
    batch_client,
    close_async_clients,
    entra_credential,
    queue_client,
    table_client,
)
from provisioning.settings import SettingsError, load_settings
from tests.unit.deploy.template import INFRA, app_settings, parse

CLIENT_ID = "0b6f3c1e-7a51-4d59-9f0e-2c4b8f6a9d10"
# What the template's expressions evaluate to in Azure China (storage primaryEndpoints end with "/";
# environment().batch is the cloud's Batch resource id).
SOVEREIGN = {
    "AzureWebJobsStorage__clientId": CLIENT_ID,
    "AzureWebJobsStorage__blobServiceUri": "https://stx.blob.core.chinacloudapi.cn/",
    "AzureWebJobsStorage__queueServiceUri": "https://stx.queue.core.chinacloudapi.cn/",
    "AzureWebJobsStorage__tableServiceUri": "https://stx.table.core.chinacloudapi.cn/",
    "AZURE_CLIENT_ID": CLIENT_ID,
    "BATCH_ACCOUNT_URL": "https://bax.chinanorth3.batch.chinacloudapi.cn",
    "BATCH_ACCOUNT_NAME": "bax",
    "BATCH_AUTH_SCOPE": "https://batch.chinacloudapi.cn//.default",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-0000-0000-000000000000",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": f"ClientId={CLIENT_ID};Authorization=AAD",
    "PASSWORD_ENCRYPTION_KEY": "",  # a Key Vault reference, resolved by the platform; disabled here
}


def template_environment() -> dict[str, str]:
    """The app settings of infra/main.bicep with every value evaluated: literals as written, parameters at
    their defaults, expressions as Azure China would give them."""
    parameters = parse(INFRA / "main.bicep")["parameters"]
    variables = parse(INFRA / "main.bicep")["variables"]
    env = {}
    for name, value in app_settings().items():
        if name in SOVEREIGN:
            env[name] = SOVEREIGN[name]
        elif isinstance(value, str) and value in parameters:
            env[name] = parameters[value]["default"]
        elif isinstance(value, str) and value in variables:
            env[name] = variables[value]["value"]
        elif isinstance(value, str) and "${" not in value:
            env[name] = value
        else:
            raise AssertionError(f"no value for {name} = {value!r}: add it to SOVEREIGN")
    return env


def test_the_template_environment_is_identity_based_and_has_no_connection_string():
    env = template_environment()
    assert env["AzureWebJobsStorage__credential"] == "managedidentity"
    assert "AzureWebJobsStorage" not in env and "BATCH_ACCOUNT_KEY" not in env


def test_storage_clients_use_the_clouds_uris_and_the_user_assigned_identity():
    settings = load_settings(template_environment())
    identity = entra_credential("managedidentity", CLIENT_ID, None)
    queue = queue_client(settings, settings.request_queue)
    assert queue.url == "https://stx.queue.core.chinacloudapi.cn/pool-requests"
    assert queue.credential is identity
    events = queue_client(settings, settings.events_queue)
    assert events.url == "https://stx.queue.core.chinacloudapi.cn/pool-events"
    table = table_client(settings, settings.connections_table)
    assert table.url.startswith("https://stx.table.core.chinacloudapi.cn")
    assert table.table_name == "sshconnections"
    assert table.credential is identity
    assert type(identity).__name__ == "ManagedIdentityCredential"


def test_the_grants_asyncio_table_clients_use_the_same_endpoint_and_one_identity():
    settings = load_settings(template_environment())

    async def build():
        try:
            records = async_table_client(settings, settings.connections_table)
            pools = async_table_client(settings, settings.pools_table)
            assert async_table_client(settings, settings.connections_table) is records  # one per loop
            assert records.url == table_client(settings, settings.connections_table).url
            assert records.table_name == "sshconnections"
            assert pools.credential is records.credential  # one token cache for both tables
            return type(records.credential)
        finally:
            await close_async_clients()

    assert asyncio.run(build()) is ManagedIdentityCredential


def test_the_batch_client_uses_azure_client_id_and_the_clouds_token_scope():
    settings = load_settings(template_environment())
    client = batch_client(settings)
    config = client._config
    assert config.endpoint == "https://bax.chinanorth3.batch.chinacloudapi.cn"
    assert config.credential_scopes == ["https://batch.chinacloudapi.cn//.default"]
    assert config.credential is entra_credential("default", CLIENT_ID)
    assert type(config.credential).__name__ == "DefaultAzureCredential"


def test_the_public_cloud_scope_is_the_sdks_default_when_none_is_set():
    public = {"BATCH_AUTH_SCOPE": "", "BATCH_ACCOUNT_URL": "https://b.westeurope.batch.azure.com"}
    env = {**template_environment(), **public}
    client = batch_client(load_settings(env))
    assert client._config.credential_scopes == ["https://batch.core.windows.net//.default"]


def test_the_connection_string_still_works_locally():
    settings = load_settings({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    assert (
        queue_client(settings, "pool-requests").url == "http://127.0.0.1:10001/devstoreaccount1/pool-requests"
    )
    assert table_client(settings, "sshconnections").url.startswith("http://127.0.0.1:10002/devstoreaccount1")


def test_account_name_alone_gives_the_public_cloud_endpoints_as_functions_defines_them():
    settings = load_settings(
        {"AzureWebJobsStorage__accountName": "stx", "AzureWebJobsStorage__clientId": CLIENT_ID}
    )
    assert queue_client(settings, "q1q").url == "https://stx.queue.core.windows.net/q1q"
    assert table_client(settings, "t1").credential is entra_credential("default", CLIENT_ID)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "AzureWebJobsStorage: is required"),
        (
            {"AzureWebJobsStorage__queueServiceUri": "https://s.queue.core.windows.net"},
            "AzureWebJobsStorage__tableServiceUri: is required",
        ),
        ({"AzureWebJobsStorage__queueServiceUri": "s.queue.core.windows.net"}, "must be an absolute https"),
        ({"AzureWebJobsStorage__credential": "key"}, "AzureWebJobsStorage__credential: must be managed"),
    ],
)
def test_incomplete_or_wrong_identity_settings_name_the_setting(env, message):
    with pytest.raises(SettingsError, match=re.escape(message)):
        load_settings(env).require_storage()
