"""OTA PSK rotation in the service: start, send, PoR, confirmation, retirement (issue 8).

Theory of operation
-------------------
A rotation of one SIM moves its PSK from key version ``old`` (the tag of its newest active
numeric PSK, e.g. "1") to ``new`` (one above every tag it ever had). Starting it generates the
new PSK and stores it sealed as an *active* key with tag ``new``: from then on
``GET /v1/gateway/psks`` answers both keys, and the psk-changes feed tells the gateways. The
per-SIM state is a ``ztp.ota.Rotation`` (pure state machine) kept as JSON in ``ota_rotation``.

Sending is a separate step (``run_due``), driven by the service clock: every due rotation gets
a command packet with the SIM's next OTA counter (``ota_counter``, consumed and committed
*before* the SMS leaves, so a counter is never reused even if we crash), delivered through the
SMS centre (``SmsTransport``). The PoR that comes back is checked (``check_por``) and fed to
the state machine: verified "installed" -> DELIVERED. No PoR, or an unverified one (an
unsecured error report proves nothing: anybody can send an SMS), -> the rotation stays PENDING
and is due again after the policy's backoff. A *verified* refusal -> FAILED: nothing is sent
again until an operator retries it (``retry_rotation``: PENDING, due now, a fresh attempt
budget) or cancels it (``cancel_rotation``: CANCELLED, closed; the old key stays, the new key
is retired only when the verified PoRs prove the SIM does not hold it, otherwise both stay
accepted).

Confirmation comes from the gateway: the first device request whose ``X-ZTP-Key-Tag`` is the
new tag (the SIM completed a TLS handshake with the new key) makes the rotation CONFIRMED, and
the old key is retired at once (RETIRED; the feed announces it). That is the only path to
retirement: a SIM that never got the packet, or got it but whose PoR was lost, keeps working
with whichever key it holds, and an operator cannot retire or delete either key while the
rotation is open (``_rotation_rules.py``: the rules the rest of the store obeys). Not
confirmed ``overdue_after_s`` after the start: overdue (visible in every view; nothing is
forced).

Every step is audited: rotation.start / send / no_por / por / por_invalid / delivered /
confirmed / retired / retry / cancel / skip.

Choices: OTA key index = the kic/kid tag when it is 1..15, else 1; the newest active kic and
kid are used. The packet and PoR layout are those of docs/ota.md (SPI 16 19, TAR "SF2").
"""

from __future__ import annotations

import atexit
import logging
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from ztp.ota import (
    OtaError,
    OtaKeys,
    Rotation,
    RotationError,
    RotationEvent,
    RotationPolicy,
    RotationState,
    SmsAddress,
    build_install_psk_sms,
    check_por,
)

from ._audit import Actor
from ._db import Database
from ._errors import BadRequest, Conflict, NotFound
from ._keys import MasterKeyring
from ._models import Sim, SimKey
from ._ota_models import OtaCounter, OtaRotation
from ._rotation_rules import OPEN_STATES, load_rotation, numeric_tag, save_rotation
from ._smpp_centre import SmppSmsCentre
from ._sms_centre import SmsTransport, SmsTransportError
from ._store import Store

__all__ = [
    "OPEN_STATES",
    "HttpSmsCentre",
    "SmsTransport",
    "SmsTransportError",
    "batch_progress",
    "cancel_rotation",
    "close_sms_centres",
    "get_rotation",
    "list_rotations",
    "parse_policy",
    "retry_rotation",
    "run_due",
    "start_rotations",
    "transport_from_settings",
]

log = logging.getLogger("ztp.service.ota")

OTA_SERVER_ADDRESS = SmsAddress("447700900123", 0x91)  # TP-OA of our OTA SMS (assumed)
RUN_CHUNK = 200
OTA_ACTOR = Actor("ztp-ota")


# ---------------------------------------------------------------------------- transport


