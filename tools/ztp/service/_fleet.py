"""Configurations by SIM label (fleets) and the resolution of what a device should get.

Resolution order (docs/service.md "Resolution order"), the first that has a body wins:

1. the configuration of the SIM for this DeviceID (``configs set ICCID DEVICEID``);
2. the SIM's ``default`` configuration;
3. the label configurations whose ``key=value`` the SIM carries, highest ``priority`` first.
   Priorities are unique among label configurations (a second one with a taken priority is
   refused, 409 ``priority_taken``), so two matching labels never tie, whatever labels SIMs
   get later. Within a label configuration with an open rollout, a device in the rollout's
   current stage gets the rollout's body, any other device the label's current body (none
   yet: the next label down).

One whole body is chosen, never merged from several (the device applies a body as one unit
and reports its digest), so every stored body's 254-byte limit is the resolved body's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ._errors import BadRequest, Conflict, NotFound
from ._fleet_models import LabelConfig, LabelConfigVersion, Rollout
from ._models import ConfigSlot, ConfigVersion
from ._reports import body_digest
from ._schemas import DEFAULT_DEVICE, parse_body
from ._stages import in_stage

__all__ = ["LabelConfigs", "LabelResolver", "Resolved", "parse_label", "slot_bodies"]

OPEN_ROLLOUT_STATES = ("running", "paused", "stopped")
PRIORITY_MAX = 2**31 - 1
_LABEL_KEY = re.compile(r"[a-z0-9_.-]{1,32}")
# a label configuration is addressed in a URL path: its value has no '/' (SIM labels may)
_LABEL_VALUE = re.compile(r"[A-Za-z0-9_.:@-]{1,64}")

Audit = Callable[..., None]


def parse_label(value: object) -> tuple[str, str]:
    """``key=value`` of a label configuration."""
    if not isinstance(value, str):
        raise BadRequest("label must be key=value")
    key, sep, val = value.partition("=")
    if not sep or not _LABEL_KEY.fullmatch(key) or not _LABEL_VALUE.fullmatch(val):
        raise BadRequest("label must be key=value: key [a-z0-9_.-]{1,32}, value "
                         "[A-Za-z0-9_.:@-]{1,64}", code="invalid_label")
    return key, val


def label_source(key: str, value: str) -> str:
    return f"label:{key}={value}"


@dataclass(frozen=True)
class Resolved:
    """What a device gets: the body, where it comes from and that source's version."""

    source: str  # device | default | label:key=value
    version: int
    body: bytes
    rollout_id: int | None = None

    @property
    def digest(self) -> str:
        return body_digest(self.body)


def slot_bodies(session: Session, sim_ids: Iterable[int]) -> dict[tuple[int, str], Resolved]:
    """The current, non-deleted per-SIM configurations of ``sim_ids``: (sim id, device key)
    -> body (device key: a DeviceID or ``default``)."""
    ids = sorted(set(sim_ids))
    out: dict[tuple[int, str], Resolved] = {}
    for start in range(0, len(ids), 500):
        rows = session.execute(
            select(ConfigSlot.sim_id, ConfigSlot.device_key, ConfigVersion.version,
                   ConfigVersion.body)
            .join(ConfigVersion, (ConfigVersion.slot_id == ConfigSlot.id)
                  & (ConfigVersion.version == ConfigSlot.current_version))
            .where(ConfigSlot.sim_id.in_(ids[start:start + 500]),
                   ConfigVersion.body.is_not(None)))
        for sim_id, key, version, body in rows:
            source = DEFAULT_DEVICE if key == DEFAULT_DEVICE else "device"
            out[(sim_id, key)] = Resolved(source, version, bytes(body))
    return out


