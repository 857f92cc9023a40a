# The card side of OTA (the "receiving entity" of ETSI TS 102 225): per-TAR key sets and
# counters, and the processing of command packets in the order of TS 102 225 §5 / TS 31.115:
#
#   1. TAR known?                                   else status 09 TAR unknown
#   2. SPI meets the TAR's minimum security level?  else 0A insufficient security level
#   3. decrypt (KIc ours, whole AES blocks)         else 05 ciphering error
#   4. cryptographic checksum (KID ours, CMAC)      else 01 RC/CC/DS failed
#   5. counter against the stored one               else 02 low (replay) / 03 high / 04 blocked
#   6. execute the application command; the counter is consumed before it runs
#   7. PoR as the SPI asks (always / on error only / never, ciphered and CC'd as asked)
#
# Choices where the specifications leave room (docs/ota.md):
# - Failures of steps 1-4 are answered with an unsecured PoR (no CC, not ciphered, CNTR 0):
#   the card has no authenticated request to answer, and signing anything for an
#   unauthenticated sender would hand out a checksum oracle.
# - Failures of step 5 come after authentication and are answered as the SPI asks, echoing the
#   received CNTR, so the sender can verify them.
# - CounterMode.AVAILABLE neither checks nor stores the counter.
#
# Sans-I/O: the object holds the counters; the SIM persists `counters()` after every call that
# reports `counter_updated` (and restores them with `restore_counters`).
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from ._errors import OtaDecodeError, OtaSecurityError, OtaUsageError
from ._sms import (
    PID_SIM_DATA_DOWNLOAD,
    SmsSubmit,
    build_response_user_data,
    build_sms_submit,
    parse_command_user_data,
    parse_sms_deliver,
    parse_sms_pp_download,
)
from ._ts_102_225 import (
    COUNTER_MAX,
    Checksum,
    CounterMode,
    OtaKeys,
    PorRequest,
    ResponseStatus,
    Spi,
    open_command,
    parse_command_packet,
    seal_response,
    seal_unsecured_response,
)


@dataclass(frozen=True)
class MinimumSecurityLevel:
    """What a TAR demands of a command packet's SPI (in the spirit of the MSL of TS 102 226).

    Attributes:
        ciphering: the command must be ciphered.
        checksum: the command must carry a CC.
        counter_mode: the least strict counter mode accepted (NO_COUNTER < AVAILABLE < HIGHER <
            ONE_HIGHER).
    """

    ciphering: bool = True
    checksum: bool = True
    counter_mode: CounterMode = CounterMode.HIGHER

    def admits(self, spi: Spi) -> bool:
        if self.ciphering and not spi.ciphering:
            return False
        if self.checksum and spi.checksum != Checksum.CC:
            return False
        return spi.counter_mode >= self.counter_mode


Application = Callable[[bytes], bytes]  # secured data -> additional response data


@dataclass
class TarEntry:
    """One TAR on the card: its key set, minimum security level, counter and application.

    Attributes:
        counter: the last CNTR accepted (replay detection state), 0..2^40-1.
    """

    tar: bytes
    keys: OtaKeys
    application: Application
    minimum_security_level: MinimumSecurityLevel = field(default_factory=MinimumSecurityLevel)
    counter: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.tar, bytes) or len(self.tar) != 3:
            raise OtaUsageError(f"TAR: expected 3 bytes, got {self.tar!r}")
        if not isinstance(self.counter, int) or not 0 <= self.counter <= COUNTER_MAX:
            raise OtaUsageError(f"counter: expected 0..2^40-1, got {self.counter!r}")


@dataclass(frozen=True)
class CommandOutcome:
    """What processing one command packet did.

    Attributes:
        status: the response status code (ResponseStatus value).
        tar: the TAR of the command (b"" if the packet could not even be parsed).
        executed: the application ran.
        counter_updated: the stored counter changed: persist `counters()` now.
        response_packet: the PoR (RPL ...), or None when the SPI asks for none.
        por_via_submit: send the PoR by SMS-SUBMIT rather than in the SMS-DELIVER-REPORT.
        detail: why it failed (safe to log: no keys, no decrypted data).
    """

    status: int
    tar: bytes
    executed: bool
    counter_updated: bool
    response_packet: bytes | None
    por_via_submit: bool
    detail: str = ""


@dataclass(frozen=True)
class SmsPpOutcome:
    """What processing one SMS-PP DOWNLOAD ENVELOPE did.

    Attributes:
        command: the command packet's outcome.
        envelope_response: data for the ENVELOPE response, which the modem puts into the
            SMS-DELIVER-REPORT (UDH 02 71 00 + response packet); b"" for none (SW 9000).
        sms_submit: an SMS-SUBMIT TPDU carrying the PoR, to send with the proactive command
            SEND SHORT MESSAGE, when the SPI asks for that; else None.
    """

    command: CommandOutcome
    envelope_response: bytes
    sms_submit: bytes | None


