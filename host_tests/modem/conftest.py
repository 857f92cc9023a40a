"""Fixtures for the virtual modem tests: a bounded hypothesis profile."""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "modem", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("modem")
