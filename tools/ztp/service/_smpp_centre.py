"""SMS-centre adapter over SMPP v3.4: OTA packets to an operator's SMSC (issue 16).

The same ``SmsTransport`` interface as the virtual centre (``deliver(iccid, tpdu) -> PoR user
data | None``), so the rotation logic (``_rotation.run_due``) is unchanged.

Theory of operation
-------------------
One bound transceiver session per URL (bind_transceiver, SMPP §4.1.5), opened on the first
``deliver`` and kept: a reader thread answers enquire_link and deliver_sm at any time and
sends enquire_link when the link has been idle ``enquire_link_s``.

``deliver`` takes the service's SMS-DELIVER TPDU (3GPP TS 23.040 §9.2.2.1, built by
``ztp.ota.build_install_psk_sms``) apart and sends its user data as one submit_sm (§4.4) to
the SIM's MSISDN: esm_class 0x40 (UDHI: short_message starts with the UDH 02 70 00 of the
command packet, TS 31.115 §4.2), protocol_id 0x7F (TP-PID SIM data download, TS 23.040
§9.2.3.9) and data_coding 0xF6 (TP-DCS class 2, 8-bit, TS 23.038 §4), source_addr the TPDU's
TP-OA (the OTA server address the card answers to), registered_delivery 0: the PoR is our
delivery proof, an SMSC receipt would only say the handset took the SMS.

The PoR comes back asynchronously: the card sends it by SMS-SUBMIT to the TP-OA (TS 31.115
§4.4, UDH 02 71 00), which the SMSC hands us as a deliver_sm from the SIM's MSISDN with UDHI
set. ``deliver`` waits up to ``por_wait_s`` for it and returns its user data, which the
service checks (``check_por``) and records as for the virtual centre: verified "installed"
-> delivered. A PoR that comes twice is answered (deliver_sm_resp) and the copy is ignored; a
PoR after the wait, with no SMS waiting, is logged and ignored (the rotation stays pending
and is resent on the service's schedule; the SIM's first handshake with the new key confirms
it anyway). No PoR: None, as for a lost report.

Connection loss: the waiting call gets no PoR, the next ``deliver`` rebinds; a failed bind
or connect raises ``SmsTransportError`` and further attempts wait 1 s, 2 s, ... at most
``max_backoff_s``. ``close()`` unbinds (§4.2). The password is never logged nor in any
message or repr: the centre is named ``smpp://system_id@host:port``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from ztp.ota import (
    OtaDecodeError,
    parse_response_user_data,
    parse_sms_deliver,
    smpp,
)

from ._sms_centre import SmsTransportError

__all__ = ["SmppSmsCentre", "SmppUrlError", "parse_smpp_url"]

log = logging.getLogger("ztp.service.smpp")

DEFAULT_PORT = 2775  # IANA "smpp"
_QUERY = {"system_type", "source_addr", "source_ton", "source_npi", "dest_ton", "dest_npi",
          "msisdns", "por_wait_s", "enquire_link_s", "service_type"}


class SmppUrlError(ValueError):
    """A bad ``smpp://`` URL (the message never contains the password)."""


@dataclass(frozen=True)
class SmppConfig:
    host: str
    port: int
    system_id: str
    password: str = field(repr=False)
    system_type: str = ""
    source_addr: str = ""  # empty: the TPDU's TP-OA
    source_ton: int = 1  # international
    source_npi: int = 1  # ISDN / E.164
    dest_ton: int = 1
    dest_npi: int = 1
    msisdns: str = ""  # file of "iccid,msisdn" lines
    por_wait_s: float = 30.0
    enquire_link_s: float = 30.0
    service_type: str = ""

    @property
    def name(self) -> str:
        return f"smpp://{self.system_id}@{self.host}:{self.port}"


