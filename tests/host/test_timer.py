"""Timer triggers through the host: runOnStartup, a per-second NCRONTAB schedule, %SETTING% schedules,
TimeSpan schedules and past-due detection across a host outage."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devstack.functions_host.timer_trigger import TimerStatusStore
from devstack.process import wait_until
from tests.fixtures.functions_host import HostFactory, RunningHost


def runs(records: Path, name: str) -> list[dict]:
    path = records / name
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def await_runs(records: Path, name: str, count: int, timeout: float = 20) -> list[dict]:
    wait_until(lambda: len(runs(records, name)) >= count, timeout, f"{count} run(s) of timer {name}")
    return runs(records, name)


@pytest.fixture
def timer_host(functions_host: HostFactory, tmp_path: Path) -> tuple[RunningHost, Path]:
    records = tmp_path / "records"
    records.mkdir()
    return functions_host("timer_app", env={"RECORD_DIR": str(records)}), records


def test_run_on_startup_fires_once_at_start(timer_host: tuple[RunningHost, Path]) -> None:
    _, records = timer_host
    [first] = await_runs(records, "on_startup", 1)
    assert first["past_due"] is False


def test_a_per_second_schedule_fires_repeatedly_on_whole_seconds(
    timer_host: tuple[RunningHost, Path],
) -> None:
    _, records = timer_host
    fired = [datetime.fromisoformat(r["at"]) for r in await_runs(records, "every_second", 3)]
    seconds = [moment.replace(microsecond=0) for moment in fired[:3]]
    assert seconds == sorted(set(seconds)), "each run belongs to its own second, in order"


def test_a_schedule_from_an_app_setting_and_a_timespan_schedule_fire(
    timer_host: tuple[RunningHost, Path],
) -> None:
    _, records = timer_host
    assert len(await_runs(records, "from_setting", 2)) >= 2
    assert len(await_runs(records, "timespan", 2)) >= 2


def test_a_run_missed_while_the_host_was_down_is_past_due(timer_host: tuple[RunningHost, Path]) -> None:
    host, records = timer_host
    await_runs(records, "monitored", 1)
    host.kill()
    before = len(runs(records, "monitored"))
    store = TimerStatusStore(host.data_dir)
    missed = datetime.fromisoformat(store.get("monitored")["Next"].replace("Z", "+00:00"))
    wait_until(lambda: datetime.now(UTC) > missed, 10, "the next occurrence to pass while the host is down")
    host.start()
    after_restart = await_runs(records, "monitored", before + 1)[before]
    assert after_restart["past_due"] is True
    [startup_run] = runs(records, "on_startup")[1:]
    assert startup_run["past_due"] is False


def test_a_stopped_host_records_when_its_timers_are_due_next(timer_host: tuple[RunningHost, Path]) -> None:
    host, records = timer_host
    await_runs(records, "monitored", 1)
    host.stop()
    status = TimerStatusStore(host.data_dir).get("monitored")
    assert set(status) == {"Last", "Next", "LastUpdated"}
    assert "every_second" not in TimerStatusStore(host.data_dir).read_all(), (
        "sub-minute schedules are unmonitored"
    )
