"""The orchestrators' decisions, driven step by step with scripted activity results (no host, no services)."""

from __future__ import annotations

import json
from datetime import timedelta

from orchestrations.access import cleanup_expired_access, revoke_user_access
from orchestrations.provision import provision_pool
from provisioning.nodes import summarize_pool

from .conftest import NOW
from .orchestration_driver import ActivityError, Staging, grant_chunk, run_orchestrator

IMAGE = {
    "imageReference": {
        "publisher": "canonical",
        "offer": "ubuntu-24_04-lts",
        "sku": "server",
        "version": "latest",
    },
    "nodeAgentSkuId": "batch.node.ubuntu 24.04",
}


def start_input(nodes: int = 3, *, delete_on_failure: bool = False, deadline: float = 600) -> dict:
    request = {
        "requestId": "r1",
        "poolId": "pool-1",
        "vmSize": "Standard_D2s_v3",
        "nodes": {"dedicated": nodes, "spot": 0},
        "image": {"os": "ubuntu"},
        "startTask": None,
        "ssh": {"frontendPortRange": {"start": 40000, "end": 41999}, "allowedSourcePrefixes": ["*"]},
        "users": [
            {
                "name": "alice",
                "admin": True,
                "expiryTime": "2030-01-02T00:00:00Z",
                "sshPublicKey": "ssh-rsa AAAA",
                "keyType": "rsa",
                "keyFingerprint": "SHA256:x",
            },
            {
                "name": "bob",
                "admin": False,
                "expiryTime": "2030-01-02T00:00:00Z",
                "hasPassword": True,
                "passwordCiphertext": "gAAAA-ciphertext",
            },
        ],
        "fingerprint": "f",
    }
    options = {
        "deadlineSeconds": deadline,
        "pollFirstSeconds": 1.0,
        "pollMaxSeconds": 4.0,
        "deletePoolOnFailure": delete_on_failure,
        "statusUrl": "http://127.0.0.1:7071/api/pools/pool-1",
    }
    return {"request": request, "options": options}


def pool_json(allocation="steady", errors=()):
    return {
        "state": "active",
        "allocationState": allocation,
        "resizeErrors": list(errors),
        "targetDedicatedNodes": 3,
        "targetLowPriorityNodes": 0,
    }


class Batch:
    """Scripted answers: `polls` are successive (pool, nodes) pairs; the last one repeats."""

    def __init__(
        self, node_count=3, polls=None, created=None, failing_nodes=(), raising_nodes=(), transient_nodes=()
    ):
        ids = [f"node-{i}" for i in range(node_count)]
        self.polls = polls or [
            (pool_json("resizing"), [{"id": n, "state": "starting"} for n in ids]),
            (pool_json(), [{"id": n, "state": "idle"} for n in ids]),
        ]
        self.created = created or {"ok": True, "created": True}
        self.failing_nodes, self.raising_nodes = set(failing_nodes), set(raising_nodes)
        self.transient_nodes, self.created_calls, self.registered = set(transient_nodes), [], []
        self.states, self.staging = [], Staging()

    def __call__(self, name, data):
        if name == "select_pool_image":
            return {"ok": True, "image": IMAGE}
        if name == "create_pool":
            return self.created
        if name == "poll_pool":
            pool, nodes = self.polls.pop(0) if len(self.polls) > 1 else self.polls[0]
            snapshot = summarize_pool(pool, nodes, list_pending=data["listPending"])
            ready = [
                [n["id"], "127.30.0.1", 40000 + i, "idle"]
                for i, n in enumerate(nodes)
                if n["state"] == "idle"
            ]
            staged = self.staging.stage(data, ready)  # the endpoints come from the same listing
            if staged:
                snapshot["staged"] = staged
            return snapshot
        if name == "grant_node_users":
            self.created_calls.append(data)
            return grant_chunk(
                data, self.staging, failing=self.failing_nodes, transient=self.transient_nodes,
                raising=self.raising_nodes,
            )  # fmt: skip
        if name == "clear_grant_work":
            return self.staging.clear(data)
        if name == "connection_sample":
            return self.staging.sample(data)
        if name == "read_grant_work":
            return self.staging.read(data)
        if name == "register_managed_pool":
            self.registered.append(data)
            return {"createdByApp": data["createdByApp"], "grants": len(data["users"])}
        if name == "set_managed_pool_state":
            self.states.append(data)
            return {"poolId": data["poolId"]}
        if name in ("publish_event", "delete_pool"):
            return {"published": True} if name == "publish_event" else {"deleted": True}
        raise AssertionError(f"unexpected activity {name}")


