"""The ``config_table`` pattern kind: option validation on load, and each part of the check on small classes.

Validation goes through the real loader (a bad option fails on load with the key's path). The
check runs on configuration classes defined here, through a context whose target is the class
itself; the shipped spec and its planted defects are in ``tests/meta_tests/tables/model_config.py``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conformance.patterns import PatternContext, kinds
from conformance.patterns.config_table import KIND
from conformance.patterns.runs.config_table import PROBE_KEY, _probes
from conformance.spec import load_file
from conformance.tolerance import Measurement
from tests.patterns.kind_helpers import validated
from tests.spec_helpers import load_error, write_spec

TABLE = {"a": {"x": 1, "y": 0.5}, "b": {"x": 2, "y": 0.25}}


# -- configuration classes to check ------------------------------------------------------------------
@dataclass
class Point:
    """A correct configuration: x a positive int, y a float; ``s = 2x`` derived."""

    x: int = 1
    y: float = 0.5

    def __post_init__(self) -> None:
        if self.x <= 0:
            raise ValueError(f"x must be positive, got {self.x}")

    @property
    def s(self) -> int:
        return 2 * self.x

    @classmethod
    def from_paper(cls, variant: str) -> Any:
        if variant not in TABLE:
            raise ValueError(f"unknown variant {variant!r}; known: {', '.join(TABLE)}")
        return cls(**TABLE[variant])

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class FrozenShared:
    """Shared presets, but frozen: sharing cannot leak, so the fresh-instance part passes."""

    x: int = 1
    y: float = 0.5

    def __post_init__(self) -> None:
        if self.x <= 0:
            raise ValueError(f"x must be positive, got {self.x}")

    @property
    def s(self) -> int:
        return 2 * self.x

    @classmethod
    def from_paper(cls, variant: str) -> Any:
        if variant not in _FROZEN:
            raise ValueError(f"unknown variant {variant!r}; known: {', '.join(TABLE)}")
        return _FROZEN[variant]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_FROZEN = {name: FrozenShared(**row) for name, row in TABLE.items()}


@dataclass
class SharedLiveDict(Point):
    """Shared presets whose to_dict is the live __dict__: two leaks the probes must undo."""

    @classmethod
    def from_paper(cls, variant: str) -> Any:
        return _SHARED_LIVE.setdefault(variant, super().from_paper(variant))

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__


_SHARED_LIVE: dict[str, SharedLiveDict] = {}


@dataclass
class FloatX(Point):
    """x = 1.0 for variant a: equal to 1 as a number, but a float where the table has an int."""

    @classmethod
    def from_paper(cls, variant: str) -> Any:
        cfg = super().from_paper(variant)
        if variant == "a":
            cfg.x = 1.0
        return cfg


@dataclass
class BoolX(Point):
    """x = True for variant a: equal to 1 as a number, but a bool."""

    @classmethod
    def from_paper(cls, variant: str) -> Any:
        cfg = super().from_paper(variant)
        if variant == "a":
            cfg.x = True
        return cfg


@dataclass
class Renamed(Point):
    """Custom constructor and serialiser names."""

    @classmethod
    def preset(cls, variant: str) -> Any:
        return cls.from_paper(variant)

    def as_dict(self) -> dict[str, Any]:
        return self.to_dict()


@dataclass
class RefusesSentinels(Point):
    """Shared presets behind a validating __setattr__ that refuses the probe's sentinel object."""

    def __setattr__(self, name: str, value: Any) -> None:
        if not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number")
        super().__setattr__(name, value)

    @classmethod
    def from_paper(cls, variant: str) -> Any:
        return _REFUSING.setdefault(variant, super().from_paper(variant))


_REFUSING: dict[str, RefusesSentinels] = {}


class LookupErrorSubclass(ValueError):
    pass


@dataclass
class SubclassError(Point):
    """Raises a ValueError subclass: accepted where ValueError is expected."""

    def __post_init__(self) -> None:
        if self.x <= 0:
            raise LookupErrorSubclass(f"x must be positive, got {self.x}")


@dataclass
class Crashes(Point):
    """The constructor fails for b with a TypeError and never validates x."""

    def __post_init__(self) -> None:
        pass

    @classmethod
    def from_paper(cls, variant: str) -> Any:
        if variant == "b":
            raise TypeError("no such preset")
        return super().from_paper(variant)


# -- helpers -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Context(PatternContext):
    """A context whose target is a class given directly (no import by reference)."""

    impl: Any = None

    def target(self) -> Any:
        return self.impl


REJECT_X = {"args": {"x": 0}, "error": "ValueError", "message": ["x", "0"]}
REJECT_VARIANT = {"variant": "zz", "error": "ValueError", "message": ["zz", "a", "b"]}


def check(impl: type, **options: Any) -> Measurement:
    raw = {"table": TABLE, "derived": {"a": {"s": 2}, "b": {"s": 4}}, "rejects": [REJECT_X, REJECT_VARIANT], **options}
    ctx = _Context(None, "test", "cpu", "float32", validated(KIND.validate, raw), None, impl=impl)  # type: ignore[arg-type]
    return KIND.run(ctx)


