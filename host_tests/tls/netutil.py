"""Test-only blocking socket adapters around the sans-I/O cores (the real asyncio adapter is
the gateway's). Each fits on one screen: read, feed, drain events, write."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field

from ztp.tls import (
    NEED_DATA,
    Alert,
    AlertReceived,
    ApplicationData,
    ClientConnection,
    ConnectionClosed,
    HandshakeComplete,
    ServerConnection,
)

TIMEOUT_S = 20


@dataclass
class Outcome:
    events: list = field(default_factory=list)
    error: BaseException | None = None
    received: bytes = b""


def _pump(sock: socket.socket, conn, outcome: Outcome, on_event) -> None:
    try:
        while True:
            event = conn.next_event()
            sock.sendall(conn.data_to_send())
            if event is NEED_DATA:
                data = sock.recv(65536)
                conn.receive_data(data)
                continue
            outcome.events.append(event)
            if isinstance(event, ApplicationData):
                outcome.received += event.data
            on_event(conn, event)
            sock.sendall(conn.data_to_send())
            if isinstance(event, ConnectionClosed | AlertReceived):
                return
    except Alert as exc:
        outcome.error = exc
        try:
            sock.sendall(conn.data_to_send())
        except OSError:
            pass
    except OSError as exc:
        outcome.error = exc


class OneShotServer:
    """Accept one TCP connection on loopback and run a ServerConnection on it.

    ``reply(request_bytes) -> bytes | None``: after each ApplicationData, answer; when the
    answer is not None it is sent and followed by close_notify.
    """

    def __init__(self, make_conn, reply=None) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(TIMEOUT_S)
        self.port = self._listener.getsockname()[1]
        self._make_conn = make_conn
        self._reply = reply or (lambda data: b"pong:" + data if data.endswith(b"\n") else None)
        self.outcome = Outcome()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            sock, _ = self._listener.accept()
        except OSError as exc:
            self.outcome.error = exc
            return
        finally:
            self._listener.close()
        with sock:
            sock.settimeout(TIMEOUT_S)
            conn: ServerConnection = self._make_conn()
            buffered = bytearray()

            def on_event(conn, event):
                if isinstance(event, ApplicationData):
                    buffered.extend(event.data)
                    answer = self._reply(bytes(buffered))
                    if answer is not None:
                        conn.send_application_data(answer)
                        conn.close()

            _pump(sock, conn, self.outcome, on_event)

    def join(self) -> Outcome:
        self._thread.join(TIMEOUT_S + 5)
        return self.outcome


def run_client(conn: ClientConnection, port: int, request: bytes, *, close: bool = False):
    """Connect, handshake, send ``request``, collect until close_notify/EOF/alert."""
    outcome = Outcome()
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as sock:
        conn.start_handshake()
        sock.sendall(conn.data_to_send())

        def on_event(conn, event):
            if isinstance(event, HandshakeComplete):
                conn.send_application_data(request)
                if close:
                    conn.close()

        _pump(sock, conn, outcome, on_event)
    return outcome
