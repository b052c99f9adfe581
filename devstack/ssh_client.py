"""The system OpenSSH client as the dev stack, demo and tests use it: non-interactive options, throwaway keys,
running a command on a node."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

# No prompts, no host-key bookkeeping (emulated nodes come and go on reused ports), only the given key.
SSH_OPTIONS: list[str] = [
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "ConnectTimeout=10",
    "-o",
    "LogLevel=ERROR",
]


@dataclass
class SshKey:
    """A key pair on disk: the private key file and the public key's OpenSSH one-line text."""

    private: Path
    public: str


def generate_key(
    directory: Path,
    name: str = "id_rsa",
    *,
    key_type: str = "rsa",
    bits: int | None = 2048,
    comment: str | None = None,
) -> SshKey:
    """A fresh key pair without a passphrase (ssh-keygen): `directory/name` and `directory/name.pub`."""
    path = directory / name
    argv = ["ssh-keygen", "-q", "-t", key_type]
    if bits is not None:
        argv += ["-b", str(bits)]
    argv += ["-N", ""]
    if comment is not None:
        argv += ["-C", comment]
    subprocess.run([*argv, "-f", str(path)], check=True)
    return SshKey(path, Path(f"{path}.pub").read_text().strip())


def _key_path(key: Path | SshKey) -> str:
    return str(key.private if isinstance(key, SshKey) else key)


def ssh_command(key: Path | SshKey, user: str, ip: str, port: int, command: str) -> list[str]:
    """The argv that runs `command` as `user` on `ip:port` with only `key`, without prompts."""
    return ["ssh", "-i", _key_path(key), "-p", str(port), *SSH_OPTIONS, f"{user}@{ip}", command]


def scp_command(key: Path | SshKey, port: int, *paths: str, legacy: bool = False) -> list[str]:
    """The argv that copies between `paths` (remote ones as `user@ip:path`) on `port`; `legacy` uses the
    original scp protocol instead of SFTP (-O)."""
    return ["scp", *(["-O"] if legacy else []), "-i", _key_path(key), "-P", str(port), *SSH_OPTIONS, *paths]


def run_ssh(
    key: Path | SshKey,
    user: str,
    ip: str,
    port: int,
    command: str = "hostname",
    *,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run `command` on the node: its exit code (255: ssh itself failed), stdout and stderr as text."""
    return subprocess.run(
        ssh_command(key, user, ip, port, command), capture_output=True, text=True, timeout=timeout
    )


def run_with_password(ip: str, port: int, user: str, password: str, command: str = "hostname") -> str:
    """Log in with a password and return the command's stdout (raises on refusal). Uses asyncssh, since the
    OpenSSH client reads passwords only from a terminal."""
    import asyncio

    import asyncssh

    async def run() -> str:
        async with asyncssh.connect(
            ip,
            port,
            username=user,
            password=password,
            known_hosts=None,
            client_keys=None,
            agent_path=None,
            preferred_auth="password",
        ) as conn:
            return (await conn.run(command, check=True)).stdout

    return asyncio.run(run())
