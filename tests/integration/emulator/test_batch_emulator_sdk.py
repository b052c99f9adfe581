"""The emulator through the real azure-batch SDK: images, pools, nodes, paging, errors, faults and auth."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.batch import BatchClient
from azure.batch import models as m
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.core.rest import HttpRequest

from devstack.batch_emulator.launcher import BatchEmulatorEndpoint, start_batch_emulator
from devstack.process import wait_until

VERIFIED_LINUX = "verificationType eq 'verified' and osType eq 'linux'"


def calls(endpoint: BatchEmulatorEndpoint, operation: str) -> int:
    return endpoint.counters()["calls"].get(operation, 0)


def env_task(command: str = "env | sort", **kwargs) -> m.BatchStartTask:
    return m.BatchStartTask(
        command_line=command,
        environment_settings=[m.EnvironmentSetting(name="GREETING", value="hello from the start task")],
        user_identity=m.UserIdentity(
            auto_user=m.AutoUserSpecification(scope="pool", elevation_level="admin")
        ),
        wait_for_success=kwargs.pop("wait_for_success", True),
        max_task_retry_count=kwargs.pop("max_task_retry_count", 0),
    )


def node_file(client: BatchClient, pool_id: str, node_id: str, path: str) -> str:
    return b"".join(client.download_node_file(pool_id, node_id, path)).decode()


# --- supported images -------------------------------------------------------------------------------


def test_supported_images_filter_on_verification_and_os(batch_client: BatchClient) -> None:
    everything = list(batch_client.list_supported_images())
    verified_linux = list(batch_client.list_supported_images(filter=VERIFIED_LINUX))
    assert {i.os_type for i in everything} == {"linux", "windows"}
    assert {i.verification_type for i in everything} == {"verified", "unverified"}
    assert all(i.os_type == "linux" and i.verification_type == "verified" for i in verified_linux)
    by_agent = {i.node_agent_sku_id: i for i in verified_linux}
    noble = by_agent["batch.node.ubuntu 24.04"].image_reference
    assert (noble.publisher, noble.offer, noble.sku) == ("canonical", "ubuntu-24_04-lts", "server")
    jammy = by_agent["batch.node.ubuntu 22.04"]
    assert jammy.image_reference.offer == "0001-com-ubuntu-server-jammy"
    assert jammy.batch_support_end_of_life == datetime(2027, 6, 30, tzinfo=UTC)
    assert by_agent["batch.node.ubuntu 20.04"].batch_support_end_of_life < datetime.now(UTC)  # retired


def test_supported_images_page_with_the_filter_inside_next_link(batch_emulator, batch_client) -> None:
    expected = [i.node_agent_sku_id for i in batch_client.list_supported_images(filter=VERIFIED_LINUX)]
    before = calls(batch_emulator, "list_supported_images")
    paged = [
        i.node_agent_sku_id for i in batch_client.list_supported_images(filter=VERIFIED_LINUX, max_results=1)
    ]
    assert paged == expected
    assert calls(batch_emulator, "list_supported_images") - before == len(expected)


def test_swapped_catalog_file(tmp_path: Path) -> None:
    catalog = {
        "images": [
            {
                "nodeAgentSKUId": "batch.node.debian 12",
                "imageReference": {
                    "publisher": "debian",
                    "offer": "debian-12",
                    "sku": "12",
                    "version": "latest",
                },
                "osType": "linux",
                "verificationType": "verified",
            }
        ]
    }
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    proc, endpoint = start_batch_emulator(
        tmp_path / "emu", catalog=tmp_path / "catalog.json", ssh_network="127.29.0.0/16"
    )
    try:
        images = list(endpoint.client().list_supported_images())
        assert [i.node_agent_sku_id for i in images] == ["batch.node.debian 12"]
    finally:
        proc.stop()


# --- pools and nodes --------------------------------------------------------------------------------


def test_pool_with_start_task_and_ssh_nat_pool_reaches_idle(
    batch_emulator, batch_client, make_pool, wait_for_nodes
) -> None:
    pool_id = make_pool(2, start_task=env_task(), metadata=[m.BatchMetadataItem(name="owner", value="tests")])
    nodes = wait_for_nodes(pool_id, 2)
    pool = batch_client.get_pool(pool_id)
    assert (pool.state, pool.allocation_state) == ("active", "steady")
    assert (pool.target_dedicated_nodes, pool.current_dedicated_nodes, pool.current_low_priority_nodes) == (
        2,
        2,
        0,
    )
    assert pool.vm_size == "standard_d2s_v3"
    assert pool.resize_timeout == timedelta(minutes=15)
    assert pool.resize_errors is None
    assert pool.start_task.command_line == "env | sort" and pool.start_task.wait_for_success is True
    assert pool.network_configuration.endpoint_configuration.inbound_nat_pools[0].backend_port == 22
    assert pool.metadata[0].name == "owner"
    assert pool.url.endswith(f"/pools/{pool_id}") and pool.etag and pool.last_modified and pool.creation_time
    assert batch_client.pool_exists(pool_id) is True
    assert pool_id in {p.id for p in batch_client.list_pools()}

    ports = set()
    for node in nodes:
        assert node.is_dedicated and node.vm_size == "standard_d2s_v3" and node.ip_address.startswith("10.")
        assert node.scheduling_state == "enabled" and node.node_agent_info.version
        info = node.start_task_info
        assert (info.state, info.exit_code, info.result, info.retry_count) == ("completed", 0, "success", 0)
        assert info.start_time <= info.end_time
        (endpoint,) = node.endpoint_configuration.inbound_endpoints
        assert (endpoint.protocol, endpoint.backend_port) == ("tcp", 22)
        login = batch_client.get_node_remote_login_settings(pool_id, node.id)
        assert (login.remote_login_ip_address, login.remote_login_port) == (
            endpoint.public_ip_address,
            endpoint.frontend_port,
        )
        assert endpoint.public_ip_address.startswith("127.")
        ports.add(endpoint.frontend_port)
        stdout = node_file(batch_client, pool_id, node.id, "startup/stdout.txt")
        assert f"AZ_BATCH_NODE_ID={node.id}" in stdout
        assert f"AZ_BATCH_POOL_ID={pool_id}" in stdout
        assert "AZ_BATCH_NODE_IS_DEDICATED=true" in stdout
        assert "GREETING=hello from the start task" in stdout
        for name in (
            "AZ_BATCH_NODE_STARTUP_DIR",
            "AZ_BATCH_NODE_ROOT_DIR",
            "AZ_BATCH_NODE_SHARED_DIR",
            "AZ_BATCH_TASK_WORKING_DIR",
        ):
            assert f"{name}=" in stdout
    assert ports == {40000, 40001}
    assert len({n.endpoint_configuration.inbound_endpoints[0].public_ip_address for n in nodes}) == 1


def test_each_pool_gets_its_own_public_address(make_pool, wait_for_nodes) -> None:
    first, second = make_pool(1), make_pool(1)
    a = wait_for_nodes(first, 1)[0].endpoint_configuration.inbound_endpoints[0]
    b = wait_for_nodes(second, 1)[0].endpoint_configuration.inbound_endpoints[0]
    assert a.public_ip_address != b.public_ip_address
    assert a.frontend_port == b.frontend_port == 40000


def test_list_nodes_filter_select_and_paging(batch_emulator, batch_client, make_pool, wait_for_nodes) -> None:
    pool_id = make_pool(5)
    nodes = wait_for_nodes(pool_id, 5)
    batch_emulator.set_node_state(pool_id, nodes[0].id, "unusable")
    idle = list(batch_client.list_nodes(pool_id, filter="state eq 'idle'"))
    assert sorted(n.id for n in idle) == sorted(n.id for n in nodes[1:])
    unusable = batch_client.get_node(pool_id, nodes[0].id)
    assert unusable.state == "unusable" and unusable.errors[0].code
    slim = list(batch_client.list_nodes(pool_id, select=["id", "state"]))
    assert all(n.id and n.state and n.ip_address is None and n.start_task_info is None for n in slim)
    before = calls(batch_emulator, "list_nodes")
    paged = list(batch_client.list_nodes(pool_id, max_results=2))
    assert sorted(n.id for n in paged) == sorted(n.id for n in nodes)
    assert calls(batch_emulator, "list_nodes") - before == 3
    filtered = list(batch_client.list_nodes(pool_id, filter="state eq 'idle'", max_results=3))
    assert len(filtered) == 4


def test_failing_start_task_ends_in_starttaskfailed_with_stderr_kept(
    batch_client, make_pool, wait_for_nodes
) -> None:
    pool_id = make_pool(1, start_task=env_task("echo about to fail >&2; exit 7", max_task_retry_count=1))
    (node,) = wait_for_nodes(pool_id, 1, {"starttaskfailed"})
    info = node.start_task_info
    assert (info.state, info.exit_code, info.result, info.retry_count) == ("completed", 7, "failure", 1)
    assert info.failure_info.category == "usererror"
    assert info.failure_info.code == "FailureExitCode"
    assert "about to fail" in node_file(batch_client, pool_id, node.id, "startup/stderr.txt")


def test_failing_start_task_without_wait_for_success_leaves_node_idle(
    make_pool, wait_for_nodes, batch_client
) -> None:
    pool_id = make_pool(1, start_task=env_task("exit 3", wait_for_success=False))

    def finished() -> bool:
        node = next(iter(batch_client.list_nodes(pool_id)), None)
        return node is not None and node.start_task_info is not None and node.start_task_info.exit_code == 3

    wait_until(finished, 30, "the start task to finish")
    (node,) = wait_for_nodes(pool_id, 1)
    assert node.start_task_info.result == "failure"


def test_injected_start_task_failure_hits_the_chosen_node_index(
    emulator_faults_cleared, batch_client, make_pool, wait_for_nodes
) -> None:
    emulator_faults_cleared.fail_start_tasks(node_indexes=[1], exit_code=42)
    pool_id = make_pool(3, start_task=env_task("true"))
    nodes = wait_for_nodes(pool_id, 3, {"idle", "starttaskfailed"})
    failed = [n for n in nodes if n.state == "starttaskfailed"]
    assert len(failed) == 1
    assert failed[0].endpoint_configuration.inbound_endpoints[0].frontend_port == 40001  # index 1
    assert failed[0].start_task_info.exit_code == 42


def test_injected_unusable_nodes_after_reaching_their_state(
    emulator_faults_cleared, batch_client, make_pool, wait_for_nodes
) -> None:
    emulator_faults_cleared.make_unusable(count=1, after_seconds=0.1)
    pool_id = make_pool(2)
    nodes = wait_for_nodes(pool_id, 2, {"idle", "unusable"})
    wait_until(
        lambda: {n.state for n in batch_client.list_nodes(pool_id)} == {"idle", "unusable"},
        30,
        "one node to turn unusable",
    )
    unusable = [n for n in batch_client.list_nodes(pool_id) if n.state == "unusable"]
    assert len(unusable) == 1 and unusable[0].errors[0].code == "NodeUnusable"
    assert len(nodes) == 2
    (counts,) = [c for c in batch_client.list_pool_node_counts() if c.pool_id == pool_id]
    assert (counts.dedicated.idle, counts.dedicated.unusable, counts.dedicated.total) == (1, 1, 2)


def test_quota_resize_error_shows_on_the_pool(emulator_faults_cleared, batch_client, make_pool) -> None:
    emulator_faults_cleared.inject_resize_error("AccountCoreQuotaReached", allocate=1)
    pool_id = make_pool(3)
    wait_until(
        lambda: batch_client.get_pool(pool_id).allocation_state == "steady", 30, "allocation to settle"
    )
    pool = batch_client.get_pool(pool_id)
    (error,) = pool.resize_errors
    assert error.code == "AccountCoreQuotaReached"
    assert error.message == "The specified account has reached VM core quota limit"
    assert (pool.target_dedicated_nodes, pool.current_dedicated_nodes) == (3, 1)


def test_resize_up_then_down(batch_client, make_pool, wait_for_nodes) -> None:
    pool_id = make_pool(1)
    first = wait_for_nodes(pool_id, 1)[0]
    batch_client.begin_resize_pool(
        pool_id,
        m.BatchPoolResizeOptions(target_dedicated_nodes=2, target_low_priority_nodes=1),
        polling_interval=0,
    ).result()
    nodes = wait_for_nodes(pool_id, 3)
    assert sorted(n.is_dedicated for n in nodes) == [False, True, True]
    batch_client.begin_resize_pool(
        pool_id, m.BatchPoolResizeOptions(target_dedicated_nodes=1), polling_interval=0
    ).result()
    (left,) = wait_for_nodes(pool_id, 1)
    assert left.id == first.id  # the newest nodes go first
    pool = batch_client.get_pool(pool_id)
    assert (pool.current_dedicated_nodes, pool.current_low_priority_nodes) == (1, 0)


def test_remove_named_nodes(batch_client, make_pool, wait_for_nodes) -> None:
    pool_id = make_pool(2)
    a, b = wait_for_nodes(pool_id, 2)
    batch_client.begin_remove_nodes(
        pool_id, m.BatchNodeRemoveOptions(node_ids=[a.id]), polling_interval=0
    ).result()
    (left,) = wait_for_nodes(pool_id, 1)
    assert left.id == b.id and batch_client.get_pool(pool_id).target_dedicated_nodes == 1


def test_begin_delete_pool_reaches_404(batch_client, make_pool, wait_for_nodes) -> None:
    pool_id = make_pool(2)
    wait_for_nodes(pool_id, 2)
    poller = batch_client.begin_delete_pool(pool_id, polling_interval=0)
    poller.result()
    assert poller.status() == "Succeeded"
    with pytest.raises(ResourceNotFoundError) as info:
        batch_client.get_pool(pool_id)
    assert info.value.error.code == "PoolNotFound"
    with pytest.raises(ResourceNotFoundError):
        batch_client.pool_exists(pool_id)


# --- errors -----------------------------------------------------------------------------------------


def expect_error(kind: type[Exception], code: str, call, *args, **kwargs) -> HttpResponseError:
    with pytest.raises(kind) as info:
        call(*args, **kwargs)
    assert info.value.error.code == code
    return info.value


def test_service_error_codes(batch_client, make_pool, wait_for_nodes, ubuntu_image, rsa_key, tools) -> None:
    pool_id = make_pool(1, start_task=env_task("exit 1"))
    (failed,) = wait_for_nodes(pool_id, 1, {"starttaskfailed"})
    healthy_pool = make_pool(1)
    (node,) = wait_for_nodes(healthy_pool, 1)
    options = m.BatchPoolCreateOptions(
        id=pool_id,
        vm_size="standard_d2s_v3",
        virtual_machine_configuration=m.VirtualMachineConfiguration(
            image_reference=ubuntu_image.image_reference, node_agent_sku_id=ubuntu_image.node_agent_sku_id
        ),
    )
    expect_error(ResourceExistsError, "PoolExists", batch_client.create_pool, options)
    expect_error(ResourceNotFoundError, "PoolNotFound", batch_client.get_pool, "no-such-pool")
    expect_error(ResourceNotFoundError, "NodeNotFound", batch_client.get_node, pool_id, "tvmps_nope_d")
    user = m.BatchNodeUserCreateOptions(name="carol", ssh_public_key=tools.public_key(rsa_key))
    batch_client.create_node_user(healthy_pool, node.id, user)
    expect_error(
        ResourceExistsError, "NodeUserExists", batch_client.create_node_user, healthy_pool, node.id, user
    )
    expect_error(
        ResourceNotFoundError,
        "NodeUserNotFound",
        batch_client.delete_node_user,
        healthy_pool,
        node.id,
        "nobody",
    )
    expect_error(
        ResourceNotFoundError,
        "NodeUserNotFound",
        batch_client.replace_node_user,
        healthy_pool,
        node.id,
        "nobody",
        m.BatchNodeUserReplaceOptions(password="x-y-z-123"),
    )
    error = expect_error(
        ResourceExistsError,
        "OperationInvalidForCurrentState",
        batch_client.create_node_user,
        pool_id,
        failed.id,
        user,
    )
    assert error.status_code == 409

    bad_size = m.BatchPoolCreateOptions(
        id="bad-size",
        vm_size="standard_nope_v9",
        virtual_machine_configuration=options.virtual_machine_configuration,
    )
    error = expect_error(HttpResponseError, "InvalidPropertyValue", batch_client.create_pool, bad_size)
    assert error.status_code == 400
    assert {"PropertyName": "vmSize"}.items() <= {d.code: d.message for d in error.error.details}.items()
    retired = m.BatchPoolCreateOptions(
        id="retired",
        vm_size="standard_d2s_v3",
        virtual_machine_configuration=m.VirtualMachineConfiguration(
            image_reference=m.BatchVmImageReference(
                publisher="canonical", offer="0001-com-ubuntu-server-focal", sku="20_04-lts", version="latest"
            ),
            node_agent_sku_id="batch.node.ubuntu 20.04",
        ),
    )
    expect_error(HttpResponseError, "InvalidPropertyValue", batch_client.create_pool, retired)
    no_size = m.BatchPoolCreateOptions(
        id="no-size", virtual_machine_configuration=options.virtual_machine_configuration
    )
    expect_error(HttpResponseError, "MissingRequiredProperty", batch_client.create_pool, no_size)
    expect_error(
        HttpResponseError,
        "InvalidPropertyValue",
        batch_client.create_node_user,
        healthy_pool,
        node.id,
        m.BatchNodeUserCreateOptions(name="dave", ssh_public_key="not-a-key"),
    )


def test_remote_login_without_an_ssh_nat_pool_is_refused(batch_client, make_pool, wait_for_nodes) -> None:
    pool_id = make_pool(1, ssh=False)
    (node,) = wait_for_nodes(pool_id, 1)
    assert node.endpoint_configuration is None
    error = expect_error(
        ResourceExistsError,
        "OperationInvalidForCurrentState",
        batch_client.get_node_remote_login_settings,
        pool_id,
        node.id,
    )
    assert "inbound NAT pool" in {d.code: d.message for d in error.error.details}["Reason"]


@pytest.fixture(scope="module")
def slow_emulator(tmp_path_factory) -> BatchEmulatorEndpoint:
    """An emulator whose allocations and pool deletions take an hour, to observe 'resizing' and 'deleting'."""
    work = tmp_path_factory.mktemp("slow-emulator")
    (work / "timing.json").write_text(json.dumps({"allocation": 3600, "pool_deletion": 3600}))
    proc, endpoint = start_batch_emulator(work, timing=str(work / "timing.json"), ssh_network="127.28.0.0/16")
    try:
        yield endpoint
    finally:
        proc.stop()


def test_pool_being_resized_and_being_deleted(slow_emulator, ubuntu_image) -> None:
    client = slow_emulator.client()
    options = m.BatchPoolCreateOptions(
        id="slow",
        vm_size="standard_d2s_v3",
        target_dedicated_nodes=2,
        virtual_machine_configuration=m.VirtualMachineConfiguration(
            image_reference=ubuntu_image.image_reference, node_agent_sku_id=ubuntu_image.node_agent_sku_id
        ),
    )
    client.create_pool(options)
    assert client.get_pool("slow").allocation_state == "resizing"
    expect_error(
        ResourceExistsError,
        "PoolBeingResized",
        client.begin_resize_pool,
        "slow",
        m.BatchPoolResizeOptions(target_dedicated_nodes=3),
    )
    # The plain REST delete (begin_delete_pool would poll in a thread for the hour the deletion takes).
    assert client.send_request(HttpRequest("DELETE", "/pools/slow?api-version=2025-06-01")).status_code == 202
    assert client.get_pool("slow").state == "deleting"
    expect_error(ResourceExistsError, "PoolBeingDeleted", client.begin_delete_pool, "slow")
    expect_error(ResourceExistsError, "PoolBeingDeleted", client.create_pool, options)
    slow_emulator.reset()
    assert list(client.list_pools()) == []
    assert slow_emulator.counters()["total"] == 1  # counters start again after a reset


# --- faults and auth --------------------------------------------------------------------------------


def test_injected_429_and_503_are_retried_by_the_sdk_and_counted(
    emulator_faults_cleared, batch_client, make_pool
) -> None:
    pool_id = make_pool(0)
    endpoint = emulator_faults_cleared
    endpoint.inject_fault("get_pool", status=429, count=1, retry_after=0.1)
    endpoint.inject_fault("get_pool", status=503, count=1, retry_after=0.1)
    before = endpoint.counters()
    assert batch_client.get_pool(pool_id).id == pool_id
    after = endpoint.counters()
    assert after["calls"]["get_pool"] - before["calls"].get("get_pool", 0) == 3
    assert after["injected"]["get_pool"] - before["injected"].get("get_pool", 0) == 2


def test_injected_500_on_create_and_dropped_connection_are_retried(
    emulator_faults_cleared, batch_client, make_pool
) -> None:
    endpoint = emulator_faults_cleared
    endpoint.inject_fault("create_pool", status=500, count=1)
    pool_id = make_pool(0)
    assert batch_client.get_pool(pool_id).id == pool_id
    endpoint.inject_fault("list_pools", drop=True, count=1)
    before = calls(endpoint, "list_pools")
    assert pool_id in {p.id for p in batch_client.list_pools()}
    assert calls(endpoint, "list_pools") - before == 2


def test_persistent_503_gives_up_with_the_service_error(emulator_faults_cleared) -> None:
    emulator_faults_cleared.inject_fault("list_pool_node_counts", status=503, retry_after=0)
    client = emulator_faults_cleared.client(retry_total=1)
    with pytest.raises(HttpResponseError) as info:
        list(client.list_pool_node_counts())
    assert info.value.status_code == 503 and info.value.error.code == "ServerBusy"


def test_wrong_key_gets_403_authentication_failed(batch_emulator) -> None:
    wrong = BatchClient(
        batch_emulator.url,
        AzureNamedKeyCredential(
            batch_emulator.account,
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
        ),
    )
    with pytest.raises(HttpResponseError) as info:
        wrong.get_pool("anything")
    assert info.value.status_code == 403
    assert info.value.error.code == "AuthenticationFailed"


def test_request_dated_outside_15_minutes_gets_403(batch_client) -> None:
    with pytest.raises(HttpResponseError) as info:
        batch_client.list_pools(ocp_date=datetime.now(UTC) - timedelta(minutes=20)).next()
    assert info.value.status_code == 403


def test_core_quota_setting_shows_as_the_service_resize_error(tmp_path, ubuntu_image) -> None:
    # --dedicated-core-quota 5 with 2-core nodes: a 4-node pool is created and gets 2 nodes.
    proc, endpoint = start_batch_emulator(tmp_path / "emulator", extra_args=["--dedicated-core-quota", "5"])
    try:
        client = endpoint.client()
        client.create_pool(
            m.BatchPoolCreateOptions(
                id="quota",
                vm_size="standard_d2s_v3",
                virtual_machine_configuration=m.VirtualMachineConfiguration(
                    image_reference=ubuntu_image.image_reference,
                    node_agent_sku_id=ubuntu_image.node_agent_sku_id,
                ),
                target_dedicated_nodes=4,
            )
        )
        wait_until(lambda: client.get_pool("quota").allocation_state == "steady", 60, "a steady pool")
        pool = client.get_pool("quota")
        assert (pool.current_dedicated_nodes, pool.target_dedicated_nodes) == (2, 4)
        assert [e.code for e in pool.resize_errors] == ["AccountCoreQuotaReached"]
        assert endpoint.health()["coreQuotas"] == {"dedicated": 5, "lowPriority": None}
    finally:
        proc.stop()
