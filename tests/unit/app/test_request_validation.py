"""Every request rule: a broken rule is reported with the field and the rule, and never echoes a secret."""

from __future__ import annotations

import copy
import json
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet

from provisioning.identity import default_request_id, instance_id_for
from provisioning.passwords import PasswordCipher
from provisioning.request import request_schema, validate_request

from .conftest import NOW


def errors_of(body, settings):
    result = validate_request(body, settings, NOW)
    assert not result.ok
    return {e.field: e.rule for e in result.errors}


def mutate(request: dict, path: str, value) -> dict:
    """Set (or with value=DELETE remove) a dotted path such as users.0.name."""
    body = copy.deepcopy(request)
    *parents, last = path.split(".")
    node = body
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    key = int(last) if last.isdigit() else last
    if value is DELETE:
        del node[key]
    else:
        node[key] = value
    return body


DELETE = object()

CASES = [
    # (path, value, field, words in the rule)
    ("poolId", DELETE, "poolId", "is required"),
    ("vmSize", DELETE, "vmSize", "is required"),
    ("nodes", DELETE, "nodes", "is required"),
    ("image", DELETE, "image", "is required"),
    ("users", DELETE, "users", "is required"),
    ("colour", "blue", "colour", "is not a known field"),
    ("requestId", "has space", "requestId", "1-64 letters, digits"),
    ("requestId", "x" * 65, "requestId", "1-64 letters, digits"),
    ("poolId", "bad/pool", "poolId", "Batch pool id rules"),
    ("poolId", "p" * 65, "poolId", "Batch pool id rules"),
    ("poolId", 7, "poolId", "must be a string"),
    ("vmSize", "Standard D2", "vmSize", "VM size name"),
    ("nodes", {}, "nodes", "dedicated and/or spot"),
    ("nodes", {"dedicated": 0, "spot": 0}, "nodes", "at least 1"),
    ("nodes", {"dedicated": 8, "spot": 3}, "nodes", "at most 10 (MAX_NODES_PER_REQUEST"),
    ("nodes.dedicated", -1, "nodes.dedicated", "at least 0"),
    ("nodes.dedicated", 1.5, "nodes.dedicated", "whole number"),
    ("nodes.dedicated", True, "nodes.dedicated", "whole number"),
    ("nodes.lowPriority", 1, "nodes.lowPriority", "is not a known field"),
    ("image", {"os": "Ubuntu!"}, "image.os", "operating system family"),
    ("image", {"version": "24.04"}, "image.os", "is required"),
    ("image", {"os": "ubuntu", "version": "latest"}, "image.version", "a version such as 24.04"),
    ("image", {"os": "ubuntu", "flavour": "x"}, "image.flavour", "is not a known field"),
    ("image", {"publisher": "canonical", "offer": "o"}, "image.sku", "is required"),
    (
        "image",
        {"publisher": "canonical", "offer": "o", "sku": "s", "allowUnverified": "yes"},
        "image.allowUnverified",
        "true or false",
    ),
    ("startTask", {"elevated": True}, "startTask.commandLine", "is required"),
    ("startTask.commandLine", "", "startTask.commandLine", "must not be empty"),
    ("startTask.waitForSuccess", "no", "startTask.waitForSuccess", "true or false"),
    ("startTask.maxRetries", 11, "startTask.maxRetries", "at most 10"),
    (
        "startTask.environment",
        {"1BAD": "x"},
        "startTask.environment.1BAD",
        "is not a valid environment variable name",
    ),
    ("startTask.environment", {"GOOD": 3}, "startTask.environment.GOOD", "must be a string"),
    ("ssh.frontendPortRange", {"start": 40000}, "ssh.frontendPortRange.end", "is required"),
    (
        "ssh.frontendPortRange",
        {"start": 40100, "end": 40000},
        "ssh.frontendPortRange",
        "start must not be greater",
    ),
    ("ssh.frontendPortRange", {"start": 49990, "end": 50100}, "ssh.frontendPortRange", "50000-55000"),
    ("ssh.frontendPortRange", {"start": 52000, "end": 52100}, "ssh.frontendPortRange", "50000-55000"),
    ("ssh.frontendPortRange", {"start": 40000, "end": 40010}, "ssh.frontendPortRange", "at least 40 ports"),
    ("ssh.frontendPortRange", {"start": 0, "end": 100}, "ssh.frontendPortRange.start", "at least 1"),
    ("ssh.frontendPortRange", {"start": 65500, "end": 65535}, "ssh.frontendPortRange.end", "at most 65534"),
    ("ssh.allowedSourcePrefixes", ["10.0.0.0/33"], "ssh.allowedSourcePrefixes[0]", "CIDR prefix"),
    ("ssh.allowedSourcePrefixes", ["everyone"], "ssh.allowedSourcePrefixes[0]", "CIDR prefix"),
    ("ssh.allowedSourcePrefixes", ["*", "10.0.0.0/8"], "ssh.allowedSourcePrefixes", 'must not combine "*"'),
    ("ssh.allowedSourcePrefixes", [], "ssh.allowedSourcePrefixes", "at least 1 item"),
    ("users", [], "users", "at least 1 item"),
    ("users.0.name", "Alice", "users[0].name", "Linux user name"),
    ("users.0.name", "9lives", "users[0].name", "Linux user name"),
    ("users.0.name", "a" * 33, "users[0].name", "Linux user name"),
    ("users.0.name", "root", "users[0].name", "reserved by the system"),
    ("users.0.name", DELETE, "users[0].name", "is required"),
    ("users.0.admin", "yes", "users[0].admin", "true or false"),
    ("users.0.sshPublicKey", "ssh-rsa notbase64!", "users[0].sshPublicKey", "OpenSSH format"),
    (
        "users.0.sshPublicKey",
        "-----BEGIN OPENSSH PRIVATE KEY-----",
        "users[0].sshPublicKey",
        "never a private key",
    ),
    ("users.0.expiry", "tomorrow", "users[0].expiry", "ISO 8601 time with an offset"),
    ("users.0.expiry", "2030-01-02T00:00:00", "users[0].expiry", "ISO 8601 time with an offset"),
    ("users.0.expiry", "2029-12-31T00:00:00Z", "users[0].expiry", "must be in the future"),
    ("users.0.expiry", "P3D", "users[0].expiry", "at most P2D from now (MAX_ACCESS_DURATION"),
    ("users.0.expiry", "2030-01-05T00:00:00Z", "users[0].expiry", "at most P2D from now"),
    ("users.0.expiry", "P1M", "users[0].expiry", "ISO 8601 time with an offset"),
    ("users.0.role", "x", "users[0].role", "is not a known field"),
]


