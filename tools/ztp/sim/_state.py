"""Persistent state of the virtual SIM (what a real card keeps in EEPROM), as a JSON file.

The file holds the card's identity and secrets (ICCID, PSK), the SAFE2 applet's configuration
(host, port), the DeviceID the device set, the applet's last outcome (state, result code, body)
and counters. It is written atomically (temporary file in the same directory, fsync, rename)
with mode 0600, so a crash never leaves half a card.
"""

from __future__ import annotations

import ipaddress
import json
import os
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ztp.iccid import IccidError, build_ef_iccid, parse_ef_iccid

from ._ota_state import OtaCardKeys

__all__ = ["AppletStatus", "CardState", "CardStateError", "Counters"]

FORMAT = "ztp-virtual-sim/1"
MAX_BODY = 255  # SAFE2: the device buffer holds at most 255 bytes
MAX_DEVICE_ID = 64
MAX_HOST = 253  # RFC 1035 §2.3.4 (text form, no trailing dot)


class CardStateError(ValueError):
    """A card state (or state file) that is malformed; the message names the field."""


class AppletStatus:
    """SAFE2 status word states SSSS (SAFE2-PROTOCOL.md)."""

    IDLE = 0x0000  # nothing requested since the card was personalised
    BUSY = 0x0001  # (assumed) a request is in progress
    DONE = 0x0003  # done, no data
    DATA = 0x0007  # response data ready (CA 01)
    ERROR = 0x000F  # failed; RRRR says why


@dataclass
class Counters:
    """Monotonic counters (persisted): for the transcript and for tests."""

    apdus: int = 0
    requests: int = 0  # CA 00 / DA C1 accepted
    attempts: int = 0  # network attempts (connections tried)
    successes: int = 0
    failures: int = 0
    tls_handshakes: int = 0


