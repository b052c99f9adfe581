"""Timer triggers: NCRONTAB (6 fields with seconds, or 5) and TimeSpan schedules, `%SETTING%` references,
runOnStartup, and past-due detection from the schedule status kept per timer in the data directory."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from croniter import croniter

from devstack.functions_host.invocation import Invoker
from devstack.functions_host.settings import resolve_setting_refs
from devstack.functions_host.timespan import looks_like_timespan, parse_timespan
from devstack.functions_host.worker import FunctionSpec

TIMERS_FILE = "timers.json"
MONITOR_THRESHOLD = timedelta(minutes=1)


class ScheduleError(ValueError):
    """A timer schedule that is neither a valid NCRONTAB expression nor a TimeSpan."""


@dataclass(frozen=True)
class Schedule:
    """When a timer fires: `next_after(t)` is the first occurrence strictly after t (UTC)."""

    text: str
    interval: timedelta | None = None
    cron: str | None = None
    with_seconds: bool = True

    def next_after(self, moment: datetime) -> datetime:
        if self.interval is not None:
            return moment + self.interval
        return croniter(self.cron, moment, second_at_beginning=self.with_seconds).get_next(datetime)

    def shortest_gap(self, moment: datetime) -> timedelta:
        first = self.next_after(moment)
        return self.next_after(first) - first


def parse_schedule(text: str, *, what: str) -> Schedule:
    """Parse a schedule (after resolving `%NAME%` from app settings)."""
    resolved = resolve_setting_refs(text, what=what).strip()
    if looks_like_timespan(resolved):
        try:
            interval = parse_timespan(resolved)
        except ValueError as exc:
            raise ScheduleError(f"{what}: {exc}") from None
        if interval <= timedelta(0):
            raise ScheduleError(f"{what}: the TimeSpan schedule {resolved!r} must be longer than zero")
        return Schedule(text=resolved, interval=interval)
    fields = resolved.split()
    if len(fields) in (5, 6):
        with_seconds = len(fields) == 6
        if croniter.is_valid(resolved, second_at_beginning=with_seconds):
            return Schedule(text=resolved, cron=resolved, with_seconds=with_seconds)
    raise ScheduleError(
        f"{what}: schedule {resolved!r} is not an NCRONTAB expression "
        '("second minute hour day month day-of-week", e.g. "0 */5 * * * *") nor a TimeSpan ("hh:mm:ss")'
    )


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


def _parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class TimerStatusStore:
    """Last/Next/LastUpdated per timer in `<data dir>/timers.json` (what the host keeps in blob storage)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / TIMERS_FILE

    def read_all(self) -> dict[str, dict[str, str]]:
        try:
            document = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return document if isinstance(document, dict) else {}

    def get(self, name: str) -> dict[str, str] | None:
        status = self.read_all().get(name)
        return status if isinstance(status, dict) else None

    def put(self, name: str, *, last: datetime | None, next_: datetime) -> dict[str, str]:
        document = self.read_all()
        status = {"Last": _iso(last), "Next": _iso(next_), "LastUpdated": _iso(datetime.now(UTC))}
        document[name] = status
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(document, indent=1))
        os.replace(temporary, self.path)
        return status


class TimerRunner:
    """Fires one timer-triggered function on its schedule until stopped; runs never overlap."""

    def __init__(
        self, spec: FunctionSpec, *, store: TimerStatusStore, invoker: Invoker, logger: logging.Logger
    ):
        self.spec = spec
        what = f"function {spec.name!r} timer schedule"
        self.schedule = parse_schedule(spec.trigger.get("schedule", ""), what=what)
        self.run_on_startup = bool(spec.trigger.get("runOnStartup", False))
        use_monitor = spec.trigger.get("useMonitor")
        if use_monitor is None:
            use_monitor = self.schedule.shortest_gap(datetime.now(UTC)) >= MONITOR_THRESHOLD
        self.use_monitor = bool(use_monitor)
        self._store = store
        self._invoker = invoker
        self._log = logger
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        now = datetime.now(UTC)
        status = self._store.get(self.spec.name) if self.use_monitor else None
        recorded_next = _parse_iso(status.get("Next")) if status else None
        last = _parse_iso(status.get("Last")) if status else None
        past_due = recorded_next is not None and recorded_next < now
        next_at = self.schedule.next_after(now)
        if past_due or self.run_on_startup:
            await self._fire(past_due=past_due, last=last, next_at=next_at)
            last = now
            next_at = self.schedule.next_after(max(datetime.now(UTC), now))
        while not self._stopping.is_set():
            if self.use_monitor:
                self._store.put(self.spec.name, last=last, next_=next_at)
            if not await self._sleep_until(next_at):
                return
            await self._fire(past_due=False, last=last, next_at=self.schedule.next_after(next_at))
            last = next_at
            next_at = self.schedule.next_after(max(datetime.now(UTC), next_at))

    async def _sleep_until(self, moment: datetime) -> bool:
        """False when stopped first."""
        while True:
            remaining = (moment - datetime.now(UTC)).total_seconds()
            if remaining <= 0:
                return not self._stopping.is_set()
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=remaining)
                return False
            except TimeoutError:
                continue

    async def _fire(self, *, past_due: bool, last: datetime | None, next_at: datetime) -> None:
        info = {
            "Schedule": {"AdjustForDST": True},
            "ScheduleStatus": {
                "Last": _iso(last),
                "Next": _iso(next_at),
                "LastUpdated": _iso(datetime.now(UTC)),
            }
            if self.use_monitor
            else None,
            "IsPastDue": past_due,
        }
        timer_data = self._invoker.protos.TypedData(json=json.dumps(info))
        try:
            await self._invoker.invoke(
                self.spec, timer_data, describe=lambda _: f"past_due={str(past_due).lower()}"
            )
        except Exception:
            pass
