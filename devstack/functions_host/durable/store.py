"""The engine's durable state in one SQLite file: instances, their history, an inbox of events not yet
delivered to an episode, and the outbox of scheduled work (activities and timers).

Every change is one transaction, so a process killed at any moment leaves a consistent store: an episode
commits its new history events, its outbox and its instance row together; an activity completion deletes
its outbox row and adds its inbox event together. All methods are synchronous and meant to run on one
thread (the engine's store thread)."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from devstack.functions_host.durable.errors import (
    InstanceExistsError,
    InstanceFinishedError,
    InstanceNotFinishedError,
)
from devstack.functions_host.durable.protocol import HistoryEventType, event, format_time

TERMINAL = ("Completed", "Failed", "Terminated")
SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    hub TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    input TEXT,
    output TEXT,
    custom_status TEXT,
    created_time TEXT NOT NULL,
    last_updated_time TEXT NOT NULL,
    parent_instance_id TEXT,
    parent_execution_id TEXT,
    parent_task_id INTEGER,
    book TEXT,
    PRIMARY KEY (hub, instance_id)
);
CREATE INDEX IF NOT EXISTS instances_by_status ON instances (hub, status);
CREATE TABLE IF NOT EXISTS history (
    hub TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (hub, instance_id, seq)
);
CREATE TABLE IF NOT EXISTS inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    hub TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    event_type INTEGER NOT NULL,
    event TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS inbox_by_instance ON inbox (hub, instance_id);
CREATE TABLE IF NOT EXISTS activities (
    work_id INTEGER PRIMARY KEY AUTOINCREMENT,
    hub TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    task_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    input TEXT
);
CREATE INDEX IF NOT EXISTS activities_by_instance ON activities (hub, instance_id);
CREATE TABLE IF NOT EXISTS timers (
    hub TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    timer_id INTEGER NOT NULL,
    fire_at TEXT NOT NULL,
    PRIMARY KEY (hub, instance_id, execution_id, timer_id)
);
"""
INSTANCE_COLUMNS = (
    "instance_id, execution_id, name, status, input, output, custom_status, created_time, last_updated_time, "
    "parent_instance_id, parent_execution_id, parent_task_id, book"
)


@dataclass
class InstanceRow:
    instance_id: str
    execution_id: str
    name: str
    status: str
    input: str | None  # the stored (serialized) input, as the extension keeps it
    output: str | None
    custom_status: str | None
    created_time: str
    last_updated_time: str
    parent_instance_id: str | None
    parent_execution_id: str | None
    parent_task_id: int | None
    book: str | None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


@dataclass
class InboxRow:
    seq: int
    execution_id: str
    event: dict


@dataclass
class ActivityRow:
    work_id: int
    instance_id: str
    execution_id: str
    task_id: int
    name: str
    input: str | None


@dataclass
class TimerRow:
    instance_id: str
    execution_id: str
    timer_id: int
    fire_at: str


@dataclass
class LoadedInstance:
    row: InstanceRow
    history: list[str]
    inbox: list[InboxRow]
    activities: list[ActivityRow]
    timers: list[TimerRow]


@dataclass
class NewInstance:
    """An instance created (or re-created) with its ExecutionStarted event waiting in its inbox."""

    row: InstanceRow
    started: InboxRow


@dataclass
class Delivery:
    """An inbox event written for some instance (to hand to the running engine after the commit)."""

    instance_id: str
    message: InboxRow


@dataclass
class EpisodeCommit:
    instance_id: str
    execution_id: str
    consumed: list[int]
    history: list[str]
    status: str
    output: str | None
    custom_status: str | None
    book: str
    now: datetime
    activities: list[tuple[int, str, str | None]] = field(default_factory=list)
    timers: list[tuple[int, str]] = field(default_factory=list)
    cancelled_timers: list[int] = field(default_factory=list)
    children: list[tuple[int, str, str, str | None]] = field(default_factory=list)  # (task, id, name, input)
    self_messages: list[dict] = field(default_factory=list)
    parent_message: dict | None = None
    continue_input: str | None = None
    continued: bool = False
    new_execution_id: str | None = None


