"""The bound on Batch calls in flight while granting: never more than the configured number at once, all of
them used while work waits, and the chunk scheduled first served first (so chunks finish in order)."""

from __future__ import annotations

import asyncio

from activities.node_users import OrderedLimit, process_limit


def test_never_more_holders_than_the_bound_and_the_bound_is_reached():
    async def run() -> tuple[int, int]:
        limit, held, peak = OrderedLimit(4), 0, 0
        gate = asyncio.Event()

        async def call(key: tuple) -> None:
            nonlocal held, peak
            await limit.acquire(key)
            try:
                held += 1
                peak = max(peak, held)
                await gate.wait()
                held -= 1
            finally:
                limit.release()

        calls = [asyncio.create_task(call((0, i))) for i in range(10)]
        while held < 4:
            await asyncio.sleep(0)
        at_most = held
        gate.set()
        await asyncio.gather(*calls)
        return at_most, peak

    at_most, peak = asyncio.run(run())
    assert at_most == 4 and peak == 4


def test_waiters_of_an_earlier_chunk_go_before_those_of_a_later_one():
    async def run() -> list[tuple]:
        limit, order = OrderedLimit(1), []
        await limit.acquire((-1, 0))  # busy: everyone below has to wait

        async def call(key: tuple) -> None:
            await limit.acquire(key)
            order.append(key)
            limit.release()

        later = [asyncio.create_task(call((2, i))) for i in range(3)]
        await asyncio.sleep(0)
        earlier = [asyncio.create_task(call((1, i))) for i in range(3)]
        await asyncio.sleep(0)
        limit.release()
        await asyncio.gather(*later, *earlier)
        return order

    assert asyncio.run(run()) == [(1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2)]


def test_a_cancelled_waiter_does_not_lose_a_place():
    async def run() -> int:
        limit = OrderedLimit(1)
        await limit.acquire((0, 0))
        waiter = asyncio.create_task(limit.acquire((1, 0)))
        await asyncio.sleep(0)
        waiter.cancel()
        limit.release()
        await asyncio.wait_for(limit.acquire((2, 0)), timeout=1)  # the freed place is still there
        return limit._free

    assert asyncio.run(run()) == 0


def test_the_process_limit_follows_the_setting():
    async def run() -> tuple[int, int, bool]:
        first = process_limit("batch", 8)
        same = process_limit("batch", 8)
        resized = process_limit("batch", 16)
        return first.size, resized.size, first is same

    assert asyncio.run(run()) == (8, 16, True)