def run(batch, timers_first=False, **kwargs):
    return run_orchestrator(
        provision_pool,
        start_input(**kwargs),
        batch,
        now=NOW,
        instance_id="provision-r1",
        timers_first=timers_first,
    )


def test_the_happy_path_reads_like_the_business_process():
    batch = Batch()
    output, log = run(batch)
    names = [c.name for c in log.calls if c.kind != "sub"]
    assert names == [
        "select_pool_image",
        "create_pool",
        "register_managed_pool",
        "poll_pool",
        "timer",
        "poll_pool",
        "grant_node_users",  # one chunk: pending records, the users, active records
        "clear_grant_work",  # the staged node list goes
        "connection_sample",  # the connections for the event, from the records
        "publish_event",
        "set_managed_pool_state",  # done: reconcile may look after the pool from now on
    ]
    assert output["outcome"] == "completed"
    assert output["progress"] == {
        "nodesIdle": 3,
        "nodesTotal": 3,
        "nodesFailed": 0,
        "usersGranted": 6,
        "usersTotal": 6,
        "records": 6,
    }
    assert output["nodes"] == []  # only nodes that need attention are listed
    (chunk,) = [c.input for c in log.activities("grant_node_users")]
    assert [(n["nodeId"], n["ip"], n["port"]) for n in batch.staging.nodes_in(chunk)] == [
        (f"node-{i}", "127.30.0.1", 40000 + i) for i in range(3)
    ]  # the endpoints come from the poll's listing: no second listing
    assert "nodes" not in chunk and chunk["work"] == "work|provision-r1|0|00000"  # no node list in a history
    assert batch.staging.rows == {}  # cleared once granted
    phases = [s["phase"] for s in log.statuses]
    assert phases[:2] == ["selecting-image", "creating-pool"]
    assert phases[-4:] == ["granting-access", "recording-connections", "publishing", "completed"]
    assert "waiting-for-nodes" in phases
    (event,) = [c.input for c in log.activities("publish_event")]
    assert event["type"] == "pool-ready" and event["eventId"] == "provision-r1:pool-ready"
    assert (
        event["statusUrl"] == "http://127.0.0.1:7071/api/pools/pool-1"
        and event["counts"]["usersGranted"] == 6
    )


def test_nodes_idle_early_get_their_users_before_the_others_are_ready():
    early = (pool_json("resizing"), [{"id": "node-0", "state": "idle"}, {"id": "node-1", "state": "starting"},
                                     {"id": "node-2", "state": "starting"}])  # fmt: skip
    later = (pool_json("steady"), [{"id": f"node-{i}", "state": "idle"} for i in range(3)])
    batch = Batch(polls=[early, later])
    output, log = run(batch)
    steps = [
        (
            c.name,
            [n["nodeId"] for n in batch.staging.nodes_in(c.input)] if c.name == "grant_node_users" else None,
        )
        for c in log.calls
        if c.kind == "activity" and c.name in ("poll_pool", "grant_node_users")
    ]
    assert steps == [
        ("poll_pool", None),
        ("grant_node_users", ["node-0"]),  # while node-1 and node-2 are still starting
        ("poll_pool", None),  # at once: no timer after a grant
        ("grant_node_users", ["node-1", "node-2"]),  # only the nodes not granted yet
    ]
    assert log.timers == []
    assert output["outcome"] == "completed" and output["progress"]["usersGranted"] == 6
    assert output["progress"]["records"] == 6
    (event,) = [c.input for c in log.activities("publish_event")]
    assert event["connectionsTotal"] == 6
    assert [c["nodeId"] for c in event["connections"]] == ["node-0", "node-0", "node-1", "node-1", "node-2",
                                                            "node-2"]  # fmt: skip


