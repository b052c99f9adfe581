"""The emulator's runtime: drives the account's state machine through time (allocation, boot, start task,
removal, pool deletion) and owns the real side effects (per-pool addresses and host keys, node directories,
SSH servers, start-task subprocesses), applying injected allocation faults."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from devstack.batch_emulator import models
from devstack.batch_emulator.catalog import Catalog
from devstack.batch_emulator.faults import AllocationFault, FaultRegistry
from devstack.batch_emulator.models import Account, Endpoint, Node, NodeError, NodeState, Pool
from devstack.batch_emulator.network import AddressAllocator, bind_listener
from devstack.batch_emulator.nodefs import NodeLayout, install_bin, node_environment, pool_dir, remove_tree
from devstack.batch_emulator.ssh import NodeSshContext, SshService, generate_host_key
from devstack.batch_emulator.starttask import StartTaskRunner, write_injected_failure
from devstack.batch_emulator.timing import TimingProfile

log = logging.getLogger("batch_emulator")
UNLIMITED_RETRIES_CAP = 3  # maxTaskRetryCount -1 ("retry forever") is capped so a broken task ends


@dataclass
class PoolRuntime:
    """Real resources of one pool: its public address, host key and the sockets reserved for node ports."""

    pool: Pool
    host_key: asyncssh.SSHKey | None = None
    address: str | None = None
    reserved: dict[int, socket.socket] = field(default_factory=dict)
    allocation_task: asyncio.Task | None = None
    node_tasks: dict[str, asyncio.Task] = field(default_factory=dict)

    def close_reserved(self) -> None:
        for sock in self.reserved.values():
            sock.close()
        self.reserved.clear()


@dataclass(frozen=True)
class NodePlan:
    """Faults decided for one node when it was allocated."""

    fail_exit_code: int | None = None
    unusable_after: float | None = None


class EmulatorRuntime:
    """Implements the account's LifecycleHooks with asyncio tasks; one instance per emulator process."""

    def __init__(
        self,
        *,
        account_name: str,
        catalog: Catalog,
        timing: TimingProfile,
        data_dir: Path,
        ssh_network: str,
        base_url: str = "",
        user_expiry: str = models.USER_EXPIRY_DAY,
        max_nodes_per_pool: int = models.specs.MAX_NODES_PER_POOL,
        dedicated_core_quota: int | None = None,
        low_priority_core_quota: int | None = None,
    ) -> None:
        self.account = Account(
            account_name,
            catalog,
            hooks=self,
            user_expiry=user_expiry,
            max_nodes_per_pool=max_nodes_per_pool,
            dedicated_core_quota=dedicated_core_quota,
            low_priority_core_quota=low_priority_core_quota,
        )
        self.timing = timing
        self.data_dir = data_dir
        self.base_url = base_url
        self.faults = FaultRegistry()
        self.addresses = AddressAllocator(ssh_network)
        self.ssh = SshService()
        self.start_tasks = StartTaskRunner()
        self._pools: dict[int, PoolRuntime] = {}
        self._background: set[asyncio.Task] = set()
        self._rng = random.Random()
        self.bin_dir = install_bin(data_dir)

    # --- API-facing operations that need resources beyond the state --------------------------

    def create_pool(self, body: Any) -> Pool:
        pool = self.account.create_pool(body)
        runtime = self._pools.setdefault(pool.seq, PoolRuntime(pool))
        nat = pool.spec.ssh_nat_pool or (pool.spec.nat_pools[0] if pool.spec.nat_pools else None)
        if nat is not None:
            try:
                wanted = max(1, min(nat.size, pool.target_dedicated_nodes + pool.target_low_priority_nodes))
                ports = range(nat.frontend_port_range_start, nat.frontend_port_range_start + wanted)
                address, sockets = self.addresses.assign(ports if pool.spec.ssh_nat_pool else [])
            except Exception:
                self._discard_pool(pool)
                raise
            pool.public_ip = address
            runtime.address = address
            runtime.reserved = sockets
        if pool.spec.ssh_nat_pool is not None:
            runtime.host_key = generate_host_key()
        return pool

    def set_node_state(self, pool_id: str, node_id: str, state: str) -> Node:
        """Control API: put a node into `state` now (unusable / idle / running / offline)."""
        node = self.account.get_node(pool_id, node_id)
        if state == NodeState.UNUSABLE:
            self.account.mark_unusable(pool_id, node_id, _unusable_error())
        else:
            self.account.transition(pool_id, node_id, state)
        return node

    def ssh_reachable(self, pool_id: str, node_id: str) -> bool:
        pool = self.account.find_pool(pool_id)
        node = pool.nodes.get(node_id) if pool is not None else None
        return (
            node is not None and pool.state == models.PoolState.ACTIVE and node.state in models.SSH_REACHABLE
        )

    def login_user(self, pool_id: str, node_id: str, name: str) -> models.NodeUser | None:
        return self.account.login_user(pool_id, node_id, name)

    def layout(self, pool: Pool, node: Node) -> NodeLayout:
        return NodeLayout.for_node(self.data_dir, pool.id, pool.seq, node.id)

    def node_environment(self, pool: Pool, node: Node, layout: NodeLayout) -> dict[str, str]:
        return node_environment(
            layout,
            bin_dir=self.bin_dir,
            account=self.account.name,
            account_url=self.base_url,
            pool_id=pool.id,
            node_id=node.id,
            ip_address=node.ip_address,
            is_dedicated=node.is_dedicated,
        )

    # --- LifecycleHooks ---------------------------------------------------------------------

    def allocation_requested(self, pool: Pool) -> None:
        runtime = self._pools.setdefault(pool.seq, PoolRuntime(pool))
        if runtime.allocation_task is not None and not runtime.allocation_task.done():
            return
        runtime.allocation_task = self._spawn(self._allocate(runtime))

    def nodes_leaving(self, pool: Pool, nodes: list[Node]) -> None:
        runtime = self._pools.get(pool.seq)
        ids = [n.id for n in nodes]
        for node_id in ids:
            self._stop_node(pool, node_id, runtime)
        self._spawn(self._finish_leaving(pool, ids))

    def pool_deleting(self, pool: Pool) -> None:
        runtime = self._pools.get(pool.seq)
        if runtime is not None and runtime.allocation_task is not None:
            runtime.allocation_task.cancel()
        for node_id in list(pool.nodes):
            self._stop_node(pool, node_id, runtime)
        self._spawn(self._finish_deleting(pool))

    # --- background work --------------------------------------------------------------------

    async def _allocate(self, runtime: PoolRuntime) -> None:
        pool = runtime.pool
        await asyncio.sleep(self.timing.delay("allocation", self._rng))
        if self.account.find_pool(pool.id) is not pool:
            return
        faults = {f.kind: f for f in self.faults.take_allocation_faults(pool.id)}
        resize = faults.get("resizeError")
        if resize is not None:
            error = models.ResizeError(resize.code or "", resize.message or "", list(resize.values))
            nodes = self.account.allocate_nodes(pool.id, limit=resize.allocate, error=error)
        else:
            nodes = self.account.allocate_nodes(pool.id)
        for position, node in enumerate(sorted(nodes, key=lambda n: n.index)):
            plan = _plan(node, position, faults.get("startTaskFailure"), faults.get("unusable"))
            runtime.node_tasks[node.id] = self._spawn(self._guard_node(runtime, node, plan))

    async def _guard_node(self, runtime: PoolRuntime, node: Node, plan: NodePlan) -> None:
        """A node whose lifecycle breaks inside the emulator ends unusable (with the reason) instead of
        hanging."""
        try:
            await self._run_node(runtime, node, plan)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("pool %s node %s: lifecycle failed", runtime.pool.id, node.id)
            with contextlib.suppress(Exception):
                self.account.mark_unusable(
                    runtime.pool.id,
                    node.id,
                    NodeError("EmulatorNodeFailure", f"The emulator could not run the node: {exc}"),
                )
        finally:
            runtime.node_tasks.pop(node.id, None)

    async def _run_node(self, runtime: PoolRuntime, node: Node, plan: NodePlan) -> None:
        pool = runtime.pool
        account = self.account
        await asyncio.sleep(self.timing.delay("creating", self._rng))
        layout = self.layout(pool, node)
        endpoints = await self._open_endpoints(runtime, node, layout)
        if account.node_started(pool.id, node.id, endpoints) is None:
            self.ssh.stop_node(pool.id, node.id)  # it left the pool meanwhile
            return
        await asyncio.sleep(self.timing.delay("starting", self._rng))
        task = pool.spec.start_task
        if task is None and plan.fail_exit_code is None:
            account.transition(pool.id, node.id, NodeState.IDLE)
        else:
            waits = task.wait_for_success if task is not None else True
            if (
                account.transition(
                    pool.id, node.id, NodeState.WAITING_FOR_START_TASK if waits else NodeState.IDLE
                )
                is None
            ):
                return
            code = await self._run_start_task(pool, node, layout, plan)
            account.start_task_finished(pool.id, node.id, code, force_failed=plan.fail_exit_code is not None)
        if plan.unusable_after is not None:
            await asyncio.sleep(plan.unusable_after)
            if node.state != NodeState.LEAVING_POOL:
                account.mark_unusable(pool.id, node.id, _unusable_error())

    async def _run_start_task(self, pool: Pool, node: Node, layout: NodeLayout, plan: NodePlan) -> int:
        task = pool.spec.start_task
        if plan.fail_exit_code is not None or task is None:
            code = plan.fail_exit_code or 1
            self.account.start_task_started(pool.id, node.id, 0)
            await asyncio.to_thread(write_injected_failure, layout, code)
            return code
        retries = task.max_task_retry_count if task.max_task_retry_count >= 0 else UNLIMITED_RETRIES_CAP
        env = self.node_environment(pool, node, layout)
        env.update(
            {
                "HOME": str(layout.root / "home" / "_autouser"),
                "AZ_BATCH_TASK_DIR": str(layout.startup),
                "AZ_BATCH_TASK_WORKING_DIR": str(layout.startup_wd),
                "AZ_BATCH_TASK_USER_IDENTITY": _identity(task.body),
            }
        )
        env.update(dict(task.environment))
        code = 1
        for attempt in range(retries + 1):
            if self.account.start_task_started(pool.id, node.id, attempt) is None:
                return code
            code = await self.start_tasks.run(task.command_line, layout, env)
            if code == 0:
                break
        return code

    async def _open_endpoints(self, runtime: PoolRuntime, node: Node, layout: NodeLayout) -> list[Endpoint]:
        pool = runtime.pool
        endpoints: list[Endpoint] = []
        address = runtime.address
        if address is None:
            return endpoints
        for nat in pool.spec.nat_pools:
            port = nat.frontend_port_range_start + node.index
            if nat is pool.spec.ssh_nat_pool:
                sock = runtime.reserved.pop(port, None) or bind_listener(address, port)
                if sock is None:
                    sock, port = self._fallback_port(runtime, nat, address)
                if sock is None:
                    log.warning("pool %s: no free frontend port left for node %s", pool.id, node.id)
                    continue
                ctx = NodeSshContext(
                    pool_id=pool.id,
                    node_id=node.id,
                    ip_address=node.ip_address,
                    layout=layout,
                    base_env=self.node_environment(pool, node, layout),
                    nat_pool=nat,
                    gate=self,
                )
                assert runtime.host_key is not None
                await self.ssh.start_node(ctx, sock, runtime.host_key)
            endpoints.append(
                Endpoint(f"{nat.name}.{node.index}", nat.protocol, address, port, nat.backend_port)
            )
        return endpoints

    @staticmethod
    def _fallback_port(runtime: PoolRuntime, nat: Any, address: str) -> tuple[socket.socket | None, int]:
        used = {e.frontend_port for n in runtime.pool.nodes.values() for e in n.endpoints}
        for port in range(nat.frontend_port_range_start, nat.frontend_port_range_end + 1):
            if port in used:
                continue
            sock = runtime.reserved.pop(port, None) or bind_listener(address, port)
            if sock is not None:
                return sock, port
        return None, 0

    async def _finish_leaving(self, pool: Pool, node_ids: list[str]) -> None:
        await asyncio.sleep(self.timing.delay("leaving", self._rng))
        self.account.nodes_left(pool.id, node_ids)
        for node_id in node_ids:
            await asyncio.to_thread(
                remove_tree, NodeLayout.for_node(self.data_dir, pool.id, pool.seq, node_id).root
            )

    async def _finish_deleting(self, pool: Pool) -> None:
        await asyncio.sleep(self.timing.delay("leaving", self._rng))
        self.account.nodes_left(pool.id, list(pool.nodes))
        await asyncio.sleep(self.timing.delay("pool_deletion", self._rng))
        self.account.forget_pool(pool.id)
        self._discard_pool(pool)

    def _stop_node(self, pool: Pool, node_id: str, runtime: PoolRuntime | None) -> None:
        self.ssh.stop_node(pool.id, node_id)
        if runtime is not None:
            task = runtime.node_tasks.pop(node_id, None)
            if task is not None:
                task.cancel()

    def _discard_pool(self, pool: Pool) -> None:
        runtime = self._pools.pop(pool.seq, None)
        if runtime is not None:
            runtime.close_reserved()
            if runtime.address:
                self.addresses.release(runtime.address)
        self.account.discard_pool(pool)
        # Removing a big pool's tree takes seconds on a slow disk: off the event loop.
        asyncio.get_running_loop().run_in_executor(
            None, remove_tree, pool_dir(self.data_dir, pool.id, pool.seq)
        )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    # --- reset and shutdown -----------------------------------------------------------------

    async def reset(self) -> None:
        """Drop every pool at once (nodes, SSH servers, start tasks) and clear faults and counters."""
        await self._cancel_all()
        for pool in self.account.reset():
            self._discard_pool(pool)
        self._pools.clear()
        self.faults.clear()
        self.faults.reset_counters()

    async def shutdown(self) -> None:
        await self._cancel_all()
        for runtime in list(self._pools.values()):
            runtime.close_reserved()

    async def _cancel_all(self) -> None:
        self.ssh.stop_all()
        self.start_tasks.kill_all()
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task

    def stats(self) -> dict[str, int]:
        pools = self.account.pools()
        return {
            "pools": len(pools),
            "nodes": sum(len(p.nodes) for p in pools),
            "sshServers": self.ssh.count,
            "startTasksRunning": self.start_tasks.running,
        }


def _plan(
    node: Node, position: int, failure: AllocationFault | None, unusable: AllocationFault | None
) -> NodePlan:
    fail = failure.exit_code if failure is not None and failure.selects(node.index, position) else None
    after = (
        unusable.after_seconds if unusable is not None and unusable.selects(node.index, position) else None
    )
    return NodePlan(fail, after)


def _unusable_error() -> NodeError:
    return NodeError("NodeUnusable", "The node was made unusable by fault injection in the emulator.")


def _identity(task_body: dict[str, Any]) -> str:
    auto = (task_body.get("userIdentity") or {}).get("autoUser") or {}
    return "PoolAdmin" if auto.get("elevationLevel") == "admin" else "PoolNonAdmin"