@pytest.mark.parametrize(("path", "value", "field", "words"), CASES, ids=[f"{c[2]}:{c[3]}" for c in CASES])
def test_each_rule_names_its_field_and_rule(valid_request, settings, path, value, field, words):
    errors = errors_of(mutate(valid_request, path, value), settings)
    assert field in errors, errors
    assert words in errors[field]


def test_the_valid_request_passes_and_is_normalised(valid_request, settings, rsa_key):
    result = validate_request(json.dumps(valid_request).encode(), settings, NOW)
    assert result.ok, result.errors
    body = result.request.body
    assert body["requestId"] == "req-1"
    assert body["nodes"] == {"dedicated": 2, "spot": 1}
    assert body["startTask"] == {
        "commandLine": "echo hi",
        "elevated": True,
        "waitForSuccess": True,
        "maxRetries": 0,
        "environment": {"A": "1"},
    }
    user = body["users"][0]
    assert user["expiryTime"] == "2030-01-01T20:00:00Z"  # PT8H from NOW
    assert user["keyType"] == "rsa" and user["keyFingerprint"].startswith("SHA256:")
    assert user["sshPublicKey"] == rsa_key
    assert result.request.warnings == []


def test_not_json_and_not_an_object_are_rejected(settings):
    assert errors_of(b"{not json", settings) == {
        "request": "must be a JSON object (the body is not valid JSON)"
    }
    assert errors_of(b"[1, 2]", settings) == {"request": "must be a JSON object"}