class LabelResolver:
    """The label configurations (with their current bodies and open rollouts), loaded once
    for a request or a listing; :meth:`resolve` then costs no query."""

    def __init__(self, session: Session, labels: dict[str, str] | None = None) -> None:
        configs = list(session.scalars(select(LabelConfig)
                                       .order_by(LabelConfig.priority.desc())))
        if labels is not None:
            configs = [c for c in configs if labels.get(c.label_key) == c.label_value]
        self.configs = configs
        ids = [c.id for c in configs]
        self.rollouts: dict[int, Rollout] = {}
        self._bodies: dict[tuple[int, int], bytes] = {}
        if not ids:
            return
        for r in session.scalars(select(Rollout).where(
                Rollout.config_id.in_(ids), Rollout.state.in_(OPEN_ROLLOUT_STATES))):
            self.rollouts[r.config_id] = r
        wanted = {(c.id, c.current_version) for c in configs if c.current_version}
        wanted |= {(r.config_id, r.to_version) for r in self.rollouts.values()}
        versions = sorted({v for _, v in wanted})
        for cid, version, body in session.execute(
                select(LabelConfigVersion.config_id, LabelConfigVersion.version,
                       LabelConfigVersion.body)
                .where(LabelConfigVersion.config_id.in_(ids),
                       LabelConfigVersion.version.in_(versions))):
            if (cid, version) in wanted:
                self._bodies[(cid, version)] = bytes(body)
        self._listed = {r.id: frozenset(json.loads(r.devices_json))
                        for r in self.rollouts.values()}
        self._stages = {r.id: json.loads(r.stages_json) for r in self.rollouts.values()}

    def in_rollout(self, rollout: Rollout, iccid: str, device_id: str) -> bool:
        """Whether the device is in the rollout's current stage (gets its body)."""
        percent = self._stages[rollout.id][rollout.stage]
        return in_stage(percent, self._listed[rollout.id], iccid, device_id)

    def resolve(self, iccid: str, device_id: str, labels: dict[str, str]) -> Resolved | None:
        """The label body for a device whose SIM has no configuration of its own."""
        for c in self.configs:
            if labels.get(c.label_key) != c.label_value:
                continue
            source = label_source(c.label_key, c.label_value)
            r = self.rollouts.get(c.id)
            if r is not None and self.in_rollout(r, iccid, device_id):
                return Resolved(source, r.to_version, self._bodies[(c.id, r.to_version)],
                                rollout_id=r.id)
            if c.current_version:
                return Resolved(source, c.current_version,
                                self._bodies[(c.id, c.current_version)])
        return None


def resolve_device(
    resolver: LabelResolver, slots: dict[tuple[int, str], Resolved], sim_id: int, iccid: str,
    labels: dict[str, str], device_id: str,
) -> Resolved | None:
    """The whole resolution order for one device (see the module docstring)."""
    return (slots.get((sim_id, device_id)) or slots.get((sim_id, DEFAULT_DEVICE))
            or resolver.resolve(iccid, device_id, labels))


def config_view(c: LabelConfig, body: bytes | None, rollout: Rollout | None) -> dict[str, Any]:
    return {"label": f"{c.label_key}={c.label_value}", "priority": c.priority,
            "version": c.current_version, "require_json": c.require_json,
            "body": body.decode("utf-8") if body is not None else None,
            "digest": body_digest(body) if body is not None else None,
            "rollout": rollout.id if rollout is not None else None,
            "updated_ms": c.updated_ms}