@dataclass
class CardState:
    """Everything the card keeps across power cycles.

    Args:
        ef_iccid: the 10 raw EF_ICCID bytes (also the TLS PSK identity).
        psk: the 16-byte TLS PSK (never logged, never in repr).
        host: the gateway host name or IP literal the applet connects to.
        port: its TCP port.
        device_id: what the device set with DA 02 C0 (bytes), or None.
        psk_version: the key version of ``psk`` (1..255), raised by each OTA install-PSK.
        ota: the card's OTA key set and counter (``ztp.sim._ota``), or None (no OTA).
    """

    ef_iccid: bytes
    psk: bytes = field(repr=False)
    host: str
    port: int = 443
    device_id: bytes | None = None
    telemetry: bytes | None = None  # set by DA 02 C1, not yet delivered
    status: int = AppletStatus.IDLE
    result: int = 0
    body: bytes = b""
    counters: Counters = field(default_factory=Counters)
    psk_version: int = field(default=1, repr=False)  # not secret; "psk" stays out of repr
    ota: OtaCardKeys | None = None
    path: Path | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            parse_ef_iccid(self.ef_iccid)
        except IccidError as e:
            raise CardStateError(f"ef_iccid: {e}") from None
        if not isinstance(self.psk, bytes) or len(self.psk) != 16:
            raise CardStateError("psk must be 16 bytes")
        if not isinstance(self.host, str) or not 1 <= len(self.host) <= MAX_HOST:
            raise CardStateError(f"host must be 1..{MAX_HOST} characters")
        if ip_literal(self.host) is None:
            labels = self.host.rstrip(".").split(".")
            for label in labels:
                ok = 1 <= len(label) <= 63 and label.isascii()
                ok = ok and all(c.isalnum() or c == "-" for c in label)
                if not ok or label.startswith("-") or label.endswith("-"):
                    raise CardStateError(f"host {self.host!r} is neither an IP nor a DNS name")
        if not isinstance(self.port, int) or not 1 <= self.port <= 0xFFFF:
            raise CardStateError(f"port must be 1..65535, got {self.port!r}")
        if self.device_id is not None and not 1 <= len(self.device_id) <= MAX_DEVICE_ID:
            raise CardStateError(f"device_id must be 1..{MAX_DEVICE_ID} bytes")
        if self.telemetry is not None and not 1 <= len(self.telemetry) <= 255:
            raise CardStateError("telemetry must be 1..255 bytes")
        if len(self.body) > MAX_BODY:
            raise CardStateError(f"body longer than {MAX_BODY} bytes")
        if not 0 <= self.status <= 0xFFFF or not 0 <= self.result <= 0xFFFF:
            raise CardStateError("status and result are 16-bit values")
        if not isinstance(self.psk_version, int) or not 1 <= self.psk_version <= 0xFF:
            raise CardStateError(f"psk_version must be 1..255, got {self.psk_version!r}")

    @property
    def iccid(self) -> str:
        """The ICCID digits."""
        return parse_ef_iccid(self.ef_iccid)

    @classmethod
    def create(
        cls, iccid: str, psk: bytes, host: str, port: int = 443, *, check_luhn: bool = True
    ) -> CardState:
        """A freshly personalised card. Raises CardStateError / IccidError on bad values."""
        return cls(build_ef_iccid(iccid, check_luhn=check_luhn), psk, host, port)

    # ---------------------------------------------------------------- JSON

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "iccid": self.iccid,
            "ef_iccid": self.ef_iccid.hex(),
            "psk": self.psk.hex(),
            "host": self.host,
            "port": self.port,
            "device_id": self.device_id.hex() if self.device_id is not None else None,
            "telemetry": self.telemetry.hex() if self.telemetry is not None else None,
            "applet": {"status": self.status, "result": self.result, "body": self.body.hex()},
            "counters": {f.name: getattr(self.counters, f.name) for f in fields(Counters)},
            "psk_version": self.psk_version,
            "ota": self.ota.to_json() if self.ota is not None else None,
        }

    @classmethod
    def from_json(cls, doc: object) -> CardState:
        """Inverse of :meth:`to_json`. Raises CardStateError naming the bad field."""
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise CardStateError(f"not a {FORMAT} document")

        def hexfield(name: str, value: object, optional: bool = False) -> bytes | None:
            if value is None and optional:
                return None
            if not isinstance(value, str):
                raise CardStateError(f"{name}: expected a hex string")
            try:
                return bytes.fromhex(value)
            except ValueError:
                raise CardStateError(f"{name}: not hex") from None

        applet = doc.get("applet")
        counters = doc.get("counters", {})
        if not isinstance(applet, dict) or not isinstance(counters, dict):
            raise CardStateError("applet / counters: expected objects")
        known = {f.name for f in fields(Counters)}
        if set(counters) - known or not all(
            isinstance(v, int) and v >= 0 for v in counters.values()
        ):
            raise CardStateError("counters: unknown names or bad values")
        ef_iccid = hexfield("ef_iccid", doc.get("ef_iccid"))
        assert ef_iccid is not None
        for name, value in (("status", applet.get("status")), ("result", applet.get("result"))):
            if not isinstance(value, int):
                raise CardStateError(f"applet.{name}: expected an integer")
        port = doc.get("port")
        host = doc.get("host")
        if not isinstance(port, int) or not isinstance(host, str):
            raise CardStateError("host / port: expected a string and an integer")
        try:
            ota = OtaCardKeys.from_json(doc["ota"]) if doc.get("ota") is not None else None
        except ValueError as e:
            raise CardStateError(str(e)) from None
        state = cls(
            ef_iccid=ef_iccid,
            psk=hexfield("psk", doc.get("psk")) or b"",
            host=host,
            port=port,
            device_id=hexfield("device_id", doc.get("device_id"), True),
            telemetry=hexfield("telemetry", doc.get("telemetry"), True),
            status=applet["status"],
            result=applet["result"],
            body=hexfield("applet.body", applet.get("body")) or b"",
            counters=Counters(**counters),
            psk_version=doc.get("psk_version", 1),
            ota=ota,
        )
        if "iccid" in doc and doc["iccid"] != state.iccid:
            raise CardStateError("iccid and ef_iccid disagree")
        return state

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CardState:
        """Read a state file. Raises CardStateError (bad content) or OSError (I/O)."""
        p = Path(path)
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise CardStateError(f"{p}: not JSON: {e}") from None
        state = cls.from_json(doc)
        state.path = p
        return state

    def save(self, path: str | os.PathLike[str] | None = None) -> None:
        """Write the state file atomically (mode 0600). Raises OSError, ValueError (no path)."""
        p = Path(path) if path is not None else self.path
        if p is None:
            raise ValueError("no path to save the card state to")
        write_atomic(p, self.encode())
        self.path = p

    def encode(self) -> bytes:
        """The state file's bytes."""
        return json.dumps(self.to_json(), indent=2, sort_keys=True).encode() + b"\n"


class PowerCut(OSError):
    """A simulated power cut in the middle of a state write (the old file stays)."""


def write_atomic(path: Path, data: bytes, cut_after: int | None = None) -> None:
    """Replace ``path`` with ``data`` so that a power loss leaves the old or the new file.

    Temporary file in the same directory (mode 0600), fsync, rename, then fsync of the
    directory: without it the rename may not survive the power loss. ``cut_after`` simulates a
    power cut after that many bytes of the temporary file (raises PowerCut).
    """
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    if cut_after is not None:
        with os.fdopen(fd, "wb") as f:
            f.write(data[:cut_after])
        raise PowerCut(f"simulated power cut after {cut_after} bytes of {tmp}")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address when ``host`` is an IP literal, else None (a DNS name)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None
