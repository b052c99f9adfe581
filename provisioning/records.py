"""SSH connection records: one per (pool, node, user), their states, their Table entity form, and three
renderings.

A record is written `pending` before its user is created on the node (so the app always knows what it may
have created), becomes `active` once the user exists, and ends `revoked`, `expired`, `gone` (the node or pool
vanished) or `deleted` (the app deleted the pool); `stateChangedAt` says when.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from provisioning.durations import format_timestamp, parse_timestamp

PENDING, ACTIVE = "pending", "active"
REVOKED, EXPIRED, GONE, DELETED = "revoked", "expired", "gone", "deleted"
STATES = (PENDING, ACTIVE, REVOKED, EXPIRED, GONE, DELETED)
LIVE_STATES = (PENDING, ACTIVE)  # the app has, or may have, created this user on this node
ENDED_STATES = (REVOKED, EXPIRED, GONE, DELETED)


def partition_key(pool_id: str) -> str:
    """Records of a pool share a partition; Batch pool ids are case-insensitive, so the key is lower case."""
    return pool_id.lower()


def row_key(node_id: str, user: str) -> str:
    return f"{node_id}|{user}"


def _dt(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return parse_timestamp(str(value))


@dataclass(frozen=True)
class SshConnectionRecord:
    """Where and as whom to SSH into one node; never holds a secret (only the key's fingerprint)."""

    pool_id: str
    node_id: str
    user: str
    ip: str
    port: int
    expires_at: datetime
    is_admin: bool
    auth_method: str  # "ssh-key" | "password" | "ssh-key+password"
    key_fingerprint: str
    key_type: str
    state: str
    node_state: str
    request_id: str
    granted_at: datetime
    state_changed_at: datetime | None = None
    # the version (Table storage ETag) of the entity the record was read from; None for a record built here
    etag: str | None = field(default=None, compare=False)

    @property
    def partition_key(self) -> str:
        return partition_key(self.pool_id)

    @property
    def row_key(self) -> str:
        return row_key(self.node_id, self.user)

    def with_state(self, state: str, at: datetime) -> SshConnectionRecord:
        return replace(self, state=state, state_changed_at=at)

    def to_entity(self) -> dict[str, Any]:
        """The Table entity; times are real datetimes so service-side filters compare them correctly."""
        entity: dict[str, Any] = {
            "PartitionKey": self.partition_key,
            "RowKey": self.row_key,
            "PoolId": self.pool_id,
            "NodeId": self.node_id,
            "UserName": self.user,
            "Ip": self.ip,
            "Port": self.port,
            "ExpiresAt": self.expires_at,
            "IsAdmin": self.is_admin,
            "AuthMethod": self.auth_method,
            "KeyFingerprint": self.key_fingerprint,
            "KeyType": self.key_type,
            "State": self.state,
            "NodeState": self.node_state,
            "RequestId": self.request_id,
            "GrantedAt": self.granted_at,
        }
        if self.state_changed_at is not None:
            entity["StateChangedAt"] = self.state_changed_at
        return entity

    @classmethod
    def from_entity(cls, entity: dict[str, Any]) -> SshConnectionRecord:
        return cls(
            pool_id=entity["PoolId"],
            node_id=entity["NodeId"],
            user=entity["UserName"],
            ip=entity.get("Ip", ""),
            port=int(entity.get("Port") or 0),
            expires_at=_dt(entity["ExpiresAt"]),
            is_admin=bool(entity.get("IsAdmin", False)),
            auth_method=entity.get("AuthMethod", "ssh-key"),
            key_fingerprint=entity.get("KeyFingerprint", ""),
            key_type=entity.get("KeyType", ""),
            state=entity.get("State", ACTIVE),
            node_state=entity.get("NodeState", ""),
            request_id=entity.get("RequestId", ""),
            granted_at=_dt(entity.get("GrantedAt")) or _dt(entity["ExpiresAt"]),
            state_changed_at=_dt(entity.get("StateChangedAt")),
            etag=(getattr(entity, "metadata", None) or {}).get("etag"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "poolId": self.pool_id,
            "nodeId": self.node_id,
            "user": self.user,
            "ip": self.ip,
            "port": self.port,
            "state": self.state,
            "nodeState": self.node_state,
            "isAdmin": self.is_admin,
            "authMethod": self.auth_method,
            "keyFingerprint": self.key_fingerprint or None,
            "keyType": self.key_type or None,
            "expiresAt": format_timestamp(self.expires_at),
            "grantedAt": format_timestamp(self.granted_at),
            "stateChangedAt": format_timestamp(self.state_changed_at) if self.state_changed_at else None,
            "requestId": self.request_id,
        }


def auth_method(user: dict[str, Any]) -> str:
    has_key = user.get("sshPublicKey") or user.get("keyFingerprint")
    methods = (["ssh-key"] if has_key else []) + (["password"] if user.get("hasPassword") else [])
    return "+".join(methods) or "ssh-key"


def record_for(
    *,
    pool_id: str,
    node_id: str,
    user: dict[str, Any],
    endpoint: dict[str, Any],
    request_id: str,
    state: str,
    at: datetime,
) -> SshConnectionRecord:
    """The record of one (node, user) with the node's SSH endpoint `{"ip", "port", "state"}`."""
    return SshConnectionRecord(
        pool_id=pool_id,
        node_id=node_id,
        user=user["name"],
        ip=endpoint.get("ip") or "",
        port=int(endpoint.get("port") or 0),
        expires_at=parse_timestamp(user["expiryTime"]),
        is_admin=bool(user.get("admin")),
        auth_method=auth_method(user),
        key_fingerprint=user.get("keyFingerprint", ""),
        key_type=user.get("keyType", ""),
        state=state,
        node_state=endpoint.get("state") or "",
        request_id=request_id,
        granted_at=at,
        state_changed_at=at,
    )


def render_table(records: list[SshConnectionRecord]) -> str:
    """The seed's `node | state | ip | port` table, one block per user (active records only)."""
    active = [r for r in records if r.state == ACTIVE]
    if not active:
        return "no active SSH connections\n"
    blocks = []
    for user in sorted({r.user for r in active}):
        rows = sorted((r for r in active if r.user == user), key=lambda r: r.node_id)
        header = ("node", "state", "ip", "port")
        cells = [header] + [(r.node_id, r.node_state, r.ip, str(r.port)) for r in rows]
        widths = [max(len(row[i]) for row in cells) for i in range(4)]
        lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
        lines.insert(1, "-+-".join("-" * w for w in widths))
        expiry = format_timestamp(rows[0].expires_at)
        blocks.append(f"user {user} (pool {rows[0].pool_id}, expires {expiry})\n" + "\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def ssh_host_alias(record: SshConnectionRecord) -> str:
    return f"{record.pool_id}-{record.node_id}-{record.user}"


def render_ssh_config(records: list[SshConnectionRecord]) -> str:
    """An OpenSSH client config block per active (node, user); add your IdentityFile for the key shown."""
    active = sorted((r for r in records if r.state == ACTIVE), key=lambda r: (r.user, r.node_id))
    blocks = []
    for r in active:
        key_note = f"key {r.key_fingerprint}" if r.key_fingerprint else "password"
        blocks.append(
            f"# pool {r.pool_id}, node {r.node_id}, user {r.user}: {key_note}, "
            f"expires {format_timestamp(r.expires_at)}\n"
            f"Host {ssh_host_alias(r)}\n"
            f"    HostName {r.ip}\n"
            f"    Port {r.port}\n"
            f"    User {r.user}\n"
        )
    return "\n".join(blocks) if blocks else "# no active SSH connections\n"
