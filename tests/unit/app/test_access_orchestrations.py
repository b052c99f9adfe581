"""Grant, reconcile and pool deletion, driven step by step with scripted activity results: what is checked
before anything is changed, what is left alone, and what each announces."""

from __future__ import annotations

from orchestrations.granting import grant_pool_access
from orchestrations.reconcile import reconcile_pool
from provisioning.reconcile import plan_pool

from .conftest import NOW
from .orchestration_driver import Staging, grant_chunk, run_orchestrator

ALICE = {
    "name": "alice",
    "admin": False,
    "expiryTime": "2030-01-02T00:00:00Z",
    "sshPublicKey": "ssh-rsa AAAA",
    "keyFingerprint": "SHA256:a",
    "keyType": "rsa",
}


def grant_input(pool_id="their-pool"):
    return {
        "request": {"kind": "grant-access", "requestId": "g1", "poolId": pool_id, "users": [ALICE],
                    "fingerprint": "f"},
        "options": {"statusUrl": f"http://127.0.0.1:7071/api/pools/{pool_id}"},
    }  # fmt: skip


class Responder:
    def __init__(self, inspect=None, nodes=("n1", "n2"), survey=None, records=(), grants=(ALICE,)):
        self.inspect = inspect or {"ok": True}
        self.nodes, self.survey, self.records, self.grants = list(nodes), survey, list(records), list(grants)
        self.staging = Staging()

    def _staged(self, data):
        ready = [[n, "127.30.0.1", 40000 + i, "idle"] for i, n in enumerate(self.nodes)]
        staged = self.staging.stage(data, ready)
        return {"staged": staged} if staged else {}

    def __call__(self, name, data):
        answers = {
            "inspect_pool": lambda: self.inspect,
            "register_managed_pool": lambda: {"createdByApp": False, "grants": 1},
            "poll_pool": lambda: {
                "usable": len(self.nodes),
                "problems": [],
                "counts": {"ready": len(self.nodes), "pending": 1, "failed": 0, "unavailable": 0},
                **self._staged(data),
            },
            "grant_node_users": lambda: grant_chunk(data, self.staging),
            "clear_grant_work": lambda: self.staging.clear(data),
            "connection_sample": lambda: self.staging.sample(data),
            "read_grant_work": lambda: self.staging.read(data),
            "publish_event": lambda: {"published": True},
            "pool_access_state": lambda: {"records": self.records},
            "active_grants": lambda: {"users": self.grants},
            "survey_pool": lambda: self.survey,
            "mark_records": lambda: {"marked": len(data["keys"])},
            "mark_pool_records": lambda: {"marked": 2},
            "refresh_node_states": lambda: {"changed": len(data["nodeStates"])},
            "set_managed_pool_state": lambda: {"poolId": data["poolId"]},
            "delete_pool": lambda: {"deleted": True, "alreadyGone": False},
        }
        return answers[name]()


def test_a_grant_on_a_pool_that_does_not_exist_changes_nothing_and_says_404():
    missing = {"ok": False, "status": 404, "error": {"code": "PoolNotFound", "message": "no pool their-pool"}}
    output, log = run_orchestrator(grant_pool_access, grant_input(), Responder(inspect=missing), now=NOW)
    assert (output["outcome"], output["status"], output["error"]["code"]) == ("rejected", 404, "PoolNotFound")
    assert [c.name for c in log.calls] == ["inspect_pool", "publish_event"]
    (event,) = [c.input for c in log.activities("publish_event")]
    assert event["type"] == "request-rejected" and event["errors"][0]["field"] == "poolId"


class BatchDown(Responder):
    """Batch answers `activity` (and everything after it) transient, for ever."""

    def __init__(self, activity):
        super().__init__()
        self.down = activity

    def __call__(self, name, data):
        if name == self.down:
            return {"transient": {"code": "ServerBusy", "message": "try later", "retryAfter": 30}}
        return super().__call__(name, data)


