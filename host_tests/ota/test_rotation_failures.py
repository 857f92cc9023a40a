"""Failed rotations (only a verified refusal fails one; nothing is resent until an operator
retries), forged error reports (ignored), cancelling (never a lock-out), and the order of the
card's checks (ETSI TS 102 225 §5.1.3: TAR -> SPI / minimum security level -> decipher ->
checksum -> counter -> execute; statuses of table 5: 01 RC/CC/DS failed, 02 CNTR low,
09 TAR unknown, 0A insufficient security level)."""

from __future__ import annotations

import pytest
from ztp.ota import (
    SAFE2_OTA_TAR,
    OtaKeys,
    OtaSecurityDomain,
    PorResult,
    ResponseStatus,
    Rotation,
    RotationAction,
    RotationError,
    RotationEvent,
    RotationPolicy,
    RotationState,
    Safe2OtaApplet,
    Spi,
    TarEntry,
    build_install_psk_command,
    check_por,
)
from ztp.ota._safe2 import InstallResult
from ztp.ota._ts_102_225 import seal_unsecured_response

from .test_rotation_flow import KEYS, NEW_PSK, OLD_PSK, FakeStorage, envelope

WRONG_KID = OtaKeys(kic=KEYS.kic, kid=bytes(16))  # right cipher key, wrong checksum key


def card_at(version: int, psk: bytes = OLD_PSK) -> tuple[OtaSecurityDomain, FakeStorage]:
    storage = FakeStorage(version, psk)
    entry = TarEntry(tar=SAFE2_OTA_TAR, keys=KEYS, application=Safe2OtaApplet(storage))
    return OtaSecurityDomain([entry]), storage


def refused_rotation(policy: RotationPolicy | None = None) -> tuple[Rotation, OtaSecurityDomain]:
    """A rotation 1 -> 2 of a card already at version 5: the applet refuses version 2 (SW 6985)
    in a verified PoR that reports version 5 in force -> FAILED."""
    card, _ = card_at(5)
    rotation = Rotation(sim="x", old_key_version=1, new_key_version=2, created_at_s=0,
                        policy=policy or RotationPolicy())
    rotation.packet_sent(1, 0)
    por = check_por(KEYS, card.process_envelope(envelope(1)).envelope_response,
                    expected_counter=1)
    assert por.verified and por.install is not None and por.install.key_version == 5
    assert rotation.por_received(por, 10) == RotationEvent.POR_REFUSED
    assert rotation.state == RotationState.FAILED
    return rotation, card


# ---------------------------------------------------------------------------- FAILED


def test_failed_rotation_is_never_resent_until_the_operator_retries() -> None:
    rotation, _ = refused_rotation()
    assert rotation.timer() is None
    for now in (600, 3600, 86_400, 30 * 86_400):  # the clock moves on: nothing is due
        assert rotation.handle_timer(now) is None
    with pytest.raises(RotationError):  # not even by hand without retry()
        rotation.packet_sent(2, 40 * 86_400)
    assert rotation.accepted_key_versions() == (1, 2)
    rotation.retry(50 * 86_400)
    assert rotation.state == RotationState.PENDING
    assert rotation.timer() == 50 * 86_400  # due at once
    rotation.packet_sent(2, 50 * 86_400)
    assert rotation.timer() == 50 * 86_400 + 600  # then the normal backoff
    with pytest.raises(RotationError):
        rotation.retry(50 * 86_400 + 1)  # only a FAILED rotation is retried


def test_retry_gets_a_fresh_attempt_budget_and_the_limit_holds() -> None:
    rotation, _ = refused_rotation(RotationPolicy(max_attempts=2))
    rotation.retry(100)
    rotation.packet_sent(2, 100)
    rotation.packet_sent(3, 700)
    assert rotation.attempts == 2 and rotation.timer() is None
    with pytest.raises(RotationError, match="2 attempts"):
        rotation.packet_sent(4, 5000)


