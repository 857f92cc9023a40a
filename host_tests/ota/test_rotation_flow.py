"""Card and operator driven against each other in memory: the install-PSK rotation scenarios."""
from __future__ import annotations

import pytest
from ztp.ota import (
    ROTATION_SPI,
    SAFE2_OTA_TAR,
    CounterMode,
    InstallStatus,
    MinimumSecurityLevel,
    OtaKeys,
    OtaProtocolError,
    OtaSecurityDomain,
    ResponseStatus,
    Rotation,
    RotationAction,
    RotationError,
    RotationEvent,
    RotationPolicy,
    RotationState,
    Safe2OtaApplet,
    SmsAddress,
    Spi,
    TarEntry,
    build_install_psk_command,
    build_install_psk_envelope,
    check_por,
    por_user_data_from_sms_submit,
)

KEYS = OtaKeys(kic=bytes.fromhex("11" * 16), kid=bytes.fromhex("22" * 16))
OLD_PSK, NEW_PSK = bytes(range(16)), bytes(range(100, 116))
SERVER = SmsAddress("447700900123", 0x91)


class FakeStorage:
    """A PSK slot; write_psk either replaces the key whole or fails with OSError."""

    def __init__(self, version: int, psk: bytes) -> None:
        self.version, self.psk = version, psk
        self.fail_next_write = False

    def read_psk(self) -> tuple[int, bytes]:
        return self.version, self.psk

    def write_psk(self, key_version: int, psk: bytes) -> None:
        if self.fail_next_write:
            self.fail_next_write = False
            raise OSError(5, "power cut")
        self.version, self.psk = key_version, psk


def make_card(keys: OtaKeys = KEYS) -> tuple[OtaSecurityDomain, FakeStorage]:
    storage = FakeStorage(1, OLD_PSK)
    entry = TarEntry(tar=SAFE2_OTA_TAR, keys=keys, application=Safe2OtaApplet(storage))
    return OtaSecurityDomain([entry]), storage


def envelope(counter: int, keys: OtaKeys = KEYS, psk: bytes = NEW_PSK, version: int = 2,
             spi: Spi = ROTATION_SPI) -> bytes:
    return build_install_psk_envelope(keys, counter=counter, psk=psk, key_version=version,
                                      originating_address=SERVER, spi=spi)


def test_normal_rotation_end_to_end() -> None:
    card, storage = make_card()
    rotation = Rotation(sim="984405529081369836f5", old_key_version=1, new_key_version=2,
                        created_at_s=1000)
    assert rotation.handle_timer(1000) == RotationAction.RESEND
    rotation.packet_sent(1, 1000)
    out = card.process_envelope(envelope(1))
    assert out.command.status == ResponseStatus.POR_OK and out.command.executed
    assert out.command.counter_updated and card.counters() == {SAFE2_OTA_TAR: 1}
    assert storage.read_psk() == (2, NEW_PSK)
    assert out.envelope_response[:3] == b"\x02\x71\x00" and out.sms_submit is None
    por = check_por(KEYS, out.envelope_response, expected_counter=1)
    assert por.installed and por.install is not None and por.install.key_version == 2
    assert rotation.por_received(por, 1010) == RotationEvent.POR_INSTALLED
    assert rotation.state == RotationState.DELIVERED
    assert rotation.accepted_key_versions() == (1, 2)
    with pytest.raises(RotationError, match="retire_old_key not allowed in state delivered"):
        rotation.retire_old_key(1020)
    rotation.handshake(2, 1030)
    assert rotation.state == RotationState.CONFIRMED and rotation.confirmed_at_s == 1030
    rotation.retire_old_key(1040)
    assert rotation.state == RotationState.RETIRED
    assert rotation.accepted_key_versions() == (2,)
    assert [h[1] for h in rotation.history] == [
        "packet_sent", "por_installed", "new_key_handshake", "retire_old_key"]


def test_replayed_packet_is_status_02_and_not_executed() -> None:
    card, storage = make_card()
    packet = envelope(5)
    assert card.process_envelope(packet).command.status == ResponseStatus.POR_OK
    storage.version, storage.psk = 1, OLD_PSK  # so a re-execution would be visible
    again = card.process_envelope(packet)
    assert again.command.status == ResponseStatus.CNTR_LOW and not again.command.executed
    assert storage.read_psk() == (1, OLD_PSK)
    por = check_por(KEYS, again.envelope_response, expected_counter=5)
    assert (por.status, por.verified) == (ResponseStatus.CNTR_LOW, True)
    lower = card.process_envelope(envelope(4))
    assert lower.command.status == ResponseStatus.CNTR_LOW


def test_one_higher_counter_mode() -> None:
    card, _ = make_card()
    spi = Spi(counter_mode=CounterMode.ONE_HIGHER)
    assert card.process_envelope(envelope(3, spi=spi)).command.status == ResponseStatus.CNTR_HIGH
    assert card.process_envelope(envelope(1, spi=spi)).command.status == ResponseStatus.POR_OK


