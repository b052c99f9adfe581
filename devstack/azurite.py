"""Azurite (Storage emulator, from node_modules) as a managed child process, and its connection string."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from devstack.process import LOOPBACK, ManagedProcess, free_port, port_open, start_process

REPO_ROOT = Path(__file__).resolve().parent.parent

# Azurite's documented, well-known development account (not a secret).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass
class AzuriteEndpoints:
    host: str
    blob_port: int
    queue_port: int
    table_port: int

    @property
    def connection_string(self) -> str:
        """Explicit connection string (works on any ports, unlike UseDevelopmentStorage=true)."""
        h = self.host
        return (
            "DefaultEndpointsProtocol=http;"
            f"AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
            f"BlobEndpoint=http://{h}:{self.blob_port}/{DEV_ACCOUNT};"
            f"QueueEndpoint=http://{h}:{self.queue_port}/{DEV_ACCOUNT};"
            f"TableEndpoint=http://{h}:{self.table_port}/{DEV_ACCOUNT}"
        )


def azurite_binary() -> str:
    local = REPO_ROOT / "node_modules" / ".bin" / "azurite"
    if local.exists():
        return str(local)
    found = shutil.which("azurite")
    if found:
        return found
    raise FileNotFoundError("azurite is not installed: run `npm ci` in the repository root")


def start_azurite(
    data_dir: Path,
    *,
    host: str = LOOPBACK,
    ports: tuple[int, int, int] | None = None,
    in_memory: bool = False,
    log_path: Path | None = None,
) -> tuple[ManagedProcess, AzuriteEndpoints]:
    """Start Azurite on loopback and wait until blob, queue and table ports accept connections."""
    blob, queue, table = ports or (free_port(host), free_port(host), free_port(host))
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        azurite_binary(),
        "--silent",
        "--blobHost",
        host,
        "--blobPort",
        str(blob),
        "--queueHost",
        host,
        "--queuePort",
        str(queue),
        "--tableHost",
        host,
        "--tablePort",
        str(table),
        "--skipApiVersionCheck",
        "--disableTelemetry",
        "--loose",
    ]
    argv += ["--inMemoryPersistence"] if in_memory else ["--location", str(data_dir)]
    proc = start_process("azurite", argv, log_path=log_path or data_dir / "azurite.log")
    endpoints = AzuriteEndpoints(host, blob, queue, table)
    proc.wait_ready(lambda: all(port_open(host, p) for p in (blob, queue, table)), timeout=60)
    proc.info["connection_string"] = endpoints.connection_string
    return proc, endpoints