def test_persistence_of_the_new_fields_and_of_older_records() -> None:
    rotation, _ = refused_rotation()
    rotation.retry(100)
    copy = Rotation.from_dict(rotation.to_dict())
    assert copy == rotation and copy.por_log == [(1, 0, 5)] and copy.retry_base == 1
    legacy = rotation.to_dict()
    for key in ("por_log", "retry_base", "retried_at_s", "cancelled_at_s", "new_key_dropped"):
        del legacy[key]
    old = Rotation.from_dict(legacy)
    assert old.por_log == [] and old.retry_base == 0 and not old.sim_lacks_new_key()


# ---------------------------------------------------------------------------- forged PoRs


@pytest.mark.parametrize("status", [s for s in ResponseStatus if s != ResponseStatus.POR_OK])
def test_unverified_error_por_never_fails_a_rotation(status: ResponseStatus) -> None:
    # What anybody able to send an SMS could forge: an unsecured error report for our TAR.
    forged = b"\x02\x71\x00" + seal_unsecured_response(tar=SAFE2_OTA_TAR, status=status,
                                                        counter=1)
    por = check_por(KEYS, forged, expected_counter=1)
    assert not por.verified and por.status == status
    rotation = Rotation(sim="x", old_key_version=1, new_key_version=2, created_at_s=0)
    rotation.packet_sent(1, 0)
    assert rotation.por_received(por, 5) == RotationEvent.POR_UNVERIFIED
    assert rotation.state == RotationState.PENDING  # the retry path, as with no PoR
    assert rotation.handle_timer(600) == RotationAction.RESEND
    # nor does it count as proof that the SIM lacks the key
    assert rotation.por_log == [] and not rotation.sim_lacks_new_key()


def test_unverified_por_changes_no_state() -> None:
    forged = PorResult(status=ResponseStatus.TAR_UNKNOWN, counter=0, verified=False,
                       install=None)
    failed, _ = refused_rotation()
    failed.por_received(forged, 20)
    assert failed.state == RotationState.FAILED and failed.timer() is None
    delivered = Rotation(sim="y", old_key_version=1, new_key_version=2, created_at_s=0)
    delivered.packet_sent(1, 0)
    delivered.por_received(PorResult(status=0, counter=1, verified=True,
                                     install=InstallResult(2, 0x9000)), 1)
    delivered.por_received(forged, 2)
    assert delivered.state == RotationState.DELIVERED


# ---------------------------------------------------------------------------- cancel


def test_cancel_after_a_verified_refusal_drops_the_new_key() -> None:
    rotation, _ = refused_rotation()
    assert rotation.sim_lacks_new_key()
    assert rotation.cancel(100) is True
    assert rotation.state == RotationState.CANCELLED
    assert rotation.accepted_key_versions() == (1,)  # the old key is never dropped
    assert rotation.timer() is None and not rotation.is_overdue(10**9)
    with pytest.raises(RotationError):
        rotation.retry(200)


def test_cancel_with_a_packet_of_unknown_fate_keeps_both_keys() -> None:
    card, storage = card_at(1)
    rotation = Rotation(sim="x", old_key_version=1, new_key_version=2, created_at_s=0)
    rotation.packet_sent(1, 0)
    card.process_envelope(envelope(1))  # installed; the PoR is lost
    assert storage.read_psk() == (2, NEW_PSK)
    assert not rotation.sim_lacks_new_key()
    assert rotation.cancel(100) is False
    assert rotation.accepted_key_versions() == (1, 2)  # the SIM uses key 2: still accepted


