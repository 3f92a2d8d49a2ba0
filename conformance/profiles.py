"""Hypothesis profiles: ``conformance-dev`` (quick), ``conformance-ci`` (derandomized, what CI runs),
``conformance-thorough``. Named for the project, so they never shadow a user's own ``dev`` or ``ci``.

No deadline anywhere: the first CUDA call and gradcheck's slow mode would trip it. No example
database: every case shares one inner test function, and the reproduction snippet replaces it.

The plugin registers them only when conformance cases are collected (or ``--hypothesis-profile``
names one of them) and loads none globally, so other Hypothesis tests in the same session keep their
own settings. The conformance suite uses the profile named by ``--hypothesis-profile``, else
``conformance-ci`` when the ``CI`` environment variable is set, else ``conformance-dev``.

>>> choose(None, environ={"CI": "true"})
'conformance-ci'
>>> settings_for("conformance-thorough").max_examples
200
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from hypothesis import HealthCheck, Phase, settings

_COMMON = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
PREFIX = "conformance-"
PROFILES = {
    "conformance-dev": dict(max_examples=10, derandomize=False, print_blob=False, **_COMMON),
    "conformance-ci": dict(max_examples=20, derandomize=True, print_blob=True, **_COMMON),
    "conformance-thorough": dict(max_examples=200, derandomize=False, print_blob=False, **_COMMON),
}


def register() -> None:
    """Register the three profiles with Hypothesis (loading none).

    Each derives from Hypothesis's ``default`` profile, not from whatever is loaded: under ``CI``
    Hypothesis loads its own ``ci`` profile, whose settings must not leak into ours.
    """
    base = settings.get_profile("default")
    for name, options in PROFILES.items():
        settings.register_profile(name, parent=base, **options)


def choose(explicit: str | None, environ: Mapping[str, str] = os.environ) -> str:
    """The profile a run uses: the one asked for, else ``conformance-ci`` under CI, else ``conformance-dev``."""
    if explicit:
        return explicit
    return "conformance-ci" if environ.get("CI") else "conformance-dev"


def settings_for(name: str, *, verdict_only: bool = False) -> settings:
    """The registered profile ``name`` (ours or any other registered one).

    ``verdict_only``: no shrinking — a failing check stops at its first failing example and reports it
    as found, for fast feedback (the verdict is the same; the example is not the simplest).
    """
    register()
    profile = settings.get_profile(name)
    return settings(profile, phases=VERDICT_ONLY_PHASES) if verdict_only else profile


VERDICT_ONLY_PHASES = (Phase.explicit, Phase.reuse, Phase.generate)
