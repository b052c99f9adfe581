"""Invalid queue messages: each kind is rejected by name (status entry + event), reaches Batch zero times, is
not retried and not poisoned; the same message delivered twice makes one pool."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from devstack.process import wait_until

from .conftest import request_for, unique_pool


def small_rsa_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    return key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def invalid_requests(key: str) -> list[tuple[str, dict, str]]:
    """(kind, request, the field its rejection must name)."""
    user = {"name": "alice", "sshPublicKey": key}

    def base(kind: str, **changes) -> dict:
        body = request_for(unique_pool(f"bad-{kind}"), [dict(user)])
        body.update(changes)
        return body

    cases = [
        ("unknown-field", base("unknown", colour="blue"), "colour"),
        ("missing-vm-size", {k: v for k, v in base("novm").items() if k != "vmSize"}, "vmSize"),
        ("too-many-nodes", base("many", nodes={"dedicated": 11}), "nodes"),
        (
            "reserved-ports",
            base("ports", ssh={"frontendPortRange": {"start": 50000, "end": 50100}}),
            "ssh.frontendPortRange",
        ),
        ("bad-user-name", base("name", users=[dict(user, name="Alice")]), "users[0].name"),
        ("weak-key", base("key", users=[dict(user, sshPublicKey=small_rsa_key())]), "users[0].sshPublicKey"),
        ("expiry-too-far", base("expiry", users=[dict(user, expiry="P2D")]), "users[0].expiry"),
        ("bad-image", base("image", image={"os": "ubuntu", "version": "latest"}), "image.version"),
    ]
    return cases


def wait_queue_empty(stack, name: str) -> None:
    queue = stack.queue(name)
    wait_until(
        lambda: queue.get_queue_properties().approximate_message_count == 0,
        60,
        f"queue {name} to drain",
        interval=0.25,
    )


def test_each_kind_of_invalid_request_is_rejected_by_name_without_calling_batch(stack, keys):
    cases = invalid_requests(keys["alice"].public)
    stack.batch.reset_counters()
    for _, body, _ in cases:
        stack.send(body)
    stack.send("this is not JSON")

    for kind, body, field in cases:
        state = stack.wait_for_phase(body["poolId"])
        assert state["phase"] == "rejected", (kind, state)
        assert field in {e["field"] for e in state["errors"]}, (kind, state["errors"])
        event = stack.wait_for_event(
            lambda e, pool=body["poolId"]: e["type"] == "request-rejected" and e["poolId"] == pool, kind
        )
        assert field in {e["field"] for e in event["errors"]}
    garbage = stack.wait_for_event(
        lambda e: e["type"] == "request-rejected" and e["poolId"] is None,
        "the rejection of a non-JSON message",
    )
    assert garbage["errors"][0]["field"] == "request" and garbage["requestId"].startswith("message-")

    wait_queue_empty(stack, "pool-requests")  # consumed once, not retried
    assert stack.queue("pool-requests-poison").get_queue_properties().approximate_message_count == 0
    assert stack.batch.counters()["calls"] == {} or sum(stack.batch.counters()["calls"].values()) == 0


def test_the_same_message_delivered_twice_makes_one_pool(stack, keys):
    pool_id = unique_pool("twice")
    body = request_for(pool_id, [{"name": "alice", "sshPublicKey": keys["alice"].public}], nodes=1)
    stack.batch.reset_counters()
    stack.send(body)
    stack.send(body)
    assert stack.wait_for_phase(pool_id)["phase"] == "completed"
    wait_queue_empty(stack, "pool-requests")
    calls = stack.batch.counters()["calls"]
    assert calls.get("create_pool") == 1, calls
    assert [p.id for p in stack.batch.client().list_pools() if p.id == pool_id] == [pool_id]
