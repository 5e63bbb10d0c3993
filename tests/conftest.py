"""Shared test set-up: hypothesis profiles.

``ci`` (the default) is derandomised so every run of ``make test`` is
reproducible; ``HYPOTHESIS_PROFILE=dev`` explores with fresh random examples; ``thorough`` runs
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
# derandomised by default: `make test` must give the same result on every run; explore with
# HYPOTHESIS_PROFILE=dev or thorough
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
