"""Hypothesis profiles: registered under names of our own, chosen per run, never loaded globally by the plugin."""

from __future__ import annotations

from hypothesis import settings

from conformance import profiles


def test_profiles_have_the_documented_settings() -> None:
    dev, ci, thorough = (profiles.settings_for(f"conformance-{n}") for n in ("dev", "ci", "thorough"))
    assert ci.derandomize and ci.deadline is None and ci.database is None
    assert dev.deadline is None and thorough.deadline is None
    assert dev.max_examples < ci.max_examples < thorough.max_examples


def test_profile_names_are_our_own() -> None:
    assert all(name.startswith("conformance-") for name in profiles.PROFILES)


def test_choose_prefers_the_explicit_profile_then_ci_then_dev() -> None:
    assert profiles.choose("conformance-thorough", environ={"CI": "true"}) == "conformance-thorough"
    assert profiles.choose(None, environ={"CI": "true"}) == "conformance-ci"
    assert profiles.choose(None, environ={}) == "conformance-dev"


def test_registering_does_not_change_the_loaded_profile() -> None:
    before = settings.get_current_profile_name()
    profiles.register()
    assert settings.get_current_profile_name() == before
