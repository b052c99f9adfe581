"""`python -m bench [NAME ...] [--option=value ...]`: run the benchmarks (all by default) one after another;
options go to the benchmarks that take them (`python -m bench access --help`)."""

from __future__ import annotations

import argparse
import importlib
import inspect

BENCHMARKS = {
    "batch_emulator": "bench.batch_emulator_bench",
    "host": "bench.host_bench",
    "app": "bench.app_bench",
    "access": "bench.access_bench",
    "faults": "bench.fault_bench",
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run: {', '.join(BENCHMARKS)} (default: all)")
    args, extra = parser.parse_known_args()
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    for name in args.names or list(BENCHMARKS):
        print(f"== {name} ==", flush=True)
        benchmark = importlib.import_module(BENCHMARKS[name]).main
        benchmark(extra) if inspect.signature(benchmark).parameters else benchmark()


if __name__ == "__main__":
    main()