def parse_smpp_url(url: str) -> SmppConfig:
    """``smpp://system_id:password@host:port?system_type=&source_addr=&msisdns=&...``.

    Raises:
        SmppUrlError: another scheme, no host or system_id, an unknown or bad parameter.
    """
    parts = urlsplit(url)
    if parts.scheme != "smpp":
        raise SmppUrlError(f"SMS centre URL: expected smpp://, got {parts.scheme}://")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise SmppUrlError("SMS centre URL: bad port") from None
    if not parts.hostname or not parts.username:
        raise SmppUrlError("SMS centre URL: expected smpp://system_id:password@host:port")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(query) - _QUERY
    if unknown:
        raise SmppUrlError(f"SMS centre URL: unknown parameter(s) {', '.join(sorted(unknown))}"
                           f"; known: {', '.join(sorted(_QUERY))}")
    one = {k: v[-1] for k, v in query.items()}
    kw: dict[str, object] = {}
    try:
        for k in ("source_ton", "source_npi", "dest_ton", "dest_npi"):
            if k in one:
                kw[k] = int(one[k])
                if not 0 <= int(one[k]) <= 255:
                    raise ValueError(k)
        for k in ("por_wait_s", "enquire_link_s"):
            if k in one:
                kw[k] = float(one[k])
                if not 0 < float(one[k]) <= 3600:
                    raise ValueError(k)
    except ValueError:
        raise SmppUrlError("SMS centre URL: source_ton/npi, dest_ton/npi are 0..255; "
                           "por_wait_s, enquire_link_s are seconds (0, 3600]") from None
    for k in ("system_type", "source_addr", "msisdns", "service_type"):
        if k in one:
            kw[k] = one[k]
    config = SmppConfig(parts.hostname, port, unquote(parts.username),
                        unquote(parts.password or ""), **kw)  # type: ignore[arg-type]
    try:  # the fields fit their C-Octet sizes (SMPP §4.1.5)
        smpp.build_bind(smpp.BindTransceiver(config.system_id, config.password,
                                             config.system_type))
    except ValueError:
        raise SmppUrlError("SMS centre URL: system_id up to 15, password up to 8, "
                           "system_type up to 12 ASCII characters (SMPP §4.1.5)") from None
    return config


def load_msisdns(path: str) -> dict[str, str]:
    """``iccid,msisdn`` per line (``#`` comments, blank lines allowed) -> {iccid: msisdn}."""
    out: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            iccid, sep, msisdn = (p.strip() for p in line.partition(","))
            msisdn = msisdn.removeprefix("+")
            if not sep or not iccid.isdigit() or not msisdn.isdigit() or len(msisdn) > 20:
                raise ValueError(f"{path}:{n}: expected iccid,msisdn (digits)")
            out[iccid] = msisdn
    return out


class _Waiter:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.value: object = None

    def set(self, value: object) -> None:
        self.value = value
        self.event.set()


