"""Which devices are in which stage of a staged rollout (pure; docs/service.md "Rollouts").

A device (ICCID + DeviceID) has a fixed bucket 0..9999: the first four bytes of
SHA-256("ICCID/DEVICEID") as a big-endian number, modulo 10000. A stage of P percent holds
the devices whose bucket is below P x 100, plus the devices listed at the start. Stages are
cumulative and ascending, so a device once in a stage stays in every later one: it never
flaps between the old and the new body. The bucket does not depend on the rollout, so the
same devices go first in every rollout (canaries an operator can name and watch).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence

__all__ = ["BUCKETS", "check_stages", "in_stage", "stage_bucket"]

BUCKETS = 10000
STAGES_MAX = 10


def stage_bucket(iccid: str, device_id: str) -> int:
    digest = hashlib.sha256(f"{iccid}/{device_id}".encode("ascii")).digest()
    return int.from_bytes(digest[:4], "big") % BUCKETS


def in_stage(percent: int, listed: Collection[str], iccid: str, device_id: str) -> bool:
    """``listed`` holds ``ICCID`` (every device of that SIM) or ``ICCID/DEVICEID`` entries."""
    if iccid in listed or f"{iccid}/{device_id}" in listed:
        return True
    return stage_bucket(iccid, device_id) < percent * (BUCKETS // 100)


def check_stages(stages: Sequence[int], has_devices: bool) -> list[int]:
    """The stage percentages as stored: ascending, each 1..100, the last 100; a listed-devices
    stage first (0 %) when devices are listed. ValueError says what is wrong."""
    if not stages or len(stages) > STAGES_MAX:
        raise ValueError(f"stages: 1-{STAGES_MAX} percentages")
    if any(type(p) is not int or not 1 <= p <= 100 for p in stages):
        raise ValueError("stages: each a whole percentage 1..100")
    if any(b <= a for a, b in zip(stages, stages[1:], strict=False)):
        raise ValueError("stages: strictly ascending (each stage holds the ones before)")
    if stages[-1] != 100:
        raise ValueError("stages: the last one is 100 (every device gets the body at the end)")
    return ([0] if has_devices else []) + list(stages)
