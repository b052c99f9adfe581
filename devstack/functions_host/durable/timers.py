"""Durable timers due in this process: a heap ordered by fire time that hands every due timer (overdue ones
at once) to a callback, in fire-time order."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Callable, Hashable
from datetime import datetime
from typing import Any

from devstack.functions_host.durable.protocol import utcnow

MAX_SLEEP_SECONDS = 30.0  # re-check the wall clock at least this often


class TimerQueue:
    """Keyed timers with fire times and payloads; `run()` calls `on_due(payloads)` once they are due.
    A cancelled (or re-added) key does not fire for its old entry."""

    def __init__(self, on_due: Callable[[list[Any]], Awaitable[None]]) -> None:
        self._on_due = on_due
        self._heap: list[tuple[datetime, int, Hashable]] = []
        self._live: dict[Hashable, tuple[datetime, Any]] = {}
        self._counter = itertools.count()
        self._wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self._live)

    def add(self, key: Hashable, fire_at: datetime, payload: Any = None) -> None:
        self._live[key] = (fire_at, payload)
        heapq.heappush(self._heap, (fire_at, next(self._counter), key))
        if self._heap[0][2] == key:
            self._wake.set()

    def cancel(self, key: Hashable) -> None:
        self._live.pop(key, None)

    def _pop_due(self, now: datetime) -> list[Any]:
        due = []
        while self._heap and self._heap[0][0] <= now:
            fire_at, _, key = heapq.heappop(self._heap)
            live = self._live.get(key)
            if live is not None and live[0] == fire_at:
                del self._live[key]
                due.append(live[1])
        return due

    async def run(self) -> None:
        while True:
            due = self._pop_due(utcnow())
            if due:
                await self._on_due(due)
                continue
            self._wake.clear()
            timeout = MAX_SLEEP_SECONDS
            if self._heap:
                timeout = min(timeout, max(0.0, (self._heap[0][0] - utcnow()).total_seconds()))
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass
