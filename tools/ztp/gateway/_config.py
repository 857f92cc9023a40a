"""``GatewayConfig``: everything tunable about one gateway, checked when built.

The TLS policy fields (key exchange modes, cipher suites, binders per ClientHello) take their
defaults from ``ztp.tls.ServerConfig``: one place says what the engine offers by default, and
the gateway only narrows it when told to.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ztp.tls import CipherSuite, KeyExchangeMode, ServerConfig

from ._limits import RateLimit
from ._session import SessionLimits

__all__ = ["GatewayConfig"]

_TLS_DEFAULTS = ServerConfig()


@dataclass(frozen=True)
class GatewayConfig:
    """Everything tunable about one gateway. Defaults suit SIMs over cellular."""

    name: str = "gateway"
    session: SessionLimits = field(default_factory=SessionLimits)
    # Shared fairly between addresses (_admission.py); room for a boot storm of slow SIMs
    # behind one carrier-NAT address (start() raises the open-files limit to fit it).
    max_connections: int = 4096
    # A SIM provisions rarely; leave room for its retries, not for a loop.
    identity_rate: RateLimit = field(default_factory=lambda: RateLimit.per_minute(10, burst=5))
    # Loose: thousands of SIMs may share one carrier-NAT address and boot at once (4,000 SIMs
    # are all admitted within about 6 s); it bounds the TLS work one address can cause.
    address_rate: RateLimit = field(default_factory=lambda: RateLimit(per_second=250, burst=2500))
    # refusals, evictions and failed handshakes: one log line per address per interval
    log_interval_s: float = 10.0
    linger_s: float = 2.0  # after our last byte, drain the client briefly so it reads it all
    # close(): stop accepting, let open connections finish for this long, then cut them off
    shutdown_grace_s: float = 5.0
    # a client that does not read what we send (the socket's buffer stays full) is cut off
    write_timeout_s: float = 20.0
    # known and unknown identities alike, so that timing does not tell them apart
    psk_ttl_s: float = 300.0
    # a PSK lookup that misses the cache answers no earlier than this after it started: above
    # the service's usual answer time, so that a known identity (keys opened, lookup audited)
    # and an unknown one take as long
    psk_lookup_floor_s: float = 0.05
    psk_poll_interval_s: float = 2.0
    # the engine's defaults (ServerConfig), in preference order
    key_exchange_modes: tuple[KeyExchangeMode, ...] = _TLS_DEFAULTS.key_exchange_modes
    cipher_suites: tuple[CipherSuite, ...] = _TLS_DEFAULTS.cipher_suites
    # binders computed per ClientHello whatever the identity (ServerConfig.max_psk_candidates):
    # at least the most keys a SIM holds (two during a rotation)
    max_psk_candidates: int = _TLS_DEFAULTS.max_psk_candidates

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            raise ValueError("GatewayConfig.max_connections must be >= 1")
        if self.linger_s < 0 or not self.write_timeout_s > 0:
            raise ValueError("GatewayConfig: linger_s must be >= 0 and write_timeout_s > 0")
        if self.shutdown_grace_s < 0:
            raise ValueError("GatewayConfig.shutdown_grace_s must be >= 0")
        if self.psk_lookup_floor_s < 0 or not self.psk_ttl_s > 0:
            raise ValueError("GatewayConfig: psk_lookup_floor_s must be >= 0, psk_ttl_s > 0")
        if self.log_interval_s < 0:
            raise ValueError("GatewayConfig.log_interval_s must be >= 0")

    def tls_config(self) -> ServerConfig:
        """The engine's policy for every connection (immutable, shared): keys come from the
        gateway's PSK cache (``psk_lookup=None``: the engine stops at ``PskRequest``)."""
        return ServerConfig(
            psk_lookup=None,
            key_exchange_modes=self.key_exchange_modes,
            cipher_suites=self.cipher_suites,
            max_psk_candidates=self.max_psk_candidates,
        )
