"""Local Functions host benchmark: the durable engine's overhead on a 1,000-activity fan-out run through
the host, as a ratio against calling the same activity 1,000 times from a thread pool of the same size;
and the time the SDK's orchestrator handle takes to replay one episode over a ~3,000-event history that
the engine built."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from devstack.functions_host.durable.engine import DurableEngine
from devstack.functions_host.durable_bridge import DURABLE_STORE
from devstack.functions_host.host_config import load_host_config
from devstack.functions_host.launcher import HostEndpoint, start_functions_host

REPO_ROOT = Path(__file__).resolve().parent.parent
APP = REPO_ROOT / "tests" / "host" / "apps" / "durable_app"
FAN_OUT = 1000
REPLAY_FAN_OUT = 1490  # activities whose history reaches about 3,000 events
REPLAY_RUNS = 5


def _host_fan_out(endpoint: HostEndpoint, instance_id: str, count: int, ms: int) -> float:
    """Seconds from the HTTP start to the Completed status, polled at 20 ms."""
    payload = {"tag": instance_id, "count": count, "ms": ms}
    started = time.perf_counter()
    status, _, body = endpoint.request("POST", f"/api/orchestrators/fan_out?id={instance_id}", json=payload)
    if status != 202:
        raise RuntimeError(f"starting the fan-out failed: {status} {body}")
    final = endpoint.wait_for_instance(instance_id, timeout=600, interval=0.02)
    elapsed = time.perf_counter() - started
    if final["runtimeStatus"] != "Completed" or final["output"] != sum(i * 2 for i in range(count)):
        raise RuntimeError(
            f"the fan-out did not complete correctly: {final['runtimeStatus']} {final['output']}"
        )
    return elapsed


def _direct_fan_out(activity, count: int, ms: int, workers: int, tag: str) -> float:
    """Seconds to call the activity function `count` times from a thread pool of `workers`."""
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda i: activity(payload={"tag": tag, "i": i, "ms": ms}), range(count)))
    elapsed = time.perf_counter() - started
    assert sum(results) == sum(i * 2 for i in range(count))
    return elapsed


async def _replay_context(data_dir: Path, hub: str, handles: dict, instance_id: str) -> tuple[str, str]:
    engine = DurableEngine(
        store_path=data_dir / DURABLE_STORE, task_hub=hub, orchestrators=handles, activities={}
    )
    await engine.start()
    try:
        return await engine.replay_context(instance_id)
    finally:
        await engine.stop()


def _time_replay(handle, context_json: str) -> float:
    timings = []
    for _ in range(REPLAY_RUNS):
        started = time.perf_counter()
        answer = json.loads(handle(context_json))
        timings.append(time.perf_counter() - started)
    if not answer.get("isDone"):
        raise RuntimeError("the replayed episode did not reach the orchestrator's end")
    return statistics.median(timings)


def _app_functions(app_dir: Path) -> dict[str, tuple[str, object]]:
    """The app's functions called directly, as the baseline (no host, no runtime): name -> (trigger
    parameter name, user function)."""
    sys.path.insert(0, str(app_dir))
    module = importlib.import_module("function_app")
    return {
        f.get_function_name(): (f.get_trigger().name, f.get_user_function())
        for f in module.app.get_functions()
    }


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="host-bench-") as tmp:
        app_dir = Path(tmp) / "app"
        shutil.copytree(APP, app_dir, ignore=shutil.ignore_patterns("__pycache__", ".devstack"))
        records, data_dir = Path(tmp) / "records", Path(tmp) / "data"
        records.mkdir()
        os.environ["RECORD_DIR"] = str(records)
        config = load_host_config(app_dir)
        workers = config.durable.max_concurrent_activities
        functions = _app_functions(app_dir)
        activity = functions["work_item"][1]
        process, endpoint = start_functions_host(
            app_dir, env={"RECORD_DIR": str(records), "PYTHONDONTWRITEBYTECODE": "1"}, data_dir=data_dir
        )
        rows = []
        try:
            for ms in (0, 5):
                host_s = _host_fan_out(endpoint, f"bench-{ms}ms", FAN_OUT, ms)
                direct_s = _direct_fan_out(activity, FAN_OUT, ms, workers, f"direct-{ms}ms")
                rows.append((ms, host_s, direct_s))
            _host_fan_out(endpoint, "bench-replay", REPLAY_FAN_OUT, 0)
        finally:
            process.stop()
        handles = {
            name: (lambda text, arg=arg, fn=fn: fn(**{arg: text}))
            for name, (arg, fn) in functions.items()
            if name in ("fan_out",)
        }
        name, context = asyncio.run(
            _replay_context(data_dir, config.durable.hub_name, handles, "bench-replay")
        )
        events = len(json.loads(context)["history"])
        replay_s = _time_replay(handles[name], context)

    print(
        f"durable fan-out of {FAN_OUT} activities, {workers} concurrent (host vs. thread pool of {workers}):"
    )
    row = "  {:>13} | {:>12} | {:>9} | {:>7} | {:>17}"
    print(row.format("activity work", "through host", "direct", "ratio", "overhead/activity"))
    for ms, host_s, direct_s in rows:
        overhead_ms = (host_s - direct_s) / FAN_OUT * 1000
        ratio = host_s / direct_s
        print(
            row.format(
                f"{ms} ms", f"{host_s:.2f} s", f"{direct_s:.2f} s", f"{ratio:.1f}x", f"{overhead_ms:.2f} ms"
            )
        )
    print(f"replay of one episode over {events} history events (SDK handle, median of {REPLAY_RUNS}):")
    print(f"  {replay_s * 1000:.0f} ms  ({replay_s / events * 1e6:.0f} us per event)")


if __name__ == "__main__":
    main()