class HttpSmsCentre:
    """Client of the SMS centre's ``POST /v1/sms-pp`` (``ztp.modem.SmsCentre``)."""

    def __init__(self, url: str, timeout_s: float = 60.0) -> None:
        import httpx

        self.url = url.rstrip("/")
        self._http = httpx.Client(timeout=timeout_s)

    def deliver(self, iccid: str, tpdu: bytes) -> bytes | None:
        import httpx

        try:
            resp = self._http.post(f"{self.url}/v1/sms-pp",
                                   json={"iccid": iccid, "tpdu": tpdu.hex()})
        except httpx.HTTPError as exc:
            raise SmsTransportError(f"SMS centre {self.url}: {exc}") from None
        if resp.status_code != 200:
            raise SmsTransportError(f"SMS centre answered {resp.status_code}: {resp.text[:200]}")
        try:
            por = resp.json().get("por")
            return bytes.fromhex(por) if por else None
        except (ValueError, AttributeError, TypeError):
            raise SmsTransportError("SMS centre answer is not {delivered, por}") from None

    def close(self) -> None:
        self._http.close()


_SMPP_SESSIONS: dict[str, SmppSmsCentre] = {}  # one bound session per smpp:// URL
_SMPP_LOCK = threading.Lock()


def transport_from_settings(value: object) -> SmsTransport | None:
    """``Settings.sms_centre``: a URL (``http://``: the virtual centre; ``smpp://``: an SMSC,
    one session per URL kept across calls), an object with ``deliver``, or None.

    Raises:
        SmppUrlError (a ValueError): a bad ``smpp://`` URL. TypeError: anything else.
    """
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.startswith("smpp://"):
        with _SMPP_LOCK:
            centre = _SMPP_SESSIONS.get(value)
            if centre is None:
                centre = _SMPP_SESSIONS[value] = SmppSmsCentre(value)
            return centre
    if isinstance(value, str):
        return HttpSmsCentre(value)
    if callable(getattr(value, "deliver", None)):
        return value  # type: ignore[return-value]
    raise TypeError("sms_centre must be a URL or an object with deliver(iccid, tpdu)")


def close_sms_centres() -> None:
    """Unbind every SMPP session ``transport_from_settings`` opened (shutdown, tests)."""
    with _SMPP_LOCK:
        sessions = list(_SMPP_SESSIONS.values())
        _SMPP_SESSIONS.clear()
    for centre in sessions:
        centre.close()


atexit.register(close_sms_centres)


# ---------------------------------------------------------------------------- helpers


def parse_policy(value: object) -> RotationPolicy:
    """A RotationPolicy from request JSON (every field optional)."""
    if value is None:
        return RotationPolicy()
    names = {"retry_after_s", "retry_backoff", "max_retry_interval_s", "max_attempts",
             "overdue_after_s"}
    if not isinstance(value, dict) or set(value) - names:
        raise BadRequest(f"policy must be an object with some of {', '.join(sorted(names))}")
    for k, v in value.items():
        ok = isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 10 * 365 * 86_400
        if not ok and not (k == "max_attempts" and v is None):
            raise BadRequest(f"policy.{k} must be a positive integer")
    try:
        return RotationPolicy(**value)
    except OtaError as exc:
        raise BadRequest(f"policy: {exc}") from None


def _now_s(store: Store) -> int:
    return store.now_ms // 1000


def _ota_keys(store: Store, actor: Actor, sim: Sim) -> OtaKeys | None:
    """The newest active KIc and KID of the SIM, opened; None if either is missing."""
    kic = store.keys.usable(actor, sim, "kic")
    kid = store.keys.usable(actor, sim, "kid")
    if not kic or not kid:
        return None

    def index(tag: str) -> int:
        n = numeric_tag(tag)
        return n if n is not None and 1 <= n <= 15 else 1

    (kic_tag, kic_key), (kid_tag, kid_key) = kic[-1], kid[-1]
    return OtaKeys(kic_key, kid_key, index(kic_tag), index(kid_tag))


