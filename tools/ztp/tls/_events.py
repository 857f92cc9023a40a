"""Events returned by ``next_event()`` and the ``NEED_DATA`` sentinel."""

from __future__ import annotations

from dataclasses import dataclass

from ._messages import CipherSuite, KeyExchangeMode


class _NeedData:
    """Sentinel: no complete event yet; feed more bytes with ``receive_data``."""

    _instance: _NeedData | None = None

    def __new__(cls) -> _NeedData:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = _NeedData()


@dataclass(frozen=True)
class HandshakeComplete:
    """Both Finished messages verified (server) / server Finished verified (client).

    ``identity`` is the raw PSK identity the binder proved; ``psk_tag`` the tag of the
    ``PskCandidate`` whose key verified (always ``""`` on the client).
    """

    identity: bytes
    psk_tag: str
    key_exchange_mode: KeyExchangeMode
    cipher_suite: CipherSuite
    server_name: str | None


@dataclass(frozen=True)
class ApplicationData:
    data: bytes


@dataclass(frozen=True)
class AlertReceived:
    """The peer sent a fatal alert (anything but close_notify); the connection is over."""

    description: int


@dataclass(frozen=True)
class ConnectionClosed:
    """The peer closed its side: close_notify (``clean``) or EOF without it (not ``clean``)."""

    clean: bool = True


@dataclass(frozen=True)
class PskRequest:
    """Server only: answer with ``supply_psks({identity: [PskCandidate, ...]})``."""

    identities: tuple[bytes, ...]


Event = HandshakeComplete | ApplicationData | AlertReceived | ConnectionClosed | PskRequest
