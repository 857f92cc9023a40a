"""What the SAFE2 applet's network job is asked to do and what it reports (SAFE2-PROTOCOL.md):
the HTTP requests, the retry policy, the result codes RRRR, the per-connection records.

Plain data shared by the job (``_job.py``), its BIP link (``_bip.py``) and its HTTPS
exchange (``_https.py``); no behaviour beyond validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "Config",
    "CryptoWork",
    "ExchangeRecord",
    "JobFailure",
    "Request",
    "ResultCode",
    "RetryPolicy",
]


class ResultCode(IntEnum):
    """RRRR values that are not HTTP statuses (HTTP statuses 100-599 are used as they are).

    0xE0xx: TLS alert xx received from the server; 0xE1xx: TLS alert xx sent by the applet.
    """

    OK = 0x0000
    NO_BIP = 0xF001  # the terminal did not announce BIP (TERMINAL PROFILE)
    DNS_NOT_FOUND = 0xF002  # NXDOMAIN / no A record
    DNS_FAILED = 0xF003  # no usable DNS answer
    UNREACHABLE = 0xF004  # OPEN CHANNEL failed (network / remote not reachable)
    TIMEOUT = 0xF005  # the attempt's watchdog timer expired
    LINK_DROPPED = 0xF006  # the connection ended before the response was complete
    HTTP_MALFORMED = 0xF007  # not a well-formed HTTP/1.1 response
    BODY_TOO_LARGE = 0xF008  # body longer than 255 bytes
    INTERRUPTED = 0xF009  # card reset while the request was running
    TERMINAL_ERROR = 0xF00A  # the terminal refused a BIP command unexpectedly
    TLS_ALERT_RECEIVED = 0xE000
    TLS_ALERT_SENT = 0xE100


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries: ``max_attempts`` attempts, backoff ``base_s * 2**(n-1)`` up to
    ``cap_s`` between them, each attempt limited by a ``watchdog_s`` toolkit timer."""

    max_attempts: int = 5
    base_s: int = 2
    cap_s: int = 60
    watchdog_s: int = 30

    def __post_init__(self) -> None:
        if not 1 <= self.max_attempts <= 20:
            raise ValueError("max_attempts must be 1..20")
        for v in (self.base_s, self.cap_s, self.watchdog_s):
            if not 1 <= v <= 3600:
                raise ValueError("timer values must be 1..3600 s")

    def backoff_s(self, attempt: int) -> int:
        return min(self.base_s * 2 ** (attempt - 1), self.cap_s)


@dataclass(frozen=True)
class Request:
    """One HTTP exchange of the job."""

    method: str  # "GET" (configuration) or "POST" (telemetry)
    target: str


@dataclass(frozen=True)
class ExchangeRecord:
    """Summary of one TLS connection, for transcripts and benchmarks (no secrets)."""

    method: str
    target: str
    address: str
    port: int
    identity_hex: str
    key_exchange_mode: str | None
    cipher_suite: str | None
    bytes_sent: int
    bytes_received: int
    http_status: int | None
    result: int


@dataclass
class Config:
    """What the job needs from the card (copied at start; the PSK is never logged)."""

    ef_iccid: bytes
    psk: bytes
    host: str
    port: int
    device_id: bytes
    timers: bool  # the terminal announced TIMER MANAGEMENT + timer expiration


@dataclass
class CryptoWork:
    """Crypto the card has done since it was made (monotonic): SHA-256 compressions and AES
    blocks. The card only counts; the time it costs is the owner's business (``CostMeter``)."""

    sha256_blocks: int = 0
    aes_blocks: int = 0


class JobFailure(Exception):
    """One attempt failed: ``code`` is the RRRR to report, ``transient`` whether a retry may
    help (network trouble, 5xx) or not (TLS alert, 4xx, malformed answer, unknown name)."""

    def __init__(self, code: int, transient: bool, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.transient = transient
