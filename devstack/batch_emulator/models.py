"""The emulated Batch account's state and rules: pools, nodes, node users and the node state machine.
Synchronous and free of I/O: the lifecycle runtime advances it through the transition methods (after delays,
with real start tasks and SSH servers), and tests can drive it directly. Lifecycle side effects are requested
through `LifecycleHooks`."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from devstack.batch_emulator import exceptions as errors
from devstack.batch_emulator import specs
from devstack.batch_emulator.catalog import Catalog

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class NodeState(StrEnum):
    CREATING = "creating"
    STARTING = "starting"
    WAITING_FOR_START_TASK = "waitingforstarttask"
    IDLE = "idle"
    RUNNING = "running"
    START_TASK_FAILED = "starttaskfailed"
    UNUSABLE = "unusable"
    OFFLINE = "offline"
    LEAVING_POOL = "leavingpool"


# Which state a node may move to from each state (the service's lifecycle, as far as the emulator models it).
TRANSITIONS: dict[NodeState, frozenset[NodeState]] = {
    NodeState.CREATING: frozenset({NodeState.STARTING, NodeState.UNUSABLE, NodeState.LEAVING_POOL}),
    NodeState.STARTING: frozenset(
        {
            NodeState.WAITING_FOR_START_TASK,
            NodeState.IDLE,
            NodeState.START_TASK_FAILED,
            NodeState.UNUSABLE,
            NodeState.LEAVING_POOL,
        }
    ),
    NodeState.WAITING_FOR_START_TASK: frozenset(
        {
            NodeState.IDLE,
            NodeState.START_TASK_FAILED,
            NodeState.UNUSABLE,
            NodeState.LEAVING_POOL,
        }
    ),
    NodeState.IDLE: frozenset(
        {
            NodeState.RUNNING,
            NodeState.START_TASK_FAILED,
            NodeState.UNUSABLE,
            NodeState.OFFLINE,
            NodeState.LEAVING_POOL,
        }
    ),
    NodeState.RUNNING: frozenset(
        {NodeState.IDLE, NodeState.UNUSABLE, NodeState.OFFLINE, NodeState.LEAVING_POOL}
    ),
    NodeState.START_TASK_FAILED: frozenset({NodeState.UNUSABLE, NodeState.LEAVING_POOL}),
    NodeState.UNUSABLE: frozenset({NodeState.IDLE, NodeState.LEAVING_POOL}),
    NodeState.OFFLINE: frozenset({NodeState.IDLE, NodeState.UNUSABLE, NodeState.LEAVING_POOL}),
    NodeState.LEAVING_POOL: frozenset(),
}
# States in which the node's SSH daemon answers (it has booted and not yet left the pool).
SSH_REACHABLE = frozenset(
    {
        NodeState.WAITING_FOR_START_TASK,
        NodeState.IDLE,
        NodeState.RUNNING,
        NodeState.START_TASK_FAILED,
        NodeState.OFFLINE,
    }
)
USER_MANAGEABLE = frozenset({NodeState.IDLE, NodeState.RUNNING})


class InvalidTransition(RuntimeError):
    """A node was asked to move to a state its lifecycle does not allow from where it is."""


class PoolState(StrEnum):
    ACTIVE = "active"
    DELETING = "deleting"


class AllocationState(StrEnum):
    STEADY = "steady"
    RESIZING = "resizing"
    STOPPING = "stopping"


class LifecycleHooks(Protocol):
    """What the account asks its runtime to do; all calls are notifications, none blocks."""

    def allocation_requested(self, pool: Pool) -> None: ...

    def nodes_leaving(self, pool: Pool, nodes: list[Node]) -> None: ...

    def pool_deleting(self, pool: Pool) -> None: ...


class NoHooks:
    """Hooks that do nothing: the state only moves when a caller drives it."""

    def allocation_requested(self, pool: Pool) -> None:
        pass

    def nodes_leaving(self, pool: Pool, nodes: list[Node]) -> None:
        pass

    def pool_deleting(self, pool: Pool) -> None:
        pass


@dataclass
class ResizeError:
    code: str
    message: str
    values: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class StartTaskInfo:
    state: str  # running | completed
    start_time: datetime
    retry_count: int = 0
    end_time: datetime | None = None
    exit_code: int | None = None
    last_retry_time: datetime | None = None

    @property
    def result(self) -> str | None:
        if self.exit_code is None:
            return None
        return "success" if self.exit_code == 0 else "failure"


@dataclass
class NodeUser:
    name: str
    is_admin: bool
    credentials: specs.Credentials
    last_modified: datetime = field(default_factory=utc_now)

    @property
    def etag(self) -> str:
        return _etag(self.last_modified, 0)

    def login_until(self, precision: str) -> datetime:
        """The moment from which this user can no longer log in (see `access_ends`)."""
        return access_ends(self.credentials.expiry_time, precision)


# How a Linux node applies a user's expiryTime. The service documents that "for Linux Compute Nodes, the
# expiryTime has a precision up to a day": the account carries an expiry *date*, so access lasts until that
# date is over (the end of the UTC day of expiryTime). `second` is the emulator's exact mode, for tests that
# need a user to stop logging in at expiryTime itself.
USER_EXPIRY_DAY = "day"
USER_EXPIRY_SECOND = "second"
USER_EXPIRY_PRECISIONS = (USER_EXPIRY_DAY, USER_EXPIRY_SECOND)


def access_ends(expiry_time: datetime, precision: str) -> datetime:
    """When a user whose expiryTime is `expiry_time` stops being able to log in, at this precision."""
    if precision == USER_EXPIRY_SECOND:
        return expiry_time
    day = expiry_time.astimezone(UTC).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@dataclass(frozen=True)
class Endpoint:
    """One inbound endpoint of a node: `public_ip:frontend_port` reaches `backend_port` on the node."""

    name: str
    protocol: str
    public_ip: str
    frontend_port: int
    backend_port: int


@dataclass
class NodeError:
    code: str
    message: str
    details: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Node:
    id: str
    pool_id: str
    seq: int
    index: int
    is_dedicated: bool
    state: NodeState
    state_transition_time: datetime
    allocation_time: datetime
    ip_address: str
    last_boot_time: datetime | None = None
    start_task_info: StartTaskInfo | None = None
    users: dict[str, NodeUser] = field(default_factory=dict)
    errors: list[NodeError] = field(default_factory=list)
    endpoints: list[Endpoint] = field(default_factory=list)

    @property
    def last_modified(self) -> datetime:
        return self.state_transition_time

    @property
    def etag(self) -> str:
        return _etag(self.state_transition_time, self.seq)

    @property
    def ssh_endpoint(self) -> Endpoint | None:
        return next((e for e in self.endpoints if e.backend_port == 22 and e.protocol == "tcp"), None)


class Pool:
    """A pool and its nodes (in creation order); targets, allocation state and the last resize's errors."""

    def __init__(self, spec: specs.PoolSpec, seq: int, now: datetime) -> None:
        self.spec = spec
        self.id = spec.id
        self.seq = seq
        self.state = PoolState.ACTIVE
        self.state_transition_time = now
        self.creation_time = now
        self.allocation_state = AllocationState.STEADY
        self.allocation_state_transition_time = now
        self.last_modified = now
        self.etag = _etag(now, seq)
        self.target_dedicated_nodes = spec.target_dedicated_nodes
        self.target_low_priority_nodes = spec.target_low_priority_nodes
        self.resize_timeout = spec.resize_timeout
        self.resize_errors: list[ResizeError] = []
        self.nodes: dict[str, Node] = {}
        self.public_ip: str | None = None
        self.allocation_pending = False
        self._node_seq = 0

    @property
    def current_dedicated_nodes(self) -> int:
        return sum(1 for n in self.nodes.values() if n.is_dedicated and n.state != NodeState.LEAVING_POOL)

    @property
    def current_low_priority_nodes(self) -> int:
        return sum(1 for n in self.nodes.values() if not n.is_dedicated and n.state != NodeState.LEAVING_POOL)

    def live_nodes(self, dedicated: bool) -> list[Node]:
        return [
            n
            for n in self.nodes.values()
            if n.is_dedicated == dedicated and n.state != NodeState.LEAVING_POOL
        ]

    def next_node_seq(self) -> int:
        self._node_seq += 1
        return self._node_seq

    def free_index(self) -> int:
        used = {n.index for n in self.nodes.values()}
        index = 0
        while index in used:
            index += 1
        return index

    def touch(self, now: datetime) -> None:
        self.last_modified = now
        self.etag = _etag(now, self.seq)