def test_certainty_walks_back_from_the_last_packet() -> None:
    def por(counter: int, status: int, version: int | None) -> PorResult:
        install = InstallResult(version, 0x6581) if version is not None else None
        return PorResult(status=status, counter=counter, verified=True, install=install)

    fresh = Rotation(sim="x", old_key_version=1, new_key_version=2, created_at_s=0)
    assert fresh.sim_lacks_new_key()  # nothing ever sent
    # packet 1 lost, packet 2 refused by the security layer (never ran): 1 may have installed
    r = Rotation(sim="x", old_key_version=1, new_key_version=2, created_at_s=0)
    r.packet_sent(1, 0)
    r.packet_sent(2, 600)
    r.por_received(por(2, ResponseStatus.CNTR_LOW, None), 601)
    assert not r.sim_lacks_new_key()
    # a verified applet answer reporting version 1 in force covers packet 1 too
    r.packet_sent(3, 1800)
    r.por_received(por(3, ResponseStatus.POR_OK, 1), 1801)
    assert r.sim_lacks_new_key()
    # every packet refused by the security layer: none ran
    s = Rotation(sim="x", old_key_version=1, new_key_version=2, created_at_s=0)
    s.packet_sent(1, 0)
    s.por_received(por(1, ResponseStatus.CNTR_LOW, None), 1)
    assert s.sim_lacks_new_key()


def test_cancel_refused_once_the_sim_holds_the_new_key() -> None:
    rotation = Rotation(sim="x", old_key_version=1, new_key_version=2, created_at_s=0)
    rotation.packet_sent(1, 0)
    rotation.por_received(PorResult(status=0, counter=1, verified=True,
                                    install=InstallResult(2, 0x9000)), 1)
    with pytest.raises(RotationError):
        rotation.cancel(2)
    assert rotation.state == RotationState.DELIVERED


# ---------------------------------------------------------------------------- check order


def test_replayed_counter_with_bad_checksum_is_01_not_02() -> None:
    card, storage = card_at(1)
    assert card.process_envelope(envelope(5)).command.status == ResponseStatus.POR_OK
    assert storage.read_psk() == (2, NEW_PSK)
    # the same counter again (a replay) is 02 with a good checksum...
    assert card.process_envelope(envelope(5)).command.status == ResponseStatus.CNTR_LOW
    # ...but the checksum is checked before the counter: with a bad one it is 01
    out = card.process_envelope(envelope(5, keys=WRONG_KID))
    assert out.command.status == ResponseStatus.RC_CC_DS_FAILED and not out.command.executed
    packet = bytearray(build_install_psk_command(KEYS, counter=4, psk=NEW_PSK, key_version=2))
    packet[20] ^= 0x01  # tampered ciphered part: the checksum fails
    assert card.process_command_packet(bytes(packet)).status == ResponseStatus.RC_CC_DS_FAILED
    assert card.counters() == {SAFE2_OTA_TAR: 5}
    assert not check_por(KEYS, out.envelope_response).verified  # answered unsecured


def test_too_weak_spi_with_wrong_key_is_0a_not_01() -> None:
    card, storage = card_at(1)
    weak = Spi(ciphering=False)  # below the minimum security level (ciphering required)
    wrong = OtaKeys(kic=bytes(16), kid=bytes(16))
    for keys in (wrong, KEYS):
        packet = build_install_psk_command(keys, counter=1, psk=NEW_PSK, key_version=2,
                                           spi=weak)
        out = card.process_command_packet(packet)
        assert out.status == ResponseStatus.INSUFFICIENT_SECURITY_LEVEL and not out.executed
    assert storage.read_psk() == (1, OLD_PSK) and card.counters() == {SAFE2_OTA_TAR: 0}


def test_unknown_tar_with_bad_checksum_is_09() -> None:
    card, storage = card_at(1)
    wrong = OtaKeys(kic=bytes(16), kid=bytes(16))
    for keys, spi in ((wrong, None), (WRONG_KID, None), (wrong, Spi(ciphering=False))):
        kw = {"spi": spi} if spi is not None else {}
        packet = build_install_psk_command(keys, counter=1, psk=NEW_PSK, key_version=2,
                                           tar=b"ZZZ", **kw)
        out = card.process_command_packet(packet)
        assert out.status == ResponseStatus.TAR_UNKNOWN and not out.executed
    assert storage.read_psk() == (1, OLD_PSK) and card.counters() == {SAFE2_OTA_TAR: 0}
