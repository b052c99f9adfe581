"""DurableEngine: runs orchestrations, activities, sub-orchestrations and durable timers for the local host,
driving the real azure-functions-durable SDK through its orchestrator protocol, with all state in SQLite.

Guarantees (what a crash - even SIGKILL - at any moment leaves behind):
- an episode's decisions (new history events, scheduled activities/timers/sub-orchestrations, the instance
  row) commit in one transaction, so after a restart every instance replays to the same decisions;
- activities run at least once: an activity's result counts once its completion is committed; an activity
  that ran but whose completion was not committed runs again after the restart. Each crash can therefore
  re-run each activity at most once (only those in flight or finished-but-unrecorded when it happened), so
  activities must tolerate a second run;
- timers fire after a restart (overdue ones at once); events raised before the orchestrator waits are kept.

Completions that arrive while an instance's episode runs are delivered together in its next episode.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from devstack.functions_host.durable.errors import (
    InstanceExistsError,
    InstanceFinishedError,
    InstanceNotFinishedError,
)
from devstack.functions_host.durable.protocol import (
    HistoryEventType,
    build_context_json,
    event,
    event_text,
    parse_time,
    utcnow,
)
from devstack.functions_host.durable.replay import (
    Book,
    Episode,
    EpisodeInput,
    missing_function_message,
    plan_episode,
    validate_instance_id,
)
from devstack.functions_host.durable.status import TERMINAL_STATUSES, render_status
from devstack.functions_host.durable.store import (
    ActivityRow,
    CommitResult,
    Delivery,
    DurableStore,
    EpisodeCommit,
    InboxRow,
    InstanceRow,
    NewInstance,
    TimerRow,
)
from devstack.functions_host.durable.timers import TimerQueue

__all__ = [
    "ActivityInvoker",
    "DurableEngine",
    "InstanceExistsError",
    "InstanceFinishedError",
    "InstanceNotFinishedError",
    "OrchestratorHandle",
    "validate_instance_id",
]

ActivityInvoker = Callable[[str], Awaitable[str]]  # input JSON text -> result JSON text; raises on failure
OrchestratorHandle = Callable[[str], str]  # the SDK's handle: context JSON text -> result JSON text

E = HistoryEventType
T = TypeVar("T")
RUNTIME_STATUSES = ("Pending", "Running", "Completed", "Failed", "Terminated", "ContinuedAsNew")
ACTIVITY_RESULTS = (E.TASK_COMPLETED, E.TASK_FAILED)
# While a fan-in is still waiting for activities, an episode is held back for at most this long, or twice the
# instance's last episode time if that is longer: replays then cost at most about a third of the CPU, instead
# of starving the activities they wait for.
MIN_HOLD_SECONDS = 0.05


@dataclass
class _Instance:
    """A live instance as the engine keeps it in memory (its history as committed event JSON texts)."""

    row: InstanceRow
    book: Book
    history: list[str] = field(default_factory=list)
    inbox: list[InboxRow] = field(default_factory=list)
    # Activities handed out in this process and not yet consumed by an episode (coalescing fan-ins).
    outstanding_activities: int = 0
    pending_since: float = 0.0  # monotonic time the oldest message now in the inbox arrived
    last_episode_seconds: float = 0.0
    hold: asyncio.TimerHandle | None = None

    @property
    def instance_id(self) -> str:
        return self.row.instance_id

    @property
    def execution_id(self) -> str:
        return self.row.execution_id


def _input_value(raw_input: str | None) -> Any:
    """The context's `input` field from the stored input: the extension passes the stored JSON value."""
    if raw_input is None:
        return None
    try:
        return json.loads(raw_input)
    except ValueError:
        return raw_input