def test_nodes_ready_later_do_not_wait_for_the_grant_of_nodes_ready_before_them():
    early = (pool_json("resizing"), [{"id": "node-0", "state": "idle"}, {"id": "node-1", "state": "starting"},
                                     {"id": "node-2", "state": "starting"}])  # fmt: skip
    later = (pool_json("steady"), [{"id": f"node-{i}", "state": "idle"} for i in range(3)])
    batch = Batch(polls=[early, later])
    output, log = run(batch, timers_first=True)  # node-0's grant is still running when the timer fires
    steps = [
        (
            c.name,
            [n["nodeId"] for n in batch.staging.nodes_in(c.input)] if c.name == "grant_node_users" else None,
        )
        for c in log.calls
        if c.kind in ("activity", "timer") and c.name in ("poll_pool", "grant_node_users", "timer")
    ]
    assert steps == [
        ("poll_pool", None),  # node-0 is staged; its grant starts in a sub-orchestration
        ("timer", None),  # polling goes on meanwhile
        ("poll_pool", None),
        ("grant_node_users", ["node-1", "node-2"]),  # granted without waiting for node-0's grant
        ("grant_node_users", ["node-0"]),  # awaited at the end
    ]
    (sub,) = [c for c in log.calls if c.kind == "sub" and c.name == "grant_staged_batch"]
    assert sub.instance_id == "provision-r1:grant:0" and "node-" not in json.dumps(sub.input)
    chunks = [c.input for c in log.activities("grant_node_users")]
    assert [c["order"] for c in chunks] == [100_000, 0]  # the earlier staging keeps its turn at Batch
    assert output["outcome"] == "completed" and output["progress"]["usersGranted"] == 6


def test_a_run_that_fails_while_a_grant_runs_lets_it_finish_before_clearing_its_work():
    early = (
        pool_json("resizing"),
        [{"id": "node-0", "state": "idle"}, {"id": "node-1", "state": "starting"}],
    )
    deleting = (dict(pool_json(), state="deleting"), [])
    batch = Batch(polls=[early, deleting])
    output, log = run(batch, timers_first=True)
    assert output["outcome"] == "failed" and output["error"]["code"] == "PoolBeingDeleted"
    order = [c.name for c in log.calls if c.name in ("grant_node_users", "clear_grant_work", "publish_event")]
    assert order == ["grant_node_users", "clear_grant_work", "publish_event"]


def test_custom_status_and_event_never_carry_secrets():
    output, log = run(Batch())
    text = json.dumps([log.statuses, output, [c.input for c in log.activities("publish_event")]])
    assert "ciphertext" not in text and "ssh-rsa" not in text


def _nodes(state: str) -> list[dict]:
    return [{"id": f"node-{i}", "state": state} for i in range(3)]


def _gaps(log) -> list[float]:
    return [(b - a).total_seconds() for a, b in zip([NOW, *log.timers], log.timers, strict=False)]


def test_polling_backs_off_with_durable_timers_up_to_the_maximum_while_the_pool_has_no_node():
    allocating = (pool_json("resizing"), [])
    ready = (pool_json(), [{"id": f"node-{i}", "state": "idle"} for i in range(3)])
    output, log = run(Batch(polls=[allocating] * 5 + [ready]))
    assert _gaps(log) == [1.0, 2.0, 4.0, 4.0, 4.0]
    assert output["outcome"] == "completed"


def test_nodes_on_their_way_are_polled_at_the_first_interval_however_long_they_boot():
    # Backing off while nodes boot would leave a node that goes idle unseen for up to the maximum interval.
    allocating = (pool_json("resizing"), [])
    states = ["creating"] * 2 + ["starting"] * 4 + ["waitingforstarttask"] * 4
    booting = [(pool_json(), _nodes(state)) for state in states]
    ready = (pool_json(), _nodes("idle"))
    output, log = run(Batch(polls=[allocating, allocating, *booting, ready]))
    assert _gaps(log) == [1.0, 2.0] + [1.0] * 10
    assert output["outcome"] == "completed"


