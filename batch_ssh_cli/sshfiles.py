"""Your side of SSH: which key pair to use, the per-pool Include file ~/.ssh/config.d/batch-ssh-POOL with
short aliases (POOL-0, POOL-1, ... in node-id order), the one Include line in ~/.ssh/config, and the argv of
the system ssh client for one node."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from batch_ssh_cli.errors import FAILED, USAGE, CliError

DEFAULT_KEYS = ("id_ed25519", "id_rsa")
INCLUDE_PREFIX = "batch-ssh-"


@dataclass
class KeyPair:
    """The public key file you send (its one-line text) and the private key ssh logs in with."""

    public_path: Path
    public: str
    private_path: Path


def ssh_dir() -> Path:
    return Path.home() / ".ssh"


def find_key(explicit: str | None) -> KeyPair:
    """--key (a .pub file, or the private key next to its .pub), else ~/.ssh/id_ed25519.pub, id_rsa.pub."""
    if explicit:
        path = Path(explicit).expanduser()
        public_path = path if path.suffix == ".pub" else path.with_name(path.name + ".pub")
        candidates = [public_path]
    else:
        candidates = [ssh_dir() / f"{name}.pub" for name in DEFAULT_KEYS]
    for public_path in candidates:
        if public_path.is_file():
            text = public_path.read_text().strip()
            if not text.startswith(("ssh-", "ecdsa-")) or "PRIVATE KEY" in text:
                raise CliError(f"{public_path} is not an OpenSSH public key line", USAGE)
            return KeyPair(public_path.resolve(), text, public_path.resolve().with_suffix(""))
    tried = ", ".join(str(p) for p in candidates)
    raise CliError(
        f"no SSH public key found (looked for {tried}); "
        "create one with `ssh-keygen -t ed25519` or pass --key",
        USAGE,
    )


def fingerprint(public: str) -> str | None:
    """The OpenSSH SHA256 fingerprint of a public key line (as the app's records show it)."""
    parts = public.split()
    try:
        blob = base64.b64decode(parts[1], validate=True) if len(parts) > 1 else b""
    except (binascii.Error, ValueError):
        return None
    if not blob:
        return None
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def identity_for(key: str | None) -> Path | None:
    """The private key file for --key / the default keys, if it exists (None: let ssh choose)."""
    try:
        pair = find_key(key)
    except CliError:
        return None
    return pair.private_path if pair.private_path.is_file() else None


def node_order(records: list[dict], user: str) -> list[dict]:
    """The user's active connection records, one per node, in node-id order: index i is alias POOL-i."""
    mine = [r for r in records if r.get("user") == user and r.get("state") == "active"]
    by_node = {r["nodeId"]: r for r in sorted(mine, key=lambda r: r["nodeId"])}
    return [by_node[n] for n in sorted(by_node)]


def include_file(pool_id: str) -> Path:
    return ssh_dir() / "config.d" / f"{INCLUDE_PREFIX}{pool_id}"


def render_include(pool_id: str, user: str, nodes: list[dict], identity: Path | None) -> str:
    """One Host block per node: alias POOL-i, HostName, Port, User, IdentityFile, and a HostKeyAlias per node
    so a node that reuses an address and port of an earlier pool does not trip known_hosts."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [
        f"# Written by batch-ssh at {now} for pool {pool_id}, user {user}.",
        f"# `batch-ssh ssh-config {pool_id}` rewrites it; `batch-ssh revoke {pool_id}` removes it.",
    ]
    for index, record in enumerate(nodes):
        lines += [
            "",
            f"# node {record['nodeId']}, expires {record.get('expiresAt')}",
            f"Host {pool_id}-{index}",
            f"    HostName {record['ip']}",
            f"    Port {record['port']}",
            f"    User {user}",
            f"    HostKeyAlias batch-ssh.{pool_id}.{record['nodeId']}",
        ]
        if identity:
            lines += [f"    IdentityFile {_quoted(str(identity))}", "    IdentitiesOnly yes"]
    return "\n".join(lines) + "\n"


def _quoted(value: str) -> str:
    return f'"{value}"' if " " in value else value


def include_line() -> str:
    """The line in ~/.ssh/config: an absolute path, so it also holds with `ssh -F ~/.ssh/config`."""
    return f"Include {_quoted(str(ssh_dir() / 'config.d' / INCLUDE_PREFIX))}*"


def write_include(pool_id: str, text: str) -> tuple[Path, bool]:
    """Write the pool's Include file and make sure ~/.ssh/config includes it (once, at the top, where Include
    applies to every host). (the file, whether ~/.ssh/config changed)."""
    directory = ssh_dir() / "config.d"
    ssh_dir().mkdir(mode=0o700, exist_ok=True)
    directory.mkdir(mode=0o700, exist_ok=True)
    path = include_file(pool_id)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    temporary.replace(path)
    return path, ensure_include_line()


def ensure_include_line() -> bool:
    """Add the Include line to ~/.ssh/config unless it is there; True when the file changed."""
    config = ssh_dir() / "config"
    line = include_line()
    existing = config.read_text() if config.exists() else ""
    if any(current.strip() == line for current in existing.splitlines()):
        return False
    header = "# batch-ssh: per-pool host aliases (batch-ssh ssh-config POOL)\n"
    fd = os.open(config.with_name("config.tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(header + line + "\n" + ("\n" + existing if existing else ""))
    if config.exists():
        os.chmod(config.with_name("config.tmp"), config.stat().st_mode & 0o777)
    config.with_name("config.tmp").replace(config)
    return True


def remove_include(pool_id: str) -> Path | None:
    """Remove the pool's Include file; the path when there was one."""
    path = include_file(pool_id)
    if path.exists():
        path.unlink()
        return path
    return None


def pick_node(nodes: list[dict], pool_id: str, which: str | None) -> tuple[int, dict]:
    """NODE_INDEX, NODE_ID or the alias POOL-i; the first node when left out."""
    if not nodes:
        raise CliError(
            f"you have no active access on pool {pool_id} (try `batch-ssh grant {pool_id}`)", FAILED
        )
    if which is None:
        return 0, nodes[0]
    index_text = which.removeprefix(f"{pool_id}-")
    if index_text.isdigit():
        index = int(index_text)
        if index < len(nodes):
            return index, nodes[index]
        raise CliError(
            f"pool {pool_id} has nodes 0..{len(nodes) - 1} for you; there is no node {index}", FAILED
        )
    for index, record in enumerate(nodes):
        if record["nodeId"] == which:
            return index, record
    raise CliError(f"no active access to a node {which!r} on pool {pool_id}", FAILED)


def ssh_argv(
    record: dict, user: str, identity: Path | None, options: list[str], command: list[str]
) -> list[str]:
    argv = ["ssh", "-p", str(record["port"])]
    if identity:
        argv += ["-i", str(identity), "-o", "IdentitiesOnly=yes"]
    argv += ["-o", f"HostKeyAlias=batch-ssh.{record['poolId']}.{record['nodeId']}"]
    for option in options:
        argv += ["-o", option]
    return [*argv, f"{user}@{record['ip']}", *command]