def test_counter_blocked() -> None:
    card, _ = make_card()
    card.restore_counters({SAFE2_OTA_TAR: (1 << 40) - 1})
    out = card.process_envelope(envelope((1 << 40) - 1))
    assert out.command.status == ResponseStatus.CNTR_BLOCKED


def test_wrong_checksum_answered_unsecured_01() -> None:
    card, storage = make_card()
    packet = bytearray(build_install_psk_command(KEYS, counter=1, psk=NEW_PSK, key_version=2))
    packet[20] ^= 0x01  # inside the ciphered part
    out = card.process_command_packet(bytes(packet))
    assert out.status == ResponseStatus.RC_CC_DS_FAILED and not out.executed
    assert storage.read_psk() == (1, OLD_PSK) and card.counters() == {SAFE2_OTA_TAR: 0}
    assert out.response_packet is not None
    por = check_por(KEYS, b"\x02\x71\x00" + out.response_packet)
    assert (por.status, por.verified) == (ResponseStatus.RC_CC_DS_FAILED, False)


def test_wrong_key_is_refused_unverified_and_the_rotation_retries() -> None:
    # The card answers a wrong key with an unsecured 01: an unverified PoR, which anybody
    # could forge, so it proves nothing: treated as no PoR (resent after the backoff).
    card, storage = make_card()
    wrong = OtaKeys(kic=bytes(16), kid=bytes(16))
    rotation = Rotation(sim="x", old_key_version=1, new_key_version=2, created_at_s=0)
    rotation.packet_sent(1, 0)
    out = card.process_envelope(envelope(1, keys=wrong))
    assert out.command.status == ResponseStatus.RC_CC_DS_FAILED
    assert storage.read_psk() == (1, OLD_PSK)
    por = check_por(wrong, out.envelope_response, expected_counter=1)
    assert not por.verified
    assert rotation.por_received(por, 5) == RotationEvent.POR_UNVERIFIED
    assert rotation.state == RotationState.PENDING and rotation.por_log == []
    assert "unverified" in rotation.last_por
    assert rotation.accepted_key_versions() == (1, 2)
    assert rotation.handle_timer(600) == RotationAction.RESEND
    with pytest.raises(RotationError):
        rotation.retire_old_key(6)


def test_unknown_tar_and_insufficient_security() -> None:
    card, _ = make_card()
    other_tar = build_install_psk_command(KEYS, counter=1, psk=NEW_PSK, key_version=2,
                                          tar=b"ZZZ")
    assert card.process_command_packet(other_tar).status == ResponseStatus.TAR_UNKNOWN
    weak = build_install_psk_command(KEYS, counter=1, psk=NEW_PSK, key_version=2,
                                     spi=Spi(ciphering=False))
    out = card.process_command_packet(weak)
    assert out.status == ResponseStatus.INSUFFICIENT_SECURITY_LEVEL and not out.executed
    lax = TarEntry(tar=b"LAX", keys=KEYS, application=lambda d: d,
                   minimum_security_level=MinimumSecurityLevel(ciphering=False))
    plain = build_install_psk_command(KEYS, counter=1, psk=NEW_PSK, key_version=2,
                                      tar=b"LAX", spi=Spi(ciphering=False))
    assert OtaSecurityDomain([lax]).process_command_packet(plain).status == 0


def test_lost_packet_then_retry_with_a_new_counter() -> None:
    card, storage = make_card()
    policy = RotationPolicy(retry_after_s=600, retry_backoff=2, max_attempts=5)
    rotation = Rotation(sim="x", old_key_version=1, new_key_version=2, created_at_s=0,
                        policy=policy)
    rotation.packet_sent(1, 0)  # the SMS is lost: the card never sees counter 1
    assert rotation.timer() == 600
    assert rotation.handle_timer(599) is None
    assert rotation.handle_timer(600) == RotationAction.RESEND
    rotation.packet_sent(2, 600)
    assert rotation.timer() == 600 + 1200  # backoff
    out = card.process_envelope(envelope(2))
    rotation.por_received(check_por(KEYS, out.envelope_response, expected_counter=2), 610)
    assert rotation.state == RotationState.DELIVERED and rotation.timer() is None
    assert storage.read_psk() == (2, NEW_PSK)


def test_lost_por_card_has_new_key_both_keys_stay_valid() -> None:
    card, storage = make_card()
    rotation = Rotation(sim="x", old_key_version=1, new_key_version=2, created_at_s=0)
    rotation.packet_sent(1, 0)
    card.process_envelope(envelope(1))  # executed; the PoR never reaches the operator
    assert storage.read_psk() == (2, NEW_PSK)
    assert rotation.state == RotationState.PENDING
    assert rotation.accepted_key_versions() == (1, 2)  # the gateway accepts the new key too
    # The retry arrives with a higher counter: idempotent success, verified PoR.
    assert rotation.handle_timer(600) == RotationAction.RESEND
    rotation.packet_sent(2, 600)
    out = card.process_envelope(envelope(2))
    por = check_por(KEYS, out.envelope_response, expected_counter=2)
    assert por.installed
    rotation.por_received(por, 601)
    # A late PoR of a duplicate first attempt is CNTR low and changes nothing.
    late = card.process_envelope(envelope(1))
    rotation.por_received(check_por(KEYS, late.envelope_response, expected_counter=1), 602)
    assert rotation.state == RotationState.DELIVERED