def test_polls_start_one_interval_apart_whatever_a_poll_takes():
    booting = (pool_json("resizing"), _nodes("starting"))
    ready = (pool_json(), _nodes("idle"))
    batch = Batch(polls=[booting] * 3 + [ready])
    batch.seconds = {"poll_pool": 0.4}  # a listing of many nodes takes a while
    output, log = run(batch)
    assert _gaps(log) == [1.0, 1.0, 1.0]  # timers are due one interval after the start of their poll
    assert [t - NOW for t in log.timers] == [timedelta(seconds=s) for s in (1, 2, 3)]
    slow = Batch(polls=[booting] * 3 + [ready])
    slow.seconds = {"poll_pool": 1.5}  # longer than the interval: the next poll starts at once
    output, log = run(slow)
    assert log.timers == [] and len(log.activities("poll_pool")) == 4 and output["outcome"] == "completed"


def test_a_grant_staged_by_a_poll_longer_than_the_interval_starts_before_the_next_poll():
    # A poll of thousands of nodes can take longer than the interval; the nodes it found ready must not wait
    # for the polls that follow (and, when the pool settles, for the grant of the nodes ready after them).
    early = (pool_json("resizing"), [{"id": "node-0", "state": "idle"}, {"id": "node-1", "state": "starting"},
                                     {"id": "node-2", "state": "starting"}])  # fmt: skip
    later = (pool_json(), _nodes("idle"))
    batch = Batch(polls=[early, early, later])
    batch.seconds = {"poll_pool": 1.5}
    output, log = run(batch)
    order = [c.name for c in log.calls if c.name in ("poll_pool", "grant_staged_batch")]
    assert order[:2] == ["poll_pool", "grant_staged_batch"]  # node-0's grant starts with the next poll
    assert order.count("poll_pool") == 3 and output["outcome"] == "completed"
    assert output["progress"]["usersGranted"] == 6


def test_a_resize_error_fails_fast_and_publishes_pool_failed():
    quota = (pool_json("steady", [{"code": "AccountCoreQuotaReached", "message": "quota reached"}]), [])
    output, log = run(Batch(polls=[quota]))
    assert output["outcome"] == "failed" and output["error"]["code"] == "AccountCoreQuotaReached"
    assert log.timers == [] and not log.activities("grant_node_users") and not log.activities("delete_pool")
    (event,) = [c.input for c in log.activities("publish_event")]
    assert event["type"] == "pool-failed" and event["error"]["code"] == "AccountCoreQuotaReached"
    assert log.statuses[-1]["phase"] == "failed"


def test_a_failed_request_deletes_its_pool_when_the_setting_says_so():
    quota = (pool_json("steady", [{"code": "AccountCoreQuotaReached", "message": "quota reached"}]), [])
    output, log = run(Batch(polls=[quota]), delete_on_failure=True)
    assert [c.input for c in log.activities("delete_pool")] == [{"poolId": "pool-1"}]
    assert output["poolDeleted"] is True


def test_a_pool_of_someone_else_is_never_deleted():
    mismatch = {"ok": False, "error": {"code": "PoolExistsWithDifferentSpec", "message": "vmSize differs"}}
    output, log = run(Batch(created=mismatch), delete_on_failure=True)
    assert output["outcome"] == "failed" and output["error"]["code"] == "PoolExistsWithDifferentSpec"
    assert not log.activities("delete_pool") and not log.activities("poll_pool")


def test_a_failed_start_task_makes_the_request_partial_naming_the_node():
    nodes = [
        {"id": "node-0", "state": "idle"},
        {"id": "node-1", "state": "starttaskfailed", "startTaskInfo": {"exitCode": 3}},
        {"id": "node-2", "state": "idle"},
    ]
    batch = Batch(polls=[(pool_json(), nodes)])
    output, log = run(batch)
    assert output["outcome"] == "partial"
    unusable = [n for n in output["nodes"] if n["outcome"] == "unusable"]
    assert unusable == [
        {
            "nodeId": "node-1",
            "outcome": "unusable",
            "state": "starttaskfailed",
            "reason": "start task failed with exit code 3",
        }
    ]
    granted = {
        n["nodeId"] for c in log.activities("grant_node_users") for n in batch.staging.nodes_in(c.input)
    }
    assert granted == {"node-0", "node-2"}


