"""Faults after the operation, through the real azure-batch SDK: the emulator performs create pool,
create / replace / delete user and delete pool, then answers 500 or drops the connection, so the caller does
not learn that the call took effect (and a retried create meets its own earlier success)."""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from azure.batch import models as m
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.rest import HttpRequest

from devstack.batch_emulator.launcher import ControlError
from devstack.process import wait_until

# What the SDK raises when the answer is lost: a 500 is an HttpResponseError; a dropped connection surfaces
# as ServiceResponseError (or ServiceRequestError, depending on where the transport noticed it).
LOST = {
    "status": (HttpResponseError,),
    "drop": (ServiceResponseError, ServiceRequestError),
}
FAULTS = {"status": {"status": 500}, "drop": {"drop": True}}


@pytest.fixture
def no_retry_client(emulator_faults_cleared):
    """A client that does not retry, so the lost answer reaches the test."""
    return emulator_faults_cleared.client(retry_total=0)


def user_accounts(endpoint, pool_id: str, node_id: str) -> dict[str, dict]:
    node = next(n for n in endpoint.pool_nodes(pool_id)["nodes"] if n["id"] == node_id)
    return {u["name"]: u for u in node["userAccounts"]}


def user_options(name: str, hours: int = 1) -> m.BatchNodeUserCreateOptions:
    return m.BatchNodeUserCreateOptions(
        name=name, password="pw-1", expiry_time=datetime.now(UTC) + timedelta(hours=hours)
    )


@pytest.fixture
def pool_ids(batch_client):
    """Pool ids for the test to create; every one that exists is deleted afterwards."""
    ids: list[str] = []
    yield ids
    for pool_id in ids:
        with contextlib.suppress(ResourceNotFoundError):
            batch_client.send_request(HttpRequest("DELETE", f"/pools/{pool_id}?api-version=2025-06-01"))


def pool_options(pool_id: str, image: m.BatchSupportedImage) -> m.BatchPoolCreateOptions:
    return m.BatchPoolCreateOptions(
        id=pool_id,
        vm_size="standard_d2s_v3",
        virtual_machine_configuration=m.VirtualMachineConfiguration(
            image_reference=image.image_reference, node_agent_sku_id=image.node_agent_sku_id
        ),
        target_dedicated_nodes=1,
    )


@pytest.mark.parametrize("kind", ["status", "drop"])
def test_create_pool_takes_effect_though_the_answer_is_lost(
    kind, emulator_faults_cleared, no_retry_client, batch_client, ubuntu_image, pool_ids
) -> None:
    endpoint = emulator_faults_cleared
    pool_id = f"after-{kind}-{uuid.uuid4().hex[:8]}"
    pool_ids.append(pool_id)
    endpoint.inject_fault("create_pool", after=True, count=1, **FAULTS[kind])
    with pytest.raises(LOST[kind]):
        no_retry_client.create_pool(pool_options(pool_id, ubuntu_image))
    assert batch_client.get_pool(pool_id).target_dedicated_nodes == 1  # it exists all the same
    assert endpoint.counters()["injected"]["create_pool"] >= 1
    assert endpoint.control("GET", "faults")["http"] == []  # count=1: used up


def test_a_retried_create_pool_meets_its_own_success(
    emulator_faults_cleared, batch_client, make_pool
) -> None:
    # The SDK retries a POST answered 500; the retry finds the pool the first call created: 409 PoolExists.
    emulator_faults_cleared.inject_fault("create_pool", status=500, after=True, count=1)
    with pytest.raises(ResourceExistsError) as info:
        make_pool(0, ssh=False)
    assert info.value.error.code == "PoolExists"


