"""Command line: `python -m devstack.batch_emulator [--port N] ...` runs the Azure Batch emulator until
SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import logging
import os
import resource
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from devstack.batch_emulator import DEV_ACCOUNT, DEV_KEY
from devstack.batch_emulator.catalog import CatalogError, load_catalog
from devstack.batch_emulator.models import USER_EXPIRY_PRECISIONS
from devstack.batch_emulator.network import DEFAULT_SSH_NETWORK, NetworkError, parse_loopback_network
from devstack.batch_emulator.server import EmulatorConfig, EmulatorServer, require_loopback
from devstack.batch_emulator.specs import MAX_NODES_PER_POOL
from devstack.batch_emulator.timing import PROFILES, load_timing

KEY_ENV = "BATCH_EMULATOR_KEY"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.batch_emulator",
        description=(
            "Local Azure Batch data-plane emulator for the azure-batch SDK (SharedKey auth), whose nodes are "
            "real "
            "SSH servers on loopback addresses. Prints one line when ready: "
            "'batch-emulator ready at http://HOST:PORT account=ACCOUNT'. State lives in memory until the "
            "process stops (SIGTERM/SIGINT stop it cleanly)."
        ),
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="bind address; loopback only (127.0.0.0/8). Default: %(default)s"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=0,
        help="HTTP port; 0 picks a free one (printed in the ready line). Default: %(default)s",
    )
    parser.add_argument("--account", default=DEV_ACCOUNT, help="Batch account name. Default: %(default)s")
    parser.add_argument(
        "--key",
        default=None,
        help=f"account key (base64). Default: ${KEY_ENV} or the documented well-known dev key "
        "(see README; not a secret, like Azurite's)",
    )
    parser.add_argument(
        "--catalog",
        type=Path,
        default=None,
        help="JSON file with the supported images (and optionally vmSizes) to serve instead of "
        "the packaged catalog.json",
    )
    parser.add_argument(
        "--timing",
        default="fast",
        help=f"node lifecycle timings: {' | '.join(PROFILES)} | a JSON file of phase seconds. "
        "Default: %(default)s",
    )
    parser.add_argument(
        "--ssh-network",
        default=DEFAULT_SSH_NETWORK,
        help="loopback network for the pools' public IP addresses (one per pool, first pool "
        "gets .0.1). Default: %(default)s",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where node directories live (start task output, user homes); default: a "
        "temporary directory removed at exit",
    )
    parser.add_argument(
        "--user-expiry",
        choices=USER_EXPIRY_PRECISIONS,
        default="day",
        help="how a node user's expiryTime ends its logins: 'day' as the service does it on Linux nodes "
        "(until the end of the expiry's UTC day), or 'second' (exactly at expiryTime, for tests that need "
        "it). Default: %(default)s",
    )
    parser.add_argument(
        "--max-nodes-per-pool",
        type=int,
        default=MAX_NODES_PER_POOL,
        help="largest targetDedicatedNodes + targetLowPriorityNodes of a pool (pools with inter-node "
        "communication: at most 100, as the service documents). Default: %(default)s",
    )
    parser.add_argument(
        "--dedicated-core-quota",
        type=int,
        default=None,
        help="the account's dedicated core quota (cores of the catalog's vmSizes); an allocation beyond it "
        "grants what fits and records AccountCoreQuotaReached on the pool. Default: unlimited",
    )
    parser.add_argument(
        "--low-priority-core-quota",
        type=int,
        default=None,
        help="the same for low-priority (spot) nodes: AccountLowPriorityCoreQuotaReached. Default: unlimited",
    )
    parser.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="stop when the process that started the emulator goes away (used by the launcher)",
    )
    parser.add_argument("--access-log", action="store_true", help="log every HTTP request")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="Default: %(default)s",
    )
    return parser


def _config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> tuple[EmulatorConfig, bool]:
    try:
        host = require_loopback(args.host)
        parse_loopback_network(args.ssh_network)
        catalog = load_catalog(args.catalog)
        timing = load_timing(args.timing)
    except (ValueError, CatalogError, NetworkError) as exc:
        parser.error(str(exc))
    if not 0 <= args.port <= 65535:
        parser.error("--port must be between 0 and 65535")
    if args.max_nodes_per_pool < 1:
        parser.error("--max-nodes-per-pool must be at least 1")
    for name in ("dedicated_core_quota", "low_priority_core_quota"):
        if getattr(args, name) is not None and getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be at least 0")
    key = args.key or os.environ.get(KEY_ENV) or DEV_KEY
    try:
        base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        parser.error("--key must be base64 (the account key as the portal shows it)")
    temporary = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="batch-emulator-")) if temporary else args.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    config = EmulatorConfig(
        host=host,
        port=args.port,
        account=args.account,
        key=key,
        catalog=catalog,
        timing=timing,
        timing_name=args.timing if args.timing in PROFILES else "file",
        ssh_network=args.ssh_network,
        data_dir=data_dir.resolve(),
        user_expiry=args.user_expiry,
        max_nodes_per_pool=args.max_nodes_per_pool,
        dedicated_core_quota=args.dedicated_core_quota,
        low_priority_core_quota=args.low_priority_core_quota,
        access_log=args.access_log,
    )
    return config, temporary


def _raise_open_file_limit() -> None:
    # Every running start task and SSH server holds descriptors; a 2,000-node pool needs more than 1,024.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _use_pidfd_child_watcher() -> None:
    # Python 3.11 watches each child with a thread of its own; pidfds cost nothing per start task.
    # (3.12+ picks pidfds by itself.)
    if sys.version_info < (3, 12) and hasattr(os, "pidfd_open"):
        watcher = asyncio.PidfdChildWatcher()
        watcher.attach_loop(asyncio.get_running_loop())
        asyncio.set_child_watcher(watcher)


async def _watch_parent(stop: asyncio.Event) -> None:
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(1)
    logging.getLogger("batch_emulator").info("the parent process is gone; stopping")
    stop.set()


async def serve(config: EmulatorConfig, *, exit_with_parent: bool = False) -> None:
    _use_pidfd_child_watcher()
    _raise_open_file_limit()
    server = EmulatorServer(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watcher = loop.create_task(_watch_parent(stop)) if exit_with_parent else None
    url = await server.start()
    print(f"batch-emulator ready at {url} account={config.account}", flush=True)
    try:
        await stop.wait()
    finally:
        if watcher is not None:
            watcher.cancel()
        await server.stop()
        logging.getLogger("batch_emulator").info("batch-emulator stopped")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    config, temporary = _config(args, parser)
    try:
        asyncio.run(serve(config, exit_with_parent=args.exit_with_parent))
    finally:
        if temporary:
            shutil.rmtree(config.data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
