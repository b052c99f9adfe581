"""Each node's SSH server (asyncssh): logins checked at auth time against the live node users (key or
password, expiry), the NAT pool's NSG rules applied to the client address, commands and shells run as real
subprocesses in the user's home on the node (a PTY when asked for), and SFTP / SCP rooted at that home."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import shutil
import signal
import socket
import struct
import termios
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import asyncssh

from devstack.batch_emulator.nodefs import NodeLayout
from devstack.batch_emulator.specs import NatPoolSpec

log = logging.getLogger("batch_emulator.ssh")
CHUNK = 65536


class LoginGate(Protocol):
    """Live answers from the account: may this user log in to this node now, and is the node up."""

    def login_user(self, pool_id: str, node_id: str, name: str): ...

    def ssh_reachable(self, pool_id: str, node_id: str) -> bool: ...


@dataclass
class NodeSshContext:
    """What one node's SSH server needs to know: who it is, where its files are, and who may connect."""

    pool_id: str
    node_id: str
    ip_address: str
    layout: NodeLayout
    base_env: dict[str, str]
    nat_pool: NatPoolSpec
    gate: LoginGate
    connections: set[asyncssh.SSHServerConnection] = field(default_factory=set)
    processes: set[asyncio.subprocess.Process] = field(default_factory=set)

    def session_env(self, user: str, home: Path, term: str | None) -> dict[str, str]:
        env = dict(self.base_env)
        env.update({"HOME": str(home), "USER": user, "LOGNAME": user, "SHELL": login_shell()})
        if term:
            env["TERM"] = term
        if login_shell().endswith("bash"):
            env["PS1"] = rf"{user}@{self.node_id[:20]}:\w\$ "
        return env


def login_shell() -> str:
    return shutil.which("bash") or "/bin/sh"


def _interactive_shell() -> list[str]:
    shell = login_shell()
    # bash without rc files, so the prompt (PS1) names the node user and node, not the host machine.
    return [shell, "--norc", "--noprofile", "-i"] if shell.endswith("bash") else [shell, "-i"]


class NodeSshServer(asyncssh.SSHServer):
    """Refuses connections the NSG rules deny or that reach a node that is not up; authenticates live."""

    def __init__(self, ctx: NodeSshContext) -> None:
        self.ctx = ctx
        self.conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        peer = conn.get_extra_info("peername") or ("", 0)
        address, port = peer[0], int(peer[1])
        if not self.ctx.nat_pool.allows(address, port):
            log.info("node %s: connection from %s denied by the NSG rules", self.ctx.node_id, address)
            conn.abort()
            return
        if not self.ctx.gate.ssh_reachable(self.ctx.pool_id, self.ctx.node_id):
            conn.abort()
            return
        self.ctx.connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn is not None:
            self.ctx.connections.discard(self.conn)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        user = self.ctx.gate.login_user(self.ctx.pool_id, self.ctx.node_id, username)
        return bool(user is not None and user.credentials.password_matches(password))

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        user = self.ctx.gate.login_user(self.ctx.pool_id, self.ctx.node_id, username)
        return bool(user is not None and user.credentials.key_matches(key))


class NodeSftpServer(asyncssh.SFTPServer):
    """SFTP (and SCP) with relative paths resolved against the user's home on the node."""

    def __init__(self, chan: asyncssh.SSHServerChannel, ctx: NodeSshContext) -> None:
        super().__init__(chan)
        user = chan.get_extra_info("username")
        self._home = os.fsencode(ctx.layout.prepare_home(user))

    def map_path(self, path: bytes) -> bytes:
        return path if path.startswith(b"/") else os.path.join(self._home, path)

    def exit(self) -> None:
        # OpenSSH's scp (SFTP mode) treats a session without an exit status as failed.
        with contextlib.suppress(Exception):
            self.channel.exit(0)


async def run_session(ctx: NodeSshContext, process: asyncssh.SSHServerProcess) -> None:
    """A command (`ssh host cmd`) or a shell, as a real subprocess on the node."""
    user = process.get_extra_info("username")
    home = await asyncio.to_thread(ctx.layout.prepare_home, user)
    term = process.get_terminal_type()
    env = ctx.session_env(user, home, term)
    command = process.command
    argv = ["/bin/sh", "-c", command] if command else _interactive_shell()
    try:
        if term:
            code = await _run_with_pty(ctx, process, argv, home, env)
        else:
            code = await _run_with_pipes(ctx, process, argv, home, env)
    except Exception:  # a session must never take the server down
        log.exception("node %s: session for %s failed", ctx.node_id, user)
        code = 255
    with contextlib.suppress(Exception):
        process.exit(code)


async def _run_with_pipes(
    ctx: NodeSshContext, process: asyncssh.SSHServerProcess, argv: list[str], home: Path, env: dict[str, str]
) -> int:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=home,
        env=env,
        start_new_session=True,
    )
    ctx.processes.add(proc)
    feeder = asyncio.create_task(_feed_stdin(process, proc.stdin))
    closer = asyncio.create_task(_kill_when_closed(process, proc))
    try:
        await asyncio.gather(_copy_out(proc.stdout, process.stdout), _copy_out(proc.stderr, process.stderr))
        code = await proc.wait()
    finally:
        feeder.cancel()
        closer.cancel()
        _kill_group(proc)
        ctx.processes.discard(proc)
    return _exit_code(code)