class SmppSmsCentre:
    """``SmsTransport`` over SMPP v3.4 (see the module docstring).

    Args:
        url: ``smpp://system_id:password@host:port?...`` (docs/service.md).
        msisdns: ICCID -> MSISDN; default: the URL's ``msisdns`` file (re-read when it
            changes).
        clock: monotonic seconds (backoff); injectable.
    """

    def __init__(self, url: str, *, msisdns: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.monotonic, response_timeout_s: float = 10.0,
                 max_backoff_s: float = 60.0) -> None:
        self.config = parse_smpp_url(url)
        self._msisdns = dict(msisdns) if msisdns is not None else None
        self._msisdn_file: tuple[float, dict[str, str]] | None = None
        self._clock = clock
        self._response_timeout_s = response_timeout_s
        self._max_backoff_s = max_backoff_s
        self._lock = threading.Lock()  # connection state and socket writes
        self._connect_lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._seq = 0
        self._responses: dict[int, _Waiter] = {}
        self._pors: dict[str, _Waiter] = {}  # MSISDN -> the deliver() waiting for its PoR
        self._seen: deque[bytes] = deque(maxlen=1024)  # digests of PoRs already handled
        self._backoff_s = 0.0
        self._retry_at = 0.0
        self._last_tx = 0.0
        self._enquire_sent_at: float | None = None
        self._closed = False
        self.stats = {"submitted": 0, "pors": 0, "pors_duplicate": 0, "pors_unexpected": 0,
                      "binds": 0}

    def __repr__(self) -> str:
        return f"SmppSmsCentre({self.config.name})"

    @property
    def name(self) -> str:
        return self.config.name

    # ------------------------------------------------------------------ SmsTransport
    def deliver(self, iccid: str, tpdu: bytes) -> bytes | None:
        """Send one SMS-DELIVER TPDU's user data to the SIM as submit_sm; wait for the PoR.

        Returns:
            The PoR user data (02 71 00 ...) from the deliver_sm, or None when none came
            within ``por_wait_s``.

        Raises:
            SmsTransportError: no MSISDN for the ICCID, the SMSC unreachable (or in backoff),
                bind or submit_sm refused (the message names the SMPP status).
        """
        [(por, error)] = self.deliver_many([(iccid, tpdu)])
        if error:
            raise SmsTransportError(error)
        return por

    def deliver_many(self, items: list[tuple[str, bytes]]) -> list[tuple[bytes | None, str]]:
        """``deliver`` for several SIMs at once: every submit_sm first, then one wait of
        ``por_wait_s`` for all the PoRs (a batch does not take N waits).

        Returns:
            One (PoR user data or None, error message or "") per item, in order; an error
            is what ``deliver`` would have raised.
        """
        out: list[tuple[bytes | None, str]] = [(None, "")] * len(items)
        todo: list[tuple[int, str, str, smpp.ShortMessage]] = []
        for n, (iccid, tpdu) in enumerate(items):
            try:
                msisdn, sm = self._short_message(iccid, tpdu)
            except SmsTransportError as exc:
                out[n] = (None, str(exc))
                continue
            todo.append((n, iccid, msisdn, sm))
        if not todo:
            return out
        try:
            self._ensure_bound()
        except SmsTransportError as exc:
            for n, *_ in todo:
                out[n] = (None, str(exc))
            return out
        waiting: list[tuple[int, str, _Waiter]] = []
        try:
            for n, iccid, msisdn, sm in todo:
                por = _Waiter()
                self._pors[msisdn] = por  # before the submit: the PoR may beat the resp
                waiting.append((n, msisdn, por))
                try:
                    resp = self._request(smpp.SUBMIT_SM, smpp.build_sm(sm))
                except SmsTransportError as exc:
                    out[n] = (None, str(exc))
                    por.set(None)
                    continue
                if resp.command_status != smpp.ESME_ROK:
                    out[n] = (None, f"{self.name}: submit_sm to {msisdn} refused: "
                                    f"{smpp.smpp_status_name(resp.command_status)}")
                    por.set(None)
                    continue
                self.stats["submitted"] += 1
                log.info("smpp: SMS to %s (%s) accepted, message_id %s", iccid, msisdn,
                         smpp.parse_c_octet_body(resp.body, "message_id") or "-")
            deadline = time.monotonic() + self.config.por_wait_s
            for n, _, por in waiting:
                if not out[n][1]:
                    por.event.wait(max(0.0, deadline - time.monotonic()))
                    out[n] = (por.value if isinstance(por.value, bytes) else None, "")
        finally:
            for _, msisdn, por in waiting:
                if self._pors.get(msisdn) is por:
                    del self._pors[msisdn]
        return out

    def _short_message(self, iccid: str, tpdu: bytes) -> tuple[str, smpp.ShortMessage]:
        try:
            sms = parse_sms_deliver(tpdu)
        except OtaDecodeError as exc:
            raise SmsTransportError(f"not an SMS-DELIVER: {exc}") from None
        msisdn = self._msisdn(iccid)
        if msisdn is None:
            raise SmsTransportError(f"{self.name}: no MSISDN for SIM {iccid} "
                                    "(msisdns file of the SMS centre URL)")
        oa = sms.originating_address
        source = self.config.source_addr or oa.digits
        s_ton, s_npi = ((self.config.source_ton, self.config.source_npi)
                        if self.config.source_addr else ((oa.ton_npi >> 4) & 7, oa.ton_npi & 15))
        return msisdn, smpp.ShortMessage(
            source_addr=source, destination_addr=msisdn, short_message=sms.user_data,
            esm_class=smpp.ESM_CLASS_UDHI if sms.tp_udhi else 0,
            protocol_id=sms.protocol_identifier, data_coding=sms.data_coding_scheme,
            registered_delivery=0, source_addr_ton=s_ton, source_addr_npi=s_npi,
            dest_addr_ton=self.config.dest_ton, dest_addr_npi=self.config.dest_npi,
            service_type=self.config.service_type)

    def close(self) -> None:
        """Unbind (§4.2) and close; later ``deliver`` calls bind again."""
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(Exception):
                self._request(smpp.UNBIND, b"", timeout_s=2.0)
        self._drop("closed")
        reader = self._reader
        if reader is not None and reader is not threading.current_thread():
            reader.join(timeout=5)

    # ------------------------------------------------------------------ internals
    def _msisdn(self, iccid: str) -> str | None:
        if self._msisdns is not None:
            msisdn = self._msisdns.get(iccid)
            return msisdn.removeprefix("+") if msisdn else None
        path = self.config.msisdns
        if not path:
            return None
        try:
            mtime = os.stat(path).st_mtime
            if self._msisdn_file is None or self._msisdn_file[0] != mtime:
                self._msisdn_file = (mtime, load_msisdns(path))
        except (OSError, ValueError) as exc:
                raise SmsTransportError(f"{self.name}: msisdns file: {exc}") from None
        return self._msisdn_file[1].get(iccid)

    def _next_seq(self) -> int:
        self._seq = self._seq % 0x7FFFFFFF + 1  # 1..0x7FFFFFFF (§5.1.4)
        return self._seq

    def _send(self, pdu: smpp.Pdu) -> None:
        with self._lock:
            sock = self._sock
            if sock is None:
                raise ConnectionError("not connected")
            sock.sendall(smpp.build_pdu(pdu))
            self._last_tx = time.monotonic()

    def _request(self, command_id: int, body: bytes,
                 timeout_s: float | None = None) -> smpp.Pdu:
        waiter = _Waiter()
        with self._lock:
            seq = self._next_seq()
            self._responses[seq] = waiter
        try:
            try:
                self._send(smpp.Pdu(command_id, 0, seq, body))
            except OSError as exc:
                self._drop(f"send failed: {exc}")
                raise SmsTransportError(f"{self.name}: connection lost: {exc}") from None
            if not waiter.event.wait(timeout_s or self._response_timeout_s):
                self._drop("no response")
                raise SmsTransportError(f"{self.name}: no response to command "
                                        f"0x{command_id:08X}")
            if not isinstance(waiter.value, smpp.Pdu):
                raise SmsTransportError(f"{self.name}: connection lost")
            if waiter.value.command_id == smpp.GENERIC_NACK:
                raise SmsTransportError(f"{self.name}: generic_nack "
                                        f"{smpp.smpp_status_name(waiter.value.command_status)}")
            return waiter.value
        finally:
            with self._lock:
                self._responses.pop(seq, None)

    def _ensure_bound(self) -> None:
        with self._connect_lock:
            if self._sock is not None:
                return
            now = self._clock()
            if now < self._retry_at:
                raise SmsTransportError(f"{self.name}: unreachable; next attempt in "
                                        f"{self._retry_at - now:.0f} s")
            try:
                self._bind()
            except (OSError, OtaDecodeError, SmsTransportError) as exc:
                self._backoff_s = min(self._max_backoff_s, max(1.0, self._backoff_s * 2))
                self._retry_at = self._clock() + self._backoff_s
                log.warning("smpp: %s: %s (next attempt in %.0f s)", self.name, exc,
                            self._backoff_s)
                if isinstance(exc, SmsTransportError):
                    raise
                raise SmsTransportError(f"{self.name}: {exc}") from None
            self._backoff_s = 0.0

    def _bind(self) -> None:
        cfg = self.config
        sock = socket.create_connection((cfg.host, cfg.port), timeout=self._response_timeout_s)
        try:
            seq = self._next_seq()
            sock.sendall(smpp.build_pdu(smpp.Pdu(smpp.BIND_TRANSCEIVER, 0, seq, smpp.build_bind(
                smpp.BindTransceiver(cfg.system_id, cfg.password, cfg.system_type)))))
            buf = smpp.PduBuffer()
            while True:
                pdu = buf.next_pdu()
                if pdu is None:
                    data = sock.recv(4096)
                    if not data:
                        raise ConnectionError("closed during bind")
                    buf.receive_data(data)
                    continue
                if pdu.sequence_number == seq and pdu.command_id in (
                        smpp.BIND_TRANSCEIVER_RESP, smpp.GENERIC_NACK):
                    break
            if pdu.command_id != smpp.BIND_TRANSCEIVER_RESP or pdu.command_status:
                raise SmsTransportError(f"{self.name}: bind_transceiver refused: "
                                        f"{smpp.smpp_status_name(pdu.command_status)}")
        except BaseException:
            sock.close()
            raise
        sock.settimeout(min(1.0, cfg.enquire_link_s))
        with self._lock:
            self._sock = sock
            self._last_tx = time.monotonic()
            self._enquire_sent_at = None
        self.stats["binds"] += 1
        log.info("smpp: bound to %s (transceiver, system_type %r)", self.name,
                 cfg.system_type)
        self._reader = threading.Thread(target=self._read_loop, args=(sock, buf),
                                        name=f"smpp-{cfg.host}:{cfg.port}", daemon=True)
        self._reader.start()

    def _drop(self, why: str) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
            waiting = list(self._responses.values())
        if sock is None:
            return
        log.info("smpp: %s: disconnected (%s)", self.name, why)
        with contextlib.suppress(OSError):
            sock.close()
        for w in waiting:
            w.set(None)

    def _read_loop(self, sock: socket.socket, buf: smpp.PduBuffer) -> None:
        try:
            while self._sock is sock:
                while (pdu := buf.next_pdu()) is not None:
                    self._handle(pdu)
                try:
                    data = sock.recv(4096)
                except TimeoutError:
                    self._keepalive()
                    continue
                if not data:
                    self._drop("closed by the SMSC")
                    return
                buf.receive_data(data)
        except OtaDecodeError as exc:
            self._drop(f"bad PDU stream: {exc}")
        except OSError as exc:
            self._drop(f"{exc}")

    def _keepalive(self) -> None:
        now = time.monotonic()
        every = self.config.enquire_link_s
        if self._enquire_sent_at is not None:
            if now - self._enquire_sent_at > every:
                self._drop("no enquire_link_resp")
            return
        if now - self._last_tx >= every:
            with self._lock:
                seq = self._next_seq()
            self._enquire_sent_at = now
            self._send(smpp.Pdu(smpp.ENQUIRE_LINK, 0, seq))

    def _handle(self, pdu: smpp.Pdu) -> None:
        cid = pdu.command_id
        if cid & 0x80000000:  # a response, or generic_nack
            if cid == smpp.ENQUIRE_LINK_RESP:
                self._enquire_sent_at = None
            with self._lock:
                waiter = self._responses.get(pdu.sequence_number)
            if waiter is not None:
                waiter.set(pdu)
            return
        if cid == smpp.ENQUIRE_LINK:
            self._send(smpp.Pdu(smpp.ENQUIRE_LINK_RESP, 0, pdu.sequence_number))
        elif cid == smpp.UNBIND:
            self._send(smpp.Pdu(smpp.UNBIND_RESP, 0, pdu.sequence_number))
            self._drop("unbind by the SMSC")
        elif cid == smpp.DELIVER_SM:
            self._deliver_sm(pdu)
        else:
            self._send(smpp.Pdu(smpp.GENERIC_NACK, smpp.ESME_RINVCMDID, pdu.sequence_number))

    def _deliver_sm(self, pdu: smpp.Pdu) -> None:
        try:
            sm = smpp.parse_sm(pdu.body)
        except (OtaDecodeError, ValueError) as exc:
            log.warning("smpp: %s: bad deliver_sm: %s", self.name, exc)
            self._send(smpp.Pdu(smpp.DELIVER_SM_RESP, smpp.ESME_RSYSERR, pdu.sequence_number,
                                b"\x00"))
            return
        # Acknowledge first, whatever we make of it: otherwise the SMSC redelivers it.
        self._send(smpp.Pdu(smpp.DELIVER_SM_RESP, 0, pdu.sequence_number, b"\x00"))
        if sm.esm_class & smpp.ESM_CLASS_TYPE_MASK:
            log.info("smpp: delivery receipt from %s ignored (the PoR is the proof)",
                     sm.source_addr)
            return
        user_data = sm.user_data
        try:
            if not sm.esm_class & smpp.ESM_CLASS_UDHI:
                raise OtaDecodeError("esm_class without UDHI")
            parse_response_user_data(user_data)
        except OtaDecodeError as exc:
            log.info("smpp: SMS from %s is not a PoR (%s): ignored", sm.source_addr, exc)
            return
        digest = hashlib.sha256(sm.source_addr.encode() + b"\x00" + user_data).digest()
        if digest in self._seen:
            self.stats["pors_duplicate"] += 1
            log.info("smpp: PoR from %s again: ignored", sm.source_addr)
            return
        self._seen.append(digest)
        waiter = self._pors.get(sm.source_addr.removeprefix("+"))
        if waiter is None or waiter.event.is_set():
            self.stats["pors_unexpected"] += 1
            log.info("smpp: PoR from %s with no SMS waiting (late): ignored; the rotation "
                     "stays pending and is resent on its schedule", sm.source_addr)
            return
        self.stats["pors"] += 1
        waiter.set(user_data)
