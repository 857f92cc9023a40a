import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "gateway",
    max_examples=int(os.environ.get("ZTP_HYPOTHESIS_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
