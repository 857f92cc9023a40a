"""The virtual cellular network behind the modem: a DNS server on loopback and routing rules.

``Network(dns={"gw.example": "127.0.0.1"})`` starts (``await network.start()``) a real UDP DNS
server on loopback that answers A queries from its table, then from the host's resolver
(``getaddrinfo``), else NXDOMAIN. Its address is what the modem returns to the SIM for OPEN
CHANNEL's "DNS server address requested" (TS 102 223 §8.90). The SIM then sends its queries to
``<dns address>:53``; the network routes that to the server's real (ephemeral) port, the way an
operator's network routes to its resolver, so no privileged port is needed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Mapping

from ztp.modem._dns import (
    CLASS_IN,
    RCODE_FORMERR,
    RCODE_NOTIMP,
    RCODE_NXDOMAIN,
    TYPE_A,
    DnsFormatError,
    build_error,
    build_response,
    parse_query,
)

__all__ = ["Network"]

log = logging.getLogger(__name__)

DNS_PORT = 53


class _DnsProtocol(asyncio.DatagramProtocol):
    def __init__(self, network: Network) -> None:
        self._network = network
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        task = asyncio.get_running_loop().create_task(self._answer(data, addr))
        self._network._tasks.add(task)
        task.add_done_callback(self._network._tasks.discard)

    async def _answer(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = await self._network.answer_dns(data)
        if reply is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)


class Network:
    """Packet network of the virtual operator.

    Args:
        dns: host name -> IPv4 address (text) answered by the DNS server (authoritative).
        use_system_resolver: for names not in ``dns``, ask the host's resolver.
        host: loopback address the DNS server binds (and announces to the SIM).
        dns_ttl_s: TTL of the answers.
    """

    def __init__(
        self,
        dns: Mapping[str, str] | None = None,
        *,
        use_system_resolver: bool = True,
        host: str = "127.0.0.1",
        dns_ttl_s: int = 60,
    ) -> None:
        self.dns: dict[str, ipaddress.IPv4Address] = {
            name.lower().rstrip("."): ipaddress.IPv4Address(ip) for name, ip in (dns or {}).items()
        }
        self.use_system_resolver = use_system_resolver
        self.host = host
        self.dns_ttl_s = dns_ttl_s
        self._transport: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.dns_queries: list[tuple[str, int]] = []  # (name, qtype) seen, for transcripts
        self.dns_port = 0

    @property
    def dns_address(self) -> ipaddress.IPv4Address:
        """The DNS server address given to the SIM."""
        return ipaddress.IPv4Address(self.host)

    async def start(self) -> None:
        """Bind the DNS server (idempotent)."""
        if self._transport is not None:
            return
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _DnsProtocol(self), local_addr=(self.host, 0), family=socket.AF_INET
        )
        self._transport = transport
        self.dns_port = transport.get_extra_info("sockname")[1]
        log.info("network: DNS server on %s:%d (announced as %s:53)", self.host, self.dns_port,
                 self.host)

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        for task in list(self._tasks):
            task.cancel()

    def route(self, address: str, port: int) -> tuple[str, int]:
        """Where a packet for ``address:port`` really goes (the DNS server's real port)."""
        if port == DNS_PORT and address == self.host and self.dns_port:
            return self.host, self.dns_port
        return address, port

    async def answer_dns(self, data: bytes) -> bytes | None:
        """The response to one DNS query message (None: not even an id to answer)."""
        try:
            query = parse_query(data)
        except DnsFormatError as err:
            log.info("network: bad DNS query: %s", err)
            if err.query_id is None:
                return None
            return build_error(err.query_id, RCODE_FORMERR)
        self.dns_queries.append((query.name, query.qtype))
        if query.qclass != CLASS_IN:
            return build_response(query, rcode=RCODE_NOTIMP)
        if query.name in self.dns:
            addrs = (self.dns[query.name],) if query.qtype == TYPE_A else ()
            return build_response(query, addrs, authoritative=True, ttl_s=self.dns_ttl_s)
        if self.use_system_resolver and query.qtype == TYPE_A and query.name:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    query.name, None, family=socket.AF_INET, type=socket.SOCK_DGRAM)
            except (OSError, UnicodeError):
                infos = []
            found = tuple(dict.fromkeys(ipaddress.IPv4Address(i[4][0]) for i in infos))
            if found:
                return build_response(query, found, ttl_s=self.dns_ttl_s)
        return build_response(query, rcode=RCODE_NXDOMAIN)
