"""The `batch-ssh` console script against the whole stack, with a temporary HOME and the system ssh client:
request -> progress -> connection table -> ssh-config -> `ssh POOL-0 hostname` -> revoke (login refused, the
Include file gone); grant, extend and rotate on a pool made with the Batch SDK; wrong key, unknown pool, named
400 fields. The function key never shows up in what the CLI prints."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.ssh_client import generate_key

from .conftest import REPO_ROOT, ssh, unique_pool

CLI = Path(sys.executable).parent / "batch-ssh"  # the console script `make setup` installs
# The emulator's nodes reuse addresses and ports with new host keys: no prompts, no known_hosts.
NO_PROMPTS = """Host *
    StrictHostKeyChecking no
    UserKnownHostsFile /dev/null
    BatchMode yes
    LogLevel ERROR
"""


@pytest.fixture
def home(tmp_path) -> Path:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    (home / ".ssh" / "config").write_text(NO_PROMPTS)
    return home


@pytest.fixture
def cli(stack, home):
    """batch-ssh as a person runs it: a temporary HOME, the app's URL and key in the environment."""

    def run(
        *args: str, key: str | None = None, user: str = "alice", **env: str
    ) -> subprocess.CompletedProcess:
        environment = {
            **os.environ,
            "HOME": str(home),
            "BATCH_SSH_URL": stack.host.url,
            "BATCH_SSH_KEY": stack.host.key if key is None else key,
            "BATCH_SSH_USER": user,
            **env,
        }
        environment.pop("BATCH_SSH_CONFIG", None)
        result = subprocess.run(
            [str(CLI), *args], capture_output=True, text=True, env=environment, timeout=300, cwd=home
        )
        assert stack.host.key not in result.stdout + result.stderr  # never print the function key
        return result

    return run


