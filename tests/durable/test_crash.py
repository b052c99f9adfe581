"""Killing the engine's process with SIGKILL mid-work and starting it again: every instance completes with
the right output, committed activities never re-run, and each activity runs at most twice."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from devstack.functions_host.durable.protocol import HistoryEventType, format_time, utcnow
from devstack.functions_host.durable.store import DurableStore
from devstack.process import ManagedProcess, start_process, wait_until
from tests.durable.crash_driver import runs_per_item

REPO = Path(__file__).resolve().parents[2]
HUB = "CrashHub"


class Crashable:
    """The crash driver's files, and its runs as subprocesses."""

    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path
        self.store = tmp_path / "durable.sqlite3"
        self.counter = tmp_path / "runs.sqlite3"
        self.gate = tmp_path / "gate"
        self.result = tmp_path / "result.json"
        self.runs = 0

    def start(self, wait: str, *start: str, gate_after: int = 0) -> ManagedProcess:
        self.runs += 1
        argv = [
            sys.executable,
            "-m",
            "tests.durable.crash_driver",
            "--store",
            str(self.store),
            "--wait",
            wait,
            "--result",
            str(self.result),
        ]
        if start:
            argv += ["--start", *start]
        env = {
            "CRASH_COUNTER_DB": str(self.counter),
            "CRASH_GATE_FILE": str(self.gate),
            "CRASH_GATE_AFTER": str(gate_after),
            "PYTHONPATH": str(REPO),
        }
        return start_process(
            f"crash-driver-{self.runs}",
            argv,
            log_path=self.dir / f"driver-{self.runs}.log",
            env=env,
            cwd=REPO,
        )

    def history(self, instance_id: str) -> list[dict]:
        store = DurableStore(self.store, HUB)
        store.open()
        try:
            return [json.loads(text) for text in store.get_history(instance_id)]
        finally:
            store.close()

    def count_events(self, instance_id: str, kind: HistoryEventType) -> int:
        if not self.store.exists():
            return 0
        return sum(1 for e in self.history(instance_id) if e["EventType"] == kind)

    def finish(self, proc: ManagedProcess, timeout: float = 120) -> dict:
        try:
            proc.popen.wait(timeout)
        finally:
            proc.stop()
        assert proc.popen.returncode == 0, proc.log_tail()
        return json.loads(self.result.read_text())


@pytest.fixture
def crashable(tmp_path):
    return Crashable(tmp_path)


def _alive(proc: ManagedProcess):
    def check() -> bool:
        if not proc.alive():
            raise AssertionError(f"the driver exited early:\n{proc.log_tail()}")
        return True

    return check


def test_sigkill_in_the_middle_of_a_fan_out(crashable: Crashable):
    free = 60  # items 0..59 run freely; the next ones block on the gate until the restart
    first = crashable.start("crash-fan", "fan", "crash-fan", "200", gate_after=free)
    try:
        alive = _alive(first)
        # Some but not all ran: the free ones finished (their completions committed) and the next ones
        # (up to the concurrency limit) are in flight, blocked on the gate.
        wait_until(
            lambda: alive() and sum(runs_per_item(crashable.counter).values()) > free,
            60,
            "the free activities to run and the next ones to start",
        )
        wait_until(
            lambda: alive() and crashable.count_events("crash-fan", HistoryEventType.TASK_COMPLETED) >= free,
            60,
            "the free activities' completions to be committed",
        )
    finally:
        first.kill()
    in_flight = sorted(int(item) for item in runs_per_item(crashable.counter) if int(item) >= free)
    assert in_flight and len(in_flight) <= 10  # max_concurrent_activities

    crashable.gate.touch()
    status = crashable.finish(crashable.start("crash-fan"))

    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == {"count": 200, "sum": sum(i * 2 for i in range(200))}
    runs = runs_per_item(crashable.counter)
    assert set(runs) == {str(i) for i in range(200)}
    assert max(runs.values()) <= 2
    assert all(runs[str(i)] == 1 for i in range(free))  # committed before the crash: never re-run
    assert all(runs[str(i)] == 2 for i in in_flight)  # in flight at the crash: run once more
    assert sum(runs.values()) == 200 + len(in_flight)


def test_sigkill_during_a_timer_wait_then_the_overdue_timer_fires_at_once(crashable: Crashable):
    first = crashable.start("crash-nap", "nap", "crash-nap", "1.5")
    try:
        alive = _alive(first)
        wait_until(
            lambda: alive() and crashable.count_events("crash-nap", HistoryEventType.TIMER_CREATED) == 1,
            60,
            "the timer to be created",
        )
    finally:
        first.kill()
    fire_at = next(
        e["FireAt"]
        for e in crashable.history("crash-nap")
        if e["EventType"] == HistoryEventType.TIMER_CREATED
    )
    assert runs_per_item(crashable.counter) == {"before": 1}
    wait_until(lambda: format_time(utcnow()) > fire_at, 30, "the timer to fall due while the engine is down")

    status = crashable.finish(crashable.start("crash-nap"))

    assert status["runtimeStatus"] == "Completed" and status["output"] == ["before", "after"]
    assert runs_per_item(crashable.counter) == {"before": 1, "after": 1}
    fired = [e for e in crashable.history("crash-nap") if e["EventType"] == HistoryEventType.TIMER_FIRED]
    assert len(fired) == 1