class OtaSecurityDomain:
    """The card's OTA receiving entity: TAR -> key set, counter, application."""

    def __init__(self, entries: Iterable[TarEntry]) -> None:
        self._entries: dict[bytes, TarEntry] = {}
        for entry in entries:
            if entry.tar in self._entries:
                raise OtaUsageError(f"TAR {entry.tar.hex()} given twice")
            self._entries[entry.tar] = entry

    def counters(self) -> dict[bytes, int]:
        """The stored counter of every TAR (to persist)."""
        return {tar: entry.counter for tar, entry in self._entries.items()}

    def restore_counters(self, counters: Mapping[bytes, int]) -> None:
        """Restore persisted counters. Raises OtaUsageError for an unknown TAR or bad value."""
        for tar, counter in counters.items():
            if tar not in self._entries:
                raise OtaUsageError(f"TAR {tar.hex()} unknown")
            if not isinstance(counter, int) or not 0 <= counter <= COUNTER_MAX:
                raise OtaUsageError(f"counter: expected 0..2^40-1, got {counter!r}")
        for tar, counter in counters.items():
            self._entries[tar].counter = counter

    def process_command_packet(self, packet: bytes) -> CommandOutcome:
        """Run one command packet (CPL ...) through the checks and, if they pass, the
        application.

        Returns:
            The outcome; failures of the remote sender are reported in it, not raised.

        Raises:
            OtaDecodeError: the packet cannot be parsed at all (no TAR to answer to; the SIM
                answers the ENVELOPE with an error status word).
        """
        parsed = parse_command_packet(packet)
        spi, tar = parsed.spi, parsed.tar

        def unsecured(status: int, detail: str) -> CommandOutcome:
            por = spi.por in (PorRequest.REQUIRED, PorRequest.ON_ERROR)
            return CommandOutcome(
                status=status, tar=tar, executed=False, counter_updated=False,
                response_packet=seal_unsecured_response(tar=tar, status=status) if por else None,
                por_via_submit=spi.por_via_submit, detail=detail)

        entry = self._entries.get(tar)
        if entry is None:
            return unsecured(ResponseStatus.TAR_UNKNOWN, f"TAR {tar.hex()} unknown")
        if not entry.minimum_security_level.admits(spi):
            return unsecured(ResponseStatus.INSUFFICIENT_SECURITY_LEVEL,
                             f"SPI {spi.to_bytes().hex()} below the minimum security level")
        try:
            opened = open_command(parsed, entry.keys)
        except OtaSecurityError as exc:
            return unsecured(exc.status, str(exc))

        def secured(status: int, data: bytes, executed: bool, updated: bool,
                    detail: str = "") -> CommandOutcome:
            wanted = spi.por == PorRequest.REQUIRED or (
                spi.por == PorRequest.ON_ERROR and status != ResponseStatus.POR_OK)
            response = None
            if wanted:
                try:
                    response = seal_response(entry.keys, spi=spi, tar=tar,
                                             counter=opened.counter, status=status, data=data)
                except OtaUsageError as exc:  # PoR with RC or DS: we cannot, say so unsecured
                    response = seal_unsecured_response(
                        tar=tar, status=ResponseStatus.UNIDENTIFIED_SECURITY_ERROR)
                    detail = detail or str(exc)
            return CommandOutcome(status=status, tar=tar, executed=executed,
                                  counter_updated=updated, response_packet=response,
                                  por_via_submit=spi.por_via_submit, detail=detail)

        counter = opened.counter
        mode = spi.counter_mode
        updated = False
        if mode in (CounterMode.HIGHER, CounterMode.ONE_HIGHER):
            if entry.counter >= COUNTER_MAX:
                return secured(ResponseStatus.CNTR_BLOCKED, b"", False, False,
                               "counter blocked at its maximum")
            if counter <= entry.counter:
                return secured(ResponseStatus.CNTR_LOW, b"", False, False,
                               f"CNTR {counter} not above {entry.counter} (replay?)")
            if mode == CounterMode.ONE_HIGHER and counter != entry.counter + 1:
                return secured(ResponseStatus.CNTR_HIGH, b"", False, False,
                               f"CNTR {counter} is not {entry.counter} + 1")
            entry.counter = counter  # consumed before the application runs
            updated = True
        data = entry.application(opened.data)
        return secured(ResponseStatus.POR_OK, data, True, updated)

    def process_sms_deliver(self, tpdu: bytes) -> SmsPpOutcome:
        """Process an SMS-DELIVER TPDU whose user data holds one command packet.

        Raises:
            OtaDecodeError: the TPDU is malformed, its PID is not (U)SIM data download, its UDH
                is not the single IEI 70 element, or the command packet cannot be parsed.
        """
        sms = parse_sms_deliver(tpdu)
        if sms.protocol_identifier != PID_SIM_DATA_DOWNLOAD:
            raise OtaDecodeError(f"SMS-DELIVER: TP-PID {sms.protocol_identifier:02X}, expected "
                                 f"{PID_SIM_DATA_DOWNLOAD:02X} (SIM data download)")
        if not sms.tp_udhi:
            raise OtaDecodeError("SMS-DELIVER: TP-UDHI clear, a command packet needs the UDH")
        outcome = self.process_command_packet(parse_command_user_data(sms.user_data))
        if outcome.response_packet is None:
            return SmsPpOutcome(outcome, b"", None)
        user_data = build_response_user_data(outcome.response_packet)
        if outcome.por_via_submit:
            submit = build_sms_submit(SmsSubmit(destination_address=sms.originating_address,
                                                user_data=user_data))
            return SmsPpOutcome(outcome, b"", submit)
        return SmsPpOutcome(outcome, user_data, None)

    def process_envelope(self, envelope: bytes) -> SmsPpOutcome:
        """Process ENVELOPE data 'D1' (SMS-PP DOWNLOAD) as the UICC receives it.

        Raises:
            OtaDecodeError: as process_sms_deliver, or a malformed ENVELOPE.
        """
        tpdu, _service_centre = parse_sms_pp_download(envelope)
        return self.process_sms_deliver(tpdu)
