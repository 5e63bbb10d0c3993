"""Shared test set-up: hypothesis profiles.

``HYPOTHESIS_PROFILE=dev`` (default locally) explores; ``ci`` (default when
``CI`` is set) is derandomised so CI runs are reproducible; ``thorough`` runs
many more examples (use with ``make test-slow`` or by hand).
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough", max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