@pytest.mark.parametrize("kind", ["status", "drop"])
def test_create_replace_and_delete_user_take_effect_though_the_answer_is_lost(
    kind, emulator_faults_cleared, no_retry_client, batch_client, make_pool, wait_for_nodes
) -> None:
    endpoint = emulator_faults_cleared
    pool_id = make_pool(1, ssh=False)
    (node,) = wait_for_nodes(pool_id, 1)

    endpoint.inject_fault("create_node_user", after=True, count=1, **FAULTS[kind])
    with pytest.raises(LOST[kind]):
        no_retry_client.create_node_user(pool_id, node.id, user_options("alice"))
    users = user_accounts(endpoint, pool_id, node.id)
    assert set(users) == {"alice"} and users["alice"]["password"]

    endpoint.inject_fault("replace_node_user", after=True, count=1, **FAULTS[kind])
    new_expiry = datetime.now(UTC) + timedelta(days=3)
    with pytest.raises(LOST[kind]):
        no_retry_client.replace_node_user(
            pool_id, node.id, "alice", m.BatchNodeUserReplaceOptions(expiry_time=new_expiry)
        )
    replaced = user_accounts(endpoint, pool_id, node.id)["alice"]
    assert replaced["expiryTime"].startswith(new_expiry.strftime("%Y-%m-%dT%H:%M:%S"))
    assert not replaced["password"]  # a full replace without a password removed it

    endpoint.inject_fault("delete_node_user", after=True, count=1, **FAULTS[kind])
    with pytest.raises(LOST[kind]):
        no_retry_client.delete_node_user(pool_id, node.id, "alice")
    assert user_accounts(endpoint, pool_id, node.id) == {}
    # Asked again (a retry), the delete meets its own success: 404 NodeUserNotFound.
    with pytest.raises(ResourceNotFoundError) as info:
        batch_client.delete_node_user(pool_id, node.id, "alice")
    assert info.value.error.code == "NodeUserNotFound"


@pytest.mark.parametrize("kind", ["status", "drop"])
def test_delete_pool_takes_effect_though_the_answer_is_lost(
    kind, emulator_faults_cleared, no_retry_client, batch_client, make_pool
) -> None:
    endpoint = emulator_faults_cleared
    pool_id = make_pool(1, ssh=False)
    endpoint.inject_fault("delete_pool", after=True, count=1, **FAULTS[kind])
    with pytest.raises(LOST[kind]):
        no_retry_client.begin_delete_pool(pool_id).result()
    # The pool was marked for deletion by the call whose answer was lost, and goes on to 404.
    with pytest.raises(ResourceExistsError) as info:
        batch_client.begin_delete_pool(pool_id)
    assert info.value.error.code == "PoolBeingDeleted"

    def gone() -> bool:
        try:
            batch_client.get_pool(pool_id)
        except ResourceNotFoundError:
            return True
        return False

    wait_until(gone, 30, f"pool {pool_id} to be gone", interval=0.05)


def test_after_faults_at_a_rate_stay_until_cleared(
    emulator_faults_cleared, no_retry_client, make_pool, wait_for_nodes
) -> None:
    # rate=1: every call is hit, and every one of them still takes effect.
    endpoint = emulator_faults_cleared
    pool_id = make_pool(1, ssh=False)
    (node,) = wait_for_nodes(pool_id, 1)
    endpoint.inject_fault("create_node_user", status=500, after=True, rate=1.0)
    for name in ("u1", "u2", "u3"):
        with pytest.raises(HttpResponseError) as info:
            no_retry_client.create_node_user(pool_id, node.id, user_options(name))
        assert info.value.status_code == 500 and info.value.error.code == "InternalServerError"
    assert set(user_accounts(endpoint, pool_id, node.id)) == {"u1", "u2", "u3"}
    (fault,) = endpoint.control("GET", "faults")["http"]
    assert fault["after"] is True and fault["fired"] == 3


def test_after_faults_only_with_500_or_a_dropped_connection(emulator_faults_cleared) -> None:
    with pytest.raises(ControlError, match="after"):
        emulator_faults_cleared.inject_fault("create_pool", status=503, after=True)