class DurableEngine:
    """Durable Functions engine: start it, start orchestrations, query them; see the module docstring."""

    def __init__(
        self,
        *,
        store_path: Path,
        task_hub: str,
        orchestrators: dict[str, OrchestratorHandle],
        activities: dict[str, ActivityInvoker],
        max_concurrent_activities: int = 10,
        max_concurrent_orchestrators: int = 10,
        logger: logging.Logger | None = None,
    ) -> None:
        if max_concurrent_activities < 1:
            raise ValueError("max_concurrent_activities: must be at least 1")
        if max_concurrent_orchestrators < 1:
            raise ValueError("max_concurrent_orchestrators: must be at least 1")
        if not task_hub:
            raise ValueError("task_hub: must not be empty")
        self.task_hub = task_hub
        self.store_path = Path(store_path)
        self._orchestrators = dict(orchestrators)
        self._activities = dict(activities)
        self._activity_names = frozenset(self._activities)
        self._orchestrator_names = frozenset(self._orchestrators)
        self._max_activities = max_concurrent_activities
        self._max_orchestrators = max_concurrent_orchestrators
        self._log = logger or logging.getLogger("devstack.functions_host.durable")
        self._store = DurableStore(self.store_path, task_hub)
        self._db_thread: ThreadPoolExecutor | None = None
        self._episode_threads: ThreadPoolExecutor | None = None
        self._active: dict[str, _Instance] = {}
        self._ready: asyncio.Queue[str] | None = None
        self._queued: set[str] = set()
        self._activity_queue: asyncio.Queue[ActivityRow] | None = None
        self._timers: TimerQueue | None = None
        self._completions: list[tuple[ActivityRow, dict]] = []
        self._flusher: asyncio.Task | None = None
        self._changed: asyncio.Event | None = None
        self._tasks: list[asyncio.Task] = []
        self._running = False

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store, resume every unfinished instance and start dispatching."""
        if self._running:
            return
        self._db_thread = ThreadPoolExecutor(1, thread_name_prefix="durable-store")
        self._episode_threads = ThreadPoolExecutor(
            self._max_orchestrators, thread_name_prefix="durable-episode"
        )
        self._ready = asyncio.Queue()
        self._activity_queue = asyncio.Queue()
        self._changed = asyncio.Event()
        self._timers = TimerQueue(self._fire_timers)
        await self._db(self._store.open)
        loaded = await self._db(self._store.load_active)
        self._running = True
        for item in loaded:
            inst = _Instance(
                row=item.row, book=Book.from_json(item.row.book), history=item.history, inbox=item.inbox
            )
            self._active[inst.instance_id] = inst
            for work in item.activities:
                self._activity_queue.put_nowait(work)
            for timer in item.timers:
                self._timers.add(_timer_key(timer), parse_time(timer.fire_at), timer)
            if inst.inbox:
                self._signal(inst.instance_id)
        self._tasks = [
            asyncio.create_task(self._orchestration_worker(), name=f"durable-orchestrations-{i}")
            for i in range(self._max_orchestrators)
        ]
        self._tasks += [
            asyncio.create_task(self._activity_worker(), name=f"durable-activities-{i}")
            for i in range(self._max_activities)
        ]
        self._tasks.append(asyncio.create_task(self._timers.run(), name="durable-timers"))
        if loaded:
            self._log.info(
                "durable engine resumed %d unfinished instance(s) of task hub %s", len(loaded), self.task_hub
            )

    async def stop(self) -> None:
        """Stop dispatching. Work in flight is abandoned: the store re-runs it after the next start."""
        if not self._running:
            return
        self._running = False
        tasks = [*self._tasks, *([self._flusher] if self._flusher else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks = []
        self._flusher = None
        if self._episode_threads:
            self._episode_threads.shutdown(wait=False, cancel_futures=True)
        if self._db_thread:
            await self._db(self._store.close)
            self._db_thread.shutdown(wait=True)
        self._active.clear()
        self._queued.clear()
        self._completions.clear()

    async def __aenter__(self) -> DurableEngine:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- client API -------------------------------------------------------------------------------

    async def start_new(
        self, name: str, instance_id: str | None = None, input_json: str | None = None
    ) -> str:
        """Start orchestrator `name`; `input_json` is the JSON text its get_input() decodes.

        An existing Pending/Running instance with this id -> InstanceExistsError; a finished one is
        replaced by a new run."""
        if input_json is not None:
            _require_json("input_json", input_json)
        raw_input = None if input_json is None else json.dumps(input_json)
        return await self.start_new_raw(name, instance_id, raw_input)

    async def start_new_raw(self, name: str, instance_id: str | None, raw_input: str | None) -> str:
        """start_new with the input as the extension stores it (the HTTP API's request body, verbatim)."""
        self._require_running()
        if name not in self._orchestrators:
            known = ", ".join(sorted(self._orchestrators)) or "none"
            raise ValueError(
                f"orchestrator '{name}' is not an orchestrator function of this app (known: {known})"
            )
        instance_id = instance_id if instance_id is not None else uuid.uuid4().hex
        validate_instance_id(instance_id)
        created = await self._db(
            self._store.create_instance, instance_id, name, raw_input, str(uuid.uuid4()), utcnow()
        )
        self._install(created)
        self._changed_now()
        return instance_id

    async def get_status(
        self,
        instance_id: str,
        *,
        show_history: bool = False,
        show_history_output: bool = False,
        show_input: bool = True,
    ) -> dict | None:
        """The status JSON the durable HTTP API answers, or None for an unknown instance."""
        self._require_running()
        row = await self._db(self._store.get_instance, instance_id)
        if row is None:
            return None
        history = await self._db(self._store.get_history, instance_id) if show_history else None
        return render_status(
            row, show_input=show_input, history=history, show_history_output=show_history_output
        )

    async def query(
        self,
        *,
        runtime_status: list[str] | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        top: int | None = None,
        instance_id_prefix: str | None = None,
        show_input: bool = True,
    ) -> list[dict]:
        """Statuses of the instances matching every given filter, oldest first."""
        self._require_running()
        for status in runtime_status or []:
            if status not in RUNTIME_STATUSES:
                raise ValueError(f"runtime_status: '{status}' is not one of {', '.join(RUNTIME_STATUSES)}")
        if top is not None and top < 1:
            raise ValueError("top: must be at least 1")
        rows = await self._db(
            partial(
                self._store.query,
                statuses=runtime_status,
                created_from=created_from,
                created_to=created_to,
                prefix=instance_id_prefix,
                top=top,
            )
        )
        return [render_status(r, show_input=show_input) for r in rows]

    async def raise_event(self, instance_id: str, name: str, data_json: str | None) -> None:
        """Deliver external event `name` (data: the JSON text the orchestrator decodes); it is kept until
        the orchestrator waits for it.

        KeyError for an unknown instance, InstanceFinishedError when it already finished."""
        self._require_running()
        if not name:
            raise ValueError("event name: must not be empty")
        if data_json is not None:
            _require_json("event data", data_json)
        raised = event(E.EVENT_RAISED, utcnow(), Name=name, Input=data_json)
        delivery = await self._db(self._store.append_inbox, instance_id, raised)
        self._deliver(delivery)

    async def terminate(self, instance_id: str, reason: str) -> None:
        """Terminate a live instance (its next episode ends it; pending work is dropped).

        KeyError for an unknown instance, InstanceFinishedError when it already finished."""
        self._require_running()
        terminated = event(E.EXECUTION_TERMINATED, utcnow(), Input=reason)
        delivery = await self._db(self._store.append_inbox, instance_id, terminated)
        self._deliver(delivery)

    async def purge(self, instance_id: str) -> int:
        """Delete a finished instance and its history: 1, or 0 if unknown.

        InstanceNotFinishedError if it is still live."""
        self._require_running()
        deleted = await self._db(self._store.purge, instance_id)
        if deleted:
            self._changed_now()
        return deleted

    async def wait_for(self, instance_id: str, timeout: float) -> dict:
        """The status once the instance finished; TimeoutError after `timeout` s, KeyError if unknown."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            assert self._changed is not None
            changed = self._changed
            status = await self.get_status(instance_id)
            if status is None:
                raise KeyError(instance_id)
            if status["runtimeStatus"] in TERMINAL_STATUSES:
                return status
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(
                    f"instance '{instance_id}' still {status['runtimeStatus']} after {timeout:g} s"
                )
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                pass

    def pending_events(self, instance_id: str) -> int:
        """How many events wait for the instance's next episode (0 for unknown or finished instances)."""
        inst = self._active.get(instance_id)
        return len(inst.inbox) if inst is not None else 0

    async def replay_context(self, instance_id: str) -> tuple[str, str]:
        """(orchestrator name, context JSON) replaying the instance's whole committed history, as a next
        episode would see it with no new events: for timing one replay with the SDK handle."""
        self._require_running()
        row = await self._db(self._store.get_instance, instance_id)
        if row is None:
            raise KeyError(instance_id)
        history = await self._db(self._store.get_history, instance_id)
        context = build_context_json(
            instance_id=instance_id,
            played=history,
            new=[event_text(event(E.ORCHESTRATOR_STARTED, utcnow()), played=False)],
            input_value=_input_value(row.input),
            parent_instance_id=row.parent_instance_id,
        )
        return row.name, context

    # -- orchestrations ---------------------------------------------------------------------------

    def _signal(self, instance_id: str) -> None:
        if instance_id not in self._queued and self._ready is not None:
            self._queued.add(instance_id)
            self._ready.put_nowait(instance_id)

    async def _orchestration_worker(self) -> None:
        assert self._ready is not None
        while True:
            instance_id = await self._ready.get()
            requeue = True
            try:
                if self._held_back(instance_id):
                    requeue = False
                    continue
                await self._run_episode(instance_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                requeue = False
                self._log.exception(
                    "durable engine: episode of instance %s could not be processed", instance_id
                )
            finally:
                self._queued.discard(instance_id)
            inst = self._active.get(instance_id)
            if requeue and inst is not None and inst.inbox:
                self._signal(instance_id)

    def _held_back(self, instance_id: str) -> bool:
        """True when the instance's inbox holds only activity results while more of its activities are
        still running, and the hold time has not passed: the episode waits for more results (a timer
        signals the instance again), so one replay consumes many completions."""
        inst = self._active.get(instance_id)
        if inst is None or not inst.inbox:
            return False
        results = 0
        for message in inst.inbox:
            if message.event.get("EventType") not in ACTIVITY_RESULTS:
                return False
            results += 1
        if results >= inst.outstanding_activities:
            return False
        hold = max(MIN_HOLD_SECONDS, 2 * inst.last_episode_seconds)
        remaining = inst.pending_since + hold - time.monotonic()
        if remaining <= 0:
            return False
        if inst.hold is None:
            inst.hold = asyncio.get_running_loop().call_later(remaining, self._release, instance_id)
        return True

    def _release(self, instance_id: str) -> None:
        inst = self._active.get(instance_id)
        if inst is not None:
            inst.hold = None
            self._signal(instance_id)

    async def _run_episode(self, instance_id: str) -> None:
        inst = self._active.get(instance_id)
        if inst is None or not inst.inbox:
            return
        taken = list(inst.inbox)
        live = [m for m in taken if m.execution_id == inst.execution_id]
        if not live:
            await self._db(self._store.drop_inbox, [m.seq for m in taken])
            self._consume(inst, taken)
            return
        started = time.perf_counter()
        now = utcnow()
        inp = EpisodeInput(
            instance_id=instance_id,
            execution_id=inst.execution_id,
            name=inst.row.name,
            input_value=_input_value(inst.row.input),
            parent_instance_id=inst.row.parent_instance_id,
            book=inst.book,
            played=list(inst.history),
            messages=[m.event for m in live],
            now=now,
            activities=self._activity_names,
            orchestrators=self._orchestrator_names,
        )
        loop = asyncio.get_running_loop()
        episode, history, book_json = await loop.run_in_executor(
            self._episode_threads, _plan_and_serialize, inp, self._orchestrators.get(inst.row.name)
        )
        parent_message = None
        if episode.terminal and inst.row.parent_instance_id:
            parent_message = self._parent_message(
                inst.row, episode.status, episode.output, episode.failure, now
            )
        commit = EpisodeCommit(
            instance_id=instance_id,
            execution_id=inst.execution_id,
            consumed=[m.seq for m in taken],
            history=history,
            status=episode.status,
            output=episode.output,
            custom_status=inst.row.custom_status if episode.status == "Terminated" else episode.custom_status,
            book=book_json,
            now=now,
            activities=episode.activities,
            timers=episode.timers,
            cancelled_timers=episode.cancelled_timers,
            children=[(c.task_id, c.instance_id, c.name, c.input) for c in episode.children],
            self_messages=episode.self_messages,
            parent_message=parent_message,
            continue_input=episode.continue_input,
            continued=episode.continued and episode.status == "ContinuedAsNew",
            new_execution_id=str(uuid.uuid4()) if episode.continued else None,
        )
        result = await self._db(self._store.commit_episode, commit)
        self._consume(inst, taken)
        inst.outstanding_activities = max(
            0, inst.outstanding_activities - sum(m.event.get("EventType") in ACTIVITY_RESULTS for m in live)
        )
        inst.last_episode_seconds = time.perf_counter() - started
        if result is None:
            return
        self._apply(inst, episode.status, history, episode.book, commit, result, episode.cancelled_timers)
        self._log.info(
            "durable orchestrator function=%s instance=%s events=%d duration_ms=%.1f outcome=%s",
            inst.row.name,
            instance_id,
            len(live),
            (time.perf_counter() - started) * 1000,
            episode.outcome,
        )

    def _parent_message(
        self,
        row: InstanceRow,
        status: str,
        output: str | None,
        failure: tuple[str, str] | None,
        now: datetime,
    ) -> dict:
        task_id = row.parent_task_id
        if status == "Completed":
            return event(E.SUB_ORCHESTRATION_INSTANCE_COMPLETED, now, TaskScheduledId=task_id, Result=output)
        if status == "Terminated":
            reason = json.loads(output) if output else None
            return event(
                E.SUB_ORCHESTRATION_INSTANCE_FAILED,
                now,
                TaskScheduledId=task_id,
                Reason=f"Sub-orchestration '{row.instance_id}' was terminated: {reason}",
                Details="",
            )
        reason, details = failure or ("failed", "")
        return event(
            E.SUB_ORCHESTRATION_INSTANCE_FAILED, now, TaskScheduledId=task_id, Reason=reason, Details=details
        )

    def _consume(self, inst: _Instance, taken: list[InboxRow]) -> None:
        seqs = {m.seq for m in taken}
        inst.inbox = [m for m in inst.inbox if m.seq not in seqs]
        inst.pending_since = time.monotonic()  # what is left arrived during the episode

    def _apply(
        self,
        inst: _Instance,
        status: str,
        history: list[str],
        book: Book,
        commit: EpisodeCommit,
        result: CommitResult,
        cancelled: list[int],
    ) -> None:
        """Bring memory in line with a committed episode and hand out its work."""
        assert self._activity_queue is not None and self._timers is not None
        for timer_id in cancelled:
            self._timers.cancel((inst.instance_id, inst.execution_id, timer_id))
        if result.continued is not None:
            self._cancel_timers(inst)
            new = result.continued
            carried = set(result.carried)
            kept = [InboxRow(m.seq, new.row.execution_id, m.event) for m in inst.inbox if m.seq in carried]
            inst.row = new.row
            inst.book = Book()
            inst.history = []
            inst.inbox = [*kept, new.started]
            self._signal(inst.instance_id)
        elif status in TERMINAL_STATUSES:
            self._cancel_timers(inst)
            self._active.pop(inst.instance_id, None)
        else:
            inst.history.extend(history)
            inst.book = book
            inst.row.status = status
            inst.row.custom_status = commit.custom_status
            for work in result.activities:
                self._activity_queue.put_nowait(work)
            inst.outstanding_activities += len(result.activities)
            for timer_id, fire_at in commit.timers:
                timer = TimerRow(inst.instance_id, inst.execution_id, timer_id, fire_at)
                self._timers.add(_timer_key(timer), parse_time(fire_at), timer)
            for child in result.children:
                self._install(child)
        for delivery in result.deliveries:
            self._deliver(delivery)
        self._changed_now()

    def _cancel_timers(self, inst: _Instance) -> None:
        assert self._timers is not None
        for timer_id in inst.book.pending_timers:
            self._timers.cancel((inst.instance_id, inst.execution_id, timer_id))

    def _install(self, created: NewInstance) -> None:
        inst = _Instance(row=created.row, book=Book(), inbox=[created.started])
        self._active[inst.instance_id] = inst
        self._signal(inst.instance_id)

    def _deliver(self, delivery: Delivery | None) -> None:
        if delivery is None:
            return
        inst = self._active.get(delivery.instance_id)
        if inst is not None:
            if not inst.inbox:
                inst.pending_since = time.monotonic()
            inst.inbox.append(delivery.message)
            self._signal(delivery.instance_id)

    def _changed_now(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()

    # -- activities -------------------------------------------------------------------------------

    async def _activity_worker(self) -> None:
        assert self._activity_queue is not None
        while True:
            work = await self._activity_queue.get()
            inst = self._active.get(work.instance_id)
            if inst is None or inst.execution_id != work.execution_id:
                continue  # finished, continued as new or replaced: its outbox row is gone
            self._complete(work, await self._invoke(work))

    async def _invoke(self, work: ActivityRow) -> dict:
        invoker = self._activities.get(work.name)
        started = time.perf_counter()
        try:
            if invoker is None:
                raise LookupError(missing_function_message(work.name, "activity"))
            result = await invoker(work.input)
            if result is not None and not isinstance(result, str):
                raise TypeError(
                    f"activity invoker for '{work.name}' returned {type(result).__name__}, not JSON text"
                )
            outcome = "succeeded"
            completion = event(E.TASK_COMPLETED, utcnow(), TaskScheduledId=work.task_id, Result=result)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            outcome = f"failed ({type(exc).__name__})"
            completion = event(
                E.TASK_FAILED,
                utcnow(),
                TaskScheduledId=work.task_id,
                Reason=str(exc) or type(exc).__name__,
                Details=getattr(exc, "details", None)
                or "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
            )
        self._log.info(
            "durable activity function=%s instance=%s task=%d duration_ms=%.1f outcome=%s",
            work.name,
            work.instance_id,
            work.task_id,
            (time.perf_counter() - started) * 1000,
            outcome,
        )
        return completion

    def _complete(self, work: ActivityRow, completion: dict) -> None:
        """Queue a completion; one flusher commits whatever has queued up, in one transaction per batch."""
        self._completions.append((work, completion))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_completions(), name="durable-completions")

    async def _flush_completions(self) -> None:
        while self._completions:
            batch, self._completions = self._completions, []
            for delivery in await self._db(self._store.record_completions, batch):
                self._deliver(delivery)

    # -- timers -----------------------------------------------------------------------------------

    async def _fire_timers(self, due: list[TimerRow]) -> None:
        now = utcnow()
        fired = [(t, event(E.TIMER_FIRED, now, TimerId=t.timer_id, FireAt=t.fire_at)) for t in due]
        for delivery in await self._db(self._store.fire_timers, fired):
            self._deliver(delivery)

    # -- plumbing ---------------------------------------------------------------------------------

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db_thread, partial(fn, *args))

    def _require_running(self) -> None:
        if not self._running:
            raise RuntimeError("the durable engine is not started (call start() first)")


def _plan_and_serialize(
    inp: EpisodeInput, handle: OrchestratorHandle | None
) -> tuple[Episode, list[str], str]:
    """Run in an episode thread: the episode, its history event texts and its book, ready to commit."""
    episode = plan_episode(inp, handle)
    return episode, [event_text(e, played=True) for e in episode.events], episode.book.to_json()


def _timer_key(timer: TimerRow) -> tuple[str, str, int]:
    return (timer.instance_id, timer.execution_id, timer.timer_id)


def _require_json(what: str, text: str) -> None:
    try:
        json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{what}: must be JSON text ({exc})") from None
