"""The whole dev stack on loopback: Azurite, the Batch emulator and the Functions host running this app."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from devstack.azurite import AzuriteEndpoints, start_azurite
from devstack.batch_emulator.launcher import BatchEmulatorEndpoint, start_batch_emulator
from devstack.functions_host.launcher import HostEndpoint, start_functions_host
from devstack.process import LOOPBACK, ManagedProcess, free_port

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Stack:
    """Endpoints of a running dev stack, and the processes behind them (stopped in reverse order)."""

    azurite: AzuriteEndpoints
    batch: BatchEmulatorEndpoint
    host: HostEndpoint
    processes: list[ManagedProcess] = field(default_factory=list)

    def describe(self) -> str:
        return "\n".join(
            [
                f"  Azurite        blob/queue/table on {self.azurite.host}:"
                f"{self.azurite.blob_port}/{self.azurite.queue_port}/{self.azurite.table_port}",
                f"  Batch emulator {self.batch.url}  account={self.batch.account}  (well-known dev key)",
                f"  Functions host {self.host.url}/api  function key={self.host.key}",
            ]
        )


def app_settings(azurite: AzuriteEndpoints, batch: BatchEmulatorEndpoint) -> dict[str, str]:
    """Settings that point the real function_app.py at the local services (fast polling on one machine)."""
    return {
        "AzureWebJobsStorage": azurite.connection_string,
        "BATCH_ACCOUNT_URL": batch.url,
        "BATCH_ACCOUNT_NAME": batch.account,
        "BATCH_ACCOUNT_KEY": batch.key,
        "IDLE_POLL_INTERVAL": "PT1S",
    }


@contextlib.contextmanager
def running_stack(
    data_dir: Path,
    *,
    app_dir: Path = REPO_ROOT,
    host_port: int | None = None,
    azurite_ports: tuple[int, int, int] | None = None,
    batch_port: int | None = None,
    timing: str = "fast",
    extra_settings: dict[str, str] | None = None,
    emulator_args: list[str] | None = None,
) -> Iterator[Stack]:
    """Start Azurite, the emulator (with `emulator_args`, e.g. a larger `--max-nodes-per-pool`) and the host
    (each awaited until ready); stop all of them on exit."""
    data_dir.mkdir(parents=True, exist_ok=True)
    processes: list[ManagedProcess] = []
    try:
        az_proc, az = start_azurite(data_dir / "azurite", ports=azurite_ports)
        processes.append(az_proc)
        batch_proc, batch = start_batch_emulator(
            data_dir / "batch",
            port=batch_port,
            timing=timing,
            log_path=data_dir / "batch-emulator.log",
            extra_args=emulator_args,
        )
        processes.append(batch_proc)
        host_port = host_port or free_port()
        env = {
            **app_settings(az, batch),
            "APP_BASE_URL": f"http://{LOOPBACK}:{host_port}",
            **(extra_settings or {}),
        }
        host_proc, host = start_functions_host(
            app_dir,
            port=host_port,
            env=env,
            data_dir=data_dir / "host",
            log_path=data_dir / "functions-host.log",
        )
        processes.append(host_proc)
        yield Stack(azurite=az, batch=batch, host=host, processes=processes)
    finally:
        for proc in reversed(processes):
            proc.stop()
