"""Staged rollouts of a label configuration's new body (docs/service.md "Rollouts").

A rollout keeps the label's current body for every device outside its current stage and
gives its new body to the devices inside (``_stages``: cumulative percentages by a fixed
hash of ICCID + DeviceID, listed devices first). It is evaluated after every report of a
device it concerns, and on resume:

- more failures than ``max_failures`` among the devices of the stage (outcome rejected or
  rolled_back after the new body was delivered to them) -> ``stopped``: no widening; the
  stage keeps the new body until ``abort`` (a stopped rollout is not resumed: it is aborted,
  and a corrected body gets a new rollout);
- every device of the stage confirmed the new digest (outcome ``confirmed``, sent after
  ``mark_good``: ``applied`` is not enough) or failed, at least one confirmed, and the stage
  has at least one device -> the next stage; after the last (100 %) the new body becomes the
  label's current body and the rollout ``completed``.

``abort`` stops it and makes the previous body desired again for every device (the rollout's
body was never the label's current one). Members are the devices the service knows (it
has seen them ask for a configuration or report) whose resolution falls to this label.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ._errors import BadRequest, Conflict, NotFound
from ._fleet import (
    OPEN_ROLLOUT_STATES,
    Audit,
    LabelConfigs,
    LabelResolver,
    label_source,
    resolve_device,
    slot_bodies,
)
from ._fleet_models import DeviceState, LabelConfig, Rollout
from ._models import Sim, SimLabel
from ._reports import FAILED_OUTCOMES, body_digest
from ._stages import check_stages, in_stage

__all__ = ["Rollouts", "RolloutCounts"]

ROLLOUT_STATES = ("running", "paused", "stopped", "completed", "aborted")
# The operator's transitions: action -> (the states it applies to, the state it leads to).
# The engine's own (running -> stopped, running -> completed) are in Rollouts.evaluate.
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "pause": (("running",), "paused"),
    "resume": (("paused",), "running"),
    "abort": (OPEN_ROLLOUT_STATES, "aborted"),
}


@dataclass
class RolloutCounts:
    """Devices of the label (its resolution falls to it) and of each stage."""

    devices: int = 0
    stage_devices: list[int] = field(default_factory=list)
    delivered: int = 0  # got the new body
    confirmed: int = 0  # in the current stage, confirmed the new digest
    failed: int = 0  # in the current stage, rejected or rolled it back
    current_stage: int = 0  # devices in the current stage

    def view(self) -> dict[str, Any]:
        return {"devices": self.devices, "stage_devices": self.stage_devices,
                "in_stage": self.current_stage, "delivered": self.delivered,
                "confirmed": self.confirmed, "failed": self.failed,
                "pending": self.current_stage - self.confirmed - self.failed}


def rollout_view(r: Rollout, c: LabelConfig, counts: RolloutCounts | None) -> dict[str, Any]:
    out = {"id": r.id, "label": f"{c.label_key}={c.label_value}", "state": r.state,
           "stage": r.stage, "stages": json.loads(r.stages_json),
           "devices": json.loads(r.devices_json), "from_version": r.from_version,
           "to_version": r.to_version, "digest": r.to_digest, "max_failures": r.max_failures,
           "reason": r.reason, "created_ms": r.created_ms, "updated_ms": r.updated_ms,
           "created_by": r.created_by}
    if counts is not None:
        out["counts"] = counts.view()
    return out


def device_failed(d: DeviceState, digest: str) -> bool:
    """The device turned ``digest`` down: rejected or rolled back after it was delivered."""
    if d.outcome not in FAILED_OUTCOMES or d.reported_digest == digest:
        return False
    return d.delivered_digest == digest or d.rejected_digest == digest


def device_confirmed(d: DeviceState, digest: str) -> bool:
    return d.reported_digest == digest and d.confirmed_digest == digest


class Rollouts:
    """Start, watch, pause, resume and abort rollouts (audited ``rollout.*``)."""

    def __init__(self, session: Session, now_ms: int, audit: Audit) -> None:
        self.s = session
        self.now_ms = now_ms
        self.audit = audit
        self.configs = LabelConfigs(session, now_ms, audit)

    # ----------------------------------------------------------------- lifecycle

    def start(self, actor: Any, key: str, value: str, raw: bytes, *, stages: list[int],
              devices: list[str], max_failures: int, priority: int | None,
              require_json: bool | None, comment: str) -> dict[str, Any]:
        try:
            plan = check_stages(stages, bool(devices))
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        existing = self.configs.find(key, value, lock=True)
        if existing is not None:
            r = self.configs.open_rollout(existing)
            if r is not None:
                raise Conflict(f"label {key}={value} has rollout {r.id} open ({r.state}): "
                               "abort it first", code="rollout_open")
        c = self.configs.ensure(key, value, priority, require_json)
        digest = body_digest(raw)
        current = self.configs.body(c, c.current_version)
        if current is not None and body_digest(current) == digest:
            raise Conflict("this body is already the label's current one", code="unchanged")
        version = self.configs.add_version(actor, c, raw, comment)
        r = Rollout(config_id=c.id, from_version=c.current_version, to_version=version,
                    to_digest=digest, state="running", stages_json=json.dumps(plan),
                    devices_json=json.dumps(sorted(devices)), stage=0,
                    max_failures=max_failures, reason="", created_ms=self.now_ms,
                    updated_ms=self.now_ms, created_by=actor.client_id)
        self.s.add(r)
        self.s.flush()
        self.audit(actor, "rollout.start", version=version,
                   detail={"rollout": r.id, "label": f"{key}={value}", "stages": plan,
                           "devices": len(devices), "max_failures": max_failures,
                           "digest": digest, "from_version": r.from_version})
        return rollout_view(r, c, self.counts(r, c))

    def _get(self, rollout_id: int, *, lock: bool = False) -> tuple[Rollout, LabelConfig]:
        q = select(Rollout).where(Rollout.id == rollout_id)
        r = self.s.scalar(q.with_for_update() if lock else q)
        if r is None:
            raise NotFound(f"no rollout {rollout_id}", code="unknown_rollout")
        c = self.s.get(LabelConfig, r.config_id)
        assert c is not None
        return r, c

    def status(self, rollout_id: int) -> dict[str, Any]:
        r, c = self._get(rollout_id)
        return rollout_view(r, c, self.counts(r, c))

    def list(self, label: tuple[str, str] | None, limit: int) -> list[dict[str, Any]]:
        q = (select(Rollout, LabelConfig).join(LabelConfig, LabelConfig.id == Rollout.config_id)
             .order_by(Rollout.id.desc()).limit(limit))
        if label is not None:
            q = q.where(LabelConfig.label_key == label[0], LabelConfig.label_value == label[1])
        return [rollout_view(r, c, None) for r, c in self.s.execute(q)]

    def _change(self, actor: Any, rollout_id: int, action: str) -> tuple[Rollout, LabelConfig]:
        allowed, new_state = TRANSITIONS[action]
        r, c = self._get(rollout_id, lock=True)
        if r.state not in allowed:
            hint = " (a stopped rollout is aborted)" if r.state == "stopped" else ""
            raise Conflict(f"rollout {r.id} is {r.state}: cannot {action} it{hint}",
                           code="rollout_state")
        old = r.state
        r.state = new_state
        r.updated_ms = self.now_ms
        self.audit(actor, f"rollout.{action}", version=r.to_version,
                   detail={"rollout": r.id, "label": f"{c.label_key}={c.label_value}",
                           "from": old, "to": new_state, "stage": r.stage})
        return r, c

    def pause(self, actor: Any, rollout_id: int) -> dict[str, Any]:
        r, c = self._change(actor, rollout_id, "pause")
        return rollout_view(r, c, self.counts(r, c))

    def resume(self, actor: Any, rollout_id: int) -> dict[str, Any]:
        r, c = self._change(actor, rollout_id, "resume")
        self.evaluate(actor, r, c)
        return rollout_view(r, c, self.counts(r, c))

    def abort(self, actor: Any, rollout_id: int) -> dict[str, Any]:
        """Stop and roll back: the label's previous body is desired again everywhere."""
        r, c = self._change(actor, rollout_id, "abort")
        r.reason = "aborted"
        return rollout_view(r, c, self.counts(r, c))

    # ----------------------------------------------------------------- progress

    def counts(self, r: Rollout, c: LabelConfig) -> RolloutCounts:
        """Count the label's devices per stage, and the current stage's outcomes."""
        stages = json.loads(r.stages_json)
        listed = frozenset(json.loads(r.devices_json))
        source = label_source(c.label_key, c.label_value)
        out = RolloutCounts(stage_devices=[0] * len(stages))
        # the label's devices only, through the sim_label index: a report costs the size of
        # its fleet, not of every device the service knows
        rows = self.s.execute(select(DeviceState, Sim.iccid, Sim.labels_json)
                              .join(Sim, Sim.id == DeviceState.sim_id)
                              .join(SimLabel, SimLabel.sim_id == DeviceState.sim_id)
                              .where(SimLabel.key == c.label_key,
                                     SimLabel.value == c.label_value))
        fleet = [(d, iccid, json.loads(labels_json)) for d, iccid, labels_json in rows]
        if not fleet:
            return out
        slots = slot_bodies(self.s, (d.sim_id for d, _, _ in fleet))
        resolver = LabelResolver(self.s)
        for d, iccid, labels in fleet:
            if r.state in OPEN_ROLLOUT_STATES:
                got = resolve_device(resolver, slots, d.sim_id, iccid, labels, d.device_id)
                if got is None or got.source != source:
                    continue  # its own configuration or a higher label wins
            out.devices += 1
            for k, percent in enumerate(stages):
                if in_stage(percent, listed, iccid, d.device_id):
                    out.stage_devices[k] += 1
            if d.delivered_digest == r.to_digest:
                out.delivered += 1
            if in_stage(stages[r.stage], listed, iccid, d.device_id):
                out.current_stage += 1
                if device_confirmed(d, r.to_digest):
                    out.confirmed += 1
                elif device_failed(d, r.to_digest):
                    out.failed += 1
        return out

    def evaluate(self, actor: Any, r: Rollout, c: LabelConfig) -> None:
        """Stop past the failure threshold, or widen when the stage is confirmed."""
        stages = json.loads(r.stages_json)
        label = f"{c.label_key}={c.label_value}"
        while r.state == "running":
            n = self.counts(r, c)
            if n.failed > r.max_failures:
                r.state = "stopped"
                r.reason = (f"{n.failed} failure(s) in stage {r.stage}, more than "
                            f"max_failures {r.max_failures}")
                r.updated_ms = self.now_ms
                self.audit(actor, "rollout.stop", version=r.to_version, severity="alert",
                           detail={"rollout": r.id, "label": label, "stage": r.stage,
                                   "failed": n.failed, "confirmed": n.confirmed})
                return
            done = n.confirmed + n.failed == n.current_stage
            if not (n.current_stage and n.confirmed and done):
                return
            r.updated_ms = self.now_ms
            if r.stage + 1 < len(stages):
                r.stage += 1
                self.audit(actor, "rollout.widen", version=r.to_version,
                           detail={"rollout": r.id, "label": label, "stage": r.stage,
                                   "percent": stages[r.stage], "confirmed": n.confirmed})
                continue
            r.state = "completed"
            c.current_version = r.to_version
            c.updated_ms = self.now_ms
            self.audit(actor, "rollout.complete", version=r.to_version,
                       detail={"rollout": r.id, "label": label, "confirmed": n.confirmed,
                               "failed": n.failed})

    def evaluate_for(self, actor: Any, labels: dict[str, str]) -> None:
        """After a report: evaluate the running rollouts of the SIM's labels."""
        if not labels:
            return
        rows = self.s.execute(
            select(Rollout, LabelConfig).join(LabelConfig, LabelConfig.id == Rollout.config_id)
            .where(Rollout.state == "running").order_by(Rollout.id).with_for_update())
        for r, c in rows.all():
            if labels.get(c.label_key) == c.label_value:
                self.evaluate(actor, r, c)
