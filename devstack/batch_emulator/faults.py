"""Fault injection and call counters: per-operation latency and error answers (429/500/503/dropped
connection) before the operation, or after it (the operation takes effect, then 500 or a dropped connection),
and faults for the next pool allocation (resize errors, start-task failures, nodes turning
unusable)."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

ERROR_STATUSES = (429, 500, 503)
RESIZE_ERROR_MESSAGES = {
    "AccountCoreQuotaReached": "The specified account has reached VM core quota limit",
    "AccountLowPriorityCoreQuotaReached": (
        "The specified account has reached VM low priority core quota limit"
    ),
    "AccountSpotCoreQuotaReached": "The specified account has reached VM spot core quota limit",
    "AllocationTimedout": "Desired number of dedicated nodes could not be allocated as the resize timeout "
    "was reached",
    "AllocationFailed": "Desired number of nodes could not be allocated",
}


class FaultSpecError(ValueError):
    """A control-API fault description with a missing or invalid field (the message names it)."""


@dataclass
class HttpFault:
    """Latency and/or an error answer for calls to `operation` ('*' for all): the next `count` calls,
    or each call with probability `rate`, or (neither given) every call until cleared."""

    id: int
    operation: str
    status: int | None = None
    drop: bool = False
    retry_after: float | None = None
    latency_ms: float = 0.0
    count: int | None = None
    rate: float | None = None
    after: bool = False  # perform the operation, then answer with the fault (the answer is lost)
    fired: int = 0

    def applies_to(self, operation: str) -> bool:
        return self.operation in ("*", operation) and (self.count is None or self.count > 0)

    def fires(self, rng: random.Random) -> bool:
        if self.rate is not None and rng.random() >= self.rate:
            return False
        if self.count is not None:
            self.count -= 1
        self.fired += 1
        return True

    def to_dict(self) -> dict[str, Any]:
        data = {
            "id": self.id,
            "operation": self.operation,
            "status": self.status,
            "drop": self.drop,
            "retryAfter": self.retry_after,
            "latencyMs": self.latency_ms,
            "remaining": self.count,
            "rate": self.rate,
            "after": self.after,
            "fired": self.fired,
        }
        return {k: v for k, v in data.items() if v is not None}


@dataclass
class AllocationFault:
    """Applies to the next allocation (pool create or resize up) of `pool_id` (any pool when None)."""

    id: int
    kind: str  # resizeError | startTaskFailure | unusable
    pool_id: str | None = None
    code: str | None = None
    message: str | None = None
    values: list[tuple[str, str]] = field(default_factory=list)
    allocate: int = 0
    node_indexes: list[int] | None = None
    count: int | None = None
    exit_code: int = 1
    after_seconds: float = 0.0

    def matches(self, pool_id: str) -> bool:
        return self.pool_id is None or self.pool_id.lower() == pool_id.lower()

    def selects(self, index: int, position: int) -> bool:
        """Whether the node with pool `index`, `position`-th in this allocation, is hit by the fault."""
        if self.node_indexes is not None:
            return index in self.node_indexes
        if self.count is not None:
            return position < self.count
        return True

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["values"] = [{"name": k, "value": v} for k, v in self.values]
        return {k: v for k, v in data.items() if v is not None}


class FaultRegistry:
    """All injected faults and the per-operation call counters."""

    def __init__(self, seed: int | None = None) -> None:
        self.http: list[HttpFault] = []
        self.allocation: list[AllocationFault] = []
        self.calls: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self._next_id = 0
        self._rng = random.Random(seed)

    # --- counters ---------------------------------------------------------------------------

    def record_call(self, operation: str) -> None:
        self.calls[operation] += 1

    def counters(self) -> dict[str, Any]:
        return {"calls": dict(self.calls), "injected": dict(self.injected), "total": sum(self.calls.values())}

    def reset_counters(self) -> None:
        self.calls.clear()
        self.injected.clear()

    # --- HTTP faults ------------------------------------------------------------------------

    def add_http(self, spec: dict[str, Any]) -> HttpFault:
        fault = HttpFault(id=self._new_id(), **_http_fields(spec))
        self.http.append(fault)
        return fault

    def pick(self, operation: str) -> tuple[float, HttpFault | None]:
        """(latency in seconds to add, the error fault to answer with or None) for one call to `operation`."""
        latency = 0.0
        error: HttpFault | None = None
        for fault in self.http:
            if not fault.applies_to(operation):
                continue
            is_error = fault.status is not None or fault.drop
            if is_error and error is not None:
                continue
            if not fault.fires(self._rng):
                continue
            latency += fault.latency_ms / 1000.0
            if is_error:
                error = fault
                self.injected[operation] += 1
        self.http = [f for f in self.http if f.count is None or f.count > 0]
        return latency, error

    # --- allocation faults ------------------------------------------------------------------

    def add_allocation(self, kind: str, spec: dict[str, Any]) -> AllocationFault:
        fault = AllocationFault(id=self._new_id(), kind=kind, **_allocation_fields(kind, spec))
        self.allocation.append(fault)
        return fault

    def take_allocation_faults(self, pool_id: str) -> list[AllocationFault]:
        """The faults for this allocation of `pool_id`, at most one of each kind; they are used up."""
        taken: list[AllocationFault] = []
        for fault in list(self.allocation):
            if fault.matches(pool_id) and all(t.kind != fault.kind for t in taken):
                taken.append(fault)
                self.allocation.remove(fault)
        return taken

    def clear(self) -> None:
        self.http.clear()
        self.allocation.clear()

    def to_dict(self) -> dict[str, Any]:
        return {
            "http": [f.to_dict() for f in self.http],
            "allocation": [f.to_dict() for f in self.allocation],
        }

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id


def _number(spec: dict[str, Any], key: str, *, low: float = 0, high: float | None = None) -> float | None:
    value = spec.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultSpecError(f"'{key}' must be a number")
    if value < low or (high is not None and value > high):
        raise FaultSpecError(
            f"'{key}' must be between {low} and {high}"
            if high is not None
            else f"'{key}' must be at least {low}"
        )
    return value


def _count(spec: dict[str, Any]) -> int | None:
    value = spec.get("count")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FaultSpecError("'count' must be an integer >= 1")
    return value


_HTTP_KEYS = {"operation", "status", "drop", "retryAfter", "latencyMs", "count", "rate", "after"}


def _http_fields(spec: dict[str, Any]) -> dict[str, Any]:
    unknown = set(spec) - _HTTP_KEYS
    if unknown:
        raise FaultSpecError(
            f"unknown field(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_HTTP_KEYS))}"
        )
    operation = spec.get("operation", "*")
    if not isinstance(operation, str) or not operation:
        raise FaultSpecError("'operation' must be an operation name such as 'get_pool', or '*'")
    status = spec.get("status")
    if status is not None and status not in ERROR_STATUSES:
        raise FaultSpecError(f"'status' must be one of {', '.join(map(str, ERROR_STATUSES))}")
    drop = spec.get("drop", False)
    if not isinstance(drop, bool):
        raise FaultSpecError("'drop' must be true or false")
    if drop and status is not None:
        raise FaultSpecError("give either 'status' or 'drop', not both")
    latency = _number(spec, "latencyMs", high=600_000) or 0.0
    if status is None and not drop and not latency:
        raise FaultSpecError("a fault needs 'status', 'drop' or 'latencyMs'")
    retry_after = _number(spec, "retryAfter", high=3600)
    if retry_after is None and status in (429, 503):
        retry_after = 1
    if retry_after is not None and status is None:
        raise FaultSpecError("'retryAfter' goes with a 'status'")
    count, rate = _count(spec), _number(spec, "rate", high=1)
    if count is not None and rate is not None:
        raise FaultSpecError("give either 'count' or 'rate', not both")
    after = spec.get("after", False)
    if not isinstance(after, bool):
        raise FaultSpecError("'after' must be true or false")
    if after and not (drop or status == 500):
        raise FaultSpecError("a fault 'after' the operation is 'drop': true or 'status': 500")
    return {
        "operation": operation,
        "status": status,
        "drop": drop,
        "retry_after": retry_after,
        "latency_ms": float(latency),
        "count": count,
        "rate": rate,
        "after": after,
    }


_ALLOCATION_KEYS = {
    "resizeError": {"poolId", "code", "message", "values", "allocate"},
    "startTaskFailure": {"poolId", "nodeIndexes", "count", "exitCode"},
    "unusable": {"poolId", "nodeIndexes", "count", "afterSeconds"},
}


def _allocation_fields(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    if kind not in _ALLOCATION_KEYS:
        raise FaultSpecError(f"unknown fault kind {kind!r}; known: {', '.join(_ALLOCATION_KEYS)}")
    unknown = set(spec) - _ALLOCATION_KEYS[kind]
    if unknown:
        raise FaultSpecError(
            f"unknown field(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(_ALLOCATION_KEYS[kind]))}"
        )
    fields: dict[str, Any] = {}
    pool_id = spec.get("poolId")
    if pool_id is not None and not isinstance(pool_id, str):
        raise FaultSpecError("'poolId' must be a string")
    fields["pool_id"] = pool_id
    if kind == "resizeError":
        code = spec.get("code", "AccountCoreQuotaReached")
        if not isinstance(code, str) or not code:
            raise FaultSpecError("'code' must be a resize error code such as AccountCoreQuotaReached")
        message = spec.get("message") or RESIZE_ERROR_MESSAGES.get(code)
        if not isinstance(message, str):
            raise FaultSpecError(f"'message' is required for the resize error code {code!r}")
        values = spec.get("values") or []
        if not isinstance(values, list) or not all(
            isinstance(v, dict) and isinstance(v.get("name"), str) and isinstance(v.get("value"), str)
            for v in values
        ):
            raise FaultSpecError("'values' must be a list of {name, value} strings")
        allocate = spec.get("allocate", 0)
        if isinstance(allocate, bool) or not isinstance(allocate, int) or allocate < 0:
            raise FaultSpecError("'allocate' must be an integer >= 0 (nodes granted before the error)")
        fields.update(
            code=code, message=message, values=[(v["name"], v["value"]) for v in values], allocate=allocate
        )
        return fields
    indexes = spec.get("nodeIndexes")
    if indexes is not None and (
        not isinstance(indexes, list)
        or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in indexes)
    ):
        raise FaultSpecError("'nodeIndexes' must be a list of node indexes >= 0")
    count = _count(spec)
    if indexes is not None and count is not None:
        raise FaultSpecError("give either 'nodeIndexes' or 'count', not both")
    fields.update(node_indexes=indexes, count=count)
    if kind == "startTaskFailure":
        exit_code = spec.get("exitCode", 1)
        if isinstance(exit_code, bool) or not isinstance(exit_code, int) or exit_code == 0:
            raise FaultSpecError("'exitCode' must be a non-zero integer")
        fields["exit_code"] = exit_code
    else:
        fields["after_seconds"] = float(_number(spec, "afterSeconds", high=86_400) or 0.0)
    return fields
