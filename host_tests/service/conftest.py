"""Fixtures for the configuration service tests (ztp.service, ztp.iccid)."""

from __future__ import annotations

from hypothesis import settings

# Bounded property tests: CI runs on 2 cores and the whole part must stay well under 2 minutes.
settings.register_profile("service", max_examples=50, deadline=None)
settings.load_profile("service")