def _quota_error(dedicated: bool) -> ResizeError:
    if dedicated:
        return ResizeError("AccountCoreQuotaReached", "The specified account has reached VM core quota limit")
    return ResizeError(
        "AccountLowPriorityCoreQuotaReached",
        "The specified account has reached VM low priority core quota limit",
    )


def _etag(now: datetime, seq: int) -> str:
    ticks = int((now - datetime(1, 1, 1, tzinfo=UTC)).total_seconds() * 10_000_000) + seq
    return f"0x{ticks:X}"


class Account:
    """The account's pools and the rules of every operation on them."""

    def __init__(
        self,
        name: str,
        catalog: Catalog,
        *,
        clock: Clock = utc_now,
        hooks: LifecycleHooks | None = None,
        user_expiry: str = USER_EXPIRY_DAY,
        max_nodes_per_pool: int = specs.MAX_NODES_PER_POOL,
        dedicated_core_quota: int | None = None,
        low_priority_core_quota: int | None = None,
    ) -> None:
        if user_expiry not in USER_EXPIRY_PRECISIONS:
            raise ValueError(f"user_expiry must be one of {', '.join(USER_EXPIRY_PRECISIONS)}")
        self.user_expiry = user_expiry
        self.max_nodes_per_pool = max_nodes_per_pool
        # The account's core quotas (None: unlimited). As on the service, a quota does not refuse the create
        # or resize call: the allocation grants what fits and records AccountCoreQuotaReached on the pool.
        self.core_quotas = {True: dedicated_core_quota, False: low_priority_core_quota}
        self.name = name
        self.catalog = catalog
        self.clock = clock
        self.hooks: LifecycleHooks = hooks or NoHooks()
        self._pools: dict[str, Pool] = {}
        self._pool_seq = 0
        self._salt = os.urandom(8).hex()

    # --- pools ------------------------------------------------------------------------------

    def pools(self) -> list[Pool]:
        return sorted(self._pools.values(), key=lambda p: p.seq)

    def get_pool(self, pool_id: str) -> Pool:
        pool = self._pools.get(pool_id.lower())
        if pool is None:
            raise errors.pool_not_found(pool_id)
        return pool

    def find_pool(self, pool_id: str) -> Pool | None:
        return self._pools.get(pool_id.lower())

    def create_pool(self, body: Any) -> Pool:
        now = self.clock()
        spec = specs.parse_pool(body, self.catalog, now, max_nodes=self.max_nodes_per_pool)
        existing = self._pools.get(spec.id.lower())
        if existing is not None:
            if existing.state == PoolState.DELETING:
                raise errors.pool_being_deleted(spec.id)
            raise errors.pool_exists(spec.id)
        self._pool_seq += 1
        pool = Pool(spec, self._pool_seq, now)
        self._pools[spec.id.lower()] = pool
        if spec.target_dedicated_nodes or spec.target_low_priority_nodes:
            self._start_allocation(pool, now)
        return pool

    def resize_pool(self, pool_id: str, body: Any) -> Pool:
        pool = self._active_pool(pool_id)
        limit = self.max_nodes_per_pool
        if pool.spec.body.get("enableInterNodeCommunication"):
            limit = min(limit, specs.MAX_INTER_NODE_POOL_NODES)
        spec = specs.parse_resize(body, pool.spec.nat_pools, max_nodes=limit)
        if pool.allocation_state != AllocationState.STEADY:
            raise errors.pool_being_resized(pool.id)
        now = self.clock()
        pool.target_dedicated_nodes = spec.target_dedicated_nodes
        pool.target_low_priority_nodes = spec.target_low_priority_nodes
        pool.resize_timeout = spec.resize_timeout
        pool.resize_errors = []
        pool.touch(now)
        leaving: list[Node] = []
        for dedicated, target in (
            (True, spec.target_dedicated_nodes),
            (False, spec.target_low_priority_nodes),
        ):
            live = pool.live_nodes(dedicated)
            if len(live) > target:
                # Remove the newest nodes first.
                leaving += sorted(live, key=lambda n: n.seq, reverse=True)[: len(live) - target]
        grows = any(
            len(pool.live_nodes(d)) < t
            for d, t in ((True, spec.target_dedicated_nodes), (False, spec.target_low_priority_nodes))
        )
        if leaving:
            self._set_leaving(pool, leaving, now)
        if grows:
            self._start_allocation(pool, now)
        elif leaving:
            self._set_allocation(pool, AllocationState.RESIZING, now)
        return pool

    def remove_nodes(self, pool_id: str, body: Any) -> list[Node]:
        pool = self._active_pool(pool_id)
        node_ids = specs.parse_remove_nodes(body)
        if pool.allocation_state != AllocationState.STEADY:
            raise errors.pool_being_resized(pool.id)
        nodes = [self.get_node(pool.id, node_id) for node_id in node_ids]
        now = self.clock()
        for node in nodes:
            if node.is_dedicated:
                pool.target_dedicated_nodes = max(0, pool.target_dedicated_nodes - 1)
            else:
                pool.target_low_priority_nodes = max(0, pool.target_low_priority_nodes - 1)
        pool.touch(now)
        self._set_leaving(pool, nodes, now)
        self._set_allocation(pool, AllocationState.RESIZING, now)
        return nodes

    def stop_resize(self, pool_id: str) -> Pool:
        pool = self._active_pool(pool_id)
        now = self.clock()
        if pool.allocation_state == AllocationState.RESIZING and pool.allocation_pending:
            pool.allocation_pending = False
            pool.target_dedicated_nodes = pool.current_dedicated_nodes
            pool.target_low_priority_nodes = pool.current_low_priority_nodes
            pool.touch(now)
            self._settle(pool, now)
        return pool

    def delete_pool(self, pool_id: str) -> Pool:
        pool = self.get_pool(pool_id)
        if pool.state == PoolState.DELETING:
            raise errors.pool_being_deleted(pool.id)
        now = self.clock()
        pool.state = PoolState.DELETING
        pool.state_transition_time = now
        pool.allocation_pending = False
        pool.target_dedicated_nodes = pool.target_low_priority_nodes = 0
        pool.touch(now)
        for node in pool.nodes.values():
            if node.state != NodeState.LEAVING_POOL:
                self._move(node, NodeState.LEAVING_POOL, now)
        self._set_allocation(pool, AllocationState.RESIZING if pool.nodes else AllocationState.STEADY, now)
        self.hooks.pool_deleting(pool)
        return pool

    def forget_pool(self, pool_id: str) -> None:
        """The end of a pool delete: the pool is gone (404 from now on)."""
        pool = self._pools.get(pool_id.lower())
        if pool is not None and pool.state == PoolState.DELETING:
            del self._pools[pool_id.lower()]

    def discard_pool(self, pool: Pool) -> None:
        """Drop this pool object now, whatever its state (a create that could not get its resources)."""
        if self._pools.get(pool.id.lower()) is pool:
            del self._pools[pool.id.lower()]

    def reset(self) -> list[Pool]:
        """Forget every pool at once (control API reset); returns them so their resources can be released."""
        pools = list(self._pools.values())
        self._pools.clear()
        return pools

    # --- allocation (driven by the runtime) -------------------------------------------------

    def allocate_nodes(
        self, pool_id: str, limit: int | None = None, error: ResizeError | None = None
    ) -> list[Node]:
        """Bring the pool up to its targets in `creating`; `limit` caps how many new nodes are granted (a
        quota), and `error` is recorded as the resize error when the targets were not reached. Allocation goes
        steady."""
        pool = self.find_pool(pool_id)
        if pool is None or pool.state == PoolState.DELETING or not pool.allocation_pending:
            return []
        now = self.clock()
        pool.allocation_pending = False
        wanted = [
            (True, pool.target_dedicated_nodes - len(pool.live_nodes(True))),
            (False, pool.target_low_priority_nodes - len(pool.live_nodes(False))),
        ]
        budget = limit if limit is not None else sum(max(0, n) for _, n in wanted)
        added: list[Node] = []
        short = False
        quota_errors: list[ResizeError] = []
        for dedicated, count in wanted:
            count = max(0, count)
            fits = self._nodes_within_core_quota(pool, dedicated)
            if fits is not None and fits < count:
                count = fits
                quota_errors.append(_quota_error(dedicated))
            for _ in range(count):
                if budget <= 0:
                    short = True
                    break
                added.append(self._new_node(pool, dedicated, now))
                budget -= 1
        if short:
            pool.resize_errors.append(
                error or ResizeError("AllocationFailed", "Desired number of nodes could not be allocated.")
            )
        pool.resize_errors.extend(quota_errors)
        self._settle(pool, now)
        return added

    def _nodes_within_core_quota(self, pool: Pool, dedicated: bool) -> int | None:
        """How many more nodes of this kind fit in the account's core quota (None: no quota)."""
        quota = self.core_quotas[dedicated]
        if quota is None:
            return None
        used = sum(
            self.catalog.vm_size_cores(p.spec.vm_size) or 1
            for p in self._pools.values()
            for n in p.nodes.values()
            if n.is_dedicated == dedicated and n.state != NodeState.LEAVING_POOL
        )
        return max(0, quota - used) // (self.catalog.vm_size_cores(pool.spec.vm_size) or 1)

    def fail_allocation(self, pool_id: str, error: ResizeError) -> None:
        """The whole pending allocation failed (e.g. a quota of zero): steady, no new nodes, one resize
        error."""
        pool = self.find_pool(pool_id)
        if pool is None or not pool.allocation_pending:
            return
        pool.allocation_pending = False
        pool.resize_errors.append(error)
        self._settle(pool, self.clock())

    def nodes_left(self, pool_id: str, node_ids: list[str]) -> None:
        """Nodes that were leaving the pool are gone."""
        pool = self.find_pool(pool_id)
        if pool is None:
            return
        for node_id in node_ids:
            node = pool.nodes.get(node_id)
            if node is not None and node.state == NodeState.LEAVING_POOL:
                del pool.nodes[node_id]
        self._settle(pool, self.clock())

    def _start_allocation(self, pool: Pool, now: datetime) -> None:
        pool.allocation_pending = True
        self._set_allocation(pool, AllocationState.RESIZING, now)
        self.hooks.allocation_requested(pool)

    def _settle(self, pool: Pool, now: datetime) -> None:
        leaving = any(n.state == NodeState.LEAVING_POOL for n in pool.nodes.values())
        if not pool.allocation_pending and not leaving:
            self._set_allocation(pool, AllocationState.STEADY, now)

    @staticmethod
    def _set_allocation(pool: Pool, state: AllocationState, now: datetime) -> None:
        if pool.allocation_state != state:
            pool.allocation_state = state
            pool.allocation_state_transition_time = now

    def _set_leaving(self, pool: Pool, nodes: list[Node], now: datetime) -> None:
        for node in nodes:
            self._move(node, NodeState.LEAVING_POOL, now)
        self.hooks.nodes_leaving(pool, nodes)

    def _new_node(self, pool: Pool, dedicated: bool, now: datetime) -> Node:
        seq = pool.next_node_seq()
        index = pool.free_index()
        digest = hashlib.sha256(f"{self._salt}/{pool.id}/{pool.seq}/{seq}".encode()).hexdigest()
        node = Node(
            id=f"tvmps_{digest}_{'d' if dedicated else 'p'}",
            pool_id=pool.id,
            seq=seq,
            index=index,
            is_dedicated=dedicated,
            state=NodeState.CREATING,
            state_transition_time=now,
            allocation_time=now,
            ip_address=f"10.0.{index // 250}.{index % 250 + 4}",
        )
        pool.nodes[node.id] = node
        return node

    # --- node lifecycle (driven by the runtime) ---------------------------------------------

    def transition(self, pool_id: str, node_id: str, state: NodeState | str) -> Node | None:
        """Move a node to `state` if its lifecycle allows it; None when the node is gone (removed
        meanwhile)."""
        node = self._live_node(pool_id, node_id)
        if node is None:
            return None
        self._move(node, NodeState(state), self.clock())
        return node

    def node_started(self, pool_id: str, node_id: str, endpoints: list[Endpoint]) -> Node | None:
        """creating -> starting: the VM boots; its inbound endpoints are known from here on."""
        node = self._live_node(pool_id, node_id)
        if node is None:
            return None
        now = self.clock()
        node.endpoints = list(endpoints)
        node.last_boot_time = now
        self._move(node, NodeState.STARTING, now)
        return node

    def start_task_started(self, pool_id: str, node_id: str, attempt: int) -> Node | None:
        node = self._live_node(pool_id, node_id)
        if node is None:
            return None
        now = self.clock()
        previous = node.start_task_info
        node.start_task_info = StartTaskInfo(
            state="running",
            start_time=now if previous is None else previous.start_time,
            retry_count=attempt,
            last_retry_time=now if attempt else None,
        )
        return node

    def start_task_finished(
        self, pool_id: str, node_id: str, exit_code: int, *, force_failed: bool = False
    ) -> Node | None:
        """Record the start task's exit; with waitForSuccess (or `force_failed`) a failure ends in
        starttaskfailed."""
        node = self._live_node(pool_id, node_id)
        if node is None:
            return None
        pool = self.get_pool(pool_id)
        now = self.clock()
        info = node.start_task_info or StartTaskInfo(state="running", start_time=now)
        info.state = "completed"
        info.end_time = now
        info.exit_code = exit_code
        node.start_task_info = info
        waits = pool.spec.start_task.wait_for_success if pool.spec.start_task else True
        if exit_code != 0 and (waits or force_failed):
            self._move(node, NodeState.START_TASK_FAILED, now)
        elif node.state in (NodeState.STARTING, NodeState.WAITING_FOR_START_TASK):
            self._move(node, NodeState.IDLE, now)
        return node

    def mark_unusable(self, pool_id: str, node_id: str, error: NodeError) -> Node | None:
        node = self._live_node(pool_id, node_id)
        if node is None:
            return None
        node.errors = [error]
        self._move(node, NodeState.UNUSABLE, self.clock())
        return node

    def _live_node(self, pool_id: str, node_id: str) -> Node | None:
        pool = self.find_pool(pool_id)
        node = pool.nodes.get(node_id) if pool is not None else None
        if node is None or node.state == NodeState.LEAVING_POOL:
            return None
        return node

    @staticmethod
    def _move(node: Node, state: NodeState, now: datetime) -> None:
        if state == node.state:
            return
        if state not in TRANSITIONS[node.state]:
            raise InvalidTransition(f"node {node.id} cannot go from {node.state} to {state}")
        node.state = state
        node.state_transition_time = now

    # --- nodes and users (API operations) ---------------------------------------------------

    def get_node(self, pool_id: str, node_id: str) -> Node:
        pool = self.get_pool(pool_id)
        node = pool.nodes.get(node_id)
        if node is None:
            raise errors.node_not_found(node_id)
        return node

    def iter_nodes(self, pool_id: str) -> Iterator[Node]:
        return iter(list(self.get_pool(pool_id).nodes.values()))

    def add_user(self, pool_id: str, node_id: str, body: Any) -> NodeUser:
        node = self._user_node(pool_id, node_id)
        spec = specs.parse_user(body, self.clock())
        self._check_user_manageable(node)
        if spec.name in node.users:
            raise errors.node_user_exists(spec.name)
        user = NodeUser(spec.name, spec.is_admin, spec.credentials, self.clock())
        node.users[spec.name] = user
        return user

    def replace_user(self, pool_id: str, node_id: str, name: str, body: Any) -> NodeUser:
        node = self._user_node(pool_id, node_id)
        credentials = specs.parse_user_replace(body, self.clock())
        self._check_user_manageable(node)
        user = node.users.get(name)
        if user is None:
            raise errors.node_user_not_found(name)
        user.credentials = credentials
        user.last_modified = self.clock()
        return user

    def delete_user(self, pool_id: str, node_id: str, name: str) -> None:
        node = self._user_node(pool_id, node_id)
        self._check_user_manageable(node)
        if name not in node.users:
            raise errors.node_user_not_found(name)
        del node.users[name]

    def login_user(self, pool_id: str, node_id: str, name: str) -> NodeUser | None:
        """The user as of now, if it may log in: it exists on a reachable node and has not expired."""
        pool = self.find_pool(pool_id)
        node = pool.nodes.get(node_id) if pool is not None else None
        if (
            pool is None
            or pool.state == PoolState.DELETING
            or node is None
            or node.state not in SSH_REACHABLE
        ):
            return None
        user = node.users.get(name)
        if user is None or self.clock() >= user.login_until(self.user_expiry):
            return None
        return user

    def remote_login(self, pool_id: str, node_id: str) -> Endpoint:
        node = self.get_node(pool_id, node_id)
        pool = self.get_pool(pool_id)
        if pool.spec.ssh_nat_pool is None:
            raise errors.operation_invalid_for_state(
                "The node has no SSH endpoint: the pool has no inbound NAT pool for backend port 22 "
                "(networkConfiguration.endpointConfiguration.inboundNATPools).",
                [("NodeId", node.id)],
            )
        endpoint = node.ssh_endpoint
        if endpoint is None:
            raise errors.operation_invalid_for_state(
                f"The node is {node.state} and has no remote login endpoint yet.", [("NodeId", node.id)]
            )
        return endpoint

    def _user_node(self, pool_id: str, node_id: str) -> Node:
        pool = self.get_pool(pool_id)
        if pool.state == PoolState.DELETING:
            raise errors.pool_being_deleted(pool.id)
        return self.get_node(pool_id, node_id)

    @staticmethod
    def _check_user_manageable(node: Node) -> None:
        if node.state == NodeState.UNUSABLE:
            raise errors.node_state_unusable(node.id)
        if node.state not in USER_MANAGEABLE:
            raise errors.operation_invalid_for_state(
                f"Node users can be managed only on idle or running nodes; the node is {node.state}.",
                [("NodeId", node.id), ("NodeState", str(node.state))],
            )

    def _active_pool(self, pool_id: str) -> Pool:
        pool = self.get_pool(pool_id)
        if pool.state == PoolState.DELETING:
            raise errors.pool_being_deleted(pool.id)
        return pool