def test_all_broken_rules_are_reported_together(valid_request, settings):
    body = mutate(mutate(valid_request, "poolId", "bad/pool"), "users.0.name", "Bob")
    assert {"poolId", "users[0].name"} <= set(errors_of(body, settings))


def test_defaults_fill_request_id_ports_prefixes_and_expiry(valid_request):
    from provisioning.settings import load_settings

    settings = load_settings({"DEFAULT_SSH_SOURCE_PREFIXES": "10.1.0.0/16, 192.168.0.7"})
    body = copy.deepcopy(valid_request)
    del body["requestId"], body["ssh"], body["startTask"], body["users"][0]["expiry"]
    result = validate_request(body, settings, NOW)
    assert result.ok, result.errors
    normalised = result.request.body
    assert normalised["requestId"] == default_request_id("pool-1")
    assert normalised["ssh"] == {
        "frontendPortRange": {"start": 40000, "end": 40039},
        "allowedSourcePrefixes": ["10.1.0.0/16", "192.168.0.7"],
    }
    assert normalised["deleteAfter"] is None
    assert normalised["startTask"] is None
    assert normalised["users"][0]["expiryTime"] == "2030-01-02T12:00:00Z"  # DEFAULT_ACCESS_DURATION P1D


def test_port_range_must_hold_a_port_per_node(valid_request):
    from provisioning.settings import load_settings

    body = mutate(valid_request, "nodes", {"dedicated": 60})
    body = mutate(body, "ssh.frontendPortRange", {"start": 40000, "end": 40049})
    errors = errors_of(body, load_settings({}))
    assert errors["ssh.frontendPortRange"] == "must hold at least one port per node (60 nodes requested)"


def test_user_names_must_be_unique(valid_request, settings, ed25519_key):
    body = copy.deepcopy(valid_request)
    body["users"].append({"name": "alice", "sshPublicKey": ed25519_key})
    assert errors_of(body, settings)["users[1].name"] == "must be unique in the request (users[0] has it too)"


def test_a_user_needs_a_key_or_a_password(valid_request, settings):
    body = mutate(valid_request, "users.0.sshPublicKey", DELETE)
    assert errors_of(body, settings)["users[0]"] == "needs an sshPublicKey or a password"


def test_small_rsa_keys_are_refused(valid_request, settings, small_rsa_key):
    body = mutate(valid_request, "users.0.sshPublicKey", small_rsa_key)
    assert errors_of(body, settings)["users[0].sshPublicKey"] == (
        "must be an RSA key of at least 2048 bits (this one has 1024)"
    )


@pytest.mark.parametrize("key_fixture", ["ed25519_key", "ecdsa_key"])
def test_non_rsa_keys_pass_with_a_warning(valid_request, settings, key_fixture, request):
    body = mutate(valid_request, "users.0.sshPublicKey", request.getfixturevalue(key_fixture))
    result = validate_request(body, settings, NOW)
    assert result.ok
    (warning,) = result.request.warnings
    assert warning.field == "users[0].sshPublicKey"
    assert "Azure Batch documents RSA keys" in warning.rule


def test_a_password_needs_the_encryption_key_setting(valid_request, settings):
    body = mutate(valid_request, "users.0.password", "correct horse battery staple")
    errors = errors_of(body, settings)
    assert errors["users[0].password"] == (
        "is not accepted: the app has no PASSWORD_ENCRYPTION_KEY setting (use sshPublicKey)"
    )


def test_short_password_rule_does_not_echo_it(valid_request, settings_with_passwords):
    body = mutate(valid_request, "users.0.password", "s3cret!")
    result = validate_request(body, settings_with_passwords, NOW)
    assert {e.field: e.rule for e in result.errors} == {"users[0].password": "must be at least 12 characters"}
    assert "s3cret" not in json.dumps(result.errors_json())


def test_a_password_leaves_the_entry_point_only_encrypted(valid_request, settings_with_passwords):
    secret = "correct horse battery staple"
    body = mutate(valid_request, "users.0.password", secret)
    result = validate_request(body, settings_with_passwords, NOW)
    assert result.ok, result.errors
    assert secret not in json.dumps(result.request.body)
    assert result.request.body["users"][0]["hasPassword"] is True
    cipher = PasswordCipher(settings_with_passwords.password_encryption_key)
    payload = result.request.orchestration_input(cipher)
    assert secret not in json.dumps(payload)
    assert cipher.decrypt(payload["users"][0]["passwordCiphertext"]) == secret
    assert secret not in repr(result.request)