def test_lost_por_then_handshake_confirms_directly() -> None:
    rotation = Rotation(sim="x", old_key_version=1, new_key_version=2, created_at_s=0)
    rotation.packet_sent(1, 0)
    rotation.handshake(1, 100)  # still old key: stays pending
    assert rotation.state == RotationState.PENDING
    rotation.handshake(2, 200)
    assert rotation.state == RotationState.CONFIRMED and rotation.timer() is None


def test_power_cut_during_write_keeps_old_key_and_is_retryable() -> None:
    card, storage = make_card()
    rotation = Rotation(sim="x", old_key_version=1, new_key_version=2, created_at_s=0)
    rotation.packet_sent(1, 0)
    storage.fail_next_write = True
    out = card.process_envelope(envelope(1))
    assert storage.read_psk() == (1, OLD_PSK)
    por = check_por(KEYS, out.envelope_response, expected_counter=1)
    assert por.install is not None and por.install.status_word == InstallStatus.MEMORY_FAILURE
    assert rotation.por_received(por, 5) == RotationEvent.POR_RETRYABLE
    assert rotation.state == RotationState.PENDING
    rotation.packet_sent(2, 600)
    assert check_por(KEYS, card.process_envelope(envelope(2)).envelope_response).installed


def test_version_rollback_and_overwrite_refused() -> None:
    card, storage = make_card()
    card.process_envelope(envelope(1))
    out = card.process_envelope(envelope(2, psk=OLD_PSK, version=2))
    por = check_por(KEYS, out.envelope_response)
    assert por.install is not None
    assert por.install.status_word == InstallStatus.CONDITIONS_NOT_SATISFIED
    out = card.process_envelope(envelope(3, version=1, psk=OLD_PSK))
    assert check_por(KEYS, out.envelope_response).install.status_word == 0x6985  # type: ignore
    assert storage.read_psk() == (2, NEW_PSK)


def test_por_via_sms_submit() -> None:
    card, _ = make_card()
    out = card.process_envelope(envelope(1, spi=Spi(por_via_submit=True)))
    assert out.envelope_response == b"" and out.sms_submit is not None
    user_data = por_user_data_from_sms_submit(out.sms_submit)
    assert check_por(KEYS, user_data, spi=Spi(por_via_submit=True)).installed


def test_por_counter_and_tar_checks() -> None:
    card, _ = make_card()
    out = card.process_envelope(envelope(7))
    with pytest.raises(OtaProtocolError, match="CNTR 7, expected 8"):
        check_por(KEYS, out.envelope_response, expected_counter=8)
    with pytest.raises(OtaProtocolError, match="TAR"):
        check_por(KEYS, out.envelope_response, tar=b"ZZZ")
    rotation = Rotation(sim="x", old_key_version=1, new_key_version=2, created_at_s=0)
    rotation.packet_sent(6, 0)
    with pytest.raises(OtaProtocolError, match="never sent"):
        rotation.por_received(check_por(KEYS, out.envelope_response), 1)


def test_sim_offline_for_days_is_overdue_never_retired() -> None:
    policy = RotationPolicy(retry_after_s=3600, max_retry_interval_s=86_400, max_attempts=None,
                            overdue_after_s=3 * 86_400)
    rotation = Rotation(sim="x", old_key_version=1, new_key_version=2, created_at_s=0,
                        policy=policy)
    now, counter = 0, 0
    while now < 10 * 86_400:
        if rotation.handle_timer(now) == RotationAction.RESEND:
            counter += 1
            rotation.packet_sent(counter, now)
        now += 600
    assert rotation.state == RotationState.PENDING
    assert rotation.is_overdue(10 * 86_400) and not rotation.is_overdue(86_400)
    assert rotation.accepted_key_versions() == (1, 2)
    assert counter < 20  # backoff capped at one a day, not one every 10 minutes
    with pytest.raises(RotationError):
        rotation.retire_old_key(now)


def test_max_attempts_stops_resending() -> None:
    rotation = Rotation(sim="x", old_key_version=1, new_key_version=2, created_at_s=0,
                        policy=RotationPolicy(max_attempts=2))
    rotation.packet_sent(1, 0)
    rotation.packet_sent(2, 600)
    assert rotation.timer() is None
    with pytest.raises(RotationError, match="2 attempts"):
        rotation.packet_sent(3, 2000)


def test_persistence_round_trip() -> None:
    rotation = Rotation(sim="x", old_key_version=1, new_key_version=2, created_at_s=0)
    rotation.packet_sent(1, 0)
    rotation.handshake(2, 50)
    copy = Rotation.from_dict(rotation.to_dict())
    assert copy == rotation
    copy.retire_old_key(60)
    assert copy.state == RotationState.RETIRED


def test_counters_must_increase() -> None:
    rotation = Rotation(sim="x", old_key_version=1, new_key_version=2, created_at_s=0)
    rotation.packet_sent(5, 0)
    with pytest.raises(RotationError, match="not above"):
        rotation.packet_sent(5, 10)