def test_one_bad_node_does_not_lose_the_others():
    output, log = run(Batch(failing_nodes={"node-2"}))
    assert output["outcome"] == "partial" and output["progress"]["usersGranted"] == 4
    (bad,) = output["nodes"]
    assert (bad["nodeId"], bad["outcome"], bad["usersGranted"]) == ("node-2", "failed", [])
    assert bad["errors"]["alice"]["code"] == "OperationInvalidForCurrentState"


def test_a_chunk_failing_for_good_does_not_lose_the_other_chunks():
    ids = [f"node-{i:03d}" for i in range(60)]
    ready = (dict(pool_json(), targetDedicatedNodes=60), [{"id": n, "state": "idle"} for n in ids])
    output, log = run(Batch(polls=[ready], raising_nodes={"node-055"}), nodes=60)
    assert output["outcome"] == "partial" and output["progress"]["usersGranted"] == 100
    failed = [n for n in output["nodes"] if n["outcome"] == "failed"]
    assert [n["nodeId"] for n in failed] == ids[50:]
    assert failed[0]["errors"]["alice"] == {"code": "ActivityFailed", "message": "connection reset by peer"}


def test_big_pools_grant_in_chunks_of_50_nodes_grouped_in_sub_orchestrations():
    ids = [f"node-{i:04d}" for i in range(1250)]
    ready = (dict(pool_json(), targetDedicatedNodes=1250), [{"id": n, "state": "idle"} for n in ids])
    batch = Batch(polls=[ready])
    output, log = run(batch, nodes=1250)
    subs = [c for c in log.calls if c.kind == "sub"]
    assert [len(c.input["chunks"]) for c in subs] == [10, 10, 5]
    assert [c.instance_id for c in subs] == [f"provision-r1:grant_node_users:{i}" for i in range(3)]
    chunks = [c.input for c in log.activities("grant_node_users")]
    assert [len(batch.staging.nodes_in(c)) for c in chunks] == [50] * 25
    assert [c["order"] for c in chunks] == list(range(25))
    assert not any("node-" in json.dumps(c.input) for c in subs)  # chunk references, not node lists
    assert output["outcome"] == "completed" and output["progress"]["usersGranted"] == 2500
    (event,) = [c.input for c in log.activities("publish_event")]
    assert event["connectionsTotal"] == 2500 and len(event["connections"]) == 100
    assert event["connections"][0] == {"nodeId": "node-0000", "user": "alice", "ip": "127.30.0.1",
                                       "port": 40000}  # fmt: skip


def test_at_the_deadline_ready_nodes_proceed_and_the_rest_are_reported():
    slow = (pool_json("resizing"), [{"id": "node-0", "state": "idle"}, {"id": "node-1", "state": "starting"}])
    output, log = run(Batch(polls=[slow]), deadline=5)
    assert log.timers[-1] == NOW + timedelta(seconds=5)  # never past the deadline
    assert output["outcome"] == "partial"
    assert {n["nodeId"]: n["outcome"] for n in output["nodes"]} == {"node-1": "unusable"}
    assert output["progress"]["usersGranted"] == 2


def test_nothing_ready_by_the_deadline_fails():
    stuck = (pool_json("resizing"), [{"id": "node-0", "state": "creating"}])
    output, log = run(Batch(polls=[stuck]), deadline=3)
    assert output["error"]["code"] == "ProvisionDeadlineExceeded"
    assert all(t <= NOW + timedelta(seconds=3) for t in log.timers)


def test_an_activity_failing_for_good_still_ends_with_a_published_failure():
    def respond(name, data):
        if name == "select_pool_image":
            raise ActivityError("Batch is unreachable")
        return {"published": True}

    output, log = run_orchestrator(
        provision_pool, start_input(), respond, now=NOW, instance_id="provision-r1"
    )
    assert output["outcome"] == "failed"
    assert output["error"] == {"code": "ActivityFailed", "message": "Batch is unreachable"}
    assert [c.input["type"] for c in log.activities("publish_event")] == ["pool-failed"]


