"""Pool public addresses on loopback: in order, skipping addresses in use or where a needed port is taken."""

from __future__ import annotations

import random
import socket

import pytest

from devstack.batch_emulator.network import AddressAllocator, NetworkError, parse_loopback_network
from devstack.process import free_port


@pytest.fixture
def network() -> str:
    return f"127.{random.SystemRandom().randint(30, 250)}.{random.SystemRandom().randint(0, 255)}.0/24"


def test_first_pool_gets_the_first_host_address_then_the_next(network: str) -> None:
    allocator = AddressAllocator(network)
    base = network.rsplit(".", 1)[0]
    first, _ = allocator.assign([])
    second, _ = allocator.assign([])
    assert (first, second) == (f"{base}.1", f"{base}.2")


def test_an_address_with_a_taken_port_is_skipped(network: str) -> None:
    base = network.rsplit(".", 1)[0]
    port = free_port(f"{base}.1")
    with socket.socket() as squatter:
        squatter.bind((f"{base}.1", port))
        squatter.listen()
        address, sockets = AddressAllocator(network).assign([port, port + 1])
        try:
            assert address == f"{base}.2"
            assert set(sockets) == {port, port + 1}
            assert all(s.getsockname() == (address, p) for p, s in sockets.items())
        finally:
            for sock in sockets.values():
                sock.close()


def test_released_addresses_are_reused_after_a_full_cycle() -> None:
    allocator = AddressAllocator("127.31.7.0/30")  # two host addresses
    a, _ = allocator.assign([])
    b, _ = allocator.assign([])
    with pytest.raises(NetworkError):
        allocator.assign([])
    allocator.release(a)
    assert allocator.assign([])[0] == a


@pytest.mark.parametrize("text", ["10.0.0.0/16", "0.0.0.0/0", "::1/128", "127.0.0.0/31", "nonsense"])
def test_only_loopback_networks_are_accepted(text: str) -> None:
    with pytest.raises(NetworkError):
        parse_loopback_network(text)
