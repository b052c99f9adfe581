"""The account's state machine on its own: pool and node lifecycle, resize, delete, users, and the service's
error codes, driven directly (no HTTP, no timers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncssh
import pytest

from devstack.batch_emulator.catalog import load_catalog
from devstack.batch_emulator.exceptions import BatchServiceError
from devstack.batch_emulator.models import (
    Account,
    AllocationState,
    Endpoint,
    InvalidTransition,
    NodeError,
    NodeState,
    PoolState,
    ResizeError,
)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class RecordingHooks:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, list[str]]] = []

    def allocation_requested(self, pool) -> None:
        self.events.append(("allocate", pool.id, []))

    def nodes_leaving(self, pool, nodes) -> None:
        self.events.append(("leaving", pool.id, [n.id for n in nodes]))

    def pool_deleting(self, pool) -> None:
        self.events.append(("deleting", pool.id, []))


def pool_body(pool_id: str = "pool-1", nodes: int = 2, **extra) -> dict:
    body = {
        "id": pool_id,
        "vmSize": "STANDARD_D2S_V3",
        "virtualMachineConfiguration": {
            "imageReference": {
                "publisher": "canonical",
                "offer": "ubuntu-24_04-lts",
                "sku": "server",
                "version": "latest",
            },
            "nodeAgentSKUId": "batch.node.ubuntu 24.04",
        },
        "targetDedicatedNodes": nodes,
        "startTask": {"commandLine": "true", "waitForSuccess": True},
        "networkConfiguration": {
            "endpointConfiguration": {
                "inboundNATPools": [
                    {
                        "name": "ssh",
                        "protocol": "tcp",
                        "backendPort": 22,
                        "frontendPortRangeStart": 40000,
                        "frontendPortRangeEnd": 40099,
                    },
                ]
            }
        },
    }
    body.update(extra)
    return body


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hooks() -> RecordingHooks:
    return RecordingHooks()


@pytest.fixture
def account(clock: Clock, hooks: RecordingHooks) -> Account:
    return Account("acct", load_catalog(), clock=clock, hooks=hooks)


def bring_idle(account: Account, pool_id: str, node_id: str) -> None:
    account.node_started(pool_id, node_id, [Endpoint("ssh.0", "tcp", "127.20.0.1", 40000, 22)])
    account.transition(pool_id, node_id, NodeState.WAITING_FOR_START_TASK)
    account.start_task_started(pool_id, node_id, 0)
    account.start_task_finished(pool_id, node_id, 0)


def code_of(call, *args) -> tuple[int, str, dict[str, str]]:
    with pytest.raises(BatchServiceError) as info:
        call(*args)
    return info.value.status, info.value.code, dict(info.value.values)


# --- pool and node lifecycle ------------------------------------------------------------------------


def test_create_pool_resizes_then_nodes_appear_creating_and_allocation_goes_steady(
    account, hooks, clock
) -> None:
    pool = account.create_pool(pool_body(nodes=3))
    assert pool.state == PoolState.ACTIVE
    assert pool.allocation_state == AllocationState.RESIZING
    assert pool.current_dedicated_nodes == 0
    assert hooks.events == [("allocate", "pool-1", [])]
    clock.advance(5)
    nodes = account.allocate_nodes("pool-1")
    assert [n.state for n in nodes] == [NodeState.CREATING] * 3
    assert sorted(n.index for n in nodes) == [0, 1, 2]
    assert pool.allocation_state == AllocationState.STEADY
    assert pool.allocation_state_transition_time == clock.now
    assert pool.current_dedicated_nodes == 3
    assert all(n.id.startswith("tvmps_") and n.id.endswith("_d") for n in nodes)


def test_node_goes_creating_starting_waiting_idle(account) -> None:
    account.create_pool(pool_body(nodes=1))
    (node,) = account.allocate_nodes("pool-1")
    seen = [node.state]
    account.node_started("pool-1", node.id, [Endpoint("ssh.0", "tcp", "127.20.0.1", 40000, 22)])
    seen.append(node.state)
    account.transition("pool-1", node.id, NodeState.WAITING_FOR_START_TASK)
    seen.append(node.state)
    account.start_task_started("pool-1", node.id, 0)
    assert node.start_task_info.state == "running"
    account.start_task_finished("pool-1", node.id, 0)
    seen.append(node.state)
    assert seen == ["creating", "starting", "waitingforstarttask", "idle"]
    assert node.start_task_info.result == "success"
    assert account.remote_login("pool-1", node.id).frontend_port == 40000


def test_failing_start_task_with_wait_for_success_ends_in_starttaskfailed(account) -> None:
    account.create_pool(pool_body(nodes=1))
    (node,) = account.allocate_nodes("pool-1")
    account.node_started("pool-1", node.id, [])
    account.transition("pool-1", node.id, NodeState.WAITING_FOR_START_TASK)
    account.start_task_started("pool-1", node.id, 0)
    account.start_task_finished("pool-1", node.id, 7)
    assert node.state == NodeState.START_TASK_FAILED
    assert (node.start_task_info.exit_code, node.start_task_info.result) == (7, "failure")


def test_failing_start_task_without_wait_for_success_leaves_node_idle(account) -> None:
    account.create_pool(pool_body(nodes=1, startTask={"commandLine": "false", "waitForSuccess": False}))
    (node,) = account.allocate_nodes("pool-1")
    account.node_started("pool-1", node.id, [])
    account.transition("pool-1", node.id, NodeState.IDLE)
    account.start_task_started("pool-1", node.id, 0)
    account.start_task_finished("pool-1", node.id, 1)
    assert node.state == NodeState.IDLE
    assert node.start_task_info.result == "failure"
    account.start_task_finished("pool-1", node.id, 1, force_failed=True)
    assert node.state == NodeState.START_TASK_FAILED


def test_transitions_outside_the_lifecycle_are_refused(account) -> None:
    account.create_pool(pool_body(nodes=1))
    (node,) = account.allocate_nodes("pool-1")
    with pytest.raises(InvalidTransition, match="creating to idle"):
        account.transition("pool-1", node.id, NodeState.IDLE)
    account.mark_unusable("pool-1", node.id, NodeError("X", "broken"))
    assert node.state == NodeState.UNUSABLE and node.errors[0].code == "X"
    with pytest.raises(InvalidTransition):
        account.transition("pool-1", node.id, NodeState.RUNNING)


def test_quota_limit_grants_part_and_records_the_resize_error(account) -> None:
    pool = account.create_pool(pool_body(nodes=4))
    error = ResizeError("AccountCoreQuotaReached", "The specified account has reached VM core quota limit")
    nodes = account.allocate_nodes("pool-1", limit=1, error=error)
    assert len(nodes) == 1
    assert pool.allocation_state == AllocationState.STEADY
    assert [e.code for e in pool.resize_errors] == ["AccountCoreQuotaReached"]
    assert (pool.target_dedicated_nodes, pool.current_dedicated_nodes) == (4, 1)


def test_resize_down_removes_newest_nodes_via_leavingpool(account, hooks) -> None:
    pool = account.create_pool(pool_body(nodes=3))
    nodes = account.allocate_nodes("pool-1")
    account.resize_pool("pool-1", {"targetDedicatedNodes": 1})
    newest = sorted(nodes, key=lambda n: n.seq)[1:]
    assert hooks.events[-1] == ("leaving", "pool-1", [n.id for n in reversed(newest)])
    assert all(n.state == NodeState.LEAVING_POOL for n in newest)
    assert pool.allocation_state == AllocationState.RESIZING
    assert pool.current_dedicated_nodes == 1
    account.nodes_left("pool-1", [n.id for n in newest])
    assert list(pool.nodes) == [nodes[0].id]
    assert pool.allocation_state == AllocationState.STEADY


def test_resize_up_reuses_free_port_indexes(account) -> None:
    pool = account.create_pool(pool_body(nodes=2))
    first = account.allocate_nodes("pool-1")
    account.resize_pool("pool-1", {"targetDedicatedNodes": 1})
    account.nodes_left("pool-1", [n.id for n in first if n.state == NodeState.LEAVING_POOL])
    account.resize_pool("pool-1", {"targetDedicatedNodes": 3})
    added = account.allocate_nodes("pool-1")
    assert sorted(n.index for n in pool.nodes.values()) == [0, 1, 2]
    assert len(added) == 2


def test_resize_while_resizing_is_pool_being_resized(account) -> None:
    account.create_pool(pool_body(nodes=2))
    assert code_of(account.resize_pool, "pool-1", {"targetDedicatedNodes": 5})[:2] == (
        409,
        "PoolBeingResized",
    )


def test_delete_pool_goes_deleting_then_gone(account, hooks) -> None:
    pool = account.create_pool(pool_body(nodes=2))
    nodes = account.allocate_nodes("pool-1")
    account.delete_pool("pool-1")
    assert pool.state == PoolState.DELETING
    assert hooks.events[-1] == ("deleting", "pool-1", [])
    assert all(n.state == NodeState.LEAVING_POOL for n in nodes)
    assert account.get_pool("pool-1") is pool
    assert code_of(account.delete_pool, "pool-1")[:2] == (409, "PoolBeingDeleted")
    assert code_of(account.create_pool, pool_body())[:2] == (409, "PoolBeingDeleted")
    assert code_of(account.resize_pool, "pool-1", {"targetDedicatedNodes": 1})[:2] == (
        409,
        "PoolBeingDeleted",
    )
    account.nodes_left("pool-1", [n.id for n in nodes])
    account.forget_pool("pool-1")
    assert code_of(account.get_pool, "pool-1")[:2] == (404, "PoolNotFound")


def test_pool_ids_are_case_insensitive(account) -> None:
    account.create_pool(pool_body("MyPool"))
    assert account.get_pool("mypool").id == "MyPool"
    assert code_of(account.create_pool, pool_body("MYPOOL"))[:2] == (409, "PoolExists")


# --- node users -------------------------------------------------------------------------------------


def idle_node(account: Account):
    account.create_pool(pool_body(nodes=1))
    (node,) = account.allocate_nodes("pool-1")
    bring_idle(account, "pool-1", node.id)
    return node


def test_user_lifecycle_and_live_login_checks(account, clock) -> None:
    node = idle_node(account)
    key = asyncssh.generate_private_key("ssh-rsa", key_size=2048)
    other = asyncssh.generate_private_key("ssh-rsa", key_size=2048)
    account.add_user(
        "pool-1",
        node.id,
        {
            "name": "alice",
            "isAdmin": True,
            "sshPublicKey": key.export_public_key().decode(),
            "expiryTime": (clock.now + timedelta(hours=1)).isoformat(),
        },
    )
    user = account.login_user("pool-1", node.id, "alice")
    assert user is not None and user.credentials.key_matches(key) and not user.credentials.key_matches(other)
    assert code_of(account.add_user, "pool-1", node.id, {"name": "alice"})[:2] == (409, "NodeUserExists")

    account.replace_user("pool-1", node.id, "alice", {"password": "s3cret-pass"})
    user = account.login_user("pool-1", node.id, "alice")
    assert not user.credentials.key_matches(key)  # full replace: the key is gone
    assert user.credentials.password_matches("s3cret-pass") and not user.credentials.password_matches("nope")
    assert user.credentials.expiry_time == clock.now + timedelta(days=1)  # expiry reset to the default

    clock.advance(timedelta(days=2).total_seconds())  # past the end of the expiry's day
    assert account.login_user("pool-1", node.id, "alice") is None  # expired
    account.delete_user("pool-1", node.id, "alice")
    assert code_of(account.delete_user, "pool-1", node.id, "alice")[:2] == (404, "NodeUserNotFound")
    assert code_of(account.replace_user, "pool-1", node.id, "bob", {})[:2] == (404, "NodeUserNotFound")


def test_users_only_on_idle_or_running_nodes(account) -> None:
    account.create_pool(pool_body(nodes=1))
    (node,) = account.allocate_nodes("pool-1")
    status, code, values = code_of(account.add_user, "pool-1", node.id, {"name": "alice"})
    assert (status, code, values["NodeState"]) == (409, "OperationInvalidForCurrentState", "creating")
    account.mark_unusable("pool-1", node.id, NodeError("X", "broken"))
    assert code_of(account.add_user, "pool-1", node.id, {"name": "alice"})[:2] == (409, "NodeStateUnusable")
    assert code_of(account.add_user, "pool-1", "nope", {"name": "alice"})[:2] == (404, "NodeNotFound")


def test_remote_login_needs_an_ssh_nat_pool(account) -> None:
    body = pool_body(nodes=1)
    del body["networkConfiguration"]
    account.create_pool(body)
    (node,) = account.allocate_nodes("pool-1")
    status, code, values = code_of(account.remote_login, "pool-1", node.id)
    assert (status, code) == (409, "OperationInvalidForCurrentState")
    assert "inbound NAT pool" in values["Reason"]


# --- request validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, code, prop",
    [
        ({"vmSize": "standard_x99"}, "InvalidPropertyValue", "vmSize"),
        ({"vmSize": None}, "MissingRequiredProperty", "vmSize"),
        ({"id": "bad id!"}, "InvalidPropertyValue", "id"),
        ({"id": "x" * 65}, "InvalidPropertyValue", "id"),
        ({"targetDedicatedNodes": -1}, "InvalidPropertyValue", "targetDedicatedNodes"),
        ({"targetDedicatedNodes": "3"}, "InvalidPropertyValue", "targetDedicatedNodes"),
        ({"resizeTimeout": "PT1M"}, "InvalidPropertyValue", "resizeTimeout"),
        ({"resizeTimeout": "soon"}, "InvalidPropertyValue", "resizeTimeout"),
        ({"startTask": {"waitForSuccess": True}}, "MissingRequiredProperty", "startTask.commandLine"),
        ({"virtualMachineConfiguration": None}, "MissingRequiredProperty", "virtualMachineConfiguration"),
    ],
)
def test_bad_pool_bodies_name_the_property(account, change, code, prop) -> None:
    body = {**pool_body(), **change}
    status, got, values = code_of(account.create_pool, body)
    assert (status, got, values["PropertyName"]) == (400, code, prop)


def image_body(publisher: str, offer: str, sku: str, agent: str) -> dict:
    return {"imageReference": {"publisher": publisher, "offer": offer, "sku": sku}, "nodeAgentSKUId": agent}


@pytest.mark.parametrize(
    "config, prop, reason",
    [
        (
            image_body("canonical", "ubuntuserver", "18.04-lts", "batch.node.ubuntu 18.04"),
            "virtualMachineConfiguration.imageReference",
            "not supported",
        ),
        (
            image_body("canonical", "0001-com-ubuntu-server-focal", "20_04-lts", "batch.node.ubuntu 20.04"),
            "virtualMachineConfiguration.imageReference",
            "support for this image ended on 2025-04-23",
        ),
        (
            image_body("canonical", "ubuntu-24_04-lts", "server", "batch.node.ubuntu 22.04"),
            "virtualMachineConfiguration.nodeAgentSKUId",
            "does not match",
        ),
        (
            image_body(
                "microsoftwindowsserver", "windowsserver", "2022-datacenter", "batch.node.windows amd64"
            ),
            "virtualMachineConfiguration.imageReference",
            "Linux nodes only",
        ),
    ],
)
def test_images_must_be_current_catalog_entries(account, config, prop, reason) -> None:
    status, code, values = code_of(account.create_pool, pool_body(virtualMachineConfiguration=config))
    assert (status, code, values["PropertyName"]) == (400, "InvalidPropertyValue", prop)
    assert reason in values["Reason"]


def test_vm_size_is_case_insensitive(account) -> None:
    assert account.create_pool(pool_body(vmSize="Standard_A1_V2")).spec.vm_size == "standard_a1_v2"


@pytest.mark.parametrize(
    "nat_change, prop",
    [
        ({"frontendPortRangeEnd": 40010}, "frontendPortRangeEnd"),  # fewer than 40 ports
        (
            {"frontendPortRangeStart": 50010, "frontendPortRangeEnd": 50100},
            "frontendPortRangeStart",
        ),  # reserved
        ({"backendPort": 29876}, "backendPort"),
        ({"protocol": "icmp"}, "protocol"),
        (
            {"networkSecurityGroupRules": [{"priority": 100, "access": "allow", "sourceAddressPrefix": "*"}]},
            "networkSecurityGroupRules[0].priority",
        ),
        (
            {
                "networkSecurityGroupRules": [
                    {"priority": 150, "access": "allow", "sourceAddressPrefix": "nowhere"}
                ]
            },
            "networkSecurityGroupRules[0].sourceAddressPrefix",
        ),
    ],
)
def test_bad_nat_pools_name_the_property(account, nat_change, prop) -> None:
    nat = {
        "name": "ssh",
        "protocol": "tcp",
        "backendPort": 22,
        "frontendPortRangeStart": 40000,
        "frontendPortRangeEnd": 40099,
        **nat_change,
    }
    body = pool_body(networkConfiguration={"endpointConfiguration": {"inboundNATPools": [nat]}})
    status, code, values = code_of(account.create_pool, body)
    assert (status, code) == (400, "InvalidPropertyValue")
    assert values["PropertyName"] == f"networkConfiguration.endpointConfiguration.inboundNATPools[0].{prop}"


def test_more_nodes_than_frontend_ports_is_refused(account) -> None:
    status, code, values = code_of(account.create_pool, pool_body(nodes=101))
    assert (status, code, values["PropertyName"]) == (400, "InvalidPropertyValue", "targetDedicatedNodes")


@pytest.mark.parametrize(
    "body, prop",
    [
        ({"name": "root"}, "name"),
        ({"name": "has space"}, "name"),
        ({}, "name"),
        ({"name": "alice", "sshPublicKey": "not a key"}, "sshPublicKey"),
        ({"name": "alice", "sshPublicKey": "ssh-rsa AAAAnotbase64!!"}, "sshPublicKey"),
        ({"name": "alice", "expiryTime": "tomorrow"}, "expiryTime"),
        ({"name": "alice", "isAdmin": "yes"}, "isAdmin"),
    ],
)
def test_bad_user_bodies_name_the_property(account, body, prop) -> None:
    node = idle_node(account)
    status, code, values = code_of(account.add_user, "pool-1", node.id, body)
    assert status == 400 and code in ("InvalidPropertyValue", "MissingRequiredProperty")
    assert values["PropertyName"] == prop


def test_nsg_rules_first_match_by_priority_then_deny(account) -> None:
    rules = [
        {"priority": 200, "access": "allow", "sourceAddressPrefix": "127.0.0.0/8"},
        {"priority": 150, "access": "deny", "sourceAddressPrefix": "127.0.0.5"},
    ]
    nat = {
        "name": "ssh",
        "protocol": "tcp",
        "backendPort": 22,
        "frontendPortRangeStart": 40000,
        "frontendPortRangeEnd": 40099,
        "networkSecurityGroupRules": rules,
    }
    pool = account.create_pool(
        pool_body(networkConfiguration={"endpointConfiguration": {"inboundNATPools": [nat]}})
    )
    nat_pool = pool.spec.ssh_nat_pool
    assert nat_pool.allows("127.0.0.1", 5000)
    assert not nat_pool.allows("127.0.0.5", 5000)
    assert not nat_pool.allows("10.1.2.3", 5000)  # no rule matches: the NSG's default deny


def _user_expiring_at(account: Account, expiry: datetime):
    node = idle_node(account)
    account.add_user("pool-1", node.id, {"name": "alice", "password": "pw", "expiryTime": expiry.isoformat()})
    return node


def test_linux_users_expire_at_day_precision_by_default(account, clock) -> None:
    # As the service documents for Linux nodes: the expiry is a date; access lasts until that UTC day ends.
    expiry = clock.now + timedelta(hours=9, minutes=30)  # 2026-01-01T09:30Z
    node = _user_expiring_at(account, expiry)
    clock.now = expiry + timedelta(seconds=1)
    assert account.login_user("pool-1", node.id, "alice") is not None  # past expiryTime, same day: still in
    clock.now = datetime(2026, 1, 1, 23, 59, 59, tzinfo=UTC)
    assert account.login_user("pool-1", node.id, "alice") is not None
    clock.now = datetime(2026, 1, 2, tzinfo=UTC)
    assert account.login_user("pool-1", node.id, "alice") is None  # the day is over


def test_second_precision_is_an_explicit_option(clock, hooks) -> None:
    account = Account("acct", load_catalog(), clock=clock, hooks=hooks, user_expiry="second")
    expiry = clock.now + timedelta(hours=9, minutes=30)
    node = _user_expiring_at(account, expiry)
    clock.now = expiry - timedelta(seconds=1)
    assert account.login_user("pool-1", node.id, "alice") is not None
    clock.now = expiry
    assert account.login_user("pool-1", node.id, "alice") is None
    with pytest.raises(ValueError):
        Account("acct", load_catalog(), user_expiry="minute")


def test_pool_size_limit_is_a_setting_and_inter_node_pools_stop_at_100(clock, hooks) -> None:
    small = Account("acct", load_catalog(), clock=clock, hooks=hooks, max_nodes_per_pool=5)
    status, code, values = code_of(small.create_pool, pool_body(nodes=6))
    assert (status, code, values["PropertyName"]) == (400, "InvalidPropertyValue", "targetDedicatedNodes")
    small.create_pool(pool_body(nodes=5))
    assert code_of(small.resize_pool, "pool-1", {"targetDedicatedNodes": 3, "targetLowPriorityNodes": 3})[
        :2
    ] == (400, "InvalidPropertyValue")
    big = Account("acct", load_catalog(), clock=clock, hooks=hooks)
    body = pool_body("inter", nodes=101, enableInterNodeCommunication=True, networkConfiguration=None)
    assert code_of(big.create_pool, body)[:2] == (400, "InvalidPropertyValue")
    big.create_pool(
        pool_body("inter", nodes=100, enableInterNodeCommunication=True, networkConfiguration=None)
    )


def test_echoed_enums_come_back_in_the_service_spelling() -> None:
    from devstack.batch_emulator.render import canonical_enums

    sent = {
        "inboundNATPools": [
            {"name": "SSH", "protocol": "TCP", "networkSecurityGroupRules": [{"access": "Allow"}]}
        ],
        "userIdentity": {"autoUser": {"scope": "Pool", "elevationLevel": "Admin"}},
        "commandLine": "Echo KEEP",
    }
    assert canonical_enums(sent) == {
        "inboundNATPools": [
            {"name": "SSH", "protocol": "tcp", "networkSecurityGroupRules": [{"access": "allow"}]}
        ],
        "userIdentity": {"autoUser": {"scope": "pool", "elevationLevel": "admin"}},
        "commandLine": "Echo KEEP",
    }


def test_core_quota_grants_what_fits_and_records_the_service_error(clock, hooks) -> None:
    # standard_d2s_v3 has 2 cores: a 9-core dedicated quota fits 4 nodes.
    account = Account("acct", load_catalog(), clock=clock, hooks=hooks, dedicated_core_quota=9)
    account.create_pool(pool_body("first", nodes=3))
    assert len(account.allocate_nodes("first")) == 3
    assert account.get_pool("first").resize_errors == []
    account.create_pool(pool_body("second", nodes=3))
    assert len(account.allocate_nodes("second")) == 1  # 6 of 9 cores used: one more 2-core node fits
    (error,) = account.get_pool("second").resize_errors
    assert (error.code, error.message) == (
        "AccountCoreQuotaReached",
        "The specified account has reached VM core quota limit",
    )
    low = Account("acct", load_catalog(), clock=clock, hooks=hooks, low_priority_core_quota=0)
    low.create_pool(pool_body("spot", nodes=1, targetLowPriorityNodes=2))
    assert [n.is_dedicated for n in low.allocate_nodes("spot")] == [True]
    assert [e.code for e in low.get_pool("spot").resize_errors] == ["AccountLowPriorityCoreQuotaReached"]
