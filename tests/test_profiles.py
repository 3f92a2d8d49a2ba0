"""Hypothesis profiles: registered by name, chosen per run, never loaded globally by the plugin."""

from __future__ import annotations

from hypothesis import settings

from conformance import profiles


def test_profiles_have_the_documented_settings() -> None:
    dev, ci, thorough = (profiles.settings_for(n) for n in ("dev", "ci", "thorough"))
    assert ci.derandomize and ci.deadline is None and ci.database is None
    assert dev.deadline is None and thorough.deadline is None
    assert dev.max_examples < ci.max_examples < thorough.max_examples


def test_choose_prefers_the_explicit_profile_then_ci_then_dev() -> None:
    assert profiles.choose("thorough", environ={"CI": "true"}) == "thorough"
    assert profiles.choose(None, environ={"CI": "true"}) == "ci"
    assert profiles.choose(None, environ={}) == "dev"


def test_registering_does_not_change_the_loaded_profile() -> None:
    before = settings.get_current_profile_name()
    profiles.register()
    assert settings.get_current_profile_name() == before
