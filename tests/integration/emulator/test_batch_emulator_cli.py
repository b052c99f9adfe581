"""The emulator as a command: --help, loopback-only binding, the ready line, clean SIGTERM stop (SSH servers
and start tasks included), and the walk-through."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

from devstack.batch_emulator import DEV_KEY
from devstack.batch_emulator.launcher import start_batch_emulator
from devstack.batch_emulator.sdk_pools import newest_verified_ubuntu, ssh_pool
from devstack.batch_emulator.walkthrough import run_walkthrough
from devstack.process import wait_until

from .conftest import processes_with

REPO = Path(__file__).resolve().parents[3]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "devstack.batch_emulator", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


def test_help_documents_every_flag() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for flag in (
        "--host",
        "--port",
        "--account",
        "--key",
        "--catalog",
        "--timing",
        "--ssh-network",
        "--data-dir",
    ):
        assert flag in result.stdout
    assert "devbatchaccount1" in result.stdout and "loopback" in result.stdout
    assert DEV_KEY not in result.stdout


def test_non_loopback_addresses_are_refused() -> None:
    result = run_cli("--host", "0.0.0.0")
    assert result.returncode == 2 and "loopback" in result.stderr
    result = run_cli("--ssh-network", "10.0.0.0/16")
    assert result.returncode == 2 and "127.0.0.0/8" in result.stderr


def test_bad_timing_and_catalog_are_explained(tmp_path: Path) -> None:
    result = run_cli("--timing", "glacial")
    assert result.returncode == 2 and "fast" in result.stderr and "realistic" in result.stderr
    (tmp_path / "bad.json").write_text('{"images": [{"osType": "linux"}]}')
    result = run_cli("--catalog", str(tmp_path / "bad.json"))
    assert result.returncode == 2 and "nodeAgentSKUId" in result.stderr


def test_sigterm_stops_ssh_servers_and_start_tasks(tmp_path: Path) -> None:
    proc, endpoint = start_batch_emulator(tmp_path, ssh_network="127.27.0.0/16")
    token = f"emulator-stop-check-{uuid.uuid4().hex}"
    try:
        client = endpoint.client()
        image = newest_verified_ubuntu(client)
        client.create_pool(ssh_pool("long-start", image, 2, f"sleep 300 # {token}", vm_size="standard_a1_v2"))
        wait_until(lambda: len(processes_with(token)) == 2, 30, "both start tasks to run")
        nodes = list(client.list_nodes("long-start"))
        assert {n.state for n in nodes} == {"waitingforstarttask"}
        ssh = nodes[0].endpoint_configuration.inbound_endpoints[0]
        socket.create_connection((ssh.public_ip_address, ssh.frontend_port), timeout=5).close()
    finally:
        proc.popen.send_signal(15)  # SIGTERM to the emulator only, not its process group
        proc.popen.wait(30)
    assert proc.popen.returncode == 0
    wait_until(lambda: not processes_with(token), 10, "start tasks to be gone")
    try:
        socket.create_connection((ssh.public_ip_address, ssh.frontend_port), timeout=2).close()
        raise AssertionError("the SSH server still listens after the emulator stopped")
    except OSError:
        pass
    log = proc.log_tail(200)
    assert f"batch-emulator ready at {endpoint.url} account=devbatchaccount1" in log
    assert DEV_KEY not in log


def test_walkthrough_logs_in_to_every_node(batch_emulator) -> None:
    out = io.StringIO()
    assert run_walkthrough(batch_emulator, nodes=2, out=out) == 0, out.getvalue()
    text = out.getvalue()
    rows = [[cell.strip() for cell in line.split("|")] for line in text.splitlines() if line.count("|") == 3]
    assert rows[0] == ["node", "state", "ip", "port"]
    assert len(rows) == 3 and all(row[1] == "idle" for row in rows[1:])
    for node_id, _, ip, port in rows[1:]:
        assert f"$ ssh -p {port} walker@{ip} hostname\n{node_id}\n" in text
    assert "all nodes answered" in text and "deleted" in text


def test_key_from_environment_is_used(tmp_path: Path) -> None:
    other_key = "c2VjcmV0LWtleS1mb3ItdGhlLWVtdWxhdG9yLXRlc3RzLW9ubHktMDAwMDAwMDA="
    env_before = os.environ.get("BATCH_EMULATOR_KEY")
    os.environ["BATCH_EMULATOR_KEY"] = other_key
    try:
        proc, endpoint = start_batch_emulator(tmp_path, ssh_network="127.26.0.0/16")
    finally:
        if env_before is None:
            del os.environ["BATCH_EMULATOR_KEY"]
        else:
            os.environ["BATCH_EMULATOR_KEY"] = env_before
    try:
        from azure.batch import BatchClient
        from azure.core.credentials import AzureNamedKeyCredential
        from azure.core.exceptions import HttpResponseError

        good = BatchClient(endpoint.url, AzureNamedKeyCredential(endpoint.account, other_key))
        assert list(good.list_pools()) == []
        try:
            list(endpoint.client().list_pools())  # the default dev key no longer signs correctly
            raise AssertionError("the dev key was accepted")
        except HttpResponseError as exc:
            assert exc.status_code == 403
    finally:
        proc.stop()
    assert other_key not in proc.log_tail(200)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_a_launched_emulator_stops_when_its_parent_dies(tmp_path: Path) -> None:
    script = (
        "import pathlib, sys, time\n"
        "from devstack.batch_emulator.launcher import start_batch_emulator\n"
        "proc, _ = start_batch_emulator(pathlib.Path(sys.argv[1]), ssh_network='127.25.0.0/16')\n"
        "print(proc.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    emulator_pid = int(parent.stdout.readline())
    try:
        assert _running(emulator_pid)
        parent.kill()
        parent.wait(10)
        wait_until(lambda: not _running(emulator_pid), 30, "the orphaned emulator to stop")
    finally:
        parent.stdout.close()
        if _running(emulator_pid):
            os.kill(emulator_pid, 9)