def system_ssh(home: Path, alias: str, command: str = "hostname") -> subprocess.CompletedProcess:
    """The system ssh with the temporary HOME's config (OpenSSH reads ~ from the password database, not
    $HOME, so the file is named with -F)."""
    argv = ["ssh", "-F", str(home / ".ssh" / "config"), alias, command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def test_request_wait_ssh_config_log_in_and_revoke(stack, cli, home):
    key = generate_key(home / ".ssh", "id_ed25519", key_type="ed25519", bits=None)
    pool_id = unique_pool("cli")

    done = cli(
        "request", "--pool", pool_id, "--nodes", "2", "--source-prefix", "127.0.0.0/8", "--expiry", "PT2H"
    )
    assert done.returncode == 0, done.stderr
    progress = done.stderr.splitlines()
    assert "completed  nodes 2/2 idle  users 2/2 granted" in progress, done.stderr
    nodes = sorted(n["id"] for n in stack.batch.pool_nodes(pool_id)["nodes"])
    records = {r["nodeId"]: r for r in stack.records(pool_id).values()}
    assert re.search(r"^alias +node +state +ip +port +user +expires$", done.stdout, re.M), done.stdout
    for index, node_id in enumerate(nodes):
        record = records[node_id]
        row = rf"^{pool_id}-{index} +{node_id} +idle +{re.escape(record['ip'])} +{record['port']} +alice "
        assert re.search(row, done.stdout, re.M), done.stdout

    first = cli("ssh-config", pool_id)
    again = cli("ssh-config", pool_id)
    assert first.returncode == again.returncode == 0, first.stderr
    include = home / ".ssh" / "config.d" / f"batch-ssh-{pool_id}"
    assert f"Host {pool_id}-0\n" in include.read_text() and f"Host {pool_id}-1\n" in include.read_text()
    assert f"IdentityFile {key.private}" in include.read_text()
    assert oct(include.stat().st_mode & 0o777) == "0o600"
    config = (home / ".ssh" / "config").read_text()
    assert config.count("Include ") == 1 and config.endswith(NO_PROMPTS)  # added once, the rest kept

    for index, node_id in enumerate(nodes):
        login = system_ssh(home, f"{pool_id}-{index}")
        assert login.returncode == 0, login.stderr
        assert login.stdout.strip() == node_id
    through_cli = cli("ssh", pool_id, "1", *_no_prompts(), "--", "hostname")
    assert through_cli.returncode == 0 and through_cli.stdout.strip() == nodes[1], through_cli.stderr
    by_id = cli("ssh", pool_id, nodes[0], *_no_prompts(), "--", "echo", "hello")
    assert by_id.returncode == 0 and by_id.stdout.strip() == "hello", by_id.stderr

    mine = json.loads(cli("mine", "--json").stdout)
    assert {r["nodeId"] for r in mine["access"] if r["poolId"] == pool_id} == set(nodes)
    status = json.loads(cli("status", pool_id, "--json").stdout)
    assert status["phase"] == "completed" and status["pool"]["activeRecords"] == 2
    listed = cli("list")
    assert re.search(rf"^{pool_id} +yes +\S+ +completed +\S+ +alice ", listed.stdout, re.M), listed.stdout
    as_config = cli("connections", pool_id, "--format", "ssh_config")
    assert (
        as_config.returncode == 0
        and as_config.stdout.count("\nHost ") + as_config.stdout.startswith("Host ") == 2
    )

    revoked = cli("revoke", pool_id)
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked alice" in revoked.stdout and str(include) in revoked.stdout
    assert not include.exists()
    for node_id in nodes:
        record = records[node_id]
        assert ssh(key, "alice", record["ip"], record["port"]).returncode != 0  # login refused
    assert system_ssh(home, f"{pool_id}-0").returncode != 0
    assert {r["state"] for r in stack.records(pool_id).values()} == {"revoked"}
    assert cli("ssh", pool_id, *_no_prompts(), "--", "hostname").returncode == 1


def _no_prompts() -> list[str]:
    return [arg for option in ("StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "BatchMode=yes")
            for arg in ("-o", option)]  # fmt: skip


def test_grant_extend_and_rotate_on_a_pool_made_with_the_batch_sdk(stack, cli, home):
    pool_id = unique_pool("cli-sdk")
    nodes = stack.sdk_pool(pool_id, 2)
    old = generate_key(home / ".ssh", "id_rsa")

    granted = cli("grant", pool_id, "--expiry", "PT1H", "--ssh-config", user="bob")
    assert granted.returncode == 0, granted.stderr
    assert "completed  nodes 2/2 idle  users 2/2 granted" in granted.stderr.splitlines(), granted.stderr
    assert all(re.search(rf"^{pool_id}-{i} +{n} ", granted.stdout, re.M) for i, n in enumerate(nodes))
    assert system_ssh(home, f"{pool_id}-1").stdout.strip() == nodes[1]
    before = {k: r["expiresAt"] for k, r in stack.records(pool_id).items()}

    extended = cli("extend", pool_id, "--expiry", "PT3H", user="bob")
    assert extended.returncode == 0, extended.stderr
    after = stack.records(pool_id)
    assert all(after[k]["expiresAt"] > before[k] for k in before)

    (home / "elsewhere").mkdir()
    new = generate_key(home / "elsewhere", "bob-new")
    not_granted = cli("extend", pool_id, "--expiry", "PT4H", "--key", f"{new.private}.pub", user="bob")
    assert not_granted.returncode == 2 and "batch-ssh rotate" in not_granted.stderr  # extend never swaps keys
    rotated = cli("rotate", pool_id, "--key", f"{new.private}.pub", user="bob")
    assert rotated.returncode == 0, rotated.stderr
    include = (home / ".ssh" / "config.d" / f"batch-ssh-{pool_id}").read_text()
    assert f"IdentityFile {new.private}" in include  # the Include file follows the new key
    for index, node_id in enumerate(nodes):
        assert system_ssh(home, f"{pool_id}-{index}").stdout.strip() == node_id
        record = after[(node_id, "bob")]
        assert ssh(old, "bob", record["ip"], record["port"]).returncode != 0  # the old key is refused

    json_answer = cli("grant", pool_id, "--no-wait", "--json", "--key", f"{new.private}.pub", user="carol")
    assert json_answer.returncode == 0, json_answer.stderr
    accepted = json.loads(json_answer.stdout)
    assert accepted["poolId"] == pool_id and accepted["instanceId"]
    assert "code=" not in json_answer.stdout  # status URLs without their key


def test_errors_name_the_problem_and_exit_with_documented_codes(stack, cli, home):
    generate_key(home / ".ssh", "id_rsa")
    wrong = cli("list", key="not-the-key")
    assert wrong.returncode == 3 and "function key missing or wrong" in wrong.stderr
    assert "not-the-key" not in wrong.stdout + wrong.stderr
    missing_key = cli("list", key="")
    assert missing_key.returncode == 2 and "BATCH_SSH_KEY" in missing_key.stderr

    nowhere = unique_pool("cli-none")
    unknown = cli("status", nowhere)
    assert unknown.returncode == 4 and nowhere in unknown.stderr
    grant = cli("grant", nowhere)
    assert grant.returncode == 4 and "PoolNotFound" in grant.stderr
    as_json = cli("grant", nowhere, "--json")
    assert as_json.returncode == 4 and json.loads(as_json.stdout)["exitCode"] == 4

    bad = cli("request", "--pool", "bad pool", "--nodes", "99")
    assert bad.returncode == 5
    named = {line.split(":")[0].strip() for line in bad.stderr.splitlines()[1:]}
    assert {"poolId", "nodes", "ssh.allowedSourcePrefixes"} <= named, bad.stderr
    unreachable = cli("list", BATCH_SSH_URL="http://127.0.0.1:9")
    assert unreachable.returncode == 7 and "cannot reach the app" in unreachable.stderr


def test_request_from_a_json_file_answers_json_for_scripts(stack, cli, home, tmp_path):
    key = generate_key(home / ".ssh", "carol")
    pool_id = unique_pool("cli-file")
    request = json.loads((REPO_ROOT / "examples" / "request.json").read_text())
    request.pop("requestId")
    request.update(poolId="replaced-by-the-flag", nodes={"dedicated": 1})
    request["users"] = [{"name": "carol", "sshPublicKey": key.public, "expiry": "PT1H"}]
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))

    done = cli("request", "--file", str(path), "--pool", pool_id, "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)  # nothing but the JSON on stdout
    (node,) = stack.batch.pool_nodes(pool_id)["nodes"]
    assert answer["phase"] == "completed" and answer["poolId"] == pool_id
    assert [(c["alias"], c["node"], c["user"]) for c in answer["connections"]] == [
        (f"{pool_id}-0", node["id"], "carol")
    ]
    record = answer["connections"][0]
    assert ssh(key, "carol", record["ip"], record["port"]).stdout.strip() == node["id"]