def test_batch_down_until_the_deadline_ends_a_grant_failed_and_announced_not_as_a_crash():
    for down in ("inspect_pool", "poll_pool"):
        output, log = run_orchestrator(grant_pool_access, grant_input(), BatchDown(down), now=NOW)
        assert output["outcome"] == "failed" and output["error"]["code"] == "ServerBusy", down
        assert "until the deadline" in output["error"]["message"] and log.timers  # retried until then
        (event,) = [c.input for c in log.activities("publish_event")]
        assert event["type"] == "access-failed" and event["error"]["code"] == "ServerBusy"
        assert not log.activities("grant_node_users")
        registered = bool(log.activities("register_managed_pool"))
        assert registered == (down == "poll_pool")
        # once registered, the pool is handed back to reconcile and nothing staged stays behind
        assert bool(log.activities("set_managed_pool_state")) == registered
        assert bool(log.activities("clear_grant_work")) == registered


def test_a_grant_manages_the_pool_then_grants_every_usable_node_and_announces_it():
    output, log = run_orchestrator(grant_pool_access, grant_input(), Responder(), now=NOW)
    names = [c.name for c in log.calls if c.kind == "activity"]
    assert names[:4] == ["inspect_pool", "register_managed_pool", "poll_pool", "grant_node_users"]
    assert output["outcome"] == "completed" and output["progress"]["usersGranted"] == 2
    assert output["nodesPending"] == 1
    (registered,) = [c.input for c in log.activities("register_managed_pool")]
    assert registered["createdByApp"] is False
    (event,) = [c.input for c in log.activities("publish_event")]
    assert event["type"] == "access-granted" and event["users"] == ["alice"]
    assert [(c["nodeId"], c["port"]) for c in event["connections"]] == [("n1", 40000), ("n2", 40001)]
    assert "sshPublicKey" not in str(event) and "ssh-rsa" not in str(event)


def record(node, state="active", node_state="idle", **extra):
    return {"poolId": "p", "nodeId": node, "user": "alice", "partitionKey": "p", "rowKey": f"{node}|alice",
            "state": state, "nodeState": node_state, "expiresAt": ALICE["expiryTime"],
            "keyFingerprint": ALICE["keyFingerprint"], "isAdmin": False, **extra}  # fmt: skip


def survey(**nodes):
    return {
        "exists": True,
        "poolState": "active",
        "nodes": {n: {"state": s, "category": "ready" if s in ("idle", "running") else "pending",
                      "ip": "127.30.0.1", "port": 40000} for n, s in nodes.items()},
    }  # fmt: skip


def test_reconcile_plans_only_what_changed():
    records = [record("n1"), record("n2", node_state="idle"), record("n9")]
    plan = plan_pool(survey(n1="idle", n2="running", n3="idle", n4="starting"), records, [ALICE])
    assert plan["jobs"] == [{"nodeId": "n3", "users": ["alice"]}]  # n1, n2 are right; n4 not ready yet
    assert plan["gone"] == [["p", "n9|alice"]]
    assert plan["nodeStates"] == {"n2": "running"}
    assert plan["nodeCounts"] == {"total": 4, "usable": 3}


def test_reconcile_reapplies_a_rotated_key_or_a_pending_record():
    rotated = dict(ALICE, keyFingerprint="SHA256:new")
    plan = plan_pool(survey(n1="idle", n2="idle"), [record("n1"), record("n2", state="pending")], [rotated])
    assert [j["nodeId"] for j in plan["jobs"]] == ["n1", "n2"]
    assert plan_pool(survey(n1="idle"), [record("n1")], [ALICE])["jobs"] == []


def test_reconcile_grants_a_node_that_joined_and_announces_it():
    responder = Responder(survey=survey(n1="idle", n2="idle"), records=[record("n1")])
    job = {"poolId": "p", "createdByApp": True, "deleteAfter": None, "now": "2030-01-01T12:00:00Z"}
    output, log = run_orchestrator(reconcile_pool, job, responder, now=NOW, instance_id="reconcile:p")
    (chunk,) = [c.input for c in log.activities("grant_node_users")]
    assert [(n["nodeId"], n["ip"], n["port"]) for n in chunk["nodes"]] == [("n2", "127.30.0.1", 40000)]
    assert output["changed"] and output["nodesGranted"] == ["n2"]
    (event,) = [c.input for c in log.activities("publish_event")]
    assert event["type"] == "nodes-reconciled" and event["nodesGranted"] == ["n2"]


