"""Connection records: built per (node, user) with its endpoint, stored as entities, shown three ways."""

from __future__ import annotations

from datetime import UTC, datetime

from provisioning.progress import grant_failures, pool_view, summarize_outcome
from provisioning.records import (
    ACTIVE,
    REVOKED,
    SshConnectionRecord,
    record_for,
    render_ssh_config,
    render_table,
)

AT = datetime(2030, 1, 1, tzinfo=UTC)
USERS = [
    {
        "name": "alice",
        "admin": True,
        "expiryTime": "2030-01-02T00:00:00Z",
        "sshPublicKey": "ssh-rsa AAA",
        "keyType": "rsa",
        "keyFingerprint": "SHA256:abc",
    },
    {"name": "bob", "admin": False, "expiryTime": "2030-01-03T00:00:00Z", "hasPassword": True},
]
PAIRS = [("n1", "alice"), ("n1", "bob"), ("n2", "alice")]  # granted; bob failed on n2
ENDPOINTS = {
    "n1": {"ip": "127.20.0.1", "port": 40000, "state": "idle"},
    "n2": {"ip": "127.20.0.1", "port": 40001, "state": "idle"},
}


def records():
    by_name = {u["name"]: u for u in USERS}
    return [
        record_for(pool_id="Pool-A", node_id=node, user=by_name[name], endpoint=ENDPOINTS[node],
                   request_id="r1", state=ACTIVE, at=AT)
        for node, name in PAIRS
    ]  # fmt: skip


def test_a_record_for_every_granted_node_and_user():
    built = records()
    assert [(r.node_id, r.user, r.port) for r in built] == [
        ("n1", "alice", 40000),
        ("n1", "bob", 40000),
        ("n2", "alice", 40001),
    ]
    alice = built[0]
    assert alice.partition_key == "pool-a" and alice.row_key == "n1|alice"
    assert alice.expires_at == datetime(2030, 1, 2, tzinfo=UTC)
    assert alice.auth_method == "ssh-key" and built[1].auth_method == "password"
    assert alice.state == ACTIVE and alice.key_fingerprint == "SHA256:abc"


def test_entities_round_trip_with_real_datetimes():
    record = records()[0].with_state(REVOKED, AT)
    entity = record.to_entity()
    assert isinstance(entity["ExpiresAt"], datetime) and isinstance(entity["StateChangedAt"], datetime)
    assert SshConnectionRecord.from_entity(entity) == record
    assert record.to_json()["expiresAt"] == "2030-01-02T00:00:00Z"
    assert record.to_json()["state"] == "revoked"


def test_the_table_has_the_seed_columns_per_user():
    text = render_table(records())
    assert text.splitlines()[0] == "user alice (pool Pool-A, expires 2030-01-02T00:00:00Z)"
    assert text.splitlines()[1].split(" | ") == ["node", "state", "ip        ", "port"]
    assert "n2   | idle  | 127.20.0.1 | 40001" in text
    assert "user bob (pool Pool-A, expires 2030-01-03T00:00:00Z)" in text


def test_revoked_records_leave_the_table_and_ssh_config():
    built = [r.with_state(REVOKED, AT) if r.user == "alice" else r for r in records()]
    assert "alice" not in render_table(built) and "alice" not in render_ssh_config(built)
    assert render_table([]) == "no active SSH connections\n"


def test_ssh_config_has_a_host_block_per_node_and_user():
    text = render_ssh_config(records())
    assert "Host Pool-A-n2-alice\n    HostName 127.20.0.1\n    Port 40001\n    User alice\n" in text
    assert text.count("Host ") == 3


JOBS = [{"nodeId": "n1", "users": ["alice", "bob"]}, {"nodeId": "n2", "users": ["alice", "bob"]}]
BOB_FAILED_ON_N2 = [{"nodeId": "n2", "user": "bob", "error": {"code": "X", "message": "m"}}]


def test_outcome_is_partial_when_a_node_fails_and_lists_the_nodes_that_need_attention():
    request = {"poolId": "p", "requestId": "r", "nodes": {"dedicated": 3, "spot": 0}, "users": USERS}
    problems = [{"nodeId": "n3", "state": "starttaskfailed", "reason": "start task failed with exit code 1"}]
    granted = {"nodes": 2, "granted": 3, "failures": grant_failures(JOBS, BOB_FAILED_ON_N2)}
    output = summarize_outcome(request=request, granted=granted, problems=problems, records_written=3)
    assert output["outcome"] == "partial"
    assert [(n["nodeId"], n["outcome"]) for n in output["nodes"]] == [("n2", "partial"), ("n3", "unusable")]
    partial = output["nodes"][0]
    assert partial["usersGranted"] == ["alice"] and partial["errors"]["bob"]["code"] == "X"
    assert output["progress"] == {
        "nodesIdle": 2,
        "nodesTotal": 3,
        "nodesFailed": 1,
        "usersGranted": 3,
        "usersTotal": 6,
        "records": 3,
    }


def test_outcome_is_completed_only_when_every_node_has_every_user():
    request = {"poolId": "p", "requestId": "r", "nodes": {"dedicated": 1, "spot": 0}, "users": USERS}
    everyone = {"nodes": 1, "granted": 2, "failures": []}
    assert summarize_outcome(request=request, granted=everyone, problems=[])["outcome"] == "completed"
    error = {"code": "C", "message": "m"}
    failed = summarize_outcome(request=request, granted={}, problems=[], error=error)
    assert failed["outcome"] == "failed" and failed["error"] == {"code": "C", "message": "m"}
    nobody = {"nodes": 1, "granted": 0, "failures": grant_failures(JOBS[:1], [
        {"nodeId": "n1", "user": u, "error": error} for u in ("alice", "bob")
    ])}  # fmt: skip
    none = summarize_outcome(request=request, granted=nobody, problems=[])
    assert none["outcome"] == "failed" and none["error"]["code"] == "NoAccessGranted"
    assert none["nodes"][0]["outcome"] == "failed"


def test_the_status_view_names_phase_progress_and_outcome():
    entry = {"requestId": "r", "instanceId": "provision-r", "state": "accepted", "receivedAt": "t"}
    running = {
        "runtimeStatus": "Running",
        "customStatus": {"phase": "waiting-for-nodes", "progress": {"nodesIdle": 1}},
    }
    view = pool_view("p", entry, running, [])
    assert (view["phase"], view["progress"], view["outcome"]) == ("waiting-for-nodes", {"nodesIdle": 1}, None)
    done = {"runtimeStatus": "Completed", "output": {"outcome": "partial", "progress": {"nodesIdle": 2}}}
    assert pool_view("p", entry, done, [])["phase"] == "partial"
    crashed = {"runtimeStatus": "Failed", "output": "boom"}
    assert pool_view("p", entry, crashed, [])["outcome"]["error"]["message"] == "boom"
    rejected = {"requestId": "r", "state": "rejected", "errors": [{"field": "poolId", "rule": "is required"}]}
    view = pool_view("p", rejected, None, [])
    assert view["phase"] == "rejected" and view["errors"][0]["field"] == "poolId"
    assert pool_view("p", entry, None, [])["phase"] == "accepted"