def test_a_resend_is_the_same_request_and_another_one_is_not(valid_request, settings):
    first = validate_request(valid_request, settings, NOW).request
    again = validate_request(copy.deepcopy(valid_request), settings, NOW + timedelta(minutes=5)).request
    other = validate_request(mutate(valid_request, "vmSize", "Standard_D4s_v3"), settings, NOW).request
    assert first.body["fingerprint"] == again.body["fingerprint"] != other.body["fingerprint"]
    assert instance_id_for(valid_request) == instance_id_for(first.body) == "provision-req-1"


def test_the_password_does_not_change_the_fingerprint(valid_request, settings_with_passwords):
    one = validate_request(mutate(valid_request, "users.0.password", "a" * 12), settings_with_passwords, NOW)
    two = validate_request(mutate(valid_request, "users.0.password", "b" * 12), settings_with_passwords, NOW)
    assert one.request.body["fingerprint"] == two.request.body["fingerprint"]


def test_the_published_schema_is_valid_and_rejects_unknown_fields():
    from jsonschema import Draft202012Validator

    schema = request_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False


def test_the_example_request_is_valid(settings, rsa_key):
    from provisioning.request import SCHEMA_PATH

    example = json.loads((SCHEMA_PATH.parent.parent / "examples" / "request.json").read_text())
    example = json.loads(json.dumps(example).replace("__DEMO_PUBLIC_KEY__", rsa_key))
    result = validate_request(example, settings, NOW)
    assert result.ok, result.errors
    assert example["vmSize"] == "Standard_D2s_v3"
    assert example["nodes"]["dedicated"] + example["nodes"].get("spot", 0) == 3
    assert example["image"] == {"os": "ubuntu", "version": "24.04"}
    assert example["startTask"]["commandLine"]


def test_ciphertext_from_another_key_is_refused():
    secret = PasswordCipher(Fernet.generate_key().decode()).encrypt("x" * 12)
    with pytest.raises(ValueError, match="PASSWORD_ENCRYPTION_KEY is not the key"):
        PasswordCipher(Fernet.generate_key().decode()).decrypt(secret)


def test_no_prefixes_and_no_default_is_rejected_naming_the_field(valid_request, settings):
    body = mutate(valid_request, "ssh", {"frontendPortRange": {"start": 40000, "end": 40099}})
    rule = errors_of(body, settings)["ssh.allowedSourcePrefixes"]
    assert rule.startswith("is required") and "DEFAULT_SSH_SOURCE_PREFIXES" in rule


def test_an_explicit_star_is_accepted_with_a_warning(valid_request, settings):
    body = mutate(valid_request, "ssh.allowedSourcePrefixes", ["*"])
    result = validate_request(body, settings, NOW)
    assert result.ok
    assert [w.field for w in result.request.warnings] == ["ssh.allowedSourcePrefixes"]
    assert "every address" in result.request.warnings[0].rule


@pytest.mark.parametrize(
    ("value", "expected"),
    [("P1D", "2030-01-02T12:00:00Z"), ("2030-01-01T18:00:00+02:00", "2030-01-01T16:00:00Z")],
)
def test_delete_after_is_resolved_to_a_time(valid_request, settings, value, expected):
    result = validate_request(dict(valid_request, deleteAfter=value), settings, NOW)
    assert result.ok and result.request.body["deleteAfter"] == expected


@pytest.mark.parametrize(
    ("value", "words"),
    [("P31D", "at most P30D from now (MAX_POOL_LIFETIME"), ("2020-01-01T00:00:00Z", "in the future"),
     ("soon", "ISO 8601"), ("P999999999D", "ISO 8601")],
)  # fmt: skip
def test_delete_after_beyond_the_lifetime_cap_or_malformed_is_rejected(valid_request, settings, value, words):
    assert words in errors_of(dict(valid_request, deleteAfter=value), settings)["deleteAfter"]