def spec_data(**pattern: Any) -> dict[str, Any]:
    body = {"id": "table", "kind": "config_table", "description": "the table", "table": TABLE, **pattern}
    return {
        "schema": 1,
        "paper": {"title": "A Test Paper", "authors": ["A. Author"], "arxiv": "2501.00663", "year": 2024},
        "specs": [
            {
                "id": "toy_config",
                "title": "Configuration",
                "equation": "Table 1",
                "statement": "x = 1",
                "patterns": [{k: v for k, v in body.items() if v is not None}],
                "implementations": [{"ref": "implementations.config:ModelConfig"}],
            }
        ],
    }


# -- the kind and its options -------------------------------------------------------------------------
def test_kind_is_discovered_and_runs_once_on_the_cpu() -> None:
    kind = kinds()["config_table"]
    assert kind is KIND
    assert (kind.required, kind.devices, kind.dtypes) == (frozenset({"table"}), ("cpu",), ("float32",))
    assert kind.optional == frozenset({"constructor", "to_dict", "derived", "rejects"})


def test_valid_options_load_with_defaults(tmp_path: Path) -> None:
    (spec,) = load_file(write_spec(tmp_path, spec_data(rejects=[REJECT_X, {**REJECT_VARIANT, "message": "zz"}])))
    (pattern,) = spec.patterns
    assert pattern.check == "config_table:table" and spec.oracle is None
    assert pattern.options["constructor"] == "from_paper" and pattern.options["to_dict"] == "to_dict"
    assert pattern.options["derived"] == {}
    assert pattern.options["rejects"][0] == {"error": "ValueError", "message": ("x", "0"), "args": {"x": 0}, "row": "a"}
    assert pattern.options["rejects"][1]["message"] == ("zz",)


@pytest.mark.parametrize(
    ("pattern", "path", "message"),
    [
        ({"table": None}, "", "missing required key(s): table"),
        ({"tabel": {}}, "tabel", "unknown key; expected one of"),
        ({"table": []}, "table", "expected a non-empty mapping variant -> {field: value}"),
        ({"table": {"a": {}}}, "table.a", "expected a non-empty mapping field -> value"),
        ({"table": {"a": {"x": [1]}}}, "table.a.x", "expected a number, string, boolean or null, got [1]"),
        ({"table": {"a": {"1x": 1}}}, "table.a", "expected field names that are Python identifiers, got '1x'"),
        (
            {"table": {"a": {"x": 1, "y": 2}, "b": {"x": 1, "z": 2}}},
            "table.b",
            "every variant must list the same fields; compared with 'a': missing ['y'], extra ['z']",
        ),
        ({"constructor": "from paper"}, "constructor", "expected a Python attribute name, got 'from paper'"),
        ({"to_dict": 3}, "to_dict", "expected a Python attribute name, got 3"),
        ({"derived": [1]}, "derived", "expected a mapping variant -> {attribute: value}"),
        ({"derived": {"c": {"s": 1}}}, "derived.c", "not a variant of the table (a, b)"),
        ({"derived": {"a": {"s": {}}}}, "derived.a.s", "expected a number, string, boolean or null"),
        ({"rejects": {"variant": "zz"}}, "rejects", "expected a list of {variant or args, error, message}"),
        ({"rejects": ["zz"]}, "rejects[0]", "expected a mapping with variant or args, error and message"),
        ({"rejects": [{**REJECT_X, "raises": "ValueError"}]}, "rejects[0].raises", "unknown key; expected one of: args, error"),
        ({"rejects": [{**REJECT_X, "variant": "zz"}]}, "rejects[0]", "expected exactly one of 'variant'"),
        ({"rejects": [{"error": "ValueError", "message": ["x"]}]}, "rejects[0]", "expected exactly one of 'variant'"),
        ({"rejects": [{"variant": "zz", "message": ["x"]}]}, "rejects[0]", "missing required key: error"),
        ({"rejects": [{**REJECT_X, "error": "Oops"}]}, "rejects[0].error", "expected the name of a built-in exception type"),
        ({"rejects": [{**REJECT_X, "error": "SystemExit"}]}, "rejects[0].error", "built-in exception type"),
        ({"rejects": [{**REJECT_X, "error": "print"}]}, "rejects[0].error", "built-in exception type"),
        ({"rejects": [{**REJECT_X, "message": []}]}, "rejects[0].message", "expected a non-empty list of message fragments"),
        ({"rejects": [{**REJECT_X, "message": [""]}]}, "rejects[0].message", "expected a non-empty list of message fragments"),
        ({"rejects": [{**REJECT_VARIANT, "variant": "a"}]}, "rejects[0].variant", "'a' is a variant of the table"),
        ({"rejects": [{**REJECT_VARIANT, "variant": ["a"]}]}, "rejects[0].variant", "expected a variant name"),
        ({"rejects": [{**REJECT_VARIANT, "row": "a"}]}, "rejects[0].row", "applies to 'args' cases only"),
        ({"rejects": [{**REJECT_X, "row": "c"}]}, "rejects[0].row", "expected a variant of the table (a, b), got 'c'"),
        ({"rejects": [{**REJECT_X, "args": [1]}]}, "rejects[0].args", "expected a mapping keyword -> value"),
    ],
)
def test_bad_options_fail_on_load_naming_the_key(tmp_path: Path, pattern: dict, path: str, message: str) -> None:
    error = load_error(write_spec(tmp_path, spec_data(**pattern)))
    assert error.path == "specs[0].patterns[0]" + (f".{path}" if path else ""), str(error)
    assert message in error.detail, str(error)


