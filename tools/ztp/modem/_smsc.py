"""An operator-side SMS centre on loopback, for OTA (docs/ota.md, "Operator view").

The configuration service hands it SMS-DELIVER TPDUs (secured command packets, ETSI TS 102 225)
for a SIM; it delivers each to that SIM's virtual modem as an SMS-PP data download (ENVELOPE
'D1', 3GPP TS 31.111 §7.1.1, through the modem's card lock) and returns what the SIM put in
the SMS-DELIVER-REPORT: the proof of receipt (PoR), if any. A real network returns the PoR
later and asynchronously; here the HTTP call waits for it, and "no PoR" looks the same to the
sender whether the SMS or the report was lost.

    POST /v1/sms-pp  {"iccid": "8944...", "tpdu": "<hex SMS-DELIVER>"}
      200 {"delivered": true|false, "por": "<hex user data 02 71 00 ...>" | null}
      400 malformed request / TPDU; 404 no modem for that ICCID;
      502 {"error": "sim_error", "detail": ...}: the card answered an error status word

Fault knobs (``SmsFaults``, change with ``smsc.faults = ...``): ``drop_sms`` (the SMS never
reaches the SIM), ``drop_por`` (the SIM processes it, the report is lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from ztp.ota import OtaDecodeError, SmsAddress, build_sms_pp_download, parse_sms_deliver

__all__ = ["SmsCentre", "SmsDelivery", "SmsFaults"]

log = logging.getLogger("ztp.modem.smsc")

SMSC_ADDRESS = SmsAddress("447700900000", 0x91)  # the service centre address (RP-OA)
_MAX_BODY = 4096
_MAX_HEAD = 8192


class _Modem(Protocol):
    async def sms_pp_download(self, envelope: bytes, timeout_s: float = 30.0) -> bytes: ...


@dataclass(frozen=True)
class SmsFaults:
    """drop_sms: the next SMS are lost before the SIM; drop_por: their reports are lost."""

    drop_sms: bool = False
    drop_por: bool = False


@dataclass(frozen=True)
class SmsDelivery:
    """One SMS handled: to whom, the TPDU, what came back (after the faults)."""

    iccid: str
    tpdu: bytes
    delivered: bool  # the SIM got it
    por: bytes | None  # what the sender receives
    error: str = ""


class SmsCentre:
    """SMS-PP delivery to attached modems, by ICCID; optionally served over HTTP on loopback."""

    def __init__(self, faults: SmsFaults | None = None) -> None:
        self.faults = faults or SmsFaults()
        self.log: list[SmsDelivery] = []
        self._modems: dict[str, _Modem] = {}
        self._server: asyncio.AbstractServer | None = None
        self.url = ""

    def attach(self, iccid: str, modem: _Modem) -> None:
        """Route SMS for ``iccid`` (digits) to ``modem`` (a ``VirtualModem``)."""
        self._modems[iccid] = modem

    async def deliver(self, iccid: str, tpdu: bytes) -> SmsDelivery:
        """Deliver one SMS-DELIVER TPDU to the SIM; see the module docstring.

        Raises:
            KeyError: no modem for ``iccid``.
            OtaDecodeError: ``tpdu`` is not an SMS-DELIVER.
        """
        modem = self._modems[iccid]
        parse_sms_deliver(tpdu)  # the network would not route garbage either
        faults = self.faults
        if faults.drop_sms:
            record = SmsDelivery(iccid, tpdu, False, None, "dropped (fault)")
        else:
            try:
                por = await modem.sms_pp_download(build_sms_pp_download(tpdu, SMSC_ADDRESS))
            except (RuntimeError, TimeoutError) as err:
                record = SmsDelivery(iccid, tpdu, True, None, str(err))
            else:
                if faults.drop_por:
                    record = SmsDelivery(iccid, tpdu, True, None, "report dropped (fault)")
                else:
                    record = SmsDelivery(iccid, tpdu, True, por or None)
        self.log.append(record)
        log.info("smsc: SMS to %s: delivered=%s por=%s %s", iccid, record.delivered,
                 "yes" if record.por else "no", record.error)
        return record

    # ------------------------------------------------------------------ HTTP on loopback
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve ``POST /v1/sms-pp``; returns the base URL (also in ``self.url``)."""
        self._server = await asyncio.start_server(self._client, host, port)
        bound = self._server.sockets[0].getsockname()
        self.url = f"http://{bound[0]}:{bound[1]}"
        return self.url

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> SmsCentre:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, body = await self._handle(reader)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            status, body = 400, {"error": "bad_request", "detail": "malformed HTTP request"}
        data = json.dumps(body).encode()
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
                  413: "Payload Too Large", 502: "Bad Gateway"}.get(status, "Error")
        head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n").encode()
        with contextlib.suppress(ConnectionError):
            writer.write(head + data)
            await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > _MAX_HEAD:
            return 400, {"error": "bad_request", "detail": "header too long"}
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            return 400, {"error": "bad_request", "detail": "bad request line"}
        method, path, _ = parts
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                if not value.strip().isdigit():
                    return 400, {"error": "bad_request", "detail": "bad Content-Length"}
                length = int(value.strip())
        if length > _MAX_BODY:
            return 413, {"error": "too_large", "detail": f"body over {_MAX_BODY} bytes"}
        raw = await reader.readexactly(length)
        if path != "/v1/sms-pp":
            return 404, {"error": "not_found", "detail": path}
        if method != "POST":
            return 405, {"error": "method_not_allowed", "detail": method}
        try:
            req = json.loads(raw)
            iccid = req["iccid"]
            tpdu = bytes.fromhex(req["tpdu"])
            if not isinstance(iccid, str):
                raise TypeError("iccid")
        except (ValueError, KeyError, TypeError) as err:
            return 400, {"error": "bad_request", "detail": f"expected {{iccid, tpdu}}: {err}"}
        if iccid not in self._modems:
            return 404, {"error": "unknown_destination", "detail": f"no SIM {iccid} here"}
        try:
            record = await self.deliver(iccid, tpdu)
        except OtaDecodeError as err:
            return 400, {"error": "bad_tpdu", "detail": str(err)}
        if record.delivered and record.por is None and record.error and \
                "fault" not in record.error:
            return 502, {"error": "sim_error", "detail": record.error}
        return 200, {"delivered": record.delivered,
                     "por": record.por.hex() if record.por is not None else None}
