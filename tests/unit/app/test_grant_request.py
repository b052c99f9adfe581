"""The access grant request: the pool request's user rules, the pool from the URL or the queue message, and
a default requestId that makes a resend a duplicate but a rotation a new request."""

from __future__ import annotations

from provisioning.grant_request import validate_access_grant

from .conftest import NOW


def test_a_grant_takes_the_pool_from_the_url_and_normalises_users(settings, rsa_key):
    body = {"users": [{"name": "alice", "sshPublicKey": rsa_key, "expiry": "PT1H"}]}
    result = validate_access_grant(body, settings, NOW, pool_id="pool-7")
    assert result.ok, result.errors
    grant = result.request.body
    assert (grant["kind"], grant["poolId"]) == ("grant-access", "pool-7")
    assert grant["users"][0]["expiryTime"] == "2030-01-01T13:00:00Z"
    assert grant["users"][0]["keyFingerprint"].startswith("SHA256:")
    again = validate_access_grant(body, settings, NOW, pool_id="pool-7").request.body
    assert again["requestId"] == grant["requestId"]  # a resend is the same request
    rotated = {"users": [{"name": "alice", "sshPublicKey": rsa_key.split()[0] + " " + rsa_key.split()[1]}]}
    rotation = validate_access_grant(rotated, settings, NOW, pool_id="pool-7").request
    assert rotation.request_id != grant["requestId"]


def test_a_grant_names_each_broken_rule(settings, rsa_key):
    body = {"poolId": "other", "users": [{"name": "Root"}, {"name": "bob", "sshPublicKey": rsa_key}], "x": 1}
    result = validate_access_grant(body, settings, NOW, pool_id="pool-7")
    fields = {e.field: e.rule for e in result.errors}
    assert set(fields) == {"poolId", "x", "users[0].name", "users[0]"}
    assert fields["poolId"] == "must be the pool named in the URL (or left out)"


def test_a_queue_grant_needs_its_pool_and_kind(settings, rsa_key):
    users = [{"name": "alice", "sshPublicKey": rsa_key}]
    missing = validate_access_grant({"kind": "grant-access", "users": users}, settings, NOW)
    assert {e.field for e in missing.errors} == {"poolId"}
    ok = validate_access_grant({"kind": "grant-access", "poolId": "p1", "users": users}, settings, NOW)
    assert ok.ok and ok.request.pool_id == "p1"
    wrong = validate_access_grant({"kind": "make-pool", "poolId": "p1", "users": users}, settings, NOW)
    assert {e.field for e in wrong.errors} == {"kind"}
