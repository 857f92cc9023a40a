"""Fixtures and the hypothesis profile for the TLS engine tests."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "tls-ci",
    max_examples=int(os.environ.get("ZTP_TLS_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
