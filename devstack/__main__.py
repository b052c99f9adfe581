"""`python -m devstack up | demo`: run the whole dev stack, or the main job on it, from one command."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from devstack.process import ServiceExitedError
from devstack.stack import REPO_ROOT, running_stack

DEFAULT_DATA_DIR = REPO_ROOT / ".devstack"


def cmd_up(args: argparse.Namespace) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with running_stack(
        args.data_dir / "up",
        host_port=args.host_port,
        azurite_ports=(args.azurite_port, args.azurite_port + 1, args.azurite_port + 2),
        batch_port=args.batch_port,
        timing=args.timing,
    ) as stack:
        print("dev stack running (Ctrl-C or SIGTERM stops all of it):", flush=True)
        print(stack.describe(), flush=True)
        print(f"  logs under {args.data_dir / 'up'}", flush=True)
        stop.wait()
        print("stopping...", flush=True)
    print("stopped.", flush=True)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from devstack.demo import run_demo

    def interrupted(signum: int, _frame) -> None:
        raise SystemExit(128 + signum)  # unwinds through running_stack, which stops every service

    signal.signal(signal.SIGTERM, interrupted)
    return run_demo(args.data_dir / "demo", timing=args.timing)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    parser.add_argument(
        "--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="state and logs (default .devstack/)"
    )
    parser.add_argument(
        "--timing", default="fast", help="emulator node timing profile: fast | realistic | FILE"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start Azurite, the Batch emulator and the Functions host until Ctrl-C")
    up.add_argument("--host-port", type=int, default=7071, help="Functions host port (default 7071)")
    up.add_argument(
        "--azurite-port", type=int, default=10000, help="first of three Azurite ports (default 10000)"
    )
    up.add_argument("--batch-port", type=int, default=8700, help="Batch emulator port (default 8700)")
    up.set_defaults(run=cmd_up)
    demo = sub.add_parser(
        "demo", help="the main job: request a pool through the queue, then ssh into every node"
    )
    demo.set_defaults(run=cmd_demo)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ServiceExitedError as exc:  # e.g. Azure's Python runtime refused the app: say why, exit 1
        print(f"devstack: error: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