def test_cleanup_deletes_per_node_and_marks_only_what_was_removed():
    expired = [
        {"poolId": "p", "nodeId": "n1", "user": "alice", "partitionKey": "p", "rowKey": "n1|alice"},
        {"poolId": "p", "nodeId": "n1", "user": "bob", "partitionKey": "p", "rowKey": "n1|bob", "etag": "v7"},
        {"poolId": "p", "nodeId": "n2", "user": "alice", "partitionKey": "p", "rowKey": "n2|alice"},
    ]

    def respond(name, data):
        if name == "find_expired_records":
            return {"records": expired}
        if name == "delete_node_users":
            ok = data["nodeId"] == "n1"
            return {
                "poolId": data["poolId"],
                "nodeId": data["nodeId"],
                "users": {
                    u: {"ok": ok, "result": "deleted"}
                    if ok
                    else {"ok": False, "error": {"code": "ServerBusy", "message": "busy"}}
                    for u in data["users"]
                },
            }
        if name == "mark_records":
            return {"marked": len(data["keys"])}
        if name == "publish_event":
            return {"published": True}
        raise AssertionError(name)

    output, log = run_orchestrator(
        cleanup_expired_access, {}, respond, now=NOW, instance_id="cleanup-expired-access"
    )
    deletions = [c.input for c in log.activities("delete_node_users")]
    assert deletions == [
        {"poolId": "p", "nodeId": "n1", "users": ["alice", "bob"]},
        {"poolId": "p", "nodeId": "n2", "users": ["alice"]},
    ]
    (mark,) = [c.input for c in log.activities("mark_records")]
    # a record found at a version is marked only at that version (it may have been written again meanwhile)
    assert mark["keys"] == [["p", "n1|alice"], ["p", "n1|bob", "v7"]] and mark["state"] == "expired"
    assert output["found"] == 3 and output["expired"] == 2 and output["failed"][0]["nodeId"] == "n2"
    (event,) = [c.input for c in log.activities("publish_event")]
    assert (event["type"], event["poolId"], event["users"]) == ("access-expired", "p", ["alice", "bob"])


def test_cleanup_with_nothing_expired_does_nothing_else():
    output, log = run_orchestrator(cleanup_expired_access, {}, lambda n, d: {"records": []}, now=NOW)
    assert [c.name for c in log.calls] == ["find_expired_records"] and output["expired"] == 0


def test_revoke_deletes_only_where_the_app_has_records_and_keeps_those_where_it_failed():
    records = [
        {
            "poolId": "p",
            "nodeId": n,
            "user": "alice",
            "partitionKey": "p",
            "rowKey": f"{n}|alice",
            "etag": "v1",
        }
        for n in ("n1", "n2")
    ]

    def respond(name, data):
        if name == "find_user_records":
            return {"records": records}
        if name == "delete_node_users":
            ok = data["nodeId"] == "n1"
            return {
                "poolId": "p",
                "nodeId": data["nodeId"],
                "users": {
                    "alice": {"ok": True, "result": "deleted"}
                    if ok
                    else {"ok": False, "error": {"code": "ServerBusy", "message": "busy"}}
                },
            }
        if name == "mark_records":
            return {"marked": len(data["keys"])}
        if name == "set_grant_state":
            return {"changed": True}
        if name == "publish_event":
            return {"published": True}
        raise AssertionError(name)

    output, log = run_orchestrator(revoke_user_access, {"poolId": "p", "user": "alice"}, respond, now=NOW)
    assert [c.input["nodeId"] for c in log.activities("delete_node_users")] == ["n1", "n2"]
    (mark,) = [c.input for c in log.activities("mark_records")]
    assert mark["state"] == "revoked" and mark["keys"] == [["p", "n1|alice", "v1"]]  # as found: n1 only
    assert [c.input["state"] for c in log.activities("set_grant_state")] == ["revoked"]
    assert log.calls[0].name == "set_grant_state"  # first: a grant of alice still running stops creating her
    (event,) = [c.input for c in log.activities("publish_event")]
    assert event["type"] == "access-revoked" and event["user"] == "alice" and event["recordsRevoked"] == 1
    assert output["deleted"] == 1 and len(output["failed"]) == 1


