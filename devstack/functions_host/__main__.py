"""`python -m devstack.functions_host --app-dir DIR`: run a Functions app on loopback until SIGTERM/SIGINT;
with `--check`, only have Azure's Python runtime index and load the app, list its functions and exit."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from devstack.functions_host.host_bindings import check_supported
from devstack.functions_host.server import FunctionsHost, check_loopback
from devstack.functions_host.settings import SettingsError, apply_settings, load_local_settings
from devstack.functions_host.worker import AppLoadError, PythonWorker

DEFAULT_PORT = 7071


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.functions_host",
        description="Run an Azure Functions Python (v2 model) app locally, with durable functions.",
    )
    parser.add_argument(
        "--app-dir", required=True, type=Path, help="directory holding function_app.py and host.json"
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on (127.0.0.0/8)")
    parser.add_argument(
        "--port", type=int, help="TCP port (default: local.settings.json Host.LocalHttpPort, or 7071)"
    )
    parser.add_argument(
        "--data-dir", type=Path, help="keys, timer status and durable store (default: APP_DIR/.devstack)"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="index and load the app through azure-functions-runtime, list its functions, exit (0: accepted)",
    )
    args = parser.parse_args(argv)
    try:
        check_loopback(args.host)
    except ValueError as exc:
        parser.error(str(exc))
    if args.port is not None and not 0 <= args.port < 65536:
        parser.error(f"--port must be from 0 to 65535 (got {args.port})")
    if not args.app_dir.is_dir():
        parser.error(f"--app-dir {args.app_dir} is not a directory")
    return args


def configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stdout,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    for noisy in ("azure", "aiohttp.access", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


async def check(app_dir: Path) -> int:
    """Index and load the app as Azure would, print its functions; 1 with the runtime's message if refused."""
    worker = PythonWorker()
    try:
        specs = await worker.start(app_dir)
        check_supported(specs)
    except AppLoadError as exc:
        print(f"functions-host: error: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        worker.stop()
    print(f"azure-functions-runtime accepted {len(specs)} functions:")
    for spec in specs:
        print(f"  {spec.name}: {spec.trigger_type}")
    return 0


async def serve(host: FunctionsHost) -> int:
    """Start, print the ready banner, wait for SIGTERM/SIGINT, stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await host.start()
    except Exception as exc:
        await host.stop()
        host.log.debug("start failed", exc_info=exc)
        print(f"functions-host: error: {exc}", file=sys.stderr, flush=True)
        return 1
    print("\n".join(host.banner()), flush=True)
    await stop.wait()
    host.log.info("stopping")
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)
    await host.stop()
    host.log.info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging()
    app_dir = args.app_dir.resolve()
    try:
        settings = load_local_settings(app_dir)
    except SettingsError as exc:
        print(f"functions-host: error: {exc}", file=sys.stderr)
        return 1
    apply_settings(settings.values)
    if args.check:
        return asyncio.run(check(app_dir))
    port = args.port if args.port is not None else settings.local_http_port or DEFAULT_PORT
    host = FunctionsHost(app_dir, host=args.host, port=port, data_dir=args.data_dir)
    return asyncio.run(serve(host))


def exit_now(code: int) -> None:
    """Exit without joining function threads still running (their invocations are abandoned; queue
    messages reappear and durable work re-runs from the store)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
