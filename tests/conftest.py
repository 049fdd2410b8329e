"""Shared test set-up: Hypothesis profiles.

- ``dev`` (default): 100 examples per property, no deadline (the first call of a test may build
  the editable extensions, and the lspci oracle runs a subprocess).
- ``ci`` (selected when ``CI=true``): fewer examples, so the suite stays fast on small runners.
- ``HYPOTHESIS_PROFILE=<name>`` picks one explicitly.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("dev", deadline=None, max_examples=100)
settings.register_profile(
    "ci",
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)

_default = "ci" if os.environ.get("CI", "").lower() == "true" else "dev"
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", _default))