def test_revoke_deletes_again_a_user_a_running_grant_created_after_the_first_deletion():
    found = [[{"poolId": "p", "nodeId": "n1", "user": "alice", "partitionKey": "p", "rowKey": "n1|alice",
               "etag": etag}] for etag in ("v1", "v2")]  # fmt: skip
    marks = iter([0, 1])  # the first mark finds the record written again (v2): not marked

    def respond(name, data):
        if name == "find_user_records":
            return {"records": found.pop(0)}
        if name == "delete_node_users":
            return {"poolId": "p", "nodeId": "n1", "users": {"alice": {"ok": True, "result": "deleted"}}}
        if name == "mark_records":
            return {"marked": next(marks)}
        return {"changed": True, "published": True}

    output, log = run_orchestrator(revoke_user_access, {"poolId": "p", "user": "alice"}, respond, now=NOW)
    assert [c.input["keys"] for c in log.activities("mark_records")] == [
        [["p", "n1|alice", "v1"]],
        [["p", "n1|alice", "v2"]],
    ]
    assert len(log.activities("delete_node_users")) == 2
    assert (output["nodes"], output["deleted"], output["recordsRevoked"]) == (1, 2, 1)


def test_revoke_with_no_live_records_calls_no_batch_activity():
    def respond(name, data):
        return {"records": []} if name == "find_user_records" else {"marked": 0, "changed": True}

    output, log = run_orchestrator(revoke_user_access, {"poolId": "p", "user": "alice"}, respond, now=NOW)
    assert not log.activities("delete_node_users") and output["nodes"] == 0 and output["deleted"] == 0


def test_a_node_throttled_for_a_while_gets_its_users_after_a_durable_backoff():
    batch = Batch(transient_nodes={"node-1"})
    output, log = run(batch)
    assert output["outcome"] == "completed" and output["progress"]["usersGranted"] == 6
    retried = [
        c for c in batch.created_calls if any(n["nodeId"] == "node-1" for n in batch.staging.nodes_in(c))
    ]
    assert [c.get("attempt", 1) for c in retried] == [1, 2]
    assert [n["nodeId"] for n in retried[1]["nodes"]] == ["node-1"]  # only the throttled node again
    assert len(log.timers) == 2  # one poll wait, one backoff before the retry


def test_a_resize_error_with_some_nodes_allocated_goes_on_and_ends_partial_naming_it():
    quota = [{"code": "AccountCoreQuotaReached", "message": "quota reached"}]
    some = (pool_json("steady", quota), [{"id": f"node-{i}", "state": "idle"} for i in range(2)])
    output, log = run(Batch(polls=[some]))
    assert output["outcome"] == "partial" and output["error"]["code"] == "AccountCoreQuotaReached"
    assert output["progress"]["usersGranted"] == 4
    (event,) = [c.input for c in log.activities("publish_event")]
    assert event["type"] == "pool-ready" and event["error"]["code"] == "AccountCoreQuotaReached"
    assert event["connectionsTotal"] == 4 and {c["user"] for c in event["connections"]} == {"alice", "bob"}


def test_a_pool_larger_than_requested_with_every_user_granted_is_completed():
    more = (pool_json(), [{"id": f"node-{i}", "state": "idle"} for i in range(4)])
    output, _ = run(Batch(polls=[more]))
    assert output["outcome"] == "completed" and output["progress"]["usersGranted"] == 8


def test_the_pool_is_managed_with_its_delete_after_before_any_user_is_created():
    batch = Batch()
    started = start_input()
    started["request"]["deleteAfter"] = "2030-01-03T00:00:00Z"
    run_orchestrator(provision_pool, started, batch, now=NOW, instance_id="provision-r1")
    (registered,) = batch.registered
    assert registered["createdByApp"] is True and registered["deleteAfter"] == "2030-01-03T00:00:00Z"
    assert registered["busyUntil"] == "2030-01-01T13:10:00Z"  # deadline (600 s) + an hour
    assert batch.states == [{"poolId": "pool-1", "busyUntil": "2030-01-01T12:00:01Z"}]
