"""Runs start tasks for real: `/bin/sh -c <commandLine>` in the node's startup working directory with the
Batch environment, stdout.txt / stderr.txt kept in the startup dir. Like real nodes, every node runs its own
start task as soon as it gets there: there is no shared limit, so one pool's slow start tasks never hold up
another pool's nodes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import BinaryIO

from devstack.batch_emulator.nodefs import NodeLayout


class StartTaskRunner:
    """Starts each task in its own process group so it can be stopped as a whole (pool delete, shutdown)."""

    def __init__(self) -> None:
        self._running: set[asyncio.subprocess.Process] = set()

    @property
    def running(self) -> int:
        return len(self._running)

    async def run(self, command_line: str, layout: NodeLayout, env: dict[str, str]) -> int:
        """Run once and return the exit code (128+N when killed by signal N)."""
        out, err = await asyncio.to_thread(_open_output, layout)
        with out, err:
            proc = await asyncio.create_subprocess_exec(
                "/bin/sh",
                "-c",
                command_line,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=layout.startup_wd,
                env=env,
                start_new_session=True,
            )
        self._running.add(proc)
        try:
            code = await proc.wait()
        except asyncio.CancelledError:
            _kill_group(proc)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(proc.wait()), 5)
            raise
        finally:
            self._running.discard(proc)
        return code if code >= 0 else 128 - code

    def kill_all(self) -> None:
        for proc in list(self._running):
            _kill_group(proc)


def _open_output(layout: NodeLayout) -> tuple[BinaryIO, BinaryIO]:
    layout.prepare_start_task()
    out = open(layout.startup / "stdout.txt", "wb")  # noqa: SIM115 - closed by the caller
    try:
        return out, open(layout.startup / "stderr.txt", "wb")  # noqa: SIM115
    except BaseException:
        out.close()
        raise


def write_injected_failure(layout: NodeLayout, exit_code: int) -> None:
    """The files a start task failed by fault injection leaves (it does not run)."""
    layout.prepare_start_task()
    (layout.startup / "stdout.txt").write_bytes(b"")
    (layout.startup / "stderr.txt").write_text(
        f"start task failure injected by the emulator (exit code {exit_code})\n"
    )


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
