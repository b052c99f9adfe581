"""Logging in to emulated nodes with the system OpenSSH client: users created through the SDK, live key /
expiry / delete checks, scp, interactive shells, NSG rules and pool deletion."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncssh
import pytest
from azure.batch import models as m

from devstack.batch_emulator.launcher import start_batch_emulator
from devstack.process import wait_until
from devstack.ssh_client import run_with_password
from tests.fixtures.batch_emulator import random_ssh_network

from .conftest import processes_with


@pytest.fixture
def ssh_pool(batch_client, make_pool, wait_for_nodes):
    """A 2-node pool with an SSH NAT pool, idle: (pool id, [(node, ip, port)])."""
    pool_id = make_pool(2)
    nodes = wait_for_nodes(pool_id, 2)
    targets = []
    for node in nodes:
        login = batch_client.get_node_remote_login_settings(pool_id, node.id)
        targets.append((node, login.remote_login_ip_address, login.remote_login_port))
    return pool_id, targets


def test_login_runs_commands_on_the_node(batch_client, ssh_pool, rsa_key, tools) -> None:
    pool_id, targets = ssh_pool
    for node, ip, port in targets:
        tools.add_user(batch_client, pool_id, node.id, "alice", rsa_key)
        result = tools.ssh(rsa_key, "alice", ip, port, "hostname")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == node.id
    node, ip, port = targets[0]
    result = tools.ssh(
        rsa_key, "alice", ip, port, 'echo "$USER $AZ_BATCH_NODE_ID"; pwd; echo oops >&2; exit 4'
    )
    assert result.returncode == 4
    user_line, cwd = result.stdout.splitlines()
    assert user_line == f"alice {node.id}"
    assert cwd.endswith("/home/alice")
    assert result.stderr.strip() == "oops"


def test_scp_both_ways_and_legacy_scp(batch_client, ssh_pool, rsa_key, tools, tmp_path: Path) -> None:
    pool_id, [(node, ip, port), _] = ssh_pool
    tools.add_user(batch_client, pool_id, node.id, "alice", rsa_key)
    local = tmp_path / "report.txt"
    local.write_text("numbers: 1 2 3\n")
    assert tools.scp(rsa_key, port, str(local), f"alice@{ip}:").returncode == 0
    assert tools.ssh(rsa_key, "alice", ip, port, "cat report.txt").stdout == "numbers: 1 2 3\n"
    back = tmp_path / "back.txt"
    result = tools.scp(rsa_key, port, f"alice@{ip}:report.txt", str(back))
    assert result.returncode == 0, result.stderr
    assert back.read_text() == "numbers: 1 2 3\n"
    result = tools.scp(rsa_key, port, str(local), f"alice@{ip}:legacy.txt", legacy=True)
    assert result.returncode == 0, result.stderr
    assert tools.ssh(rsa_key, "alice", ip, port, "cat legacy.txt").stdout == "numbers: 1 2 3\n"


def test_replacing_the_key_refuses_the_old_one_at_once(
    batch_client, ssh_pool, rsa_key, other_rsa_key, tools
) -> None:
    pool_id, [(node, ip, port), _] = ssh_pool
    tools.add_user(batch_client, pool_id, node.id, "bob", rsa_key)
    assert tools.ssh(rsa_key, "bob", ip, port, "true").returncode == 0
    batch_client.replace_node_user(
        pool_id, node.id, "bob", m.BatchNodeUserReplaceOptions(ssh_public_key=tools.public_key(other_rsa_key))
    )
    refused = tools.ssh(rsa_key, "bob", ip, port, "true")
    assert refused.returncode == 255 and "Permission denied" in refused.stderr
    assert tools.ssh(other_rsa_key, "bob", ip, port, "true").returncode == 0


def test_deleted_user_is_refused(batch_client, ssh_pool, rsa_key, tools) -> None:
    pool_id, [(node, ip, port), (other, other_ip, other_port)] = ssh_pool
    tools.add_user(batch_client, pool_id, node.id, "carol", rsa_key)
    tools.add_user(batch_client, pool_id, other.id, "carol", rsa_key)
    assert tools.ssh(rsa_key, "carol", ip, port, "true").returncode == 0
    batch_client.delete_node_user(pool_id, node.id, "carol")
    refused = tools.ssh(rsa_key, "carol", ip, port, "true")
    assert refused.returncode == 255 and "Permission denied" in refused.stderr
    assert tools.ssh(rsa_key, "carol", other_ip, other_port, "true").returncode == 0  # other node unaffected


def test_expired_user_is_refused(batch_client, ssh_pool, rsa_key, tools) -> None:
    pool_id, [(node, ip, port), _] = ssh_pool
    tools.add_user(batch_client, pool_id, node.id, "dora", rsa_key, expires_in=timedelta(days=-2))
    refused = tools.ssh(rsa_key, "dora", ip, port, "true")
    assert refused.returncode == 255 and "Permission denied" in refused.stderr


def test_linux_expiry_is_day_precise_so_a_user_past_expiry_today_still_logs_in(
    batch_client, ssh_pool, rsa_key, tools
) -> None:
    # The service: "for Linux Compute Nodes, the expiryTime has a precision up to a day". Only the app's own
    # cleanup ends access at the exact time; the node keeps the user until the expiry's UTC day is over.
    pool_id, [(node, ip, port), _] = ssh_pool
    now = datetime.now(UTC)
    start_of_today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    expiry = max(now - timedelta(seconds=5), start_of_today)
    tools.add_user(batch_client, pool_id, node.id, "dan", rsa_key, expires_in=expiry - now)
    assert tools.ssh(rsa_key, "dan", ip, port, "true").returncode == 0


def test_user_of_another_node_is_refused(batch_client, ssh_pool, rsa_key, tools) -> None:
    pool_id, [(node, _, _), (_, other_ip, other_port)] = ssh_pool
    tools.add_user(batch_client, pool_id, node.id, "erin", rsa_key)
    assert tools.ssh(rsa_key, "erin", other_ip, other_port, "true").returncode == 255


def testrun_with_password(batch_client, ssh_pool, tools) -> None:
    pool_id, [(node, ip, port), _] = ssh_pool
    tools.add_user(batch_client, pool_id, node.id, "frank", password="correct horse battery")
    assert run_with_password(ip, port, "frank", "correct horse battery").strip() == node.id
    with pytest.raises(asyncssh.PermissionDenied):
        run_with_password(ip, port, "frank", "wrong")


def test_interactive_shell_with_a_tty(batch_client, ssh_pool, rsa_key, tools) -> None:
    pool_id, [(node, ip, port), _] = ssh_pool
    tools.add_user(batch_client, pool_id, node.id, "gina", rsa_key)
    result = tools.ssh(rsa_key, "gina", ip, port, tty=True, input="tty; hostname\nexit 6\n")
    assert result.returncode == 6
    assert node.id in result.stdout
    assert "/dev/pts/" in result.stdout


def test_nodes_of_a_pool_share_one_host_key(ssh_pool) -> None:
    _, targets = ssh_pool

    async def host_keys() -> set[bytes]:
        keys = [await asyncssh.get_server_host_key(ip, port) for _, ip, port in targets]
        return {k.public_data for k in keys}

    keys = asyncio.run(host_keys())
    assert len(keys) == 1


def test_nsg_deny_rule_blocks_loopback_clients(
    batch_client, make_pool, wait_for_nodes, rsa_key, tools
) -> None:
    rules = [m.NetworkSecurityGroupRule(priority=150, access="deny", source_address_prefix="127.0.0.0/8")]
    pool_id = make_pool(1, network=tools.ssh_nat_pool(rules=rules))
    (node,) = wait_for_nodes(pool_id, 1)
    tools.add_user(batch_client, pool_id, node.id, "hank", rsa_key)
    login = batch_client.get_node_remote_login_settings(pool_id, node.id)
    result = tools.ssh(rsa_key, "hank", login.remote_login_ip_address, login.remote_login_port, "true")
    assert result.returncode == 255
    assert "Permission denied" not in result.stderr  # cut off before authentication


def test_nsg_allow_rule_admits_loopback_clients(
    batch_client, make_pool, wait_for_nodes, rsa_key, tools
) -> None:
    rules = [
        m.NetworkSecurityGroupRule(priority=150, access="allow", source_address_prefix="127.0.0.0/8"),
        m.NetworkSecurityGroupRule(priority=200, access="deny", source_address_prefix="*"),
    ]
    pool_id = make_pool(1, network=tools.ssh_nat_pool(rules=rules))
    (node,) = wait_for_nodes(pool_id, 1)
    tools.add_user(batch_client, pool_id, node.id, "ivy", rsa_key)
    login = batch_client.get_node_remote_login_settings(pool_id, node.id)
    assert (
        tools.ssh(rsa_key, "ivy", login.remote_login_ip_address, login.remote_login_port, "true").returncode
        == 0
    )


def test_unusable_node_stops_answering(batch_emulator, batch_client, ssh_pool, rsa_key, tools) -> None:
    pool_id, [(node, ip, port), _] = ssh_pool
    tools.add_user(batch_client, pool_id, node.id, "jack", rsa_key)
    batch_emulator.set_node_state(pool_id, node.id, "unusable")
    assert tools.ssh(rsa_key, "jack", ip, port, "true").returncode == 255


def test_pool_delete_stops_its_ssh_servers(batch_client, ssh_pool) -> None:
    pool_id, targets = ssh_pool
    batch_client.begin_delete_pool(pool_id, polling_interval=0).result()
    for _, ip, port in targets:
        with pytest.raises(OSError):
            socket.create_connection((ip, port), timeout=5).close()


def _remote_sleep_running(token: str) -> bool:
    for pid in processes_with(token):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sleep\0"):
                return True
        except OSError:
            continue
    return False


@pytest.mark.parametrize("tty", [False, True])
def test_client_disconnect_ends_the_remote_command(batch_client, ssh_pool, rsa_key, tools, tty: bool) -> None:
    pool_id, [(node, ip, port), _] = ssh_pool
    tools.add_user(batch_client, pool_id, node.id, "kate", rsa_key)
    token = f"600.{uuid.uuid4().int % 10**9:09d}"  # a unique sleep duration marks the process
    argv = tools.ssh_argv(rsa_key, "kate", ip, port, f"sleep {token}", tty=tty)
    client = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_until(lambda: _remote_sleep_running(token), 30, "the remote command to start")
    finally:
        client.kill()
        client.wait()
    wait_until(lambda: not processes_with(token), 30, "the remote command to end")


def test_second_precise_expiry_is_an_explicit_option(tmp_path, ubuntu_image, rsa_key, tools) -> None:
    # `--user-expiry second`: logins stop at expiryTime itself (for tests; not the service's way).
    proc, endpoint = start_batch_emulator(
        tmp_path / "emulator", ssh_network=random_ssh_network(), user_expiry="second"
    )
    try:
        assert endpoint.health()["userExpiry"] == "second"
        client = endpoint.client()
        client.create_pool(
            m.BatchPoolCreateOptions(
                id="exact-expiry",
                vm_size="standard_d2s_v3",
                virtual_machine_configuration=m.VirtualMachineConfiguration(
                    image_reference=ubuntu_image.image_reference,
                    node_agent_sku_id=ubuntu_image.node_agent_sku_id,
                ),
                target_dedicated_nodes=1,
                network_configuration=tools.ssh_nat_pool(),
            )
        )
        wait_until(
            lambda: [n.state for n in client.list_nodes("exact-expiry")] == ["idle"], 60, "an idle node"
        )
        (node,) = client.list_nodes("exact-expiry")
        login = client.get_node_remote_login_settings("exact-expiry", node.id)
        ip, port = login.remote_login_ip_address, login.remote_login_port
        now = datetime.now(UTC)
        expired = max(now - timedelta(seconds=5), now.replace(hour=0, minute=0, second=0, microsecond=0))
        tools.add_user(client, "exact-expiry", node.id, "past", rsa_key, expires_in=expired - now)
        tools.add_user(client, "exact-expiry", node.id, "future", rsa_key)
        refused = tools.ssh(rsa_key, "past", ip, port, "true")
        assert refused.returncode == 255 and "Permission denied" in refused.stderr
        assert tools.ssh(rsa_key, "future", ip, port, "true").returncode == 0
    finally:
        proc.stop()
