"""The network side of the SIM's BIP channels: one real socket per open channel.

The SIM Toolkit terminal (``_terminal.ToolkitTerminal``) decides when a channel opens, sends
or closes (TS 102 223 §6.4.27-§6.4.31 OPEN / CLOSE / SEND DATA, RECEIVE DATA); this module
carries that out on loopback: a TCP connection or a connected UDP socket to the address the
virtual network routes to (``_network.Network.route``), with the network round trip of the
latency model on connect and on every send, and the ``Faults.unreachable`` servers refused.
What comes back is handed to the terminal (``link_data``, ``link_closed``), which tells the
card (event download: data available, channel status).

Every socket belongs to a modem *generation*: a reboot or reset bumps it, and anything a
socket of an older generation reports afterwards is dropped, as on a real module whose PDP
context went down with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from ztp.modem._network import Network
from ztp.modem._terminal import OpenLink, SendLink, ToolkitTerminal
from ztp.stk import TransportProtocol

__all__ = ["BearerSockets", "Notify"]

log = logging.getLogger(__name__)

# observer hook: notify(kind, **info) (see VirtualModem's "link" observer events)
Notify = Callable[..., None]


@dataclass
class _Link:
    channel: int
    transport: TransportProtocol
    writer: asyncio.StreamWriter | None = None
    udp: asyncio.DatagramTransport | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    send_queue: asyncio.Queue[tuple[float, bytes]] = field(default_factory=asyncio.Queue)


class _UdpLink(asyncio.DatagramProtocol):
    def __init__(self, bearer: BearerSockets, channel: int, generation: int) -> None:
        self._bearer, self._channel, self._gen = bearer, channel, generation

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self._gen == self._bearer.generation():
            self._bearer.toolkit.link_data(self._channel, data)
            self._bearer.wake()

    def error_received(self, exc: Exception) -> None:
        log.info("modem: UDP channel %d: %s", self._channel, exc)


class BearerSockets:
    """The sockets of the SIM's open BIP channels (an asyncio adapter).

    Args:
        toolkit: the terminal core, told what the sockets do.
        network: where addresses really go (``route``).
        generation: the modem's current generation (see the module docstring).
        clock: the event loop's clock in seconds (for the send delay).
        rtt_ms: the network round trip now (``LatencyModel.network_rtt_ms``).
        refuses: ``refuses(host, port)``: the fault knobs make this connection fail.
        spawn: run a coroutine as a modem task (cancelled when the modem closes).
        wake: the toolkit has something new (its loop runs).
        notify: the modem's observer hook ("link" events).
    """

    def __init__(
        self,
        toolkit: ToolkitTerminal,
        network: Network,
        *,
        generation: Callable[[], int],
        clock: Callable[[], float],
        rtt_ms: Callable[[], int],
        refuses: Callable[[str, int], bool],
        spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]],
        wake: Callable[[], None],
        notify: Notify,
    ) -> None:
        self.toolkit = toolkit
        self.network = network
        self.generation = generation
        self.wake = wake
        self._clock, self._rtt_ms, self._refuses = clock, rtt_ms, refuses
        self._spawn, self._notify = spawn, notify
        self._links: dict[int, _Link] = {}

    @property
    def open_channels(self) -> bool:
        """At least one channel has a socket."""
        return bool(self._links)

    def send(self, action: SendLink) -> None:
        """Queue the terminal's bytes on the channel's socket, due one round trip later."""
        link = self._links.get(action.channel)
        if link is not None:
            due = self._clock() + self._rtt_ms() / 1000
            link.send_queue.put_nowait((due, action.data))
            self._notify("link", channel=action.channel, event="send", size=len(action.data))

    def close(self, channel: int) -> None:
        """The terminal closed the channel: its socket goes."""
        link = self._links.pop(channel, None)
        if link is not None:
            self._close_link(link)
            self._notify("link", channel=channel, event="close")

    def close_all(self) -> None:
        """The modem closes: every socket goes, the terminal is not told."""
        for link in list(self._links.values()):
            self._close_link(link)

    def _close_link(self, link: _Link) -> None:
        for task in link.tasks:
            task.cancel()
        if link.writer is not None:
            link.writer.close()
        if link.udp is not None:
            link.udp.close()

    async def open(self, action: OpenLink, gen: int) -> None:
        """Connect the channel's socket (``gen``: the generation that asked), then tell the
        terminal whether it opened."""
        host, port = self.network.route(str(action.address), action.port)
        link = _Link(action.channel, action.transport)
        self._notify("link", channel=action.channel, event="open", host=str(action.address),
                     port=action.port, transport=action.transport.name)
        try:
            if self._refuses(str(action.address), action.port):
                raise ConnectionRefusedError(f"{action.address}:{action.port} unreachable "
                                             f"(fault)")
            if action.transport == TransportProtocol.TCP_CLIENT_REMOTE:
                if self._rtt_ms():
                    await asyncio.sleep(self._rtt_ms() / 1000)  # SYN, SYN-ACK
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
                link.writer = writer
                if gen != self.generation():
                    writer.close()
                    return
                link.tasks.append(self._spawn(self._tcp_reader(action.channel, reader, gen)))
            else:
                loop = asyncio.get_running_loop()
                udp, _ = await loop.create_datagram_endpoint(
                    lambda: _UdpLink(self, action.channel, gen), remote_addr=(host, port))
                link.udp = udp
                if gen != self.generation():
                    udp.close()
                    return
            link.tasks.append(self._spawn(self._link_sender(link)))
        except (TimeoutError, OSError) as err:
            log.info("modem: channel %d: connect to %s:%d failed: %s", action.channel,
                     action.address, action.port, err)
            self._notify("link", channel=action.channel, event="failed", error=str(err))
            if gen == self.generation():
                self.toolkit.link_failed(action.channel)
                self.wake()
            return
        self._links[action.channel] = link
        self.toolkit.link_opened(action.channel)
        self._notify("link", channel=action.channel, event="opened")
        self.wake()

    async def _tcp_reader(self, channel: int, reader: asyncio.StreamReader, gen: int) -> None:
        while True:
            try:
                data = await reader.read(4096)
            except OSError:
                data = b""
            if gen != self.generation():
                return
            if not data:
                self._notify("link", channel=channel, event="remote_closed")
                self.toolkit.link_closed(channel)
                self.wake()
                return
            self._notify("link", channel=channel, event="receive", size=len(data))
            self.toolkit.link_data(channel, data)
            self.wake()

    async def _link_sender(self, link: _Link) -> None:
        while True:
            due, data = await link.send_queue.get()
            delay = due - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)
            if link.writer is not None:
                link.writer.write(data)
                with contextlib.suppress(OSError):
                    await link.writer.drain()
            elif link.udp is not None:
                link.udp.sendto(data)
