"""Settings shared by every test suite (tests/ and properties/).

Hypothesis profiles: ``ci`` (the default) is derandomized, so a green build
stays green and a red one reproduces; ``explore`` searches more and with fresh
randomness, for a developer hunting bugs::

    DETSTREAM_HYPOTHESIS=explore .venv/bin/python -m pytest properties
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "explore",
    max_examples=200,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("DETSTREAM_HYPOTHESIS", "ci"))