class LabelConfigs:
    """Create, change, read and delete label configurations (audited ``fleet.*``)."""

    def __init__(self, session: Session, now_ms: int, audit: Audit) -> None:
        self.s = session
        self.now_ms = now_ms
        self.audit = audit

    def find(self, key: str, value: str, *, lock: bool = False) -> LabelConfig | None:
        q = select(LabelConfig).where(LabelConfig.label_key == key,
                                      LabelConfig.label_value == value)
        return self.s.scalar(q.with_for_update() if lock else q)

    def checked_body(self, label: tuple[str, str], body: object, *,
                     require_json: bool | None, service_json: bool) -> bytes:
        """The body for ``label``, checked as per-SIM bodies are: 1-254 bytes of UTF-8, JSON
        when asked, when the label configuration already requires it (then a 409: the
        requirement is the stored configuration's, not the request's) or service-wide. One
        check for the API route and the console, so they refuse the same bodies."""
        existing = self.find(*label)
        sticky = require_json is None and existing is not None and existing.require_json
        try:
            return parse_body(body, require_json=bool(require_json) or sticky or service_json)
        except BadRequest as exc:
            if sticky and exc.code == "invalid_json":
                raise Conflict(f"{exc.detail} (require_json is set on this label "
                               "configuration)", code="invalid_json") from None
            raise

    def get_config(self, key: str, value: str, *, lock: bool = False) -> LabelConfig:
        c = self.find(key, value, lock=lock)
        if c is None:
            raise NotFound(f"no configuration for label {key}={value}", code="unknown_label")
        return c

    def body(self, c: LabelConfig, version: int) -> bytes | None:
        if not version:
            return None
        raw = self.s.scalar(select(LabelConfigVersion.body).where(
            LabelConfigVersion.config_id == c.id, LabelConfigVersion.version == version))
        return bytes(raw) if raw is not None else None

    def open_rollout(self, c: LabelConfig) -> Rollout | None:
        return self.s.scalar(select(Rollout).where(
            Rollout.config_id == c.id, Rollout.state.in_(OPEN_ROLLOUT_STATES)))

    def _check_priority(self, priority: int, own_id: int | None) -> None:
        holder = self.s.scalar(select(LabelConfig).where(LabelConfig.priority == priority))
        if holder is not None and holder.id != own_id:
            raise Conflict(f"priority {priority} is taken by label "
                           f"{holder.label_key}={holder.label_value}: priorities are unique, "
                           "so two matching labels never tie", code="priority_taken")

    def add_version(self, actor: Any, c: LabelConfig, raw: bytes, comment: str) -> int:
        """A new version row (not yet current: the caller decides)."""
        last = self.s.scalar(select(LabelConfigVersion.version).where(
            LabelConfigVersion.config_id == c.id)
            .order_by(LabelConfigVersion.version.desc()).limit(1)) or 0
        self.s.add(LabelConfigVersion(config_id=c.id, version=last + 1, body=raw,
                                      created_ms=self.now_ms, created_by=actor.client_id,
                                      comment=comment))
        return int(last + 1)

    def ensure(self, key: str, value: str, priority: int | None,
               require_json: bool | None) -> LabelConfig:
        """The label configuration, created (a priority is then required) or with the given
        priority and JSON requirement; locked for the rest of the transaction."""
        c = self.find(key, value, lock=True)
        if c is None:
            if priority is None:
                raise NotFound(f"label {key}={value} has no configuration yet: give its "
                               "priority to create it (the highest matching label wins)",
                               code="unknown_label")
            self._check_priority(priority, None)
            c = LabelConfig(label_key=key, label_value=value, priority=priority,
                            current_version=0, require_json=bool(require_json),
                            created_ms=self.now_ms, updated_ms=self.now_ms)
            self.s.add(c)
            self.s.flush()
            return c
        if priority is not None and priority != c.priority:
            self._check_priority(priority, c.id)
            c.priority = priority
        if require_json is not None:
            c.require_json = require_json
        c.updated_ms = self.now_ms
        return c

    def set(self, actor: Any, key: str, value: str, raw: bytes, *, priority: int | None,
            require_json: bool | None, comment: str) -> dict[str, Any]:
        """A new body for every matching device at once (a staged one: ``rollouts start``)."""
        existing = self.find(key, value, lock=True)
        if existing is not None and self.open_rollout(existing) is not None:
            raise Conflict(f"label {key}={value} has an open rollout: abort it (or let it "
                           "complete) before setting a body", code="rollout_open")
        c = self.ensure(key, value, priority, require_json)
        version = self.add_version(actor, c, raw, comment)
        c.current_version = version
        self.audit(actor, "fleet.set", version=version,
                   detail={"label": f"{key}={value}", "priority": c.priority,
                           "bytes": len(raw), "digest": body_digest(raw), "comment": comment})
        return config_view(c, raw, None)

    def get(self, key: str, value: str) -> dict[str, Any]:
        c = self.get_config(key, value)
        return config_view(c, self.body(c, c.current_version), self.open_rollout(c))

    def list(self) -> list[dict[str, Any]]:
        resolver = LabelResolver(self.s)
        out = []
        for c in resolver.configs:
            r = resolver.rollouts.get(c.id)
            out.append(config_view(c, self.body(c, c.current_version), r))
        return out

    def history(self, key: str, value: str, limit: int) -> list[dict[str, Any]]:
        c = self.get_config(key, value)
        rows = self.s.scalars(select(LabelConfigVersion).where(
            LabelConfigVersion.config_id == c.id)
            .order_by(LabelConfigVersion.version.desc()).limit(limit))
        return [{"version": v.version, "body": bytes(v.body).decode("utf-8"),
                 "digest": body_digest(bytes(v.body)), "current": v.version == c.current_version,
                 "created_ms": v.created_ms, "created_by": v.created_by, "comment": v.comment}
                for v in rows]

    def delete(self, actor: Any, key: str, value: str) -> None:
        """Remove the label configuration with its history and rollouts (the audit log keeps
        what happened); its devices fall to the next matching label."""
        c = self.get_config(key, value, lock=True)
        if self.open_rollout(c) is not None:
            raise Conflict(f"label {key}={value} has an open rollout: abort it first",
                           code="rollout_open")
        self.audit(actor, "fleet.delete", version=c.current_version or None,
                   detail={"label": f"{key}={value}", "priority": c.priority})
        self.s.delete(c)
        self.s.flush()
