"""Hypothesis profiles: ``dev`` (quick), ``ci`` (derandomized, what CI runs), ``thorough``.

No deadline anywhere: the first CUDA call and gradcheck's slow mode would trip it. No example
database: every case shares one inner test function, and the reproduction snippet replaces it.
``ci`` is the default when the ``CI`` environment variable is set, ``dev`` otherwise; choose one
with ``--hypothesis-profile``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
PROFILES = {
    "dev": dict(max_examples=10, **_COMMON),
    "ci": dict(max_examples=20, derandomize=True, print_blob=True, **_COMMON),
    "thorough": dict(max_examples=200, **_COMMON),
}


def register() -> str:
    """Register the profiles, load the default one and return its name."""
    for name, options in PROFILES.items():
        settings.register_profile(name, **options)
    default = "ci" if os.environ.get("CI") else "dev"
    settings.load_profile(default)
    return default
