"""HTTP: POST -> 202 with status URLs -> status -> connections as JSON, table and ssh_config (usable by ssh);
bad requests get 400 naming the field; a password never shows up in history, status, records or logs."""

from __future__ import annotations

import re
import subprocess

from devstack.ssh_client import SSH_OPTIONS
from provisioning.identity import instance_id_for

from .conftest import request_for, unique_pool


def test_http_start_status_and_connections_in_three_formats(stack, keys, tmp_path):
    pool_id = unique_pool("http")
    request = request_for(pool_id, [{"name": "alice", "sshPublicKey": keys["alice"].public}], nodes=2)
    status, headers, body = stack.host.request("POST", "/api/pools", json=request)
    assert status == 202, body
    assert body["id"] == body["instanceId"] == instance_id_for(request)
    assert headers["Location"] == body["statusQueryGetUri"]
    assert body["poolStatusUri"] == f"{stack.host.url}/api/pools/{pool_id}"
    path = body["statusQueryGetUri"].removeprefix(stack.host.url)
    status, _, durable = stack.host.request("GET", path, key=False)
    assert status in (200, 202) and durable["instanceId"] == body["id"]

    state = stack.wait_for_phase(pool_id)
    assert state["phase"] == "completed"
    assert state["progress"]["nodesIdle"] == state["progress"]["nodesTotal"] == 2
    assert state["progress"]["usersGranted"] == 2 and state["outcome"]["outcome"] == "completed"

    status, as_json = stack.connections(pool_id)
    records = as_json["connections"]
    assert status == 200 and len(records) == 2
    status, table = stack.connections(pool_id, "table")
    assert status == 200 and re.search(r"^node +\| state \| ip +\| port$", table, re.M)
    for record in records:
        assert re.search(
            rf"^{record['nodeId']} +\| idle +\| {record['ip']} +\| {record['port']}$", table, re.M
        )
    status, config = stack.connections(pool_id, "ssh_config")
    assert status == 200 and config.count("\nHost ") + config.startswith("Host ") == 2
    config_file = tmp_path / "ssh_config"
    config_file.write_text(config)
    for record in records:
        alias = f"{pool_id}-{record['nodeId']}-alice"
        argv = ["ssh", "-F", str(config_file), "-i", str(keys["alice"].private), *SSH_OPTIONS, alias]
        argv.append("hostname")
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == record["nodeId"]
    status, _, wrong = stack.host.request("GET", f"/api/pools/{pool_id}/connections?format=csv")
    assert status == 400 and wrong["error"] == "format: must be one of json, table, ssh_config"


def test_http_rejects_a_bad_request_naming_each_field(stack):
    bad = {
        "poolId": "bad pool",
        "vmSize": "Standard_D2s_v3",
        "nodes": {"dedicated": 99},
        "image": {"os": "ubuntu"},
        "users": [{"name": "Alice", "sshPublicKey": "ssh-rsa nope"}],
    }
    status, _, body = stack.host.request("POST", "/api/pools", json=bad)
    assert status == 400
    fields = {e["field"]: e["rule"] for e in body["errors"]}
    # No ssh.allowedSourcePrefixes and no DEFAULT_SSH_SOURCE_PREFIXES setting: refused too.
    assert set(fields) == {
        "poolId",
        "nodes",
        "users[0].name",
        "users[0].sshPublicKey",
        "ssh.allowedSourcePrefixes",
    }
    assert "at most 10 (MAX_NODES_PER_REQUEST" in fields["nodes"]
    status, _, _ = stack.host.request("POST", "/api/pools", json=bad, key=False)
    assert status == 401
    status, _, missing = stack.host.request("GET", "/api/pools/never-requested")
    assert status == 404 and "never-requested" in missing["error"]


def test_resending_is_a_duplicate_and_reusing_a_request_id_is_a_conflict(stack, keys):
    pool_id = unique_pool("dup")
    request = request_for(pool_id, [{"name": "alice", "sshPublicKey": keys["alice"].public}], nodes=1)
    request["requestId"] = f"req-{pool_id}"
    first = stack.host.request("POST", "/api/pools", json=request)
    again = stack.host.request("POST", "/api/pools", json=request)
    assert first[0] == again[0] == 202
    assert first[2]["id"] == again[2]["id"] and again[2]["result"] == "duplicate"
    changed = dict(request, vmSize="Standard_D4s_v3")
    status, _, conflict = stack.host.request("POST", "/api/pools", json=changed)
    assert status == 409 and conflict["errors"][0]["field"] == "requestId"
    assert stack.wait_for_phase(pool_id)["phase"] == "completed"


def test_a_password_never_reaches_history_status_records_or_logs(stack, keys):
    secret = "Horse-Battery-Staple-42"
    pool_id = unique_pool("pw")
    users = [{"name": "alice", "sshPublicKey": keys["alice"].public, "password": secret}]
    status, _, body = stack.host.request("POST", "/api/pools", json=request_for(pool_id, users, nodes=1))
    assert status == 202, body
    state = stack.wait_for_phase(pool_id)
    assert state["phase"] == "completed"
    assert state["records"][0]["authMethod"] == "ssh-key+password"
    history = stack.host.instance_status(
        body["id"], showHistory="true", showHistoryOutput="true", showInput="true"
    )
    assert history["runtimeStatus"] == "Completed" and history["historyEvents"]
    assert "passwordCiphertext" in str(history["input"])  # only the ciphertext travels
    assert secret not in str(history) and secret not in str(state) and secret not in stack.host_log()
    node = stack.batch.pool_nodes(pool_id)["nodes"][0]
    assert node["users"] == ["alice"]