def test_reconcile_of_a_pool_that_is_already_right_writes_nothing_and_publishes_nothing():
    responder = Responder(survey=survey(n1="idle"), records=[record("n1")])
    job = {"poolId": "p", "createdByApp": True, "nodeCounts": {"total": 1, "usable": 1},
           "now": "2030-01-01T12:00:00Z"}  # fmt: skip
    output, log = run_orchestrator(reconcile_pool, job, responder, now=NOW, instance_id="reconcile:p")
    assert [c.name for c in log.calls] == ["pool_access_state", "active_grants", "survey_pool"]
    assert output["changed"] is False


def test_reconcile_marks_the_records_of_a_vanished_pool_gone():
    responder = Responder(
        survey={"exists": False, "poolState": "missing", "nodes": {}}, records=[record("n1")]
    )
    job = {"poolId": "p", "createdByApp": False, "now": "2030-01-01T12:00:00Z"}
    output, log = run_orchestrator(reconcile_pool, job, responder, now=NOW, instance_id="reconcile:p")
    assert [c.input["state"] for c in log.activities("mark_pool_records")] == ["gone"]
    assert output["poolGone"] and not log.activities("grant_node_users")


def test_reconcile_deletes_a_pool_the_app_created_once_its_delete_after_passed():
    job = {
        "poolId": "p",
        "createdByApp": True,
        "deleteAfter": "2030-01-01T11:00:00Z",
        "now": "2030-01-01T12:00:00Z",
    }
    output, log = run_orchestrator(reconcile_pool, job, Responder(), now=NOW, instance_id="reconcile:p")
    assert [c.input for c in log.activities("delete_pool")] == [{"poolId": "p"}]
    assert [c.input["state"] for c in log.activities("mark_pool_records")] == ["deleted"]
    (event,) = [c.input for c in log.activities("publish_event")]
    assert event["type"] == "pool-deleted" and event["reason"] == "deleteAfter"
    later = dict(job, deleteAfter="2030-01-01T13:00:00Z", createdByApp=True)
    _, log = run_orchestrator(reconcile_pool, later, Responder(survey=survey(n1="idle")), now=NOW)
    assert not log.activities("delete_pool")
    theirs = dict(job, createdByApp=False)
    _, log = run_orchestrator(reconcile_pool, theirs, Responder(survey=survey(n1="idle")), now=NOW)
    assert not log.activities("delete_pool")  # never a pool the app did not create


def test_reconcile_leaves_alone_a_node_where_someone_else_has_a_user_of_that_name():
    theirs = dict(ALICE, foreignNodes=["n2"])
    plan = plan_pool(survey(n1="idle", n2="idle"), [], [theirs])
    assert plan["jobs"] == [{"nodeId": "n1", "users": ["alice"]}]


def test_reconcile_stays_away_from_a_pool_a_request_is_working_on():
    job = {
        "poolId": "p",
        "createdByApp": True,
        "busyUntil": "2030-01-01T12:30:00Z",
        "now": "2030-01-01T12:00:00Z",
    }
    output, log = run_orchestrator(reconcile_pool, job, Responder(survey=survey(n1="idle")), now=NOW)
    assert output == {"poolId": "p", "changed": False, "busy": True} and log.calls == []
    later = dict(job, now="2030-01-01T12:30:01Z")  # the run finished (or crashed long ago)
    _, log = run_orchestrator(reconcile_pool, later, Responder(survey=survey(n1="idle")), now=NOW)
    assert [n["nodeId"] for c in log.activities("grant_node_users") for n in c.input["nodes"]] == ["n1"]
