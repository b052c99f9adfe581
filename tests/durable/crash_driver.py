"""Runs a durable engine over a store in its own process, for crash tests that SIGKILL it.

    python -m tests.durable.crash_driver --store S [--start NAME ID INPUT_JSON] --wait ID --result R

Its activities record every run in the SQLite file $CRASH_COUNTER_DB (so a test can count re-executions);
`work` items numbered $CRASH_GATE_AFTER or more block until the file $CRASH_GATE_FILE exists. With --start
it starts an instance; it waits for instance --wait to finish, writes its status JSON to R and exits."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sqlite3
import sys
import time
from datetime import timedelta
from pathlib import Path

import azure.durable_functions as df

from tests.durable.support import running_engine

app = df.DFApp()
RUNS_SCHEMA = "CREATE TABLE IF NOT EXISTS runs (item TEXT NOT NULL, at REAL NOT NULL)"


def record_run(item: str) -> None:
    with sqlite3.connect(os.environ["CRASH_COUNTER_DB"], timeout=30) as db:
        db.execute(RUNS_SCHEMA)
        db.execute("INSERT INTO runs (item, at) VALUES (?, ?)", (item, time.time()))


def runs_per_item(counter_db: Path) -> dict[str, int]:
    if not counter_db.exists():
        return {}
    with sqlite3.connect(counter_db, timeout=30) as db:
        db.execute(RUNS_SCHEMA)
        return dict(db.execute("SELECT item, COUNT(*) FROM runs GROUP BY item").fetchall())


@app.activity_trigger(input_name="item")
def work(item: int) -> int:
    record_run(str(item))
    if item >= int(os.environ.get("CRASH_GATE_AFTER", "0")):
        gate = Path(os.environ["CRASH_GATE_FILE"])
        while not gate.exists():  # the app's own wait for an external condition
            time.sleep(0.02)
    return item * 2


@app.activity_trigger(input_name="label")
def mark(label: str) -> str:
    record_run(label)
    return label


@app.orchestration_trigger(context_name="context")
def fan(context: df.DurableOrchestrationContext):
    count = context.get_input()
    results = yield context.task_all([context.call_activity("work", i) for i in range(count)])
    return {"count": len(results), "sum": sum(results)}


@app.orchestration_trigger(context_name="context")
def nap(context: df.DurableOrchestrationContext):
    before = yield context.call_activity("mark", "before")
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=context.get_input()))
    after = yield context.call_activity("mark", "after")
    return [before, after]


async def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    async with running_engine(
        app, Path(args.store), task_hub="CrashHub", max_concurrent_activities=10
    ) as engine:
        if args.start:
            name, instance_id, input_json = args.start
            await engine.start_new(name, instance_id, input_json)
            print(f"started {instance_id}", flush=True)
        status = await engine.wait_for(args.wait, 300)
        Path(args.result).write_text(json.dumps(status))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", required=True)
    parser.add_argument("--start", nargs=3, metavar=("NAME", "ID", "INPUT_JSON"))
    parser.add_argument("--wait", required=True, help="instance id to wait for")
    parser.add_argument("--result", required=True)
    asyncio.run(main(parser.parse_args()))
