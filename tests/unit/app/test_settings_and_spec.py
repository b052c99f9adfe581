"""Settings parsing (errors name the setting) and the pool spec built from a request."""

from __future__ import annotations

from datetime import timedelta

import pytest

from provisioning.durations import parse_duration
from provisioning.identity import default_request_id, instance_id_for, revoke_instance_id
from provisioning.pool_spec import (
    SPEC_METADATA,
    build_pool_spec,
    existing_pool_difference,
    nsg_rules,
)
from provisioning.request import validate_request
from provisioning.settings import SettingsError, load_settings

from .conftest import NOW


def test_defaults():
    s = load_settings({})
    assert (s.request_queue, s.events_queue, s.connections_table) == (
        "pool-requests",
        "pool-events",
        "sshconnections",
    )
    assert s.max_nodes_per_request == 100 and s.max_access_duration == timedelta(days=7)
    assert (s.idle_poll_first, s.idle_poll_max) == (timedelta(seconds=5), timedelta(minutes=1))
    assert s.cleanup_schedule == "0 */5 * * * *" and s.delete_pool_on_failure is False
    assert s.passwords_enabled is False and s.app_base_url is None
    assert (s.pools_table, s.reconcile_schedule) == ("managedpools", "0 */5 * * * *")
    assert s.default_ssh_source_prefixes == () and s.max_pool_lifetime == timedelta(days=30)


def test_durations_accept_iso_8601_or_seconds():
    s = load_settings(
        {"PROVISION_DEADLINE": "90", "IDLE_POLL_INTERVAL": "0.5/PT2S", "MAX_ACCESS_DURATION": "PT1H"}
    )
    assert s.provision_deadline == timedelta(seconds=90)
    assert (s.idle_poll_first, s.idle_poll_max) == (timedelta(seconds=0.5), timedelta(seconds=2))
    assert load_settings({"IDLE_POLL_INTERVAL": "PT1S"}).idle_poll_max == timedelta(seconds=1)
    assert parse_duration(30) == timedelta(seconds=30)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PROVISION_DEADLINE": "soon"}, "PROVISION_DEADLINE: must be an ISO 8601 duration"),
        ({"PROVISION_DEADLINE": "P1M"}, "PROVISION_DEADLINE: must not use years or months"),
        ({"MAX_ACCESS_DURATION": "0"}, "MAX_ACCESS_DURATION: must be longer than zero"),
        (
            {"IDLE_POLL_INTERVAL": "PT10S/PT1S"},
            "IDLE_POLL_INTERVAL: the maximum interval must not be shorter",
        ),
        ({"IDLE_POLL_INTERVAL": "1/2/3"}, "IDLE_POLL_INTERVAL: must be FIRST or FIRST/MAX"),
        ({"MAX_NODES_PER_REQUEST": "lots"}, "MAX_NODES_PER_REQUEST: must be a whole number"),
        ({"MAX_NODES_PER_REQUEST": "0"}, "MAX_NODES_PER_REQUEST: must be at least 1"),
        ({"DELETE_POOL_ON_FAILURE": "maybe"}, "DELETE_POOL_ON_FAILURE: must be true or false"),
        ({"REQUEST_QUEUE_NAME": "Bad_Queue"}, "REQUEST_QUEUE_NAME: must be 3-63 lower-case letters"),
        (
            {"CONNECTIONS_TABLE_NAME": "ssh-connections"},
            "CONNECTIONS_TABLE_NAME: must be 3-63 letters and digits",
        ),
        ({"PASSWORD_ENCRYPTION_KEY": "not-a-key"}, "PASSWORD_ENCRYPTION_KEY: must be a Fernet key"),
        (
            {"DEFAULT_SSH_SOURCE_PREFIXES": "10.0.0.0/8 office"},
            "DEFAULT_SSH_SOURCE_PREFIXES: 'office' is not",
        ),
        (
            {"DEFAULT_SSH_SOURCE_PREFIXES": "*, 10.0.0.0/8"},
            'DEFAULT_SSH_SOURCE_PREFIXES: must not combine "*"',
        ),
        ({"MAX_POOL_LIFETIME": "P1Y"}, "MAX_POOL_LIFETIME: must not use years or months"),
        ({"POOLS_TABLE_NAME": "managed-pools"}, "POOLS_TABLE_NAME: must be 3-63 letters and digits"),
    ],
)
def test_a_bad_setting_is_named(env, message):
    with pytest.raises(SettingsError) as err:
        load_settings(env)
    assert str(err.value).startswith(message)
    assert "not-a-key" not in str(err.value)