async def _feed_stdin(process: asyncssh.SSHServerProcess, stdin: asyncio.StreamWriter | None) -> None:
    if stdin is None:
        return
    try:
        while True:
            try:
                data = await process.stdin.read(CHUNK)
            except (asyncssh.TerminalSizeChanged, asyncssh.BreakReceived, asyncssh.SignalReceived):
                continue
            if not data:
                break
            stdin.write(data)
            await stdin.drain()
        stdin.write_eof()
    except (ConnectionError, BrokenPipeError, OSError, asyncssh.Error):
        pass


async def _copy_out(reader: asyncio.StreamReader | None, writer: asyncssh.SSHWriter) -> None:
    if reader is None:
        return
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, BrokenPipeError, OSError, asyncssh.Error):
        pass


async def _run_with_pty(
    ctx: NodeSshContext, process: asyncssh.SSHServerProcess, argv: list[str], home: Path, env: dict[str, str]
) -> int:
    master, slave = os.openpty()
    _set_window(slave, process.get_terminal_size())
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=home,
            env=env,
            start_new_session=True,
            preexec_fn=_take_controlling_tty,
        )
    finally:
        os.close(slave)
    ctx.processes.add(proc)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    read_transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(master, "rb", buffering=0)
    )
    write_fd = os.dup(master)
    write_transport, _ = await loop.connect_write_pipe(
        asyncio.BaseProtocol, os.fdopen(write_fd, "wb", buffering=0)
    )

    async def feed() -> None:
        try:
            while True:
                try:
                    data = await process.stdin.read(CHUNK)
                except asyncssh.TerminalSizeChanged as change:
                    _set_window(write_fd, change.term_size)
                    continue
                except (asyncssh.BreakReceived, asyncssh.SignalReceived):
                    continue
                if not data:
                    break
                write_transport.write(data)
        except (ConnectionError, OSError, asyncssh.Error):
            pass

    feeder = asyncio.create_task(feed())
    closer = asyncio.create_task(_kill_when_closed(process, proc))
    try:
        await _copy_out(reader, process.stdout)
        code = await proc.wait()
    finally:
        feeder.cancel()
        closer.cancel()
        _kill_group(proc)
        ctx.processes.discard(proc)
        read_transport.close()
        write_transport.close()
    return _exit_code(code)


async def _kill_when_closed(process: asyncssh.SSHServerProcess, proc: asyncio.subprocess.Process) -> None:
    """The client went away (or the node was stopped): end what the session started."""
    with contextlib.suppress(Exception):
        await process.channel.wait_closed()
    _kill_group(proc)


def _take_controlling_tty() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _set_window(fd: int, size: tuple[int, int, int, int]) -> None:
    width, height, pixwidth, pixheight = size
    if width and height:
        with contextlib.suppress(OSError):
            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, pixwidth, pixheight))


def _exit_code(code: int) -> int:
    return code if code >= 0 else 128 - code


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def generate_host_key() -> asyncssh.SSHKey:
    """One ed25519 host key per pool."""
    return asyncssh.generate_private_key("ssh-ed25519")


@dataclass
class NodeListener:
    ctx: NodeSshContext
    acceptor: asyncssh.SSHAcceptor


class SshService:
    """Starts and stops the per-node SSH servers; stopping a node drops its connections and its processes."""

    def __init__(self) -> None:
        self._listeners: dict[tuple[str, str], NodeListener] = {}

    @property
    def count(self) -> int:
        return len(self._listeners)

    async def start_node(self, ctx: NodeSshContext, sock: socket.socket, host_key: asyncssh.SSHKey) -> None:
        sock.listen(64)
        sock.setblocking(False)
        acceptor = await asyncssh.listen(
            sock=sock,
            server_factory=lambda: NodeSshServer(ctx),
            server_host_keys=[host_key],
            process_factory=lambda process: run_session(ctx, process),
            sftp_factory=lambda chan: NodeSftpServer(chan, ctx),
            allow_scp=True,
            encoding=None,
            line_editor=False,
            x509_trusted_certs=None,
            authorized_client_keys=None,
            kbdint_auth=False,
            gss_host=None,
            login_timeout=60,
            keepalive_interval=0,
        )
        self._listeners[(ctx.pool_id.lower(), ctx.node_id)] = NodeListener(ctx, acceptor)

    def stop_node(self, pool_id: str, node_id: str) -> None:
        listener = self._listeners.pop((pool_id.lower(), node_id), None)
        if listener is None:
            return
        listener.acceptor.close()
        for conn in list(listener.ctx.connections):
            conn.abort()
        for proc in list(listener.ctx.processes):
            _kill_group(proc)

    def stop_all(self) -> None:
        for pool_id, node_id in list(self._listeners):
            self.stop_node(pool_id, node_id)