# -- the check ----------------------------------------------------------------------------------------
def test_correct_class_passes() -> None:
    m = check(Point)
    assert m.passed and m.examples == 4 and m.max_abs_err == 0
    assert m.detail == "2 variants (a, b) match the table, round-trip and are independent; 2 invalid configurations rejected"


def test_frozen_shared_presets_pass() -> None:
    assert check(FrozenShared).passed


def test_values_are_compared_with_their_types() -> None:
    m = check(FloatX)
    assert not m.passed and "[table] from_paper('a').x = 1.0 (float), table: 1 (int)" in m.detail
    m = check(BoolX)
    assert not m.passed and "[table] from_paper('a').x = True (bool), table: 1 (int)" in m.detail
    m = check(Point, table={"a": {"x": 1, "y": 0.5}, "b": {"x": 2, "y": 0.3}})
    assert m.detail == "[table] from_paper('b').y = 0.25 (float), table: 0.3 (float)"  # exact: no tolerance


def test_missing_constructor_and_crashes_are_problems_not_errors() -> None:
    m = check(Point, constructor="make")
    assert not m.passed and "[table] 'Point' has no callable 'make'" in m.detail
    m = check(Crashes)
    assert "[table] from_paper('b') raised TypeError: no such preset" in m.detail
    assert "[rejects] Crashes(x=0, ...) returned Crashes(x=0, y=0.5); expected ValueError mentioning ['x', '0']" in m.detail
    assert m.max_abs_err == 2  # two problems


def test_custom_constructor_and_to_dict_names() -> None:
    m = check(Renamed, constructor="preset", to_dict="as_dict", rejects=[REJECT_X])
    assert m.passed, m.detail


def test_derived_attributes() -> None:
    m = check(Point, derived={"a": {"s": 3}, "b": {"t": 4}})
    assert "[derived] from_paper('a').s = 2 (int), table: 3 (int)" in m.detail
    assert "[derived] from_paper('b').t raised AttributeError" in m.detail


def test_rejects_accepts_subclasses_and_needs_every_fragment() -> None:
    assert check(SubclassError).passed
    m = check(Point, rejects=[{**REJECT_X, "error": "TypeError"}])
    assert (
        "[rejects] Point(x=0, ...) raised ValueError: x must be positive, got 0; expected TypeError mentioning ['x', '0']"
        in m.detail
    )
    m = check(Point, rejects=[{**REJECT_X, "message": ["x", "negative"]}])
    assert "[rejects] Point(x=0, ...) raised ValueError: x must be positive, got 0 — the message lacks ['negative']" in m.detail


def test_reject_args_start_from_the_named_row() -> None:
    # From row b (x=2), setting y alone is valid: the case fails because nothing is raised.
    m = check(Point, rejects=[{"args": {"y": 9.0}, "row": "b", "error": "ValueError", "message": ["y"]}])
    assert "[rejects] Point(y=9.0, ...) returned Point(x=2, y=9.0)" in m.detail


def test_probes_undo_what_they_change() -> None:
    m = check(SharedLiveDict)
    assert not m.passed
    assert "[to_dict] from_paper('a').to_dict() returns the same dict object on every call" in m.detail
    assert "[to_dict] changing the dict from_paper('a').to_dict() returned changed the config" in m.detail
    assert "[fresh instance] setting x, y on one 'a' config changed the next one built" in m.detail
    for variant, cfg in _SHARED_LIVE.items():
        assert cfg.__dict__ == TABLE[variant] and PROBE_KEY not in cfg.__dict__


def test_a_config_that_refuses_the_sentinel_is_probed_with_a_value_of_the_field_type() -> None:
    m = check(RefusesSentinels)
    assert m.detail.startswith("[fresh instance] setting x, y on one 'a' config changed the next one built"), m.detail
    assert all(cfg.__dict__ == TABLE[v] for v, cfg in _REFUSING.items())
    assert [type(p) for p in _probes(3)] == [object, int] and _probes(True)[1] is False and _probes("s")[1] == "s_probe"
    assert len(_probes(None)) == 1


def test_all_problems_are_reported_together() -> None:
    m = check(BoolX, derived={"a": {"s": 3}}, rejects=[{**REJECT_X, "error": "TypeError"}])
    assert all(tag in m.detail for tag in ("[table]", "[derived]", "[rejects]")), m.detail
    assert m.max_abs_err == 3
