"""batch-ssh without the app: configuration (environment, a 0600 file, refusal of a file others can read), the
SSH Include file and its one Include line, node choice, error messages and exit codes, no key in what it
prints, the progress display."""

from __future__ import annotations

import io
import json
import stat
import subprocess

import pytest

from batch_ssh_cli import main as cli
from batch_ssh_cli import sshfiles
from batch_ssh_cli.api import error_for, public_answer
from batch_ssh_cli.errors import CONFLICT, INVALID, NOT_FOUND, UNAUTHORIZED, USAGE
from batch_ssh_cli.render import ProgressDisplay

RECORDS = [
    {"poolId": "p", "nodeId": "node-b", "user": "alice", "ip": "10.0.0.1", "port": 50001, "state": "active"},
    {"poolId": "p", "nodeId": "node-a", "user": "alice", "ip": "10.0.0.1", "port": 50000, "state": "active"},
    {"poolId": "p", "nodeId": "node-c", "user": "alice", "ip": "10.0.0.1", "port": 50002, "state": "revoked"},
    {"poolId": "p", "nodeId": "node-a", "user": "bob", "ip": "10.0.0.1", "port": 50000, "state": "active"},
]


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("BATCH_SSH_URL", "BATCH_SSH_KEY", "BATCH_SSH_USER", "BATCH_SSH_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_configure_writes_a_0600_file_from_stdin_and_never_echoes_the_key(home, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret-function-key\n"))
    assert cli.main(["configure", "--url", "https://app.example/", "--user", "alice", "--no-check"]) == 0
    path = home / ".config" / "batch-ssh" / "config"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (
        "key = s3cret-function-key" in path.read_text() and "url = https://app.example\n" in path.read_text()
    )
    printed = capsys.readouterr()
    assert "s3cret" not in printed.out + printed.err


def test_a_config_file_others_can_read_is_refused_and_a_missing_key_is_named(home, capsys):
    path = home / ".config" / "batch-ssh" / "config"
    path.parent.mkdir(parents=True)
    path.write_text("url = https://app.example\nkey = k\n")
    path.chmod(0o644)
    assert cli.main(["list"]) == USAGE
    assert f"chmod 600 {path}" in capsys.readouterr().err
    path.write_text("url = https://app.example\n")
    path.chmod(0o600)
    assert cli.main(["list"]) == USAGE
    assert "function key missing: set BATCH_SSH_KEY" in capsys.readouterr().err


def test_the_include_file_and_one_include_line(home):
    (home / ".ssh").mkdir()
    (home / ".ssh" / "config").write_text("Host *\n    ServerAliveInterval 30\n")
    nodes = sshfiles.node_order(RECORDS, "alice")
    assert [n["nodeId"] for n in nodes] == ["node-a", "node-b"]  # stable: node-id order, active only
    for _ in range(2):
        text = sshfiles.render_include("p", "alice", nodes, home / ".ssh" / "id_ed25519")
        path, _ = sshfiles.write_include("p", text)
    config = (home / ".ssh" / "config").read_text()
    assert config.count(f"Include {home}/.ssh/config.d/batch-ssh-*") == 1
    assert config.endswith("Host *\n    ServerAliveInterval 30\n")  # what was there stays
    body = path.read_text()
    assert "Host p-0\n    HostName 10.0.0.1\n    Port 50000\n    User alice\n" in body
    assert "Host p-1\n    HostName 10.0.0.1\n    Port 50001\n" in body and "p-2" not in body
    assert f"IdentityFile {home}/.ssh/id_ed25519" in body
    assert sshfiles.remove_include("p") == path and not path.exists()
    assert sshfiles.remove_include("p") is None


@pytest.mark.parametrize(
    ("which", "node"), [(None, "node-a"), ("1", "node-b"), ("p-1", "node-b"), ("node-a", "node-a")]
)
def test_a_node_by_index_alias_or_id(which, node):
    assert sshfiles.pick_node(sshfiles.node_order(RECORDS, "alice"), "p", which)[1]["nodeId"] == node


def test_no_such_node_is_an_error_naming_the_range():
    with pytest.raises(Exception, match=r"nodes 0\.\.1 for you; there is no node 5"):
        sshfiles.pick_node(sshfiles.node_order(RECORDS, "alice"), "p", "5")


def test_answers_become_clear_errors_with_exit_codes():
    unauthorized = error_for(401, "", "GET /api/pools")
    assert unauthorized.code == UNAUTHORIZED and "function key missing or wrong" in unauthorized.message
    invalid = error_for(400, {"errors": [{"field": "nodes", "rule": "at most 10"}]}, "POST /api/pools")
    assert invalid.code == INVALID and invalid.details == ["nodes: at most 10"]
    missing = error_for(404, {"error": "no request is known for pool x"}, "GET /api/pools/x")
    assert missing.code == NOT_FOUND and missing.message == "no request is known for pool x"
    assert error_for(409, {"error": "revoke its users instead"}, "DELETE").code == CONFLICT


def test_status_urls_are_printed_without_their_key():
    answer = {"statusQueryGetUri": "https://a/runtime/x?taskHub=h&code=SECRET", "poolId": "p"}
    assert public_answer(answer) == {"statusQueryGetUri": "https://a/runtime/x?taskHub=h", "poolId": "p"}


def test_the_fingerprint_is_the_one_ssh_keygen_shows(tmp_path):
    from devstack.ssh_client import generate_key

    key = generate_key(tmp_path, "k", key_type="ed25519", bits=None)
    shown = subprocess.run(["ssh-keygen", "-l", "-f", f"{key.private}.pub"], capture_output=True, text=True)
    assert sshfiles.fingerprint(key.public) == shown.stdout.split()[1]
    assert sshfiles.fingerprint("ssh-ed25519 not-base64!") is None


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_redrawn_bar_on_a_terminal_and_a_line_per_change_elsewhere():
    views = [
        {
            "phase": "waiting-for-nodes",
            "progress": {"nodesIdle": 1, "nodesTotal": 2, "usersGranted": 0, "usersTotal": 2},
        },
        {
            "phase": "waiting-for-nodes",
            "progress": {"nodesIdle": 1, "nodesTotal": 2, "usersGranted": 0, "usersTotal": 2},
        },
        {
            "phase": "completed",
            "progress": {"nodesIdle": 2, "nodesTotal": 2, "usersGranted": 2, "usersTotal": 2},
        },
    ]
    log, tty = io.StringIO(), Tty()
    for stream in (log, tty):
        display = ProgressDisplay(stream)
        for view in views:
            display.show(view)
        display.close()
    assert log.getvalue().splitlines() == [
        "waiting-for-nodes  nodes 1/2 idle  users 0/2 granted",
        "completed  nodes 2/2 idle  users 2/2 granted",
    ]
    assert "\r\x1b[2K[#####---------------] waiting-for-nodes" in tty.getvalue()
    assert tty.getvalue().endswith("[####################] completed  nodes 2/2 idle  users 2/2 granted\n")


def test_json_errors_for_scripts(capsys):
    assert cli.main(["list", "--json"]) == USAGE
    assert json.loads(capsys.readouterr().out)["exitCode"] == USAGE