def test_batch_and_storage_are_required_where_used():
    with pytest.raises(SettingsError, match="BATCH_ACCOUNT_URL: is required"):
        load_settings({}).require_batch()
    with pytest.raises(SettingsError, match="BATCH_ACCOUNT_NAME: is required when BATCH_ACCOUNT_KEY"):
        load_settings({"BATCH_ACCOUNT_URL": "http://127.0.0.1:1", "BATCH_ACCOUNT_KEY": "k"}).require_batch()
    with pytest.raises(SettingsError, match="AzureWebJobsStorage: is required"):
        load_settings({}).require_storage()


def test_the_settings_never_show_a_secret_when_printed_or_logged():
    from cryptography.fernet import Fernet

    fernet_key = Fernet.generate_key().decode()
    settings = load_settings(
        {
            "BATCH_ACCOUNT_URL": "http://127.0.0.1:8700",
            "BATCH_ACCOUNT_NAME": "devaccount",
            "BATCH_ACCOUNT_KEY": "c2hhcmVkLWtleS1zZWNyZXQ=",
            "AzureWebJobsStorage": "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=c3RvcmFnZS1rZXk=;",
            "PASSWORD_ENCRYPTION_KEY": fernet_key,
        }
    )
    shown = repr(settings) + str(settings)
    for secret in ("c2hhcmVkLWtleS1zZWNyZXQ=", "c3RvcmFnZS1rZXk=", fernet_key):
        assert secret not in shown
    assert settings.batch_account_key == "c2hhcmVkLWtleS1zZWNyZXQ="  # still there for the clients


def test_the_base_url_comes_from_app_base_url_or_the_site_name():
    assert load_settings({"APP_BASE_URL": "http://127.0.0.1:7071/"}).app_base_url == "http://127.0.0.1:7071"
    assert (
        load_settings({"WEBSITE_HOSTNAME": "app.azurewebsites.net"}).app_base_url
        == "https://app.azurewebsites.net"
    )


def test_instance_ids_are_derived_from_the_request():
    assert instance_id_for({"requestId": "abc", "poolId": "p"}) == "provision-abc"
    assert (
        instance_id_for({"poolId": "Pool-1"})
        == instance_id_for({"poolId": "pool-1"})
        == (f"provision-{default_request_id('pool-1')}")
    )
    assert instance_id_for({"poolId": "pool-1"}) != instance_id_for({"poolId": "pool-2"})
    assert revoke_instance_id("p", "alice") != revoke_instance_id("p", "bob")


IMAGE = {
    "imageReference": {
        "publisher": "canonical",
        "offer": "ubuntu-24_04-lts",
        "sku": "server",
        "version": "latest",
    },
    "nodeAgentSkuId": "batch.node.ubuntu 24.04",
}


def test_the_pool_spec_has_the_image_start_task_and_ssh_nat_pool(valid_request, settings):
    request = validate_request(valid_request, settings, NOW).request.body
    spec = build_pool_spec(request, IMAGE)
    assert spec["virtualMachineConfiguration"] == {
        "imageReference": IMAGE["imageReference"],
        "nodeAgentSKUId": "batch.node.ubuntu 24.04",
    }
    assert (spec["targetDedicatedNodes"], spec["targetLowPriorityNodes"]) == (2, 1)
    assert spec["startTask"]["userIdentity"] == {"autoUser": {"scope": "pool", "elevationLevel": "admin"}}
    assert spec["startTask"]["environmentSettings"] == [{"name": "A", "value": "1"}]
    (nat,) = spec["networkConfiguration"]["endpointConfiguration"]["inboundNATPools"]
    assert (nat["backendPort"], nat["frontendPortRangeStart"], nat["frontendPortRangeEnd"]) == (
        22,
        40000,
        40099,
    )
    assert [(r["access"], r["sourceAddressPrefix"]) for r in nat["networkSecurityGroupRules"]] == [
        ("allow", "10.0.0.0/8"),
        ("deny", "*"),
    ]
    # The real SDK model accepts it as is.
    from azure.batch import models

    assert models.BatchPoolCreateOptions(spec).virtual_machine_configuration.node_agent_sku_id == (
        "batch.node.ubuntu 24.04"
    )


def test_open_ssh_needs_no_nsg_rules():
    assert nsg_rules(["*"]) == []


def test_an_existing_pool_matches_only_with_the_same_spec(valid_request, settings):
    request = validate_request(valid_request, settings, NOW).request.body
    mine = build_pool_spec(request, IMAGE)
    assert existing_pool_difference(mine, request) is None
    other = dict(mine, vmSize="Standard_D4s_v3", metadata=[{"name": SPEC_METADATA, "value": "different"}])
    assert existing_pool_difference(other, request) == "vmSize is Standard_D4s_v3, not Standard_D2s_v3"
    foreign = dict(mine, metadata=[])
    assert existing_pool_difference(foreign, request) == "it was not created by this app"
