"""Pool "public IP addresses" on loopback: one address per pool from --ssh-network, chosen so the pool's
frontend ports are free there, and the listening sockets reserved for its nodes."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

DEFAULT_SSH_NETWORK = "127.20.0.0/16"


class NetworkError(ValueError):
    """An --ssh-network that is not a loopback range, or no address left with the ports free."""


def parse_loopback_network(text: str) -> ipaddress.IPv4Network:
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise NetworkError(f"--ssh-network: {text!r} is not a network such as 127.20.0.0/16") from exc
    if not isinstance(network, ipaddress.IPv4Network) or not network.subnet_of(
        ipaddress.ip_network("127.0.0.0/8")
    ):
        raise NetworkError(f"--ssh-network: {text} must lie inside 127.0.0.0/8 (loopback only)")
    if network.num_addresses < 4:
        raise NetworkError(f"--ssh-network: {text} is too small (use a /30 or larger)")
    return network


def bind_listener(address: str, port: int) -> socket.socket | None:
    """A TCP socket bound to address:port (not yet listening), or None if the port is taken there."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
    except OSError:
        sock.close()
        return None
    return sock


class AddressAllocator:
    """Hands out the network's host addresses in order (first pool .0.1), skipping those in use by live pools
    and those where any needed port is taken; reserves the bound sockets for the caller."""

    def __init__(self, network: str = DEFAULT_SSH_NETWORK) -> None:
        self.network = parse_loopback_network(network)
        self._hosts_count = self.network.num_addresses - 2
        self._cursor = 0
        self._in_use: set[str] = set()

    def _host(self, offset: int) -> str:
        return str(self.network.network_address + 1 + offset)

    def assign(self, ports: Iterable[int]) -> tuple[str, dict[int, socket.socket]]:
        """The next address where all `ports` can be bound, with those sockets (bound, not listening)."""
        wanted = list(ports)
        for step in range(self._hosts_count):
            offset = (self._cursor + step) % self._hosts_count
            address = self._host(offset)
            if address in self._in_use:
                continue
            sockets = self._bind_all(address, wanted)
            if sockets is not None:
                self._cursor = (offset + 1) % self._hosts_count
                self._in_use.add(address)
                return address, sockets
        raise NetworkError(f"no address in {self.network} has the ports {_describe(wanted)} free")

    def release(self, address: str) -> None:
        self._in_use.discard(address)

    @staticmethod
    def _bind_all(address: str, ports: list[int]) -> dict[int, socket.socket] | None:
        bound: dict[int, socket.socket] = {}
        for port in ports:
            sock = bind_listener(address, port)
            if sock is None:
                for other in bound.values():
                    other.close()
                return None
            bound[port] = sock
        return bound


def _describe(ports: list[int]) -> str:
    if not ports:
        return "(none)"
    return f"{ports[0]}-{ports[-1]}" if len(ports) > 1 else str(ports[0])