def rotation_view(row: OtaRotation, iccid: str, now_ms: int, *,
                  history: bool = False) -> dict[str, Any]:
    rot = load_rotation(row)

    def ms(seconds: int | None) -> int | None:
        return seconds * 1000 if seconds is not None else None

    out: dict[str, Any] = {
        "id": row.id, "iccid": iccid, "batch": row.batch, "state": rot.state.value,
        "old_tag": row.old_tag, "new_tag": row.new_tag, "attempts": len(rot.counters),
        "created_ms": row.created_ms, "updated_ms": row.updated_ms,
        "last_sent_ms": ms(rot.last_sent_at_s), "next_due_ms": row.next_due_ms,
        "delivered_ms": ms(rot.delivered_at_s), "confirmed_ms": ms(rot.confirmed_at_s),
        "retired_ms": ms(rot.retired_at_s), "overdue": rot.is_overdue(now_ms // 1000),
        "last_por": rot.last_por, "accepted_tags": [str(v) for v in
                                                   rot.accepted_key_versions()],
        "cancelled_ms": ms(rot.cancelled_at_s),
    }
    if history:
        out["history"] = [{"at_ms": t * 1000, "event": e, "from": a, "to": b}
                          for t, e, a, b in rot.history]
        out["policy"] = rot.to_dict()["policy"]
    return out


# ---------------------------------------------------------------------------- start


def _eligibility(store: Store, actor: Actor, sim: Sim) -> tuple[str | None, int, int]:
    """(reason it cannot be rotated or None, old version, new version)."""
    if sim.state != "active":
        return "suspended", 0, 0
    if store.rotation_rules.open_rotation(sim) is not None:
        return "rotation_open", 0, 0
    psks = [k for k in store.s.scalars(select(SimKey).where(
        SimKey.sim_id == sim.id, SimKey.kind == "psk"))]
    active = [n for k in psks if k.state == "active" and (n := numeric_tag(k.tag)) is not None]
    if not active:
        return "no_numeric_psk", 0, 0
    kinds = {k for k in store.s.scalars(select(SimKey.kind).where(
        SimKey.sim_id == sim.id, SimKey.state == "active", SimKey.kind.in_(("kic", "kid"))))}
    if kinds != {"kic", "kid"}:
        return "no_ota_keys", 0, 0
    old = max(active)
    new = max(n for k in psks if (n := numeric_tag(k.tag)) is not None) + 1
    if old < 1 or new > 0xFF:
        return "key_versions_exhausted", 0, 0
    return None, old, new


def start_rotations(store: Store, actor: Actor, iccids: list[str] | None, *,
                    policy: RotationPolicy) -> dict[str, Any]:
    """Start rotations: for ``iccids`` (all or nothing: any SIM that cannot be rotated ->
    Conflict naming it), or for every active SIM when ``iccids`` is None (the ineligible ones
    are skipped and listed).

    Raises:
        NotFound: an unknown ICCID. Conflict: a listed SIM cannot be rotated now.
    """
    batch = f"b{store.now_ms}-{secrets.token_hex(3)}"
    store.feed.lock()  # new PSKs are feed changes: the feed lock before any SIM row
    if iccids is None:
        sims: Iterable[Sim] = list(store.s.scalars(
            select(Sim).where(Sim.state == "active").order_by(Sim.iccid).with_for_update()))
    else:
        if len(set(iccids)) != len(iccids):
            raise Conflict("an ICCID is listed twice", code="duplicate_row")
        sims = [store.sims.row(i, lock=True) for i in sorted(iccids)]  # lock order: ICCID
    plan: list[tuple[Sim, int, int]] = []
    skipped: list[dict[str, str]] = []
    for sim in sims:
        reason, old, new = _eligibility(store, actor, sim)
        if reason is None:
            plan.append((sim, old, new))
        else:
            skipped.append({"iccid": sim.iccid, "reason": reason})
    if iccids is not None and skipped:
        raise Conflict("cannot rotate: " + ", ".join(f"{s['iccid']} ({s['reason']})"
                                                     for s in skipped[:20]),
                       code="rotation_refused")
    views = []
    now_s = _now_s(store)
    for sim, old, new in plan:
        store.keys.add(actor, sim.iccid, "psk", key=None, tag=str(new), sim=sim)
        rot = Rotation(sim=sim.iccid, old_key_version=old, new_key_version=new,
                       created_at_s=now_s, policy=policy)
        row = OtaRotation(sim_id=sim.id, batch=batch, state=rot.state.value, old_tag=str(old),
                          new_tag=str(new), next_due_ms=None, record_json="{}",
                          created_ms=store.now_ms, updated_ms=store.now_ms,
                          created_by=actor.client_id)
        save_rotation(row, rot, store.now_ms)
        store.s.add(row)
        store.s.flush()
        store.audit.record(actor, "rotation.start", iccid=sim.iccid,
                           detail={"batch": batch, "old_tag": str(old), "new_tag": str(new)})
        views.append(rotation_view(row, sim.iccid, store.now_ms))
    for s in skipped:
        store.audit.record(actor, "rotation.skip", iccid=s["iccid"],
                           detail={"batch": batch, "reason": s["reason"]})
    return {"batch": batch, "started": len(views), "skipped": skipped, "rotations": views}


# ---------------------------------------------------------------------------- queries


def get_rotation(store: Store, iccid: str) -> dict[str, Any]:
    """The SIM's latest rotation with its history. Raises NotFound."""
    sim = store.sims.row(iccid)
    row = store.s.scalar(select(OtaRotation).where(OtaRotation.sim_id == sim.id)
                         .order_by(OtaRotation.id.desc()).limit(1))
    if row is None:
        raise NotFound(f"SIM {iccid} has no rotation", code="unknown_rotation")
    return rotation_view(row, iccid, store.now_ms, history=True)


def list_rotations(store: Store, *, batch: str | None, state: str | None, overdue: bool,
                   after: int, limit: int) -> list[dict[str, Any]]:
    q = (select(OtaRotation, Sim.iccid).join(Sim, Sim.id == OtaRotation.sim_id)
         .where(OtaRotation.id > after).order_by(OtaRotation.id))
    if batch:
        q = q.where(OtaRotation.batch == batch)
    if state:
        q = q.where(OtaRotation.state == state)
    out = []
    for row, iccid in store.s.execute(q):
        view = rotation_view(row, iccid, store.now_ms)
        if overdue and not view["overdue"]:
            continue
        out.append(view)
        if len(out) >= limit:
            break
    return out


def batch_progress(store: Store, batch: str) -> dict[str, Any]:
    """Counts per state, overdue count, done (RETIRED) out of total. Raises NotFound."""
    rows = list(store.s.scalars(select(OtaRotation).where(OtaRotation.batch == batch)))
    if not rows:
        raise NotFound(f"no rotation batch {batch}", code="unknown_batch")
    states = {s.value: 0 for s in RotationState}
    overdue = 0
    now_s = _now_s(store)
    for row in rows:
        states[row.state] = states.get(row.state, 0) + 1
        if row.state in OPEN_STATES and load_rotation(row).is_overdue(now_s):
            overdue += 1
    done = states[RotationState.RETIRED.value]
    cancelled = states[RotationState.CANCELLED.value]
    return {"batch": batch, "total": len(rows), "states": states, "overdue": overdue,
            "done": done, "failed": states[RotationState.FAILED.value],
            "cancelled": cancelled, "complete": done + cancelled == len(rows)}


def last_batch(store: Store) -> str | None:
    return store.s.scalar(select(OtaRotation.batch).order_by(OtaRotation.id.desc()).limit(1))


def retry_rotation(store: Store, actor: Actor, iccid: str) -> dict[str, Any]:
    """A FAILED rotation becomes PENDING again, due now (sent at the next run) with a fresh
    attempt budget; PENDING ones resend on their own.

    Raises:
        NotFound: no rotation. Conflict: the open rotation is not FAILED.
    """
    sim = store.sims.row(iccid, lock=True)
    row = store.rotation_rules.open_rotation(sim)
    if row is None:
        raise NotFound(f"SIM {iccid} has no open rotation", code="unknown_rotation")
    if row.state != RotationState.FAILED.value:
        raise Conflict(f"rotation of {iccid} is {row.state}; only a failed one is retried "
                       "by hand (pending ones resend on their own)", code="rotation_not_failed")
    rot = load_rotation(row)
    rot.retry(_now_s(store))
    save_rotation(row, rot, store.now_ms)
    store.audit.record(actor, "rotation.retry", iccid=iccid, detail={"batch": row.batch})
    return rotation_view(row, iccid, store.now_ms)


CANCELLABLE = (RotationState.PENDING.value, RotationState.FAILED.value)


def cancel_rotation(store: Store, actor: Actor, iccid: str, reason: str = "") -> dict[str, Any]:
    """Close a FAILED or PENDING (e.g. stuck: attempts used up) rotation: CANCELLED.

    Never locks the SIM out: the old key stays active. The new key is retired only when the
    SIM certainly does not hold it (no packet ever sent, or its verified PoRs prove it:
    ``Rotation.sim_lacks_new_key``); otherwise it stays active beside the old one, and the
    answer says so (``new_key``: "retired" or "kept", ``note``). Afterwards the SIM's keys can
    be retired by hand and the SIM rotated again.

    Raises:
        NotFound: no open rotation. Conflict: it is DELIVERED or CONFIRMED (the SIM holds the
            new key and confirms it on its next connection).
    """
    store.feed.lock()  # retiring a PSK is a feed change: the feed lock before the SIM row
    sim = store.sims.row(iccid, lock=True)
    row = store.rotation_rules.open_rotation(sim)
    if row is None:
        raise NotFound(f"SIM {iccid} has no open rotation", code="unknown_rotation")
    if row.state not in CANCELLABLE:
        raise Conflict(f"rotation of {iccid} is {row.state}: the SIM holds the new key and "
                       "confirms it on its next connection; only a pending or failed rotation "
                       "is cancelled", code="rotation_not_cancellable")
    rot = load_rotation(row)
    was = rot.state.value
    dropped = rot.cancel(_now_s(store))
    if dropped:
        new = store.s.scalar(select(SimKey).where(
            SimKey.sim_id == sim.id, SimKey.kind == "psk", SimKey.tag == row.new_tag))
        if new is not None and new.state != "retired":
            new.state = "retired"
            store.feed.note(sim.identity_hex)
        note = (f"key {row.new_tag} retired: the SIM certainly does not hold it; "
                f"key {row.old_tag} stays")
    else:
        note = (f"keys {row.old_tag} and {row.new_tag} both stay accepted: the SIM may hold "
                f"key {row.new_tag} (a packet without a verified PoR); retire the one it does "
                "not use by hand once it has connected with the other")
    save_rotation(row, rot, store.now_ms)
    store.audit.record(actor, "rotation.cancel", iccid=iccid, severity="alert" if not dropped
                       else "info",
                       detail={"batch": row.batch, "was": was, "old_tag": row.old_tag,
                               "new_tag": row.new_tag, "new_key": "retired" if dropped else "kept",
                               "reason": reason})
    return rotation_view(row, iccid, store.now_ms) | {
        "new_key": "retired" if dropped else "kept", "note": note}


# ---------------------------------------------------------------------------- sending


@dataclass
class _Outgoing:
    rotation_id: int
    iccid: str
    keys: OtaKeys = field(repr=False)
    counter: int
    tpdu: bytes = field(repr=False)


def _claim_due(store: Store, actor: Actor, limit: int) -> list[_Outgoing]:
    now_s = _now_s(store)
    q = (select(OtaRotation).where(
        OtaRotation.state == RotationState.PENDING.value,  # FAILED waits for an operator
        OtaRotation.next_due_ms.is_not(None), OtaRotation.next_due_ms <= store.now_ms)
        .order_by(OtaRotation.next_due_ms, OtaRotation.id).limit(limit))
    if store.postgres:
        q = q.with_for_update(skip_locked=True)
    out = []
    for row in list(store.s.scalars(q)):
        rot = load_rotation(row)
        sim = store.s.get(Sim, row.sim_id)
        assert sim is not None
        if rot.handle_timer(now_s) is None:
            save_rotation(row, rot, store.now_ms)  # not due after all (or attempts used up)
            continue
        keys = _ota_keys(store, actor, sim)
        psk = dict(store.keys.usable(actor, sim, "psk")).get(row.new_tag)
        if keys is None or psk is None or len(psk) != 16:
            store.audit.record(actor, "rotation.stuck", iccid=sim.iccid, severity="alert",
                               detail={"batch": row.batch, "reason": "OTA keys or new PSK missing"})
            row.next_due_ms = None
            continue
        counter_row = store.s.get(OtaCounter, sim.id)
        if counter_row is None:
            counter_row = OtaCounter(sim_id=sim.id, counter=0)
            store.s.add(counter_row)
        counter = max(counter_row.counter, rot.counters[-1] if rot.counters else 0) + 1
        try:
            rot.packet_sent(counter, now_s)
        except RotationError as exc:
            store.audit.record(actor, "rotation.stuck", iccid=sim.iccid, severity="alert",
                               detail={"batch": row.batch, "reason": str(exc)})
            row.next_due_ms = None
            continue
        counter_row.counter = counter
        tpdu = build_install_psk_sms(keys, counter=counter, psk=psk,
                                     key_version=rot.new_key_version,
                                     originating_address=OTA_SERVER_ADDRESS)
        save_rotation(row, rot, store.now_ms)
        store.audit.record(actor, "rotation.send", iccid=sim.iccid,
                           detail={"batch": row.batch, "attempt": len(rot.counters),
                                   "counter": counter, "new_tag": row.new_tag})
        out.append(_Outgoing(row.id, sim.iccid, keys, counter, tpdu))
    return out


def _record(store: Store, actor: Actor, item: _Outgoing, por: bytes | None,
            error: str) -> str:
    row = store.s.get(OtaRotation, item.rotation_id)
    if row is None:  # the SIM was deleted meanwhile
        return "gone"
    base = {"batch": row.batch, "counter": item.counter}
    if por is None:
        store.audit.record(actor, "rotation.no_por", iccid=item.iccid,
                           detail={**base, "error": error} if error else base)
        return "no_por"
    rot = load_rotation(row)
    try:
        result = check_por(item.keys, por, expected_counter=item.counter)
        event = rot.por_received(result, _now_s(store))
    except (OtaError, RotationError) as exc:
        store.audit.record(actor, "rotation.por_invalid", iccid=item.iccid, severity="alert",
                           detail={**base, "reason": str(exc)})
        return "por_invalid"
    was = row.state
    save_rotation(row, rot, store.now_ms)
    failed = rot.state == RotationState.FAILED
    unverified = event == RotationEvent.POR_UNVERIFIED  # ignored: a forged one looks the same
    store.audit.record(actor, "rotation.por", iccid=item.iccid,
                       severity="alert" if failed or unverified else "info",
                       detail={**base, "por": result.describe(), "event": event.value,
                               "state": rot.state.value})
    if was != row.state and row.state == RotationState.DELIVERED.value:
        store.audit.record(actor, "rotation.delivered", iccid=item.iccid,
                           detail={"batch": row.batch, "new_tag": row.new_tag})
    return "failed" if failed else event.value


def run_due(db: Database, keyring: MasterKeyring, clock_ms: Callable[[], int],
            transport: SmsTransport, *, actor: Actor = OTA_ACTOR,
            limit: int = 100_000, chunk: int = RUN_CHUNK) -> dict[str, int]:
    """Send every rotation packet due now (first sends and resends), check the PoRs.

    Each chunk: one transaction claims the due rotations and consumes their counters, the
    SMS go out with no transaction open, a second transaction records the answers.

    Returns:
        counts: sent, installed (PoR said installed), no_por, retryable, failed,
        por_invalid, por_unverified (an unsecured error report: ignored, resent later).
    """
    summary = {"sent": 0, "por_installed": 0, "no_por": 0, "por_retryable": 0,
               "failed": 0, "por_invalid": 0, "por_refused": 0, "por_unverified": 0}
    while summary["sent"] < limit:
        now_ms = clock_ms()
        with db.write() as session:
            items = _claim_due(Store(session, keyring, now_ms), actor,
                               min(chunk, limit - summary["sent"]))
        if not items:
            break
        answers: list[tuple[bytes | None, str]] = []
        many = getattr(transport, "deliver_many", None)  # SMPP: one PoR wait per chunk
        if many is not None:
            answers = many([(item.iccid, item.tpdu) for item in items])
            for item, (_, error) in zip(items, answers, strict=True):
                if error:
                    log.warning("OTA: SMS to %s failed: %s", item.iccid, error)
        for item in items if many is None else ():
            try:
                answers.append((transport.deliver(item.iccid, item.tpdu), ""))
            except SmsTransportError as exc:
                log.warning("OTA: SMS to %s failed: %s", item.iccid, exc)
                answers.append((None, str(exc)))
        with db.write() as session:
            store = Store(session, keyring, clock_ms())
            for item, (por, error) in zip(items, answers, strict=True):
                outcome = _record(store, actor, item, por, error)
                summary[outcome] = summary.get(outcome, 0) + 1
        summary["sent"] += len(items)
    return summary


def count_open(store: Store) -> int:
    return int(store.s.scalar(select(func.count()).select_from(OtaRotation).where(
        OtaRotation.state.in_(OPEN_STATES))) or 0)
