"""Domain logic of the configuration service, on a SQLAlchemy session (no HTTP here).

``Store`` is one transaction's view of the service, split by capability; each part is a
small class in its own module, and they share one :class:`StoreContext` (session, keyring,
clock reading, audit log, PSK change feed):

    store = Store(session, keyring, now_ms)
    store.sims.create(actor, iccid)             # _sims.Sims
    store.keys.add(actor, iccid, "psk", key=None, tag=None)   # _sims.Keys
    store.configs.set(actor, iccid, "default", body)          # _configs.Configs
    store.imports.sims(actor, rows, force=False)              # _imports.Imports
    store.delivery.deliver_config(...)           # _delivery.Delivery (the gateway side)
    store.audit.record(actor, "client.create")  # _audit.AuditLog
    store.feed.changes(after)                    # _psk_feed.PskFeed
    store.rotation_rules.check_key_change(...)   # _rotation_rules.RotationRules

Every operation validates all of its input before it writes anything, and runs inside the
caller's transaction: an error rolls the whole request back (nothing half-applied; bulk imports
are one transaction). Writers lock the SIM row they change (``FOR UPDATE`` on PostgreSQL;
SQLite write transactions are serialized by ``BEGIN IMMEDIATE``), so per-SIM config versions
are gap-free and ordered under parallel writers. Parts are built on first use: a device
request builds only what it touches.
"""

from __future__ import annotations

from functools import cached_property

from ._audit import Actor
from ._configs import Configs
from ._context import StoreContext
from ._delivery import Delivery
from ._imports import Imports
from ._rotation_rules import RotationRules
from ._sims import Keys, Sims

__all__ = ["Actor", "Store"]


class Store(StoreContext):
    """The service's operations on one session; ``now_ms`` comes from the injected clock."""

    @cached_property
    def rotation_rules(self) -> RotationRules:
        """What an open OTA rotation forbids or completes (see ``_rotation_rules``)."""
        return RotationRules(self)

    @cached_property
    def sims(self) -> Sims:
        """Register, read, change and delete SIMs."""
        return Sims(self)

    @cached_property
    def keys(self) -> Keys:
        """A SIM's PSKs and OTA keys, sealed at rest."""
        return Keys(self, self.rotation_rules)

    @cached_property
    def configs(self) -> Configs:
        """Versioned per-device configurations."""
        return Configs(self)

    @cached_property
    def imports(self) -> Imports:
        """The all-or-nothing bulk imports of SIMs and configurations."""
        return Imports(self)

    @cached_property
    def delivery(self) -> Delivery:
        """The gateway-facing side: PSKs, events, configuration delivery, telemetry."""
        return Delivery(self, self.keys, self.configs, self.rotation_rules)