@dataclass
class CommitResult:
    activities: list[ActivityRow] = field(default_factory=list)
    children: list[NewInstance] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    continued: NewInstance | None = None
    carried: list[int] = field(default_factory=list)  # inbox seqs moved to the new execution


class DurableStore:
    """SQLite tables for one task hub (several hubs may share a file)."""

    def __init__(self, path: Path, hub: str) -> None:
        self.path = Path(path)
        self.hub = hub
        self._db: sqlite3.Connection | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives a killed process
        db.execute("PRAGMA busy_timeout=10000")
        db.executescript(SCHEMA)
        self._db = db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the durable store is not open")
        return self._db

    def _transaction(self) -> _Transaction:
        return _Transaction(self.db)

    # -- reads ------------------------------------------------------------------------------------

    def get_instance(self, instance_id: str) -> InstanceRow | None:
        row = self.db.execute(
            f"SELECT {INSTANCE_COLUMNS} FROM instances WHERE hub=? AND instance_id=?", (self.hub, instance_id)
        ).fetchone()
        return InstanceRow(*row) if row else None

    def get_history(self, instance_id: str) -> list[str]:
        rows = self.db.execute(
            "SELECT event FROM history WHERE hub=? AND instance_id=? ORDER BY seq", (self.hub, instance_id)
        )
        return [r[0] for r in rows]

    def query(
        self,
        *,
        statuses: Sequence[str] | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        prefix: str | None = None,
        top: int | None = None,
    ) -> list[InstanceRow]:
        sql = f"SELECT {INSTANCE_COLUMNS} FROM instances WHERE hub=?"
        args: list = [self.hub]
        if statuses:
            sql += f" AND status IN ({','.join('?' * len(statuses))})"
            args.extend(statuses)
        if created_from is not None:
            sql += " AND created_time >= ?"
            args.append(format_time(created_from))
        if created_to is not None:
            sql += " AND created_time <= ?"
            args.append(format_time(created_to))
        if prefix:
            sql += " AND substr(instance_id, 1, ?) = ?"
            args.extend([len(prefix), prefix])
        sql += " ORDER BY created_time, instance_id"
        if top is not None:
            sql += " LIMIT ?"
            args.append(top)
        return [InstanceRow(*r) for r in self.db.execute(sql, args)]

    def load_active(self) -> list[LoadedInstance]:
        """Every instance that is not finished, with its history, inbox and outbox (at start)."""
        db, hub = self.db, self.hub
        rows = [
            InstanceRow(*r)
            for r in db.execute(
                f"SELECT {INSTANCE_COLUMNS} FROM instances WHERE hub=? AND status NOT IN (?,?,?)",
                (hub, *TERMINAL),
            )
        ]
        loaded = {r.instance_id: LoadedInstance(r, [], [], [], []) for r in rows}
        for iid, text in db.execute(
            "SELECT h.instance_id, h.event FROM history h JOIN instances i "
            "ON i.hub = h.hub AND i.instance_id = h.instance_id "
            "WHERE h.hub=? AND i.status NOT IN (?,?,?) ORDER BY h.instance_id, h.seq",
            (hub, *TERMINAL),
        ):
            if iid in loaded:
                loaded[iid].history.append(text)
        for seq, iid, execution_id, text in db.execute(
            "SELECT seq, instance_id, execution_id, event FROM inbox WHERE hub=? ORDER BY seq", (hub,)
        ):
            if iid in loaded:
                loaded[iid].inbox.append(InboxRow(seq, execution_id, json.loads(text)))
        for work_id, iid, execution_id, task_id, name, input_text in db.execute(
            "SELECT work_id, instance_id, execution_id, task_id, name, input FROM activities WHERE hub=? "
            "ORDER BY work_id",
            (hub,),
        ):
            if iid in loaded:
                loaded[iid].activities.append(
                    ActivityRow(work_id, iid, execution_id, task_id, name, input_text)
                )
        for iid, execution_id, timer_id, fire_at in db.execute(
            "SELECT instance_id, execution_id, timer_id, fire_at FROM timers WHERE hub=?", (hub,)
        ):
            if iid in loaded:
                loaded[iid].timers.append(TimerRow(iid, execution_id, timer_id, fire_at))
        return list(loaded.values())

    # -- client operations ------------------------------------------------------------------------

    def create_instance(
        self,
        instance_id: str,
        name: str,
        raw_input: str | None,
        execution_id: str,
        now: datetime,
    ) -> NewInstance:
        """A new instance; an existing finished one with this id is replaced, a live one refused."""
        with self._transaction():
            return self._create(instance_id, name, raw_input, execution_id, now, parent=None)

    def append_inbox(self, instance_id: str, history_event: dict) -> Delivery:
        """An event for a live instance (raise event, terminate): KeyError if unknown, 410 if finished."""
        with self._transaction():
            row = self.get_instance(instance_id)
            if row is None:
                raise KeyError(instance_id)
            if row.terminal:
                raise InstanceFinishedError(f"instance '{instance_id}' already finished ({row.status})")
            return Delivery(instance_id, self._inbox(instance_id, row.execution_id, history_event))

    def purge(self, instance_id: str) -> int:
        with self._transaction():
            row = self.get_instance(instance_id)
            if row is None:
                return 0
            if not row.terminal:
                raise InstanceNotFinishedError(
                    f"only finished instances can be purged; instance '{instance_id}' is {row.status}"
                )
            self._delete_instance(instance_id)
            return 1

    def drop_inbox(self, seqs: Iterable[int]) -> None:
        with self._transaction():
            self.db.executemany("DELETE FROM inbox WHERE seq=?", [(s,) for s in seqs])

    # -- work results -----------------------------------------------------------------------------

    def record_completions(self, results: Sequence[tuple[ActivityRow, dict]]) -> list[Delivery | None]:
        """Activity results: each deletes its outbox row and adds its event, if the row is still there."""
        out: list[Delivery | None] = []
        with self._transaction():
            for work, history_event in results:
                gone = (
                    self.db.execute("DELETE FROM activities WHERE work_id=?", (work.work_id,)).rowcount == 0
                )
                out.append(
                    None
                    if gone
                    else Delivery(
                        work.instance_id, self._inbox(work.instance_id, work.execution_id, history_event)
                    )
                )
        return out

    def fire_timers(self, fired: Sequence[tuple[TimerRow, dict]]) -> list[Delivery | None]:
        out: list[Delivery | None] = []
        with self._transaction():
            for timer, history_event in fired:
                gone = (
                    self.db.execute(
                        "DELETE FROM timers WHERE hub=? AND instance_id=? AND execution_id=? AND timer_id=?",
                        (self.hub, timer.instance_id, timer.execution_id, timer.timer_id),
                    ).rowcount
                    == 0
                )
                out.append(
                    None
                    if gone
                    else Delivery(
                        timer.instance_id, self._inbox(timer.instance_id, timer.execution_id, history_event)
                    )
                )
        return out

    # -- episodes ---------------------------------------------------------------------------------

    def commit_episode(self, c: EpisodeCommit) -> CommitResult | None:
        """Everything one episode decided, in one transaction; None if the instance changed meanwhile."""
        db, hub = self.db, self.hub
        result = CommitResult()
        with self._transaction():
            row = self.get_instance(c.instance_id)
            if row is None or row.execution_id != c.execution_id or row.terminal:
                db.executemany("DELETE FROM inbox WHERE seq=?", [(s,) for s in c.consumed])
                return None
            db.executemany("DELETE FROM inbox WHERE seq=?", [(s,) for s in c.consumed])
            now_text = format_time(c.now)
            terminal = c.status in TERMINAL
            if c.continued:
                return self._continue_as_new(c, row, result)
            start = db.execute(
                "SELECT COALESCE(MAX(seq) + 1, 0) FROM history WHERE hub=? AND instance_id=?",
                (hub, c.instance_id),
            ).fetchone()[0]
            db.executemany(
                "INSERT INTO history (hub, instance_id, seq, event) VALUES (?,?,?,?)",
                [(hub, c.instance_id, start + i, text) for i, text in enumerate(c.history)],
            )
            db.execute(
                "UPDATE instances SET status=?, output=?, custom_status=?, last_updated_time=?, book=? "
                "WHERE hub=? AND instance_id=?",
                (c.status, c.output, c.custom_status, now_text, c.book, hub, c.instance_id),
            )
            if terminal:
                self._delete_work(c.instance_id)
                db.execute("DELETE FROM inbox WHERE hub=? AND instance_id=?", (hub, c.instance_id))
                if c.parent_message is not None and row.parent_instance_id:
                    delivery = self._deliver_to_parent(row, c.parent_message)
                    if delivery:
                        result.deliveries.append(delivery)
                return result
            for task_id, name, input_text in c.activities:
                cur = db.execute(
                    "INSERT INTO activities (hub, instance_id, execution_id, task_id, name, input) "
                    "VALUES (?,?,?,?,?,?)",
                    (hub, c.instance_id, c.execution_id, task_id, name, input_text),
                )
                result.activities.append(
                    ActivityRow(cur.lastrowid, c.instance_id, c.execution_id, task_id, name, input_text)
                )
            db.executemany(
                "INSERT OR REPLACE INTO timers (hub, instance_id, execution_id, timer_id, fire_at) "
                "VALUES (?,?,?,?,?)",
                [(hub, c.instance_id, c.execution_id, t, fire_at) for t, fire_at in c.timers],
            )
            db.executemany(
                "DELETE FROM timers WHERE hub=? AND instance_id=? AND execution_id=? AND timer_id=?",
                [(hub, c.instance_id, c.execution_id, t) for t in c.cancelled_timers],
            )
            for history_event in c.self_messages:
                result.deliveries.append(
                    Delivery(c.instance_id, self._inbox(c.instance_id, c.execution_id, history_event))
                )
            for task_id, child_id, name, input_text in c.children:
                self._start_child(c, task_id, child_id, name, input_text, result)
        return result

    def _continue_as_new(self, c: EpisodeCommit, row: InstanceRow, result: CommitResult) -> CommitResult:
        db, hub = self.db, self.hub
        assert c.new_execution_id is not None
        self._delete_work(c.instance_id)
        db.execute("DELETE FROM history WHERE hub=? AND instance_id=?", (hub, c.instance_id))
        raw_input = None if c.continue_input is None else json.dumps(c.continue_input)
        started = self._started_event(
            c.instance_id,
            c.new_execution_id,
            row.name,
            raw_input,
            c.now,
            row.parent_instance_id,
            row.parent_execution_id,
        )
        db.execute(
            "UPDATE instances SET execution_id=?, status='ContinuedAsNew', input=?, output=NULL, "
            "custom_status=?, last_updated_time=?, book=NULL WHERE hub=? AND instance_id=?",
            (c.new_execution_id, raw_input, c.custom_status, format_time(c.now), hub, c.instance_id),
        )
        # Unconsumed external events carry over to the new execution; everything else of the old one is void.
        carried = [
            s
            for (s,) in db.execute(
                "SELECT seq FROM inbox WHERE hub=? AND instance_id=? AND execution_id=? AND event_type=?",
                (hub, c.instance_id, c.execution_id, int(HistoryEventType.EVENT_RAISED)),
            )
        ]
        db.execute(
            "DELETE FROM inbox WHERE hub=? AND instance_id=? AND event_type<>?",
            (hub, c.instance_id, int(HistoryEventType.EVENT_RAISED)),
        )
        db.execute(
            "UPDATE inbox SET execution_id=? WHERE hub=? AND instance_id=?",
            (c.new_execution_id, hub, c.instance_id),
        )
        message = self._inbox(c.instance_id, c.new_execution_id, started)
        new_row = self.get_instance(c.instance_id)
        assert new_row is not None
        result.continued = NewInstance(new_row, message)
        result.carried = carried
        return result

    # -- helpers ----------------------------------------------------------------------------------

    def _create(
        self,
        instance_id: str,
        name: str,
        raw_input: str | None,
        execution_id: str,
        now: datetime,
        parent: tuple[str, str, int] | None,
    ) -> NewInstance:
        existing = self.get_instance(instance_id)
        if existing is not None:
            if not existing.terminal:
                raise InstanceExistsError(
                    f"an orchestration instance with id '{instance_id}' already exists and is "
                    f"{existing.status}"
                )
            self._delete_instance(instance_id)
        now_text = format_time(now)
        parent_id, parent_execution, parent_task = parent or (None, None, None)
        self.db.execute(
            "INSERT INTO instances (hub, instance_id, execution_id, name, status, input, output, "
            "custom_status, created_time, last_updated_time, parent_instance_id, parent_execution_id, "
            "parent_task_id, book) "
            "VALUES (?,?,?,?,'Pending',?,NULL,NULL,?,?,?,?,?,NULL)",
            (
                self.hub,
                instance_id,
                execution_id,
                name,
                raw_input,
                now_text,
                now_text,
                parent_id,
                parent_execution,
                parent_task,
            ),
        )
        started = self._started_event(
            instance_id, execution_id, name, raw_input, now, parent_id, parent_execution
        )
        message = self._inbox(instance_id, execution_id, started)
        row = self.get_instance(instance_id)
        assert row is not None
        return NewInstance(row, message)

    @staticmethod
    def _started_event(
        instance_id: str,
        execution_id: str,
        name: str,
        raw_input: str | None,
        now: datetime,
        parent_id: str | None,
        parent_execution: str | None,
    ) -> dict:
        parent = {"InstanceId": parent_id, "ExecutionId": parent_execution} if parent_id else None
        return event(
            HistoryEventType.EXECUTION_STARTED,
            now,
            Name=name,
            Version="",
            Input=raw_input,
            OrchestrationInstance={"InstanceId": instance_id, "ExecutionId": execution_id},
            ParentInstance=parent,
        )

    def _start_child(
        self,
        c: EpisodeCommit,
        task_id: int,
        child_id: str,
        name: str,
        input_text: str | None,
        result: CommitResult,
    ) -> None:
        raw_input = None if input_text is None else json.dumps(input_text)
        try:
            child = self._create(
                child_id,
                name,
                raw_input,
                str(uuid.uuid4()),
                c.now,
                parent=(c.instance_id, c.execution_id, task_id),
            )
        except InstanceExistsError as exc:
            refusal = event(
                HistoryEventType.SUB_ORCHESTRATION_INSTANCE_FAILED,
                c.now,
                TaskScheduledId=task_id,
                Reason=str(exc),
                Details="",
            )
            result.deliveries.append(
                Delivery(c.instance_id, self._inbox(c.instance_id, c.execution_id, refusal))
            )
            return
        result.children.append(child)

    def _deliver_to_parent(self, child: InstanceRow, history_event: dict) -> Delivery | None:
        parent = self.get_instance(child.parent_instance_id or "")
        if parent is None or parent.terminal or parent.execution_id != child.parent_execution_id:
            return None
        return Delivery(
            parent.instance_id, self._inbox(parent.instance_id, parent.execution_id, history_event)
        )

    def _inbox(self, instance_id: str, execution_id: str, history_event: dict) -> InboxRow:
        cur = self.db.execute(
            "INSERT INTO inbox (hub, instance_id, execution_id, event_type, event) VALUES (?,?,?,?,?)",
            (
                self.hub,
                instance_id,
                execution_id,
                int(history_event["EventType"]),
                json.dumps(history_event, separators=(",", ":")),
            ),
        )
        return InboxRow(cur.lastrowid, execution_id, history_event)

    def _delete_work(self, instance_id: str) -> None:
        self.db.execute("DELETE FROM activities WHERE hub=? AND instance_id=?", (self.hub, instance_id))
        self.db.execute("DELETE FROM timers WHERE hub=? AND instance_id=?", (self.hub, instance_id))

    def _delete_instance(self, instance_id: str) -> None:
        self._delete_work(instance_id)
        for table in ("instances", "history", "inbox"):
            self.db.execute(f"DELETE FROM {table} WHERE hub=? AND instance_id=?", (self.hub, instance_id))


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on an exception."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.outer = False

    def __enter__(self) -> _Transaction:
        self.outer = not self.db.in_transaction
        if self.outer:
            self.db.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.outer:
            return
        if exc_type is None:
            self.db.execute("COMMIT")
        else:
            self.db.execute("ROLLBACK")
