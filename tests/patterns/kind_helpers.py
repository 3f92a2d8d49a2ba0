"""Calling a pattern kind's ``validate(options, where, context)`` in tests, and reading its error."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from conformance.validation import SpecContext, SpecError, Where, dotted

FILE = "test.yaml"
WHERE = Where(FILE)
CONTEXT = SpecContext(FILE)


def validated(validate: Callable[..., dict], options: Mapping[str, Any]) -> dict:
    """The normalised options, validated at the top of a test spec file."""
    return validate(options, WHERE, CONTEXT)


def rejected(validate: Callable[..., dict], options: Mapping[str, Any]) -> tuple[str, str]:
    """The key path (dotted) and the message of the :class:`SpecError` the options raise."""
    with pytest.raises(SpecError) as info:
        validate(options, WHERE, CONTEXT)
    assert info.value.file == FILE
    return info.value.path, info.value.detail


def at(*keys: Any) -> Where:
    """A place in the test spec file."""
    return Where(FILE, keys)


__all__ = ["CONTEXT", "FILE", "WHERE", "at", "dotted", "rejected", "validated"]
