"""Pattern kind ``config_table``: a configuration class reproduces a paper's hyperparameter table.

The implementation is a configuration class (a dataclass, say) with a constructor classmethod
(``from_paper``) and a ``to_dict`` method. For every variant of the spec's table the check asserts:

- ``[table]``: ``from_paper(variant).to_dict()`` has exactly the table's fields, each with the
  table's value *and type* (``512`` is not ``512.0`` nor ``True``); the values are declared constants,
  so they are compared exactly, with no tolerance;
- ``[derived]``: attributes computed from the fields (``d_head``) equal the ``derived`` table;
- ``[to_dict]``: ``to_dict`` returns a plain ``dict`` of JSON values (``json`` round-trips it), a new
  one on every call, and changing it (every key set to a sentinel, a key added) leaves the config as
  it was — the dict is a copy, not the live ``__dict__``;
- ``[round trip]``: ``Class(**cfg.to_dict()) == cfg``;
- ``[fresh instance]``: setting every field of one ``from_paper(variant)`` result (to a sentinel
  object, or where that is refused to a changed value of the field's type) leaves the next
  ``from_paper(variant)`` unchanged: no shared, mutable preset. An instance that refuses both
  (a frozen dataclass) passes: sharing it is harmless. The probe restores what it changed;

and for every ``rejects`` case, ``[rejects]``: building the config raises the named exception type (or
a subclass) with every message fragment in its text. All problems are reported at once.

Spec options::

    kind: config_table
    constructor: from_paper            # optional, the default
    to_dict: to_dict                   # optional, the default
    table:                             # variant -> every field -> value
      base: {d_model: 512, n_heads: 8, dropout: 0.1}
      big: {d_model: 1024, n_heads: 16, dropout: 0.3}
    derived:                           # optional: variant -> attribute -> value
      base: {d_head: 64}
    rejects:                           # optional
      - variant: xl                    # from_paper("xl")
        error: ValueError              # a built-in exception type
        message: [xl, base, big]       # fragments its message must contain
      - args: {n_heads: 7}             # Class(**{**table[row], **args}), row: the first variant unless given
        row: base
        error: ValueError
        message: [d_model, n_heads, "7"]

A configuration holds no tensors, so the check runs once, on the CPU (one row at float32, torch's
default dtype).
"""

from __future__ import annotations

import builtins
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from conformance.patterns import PatternContext, PatternKind
from conformance.tolerance import Measurement

_NAME = re.compile(r"^[A-Za-z_]\w*$")
_SCALARS = (bool, int, float, str, type(None))
_REJECT_KEYS = frozenset({"args", "variant", "row", "error", "message"})
PROBE_KEY = "__conformance_probe__"


def _validate(options: Mapping[str, Any]) -> dict:
    table = _validate_table(options["table"])
    out: dict[str, Any] = {
        "table": table,
        "constructor": _identifier(options.get("constructor", "from_paper"), "constructor"),
        "to_dict": _identifier(options.get("to_dict", "to_dict"), "to_dict"),
        "derived": _validate_derived(options.get("derived", {}), table),
        "rejects": _validate_rejects(options.get("rejects", []), table),
    }
    return out


def _identifier(value: Any, key: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise KeyError((key,), f"expected a Python attribute name, got {value!r}")
    return value


def _scalar_row(row: Any, path: tuple) -> dict[str, Any]:
    if not isinstance(row, dict) or not row:
        raise KeyError(path, f"expected a non-empty mapping field -> value, got {row!r}")
    for name, value in row.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise KeyError(path, f"expected field names that are Python identifiers, got {name!r}")
        if not isinstance(value, _SCALARS):
            raise KeyError(path + (name,), f"expected a number, string, boolean or null, got {value!r}")
    return dict(row)


def _validate_table(table: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(table, dict) or not table:
        raise KeyError(("table",), "expected a non-empty mapping variant -> {field: value}")
    out: dict[str, dict[str, Any]] = {}
    for variant, row in table.items():
        if not isinstance(variant, str) or not variant:
            raise KeyError(("table",), f"expected variant names that are non-empty strings, got {variant!r}")
        out[variant] = _scalar_row(row, ("table", variant))
    first, fields = next(iter(out)), set(next(iter(out.values())))
    for variant, row in out.items():
        if set(row) != fields:
            missing, extra = sorted(fields - set(row)), sorted(set(row) - fields)
            raise KeyError(
                ("table", variant),
                f"every variant must list the same fields; compared with {first!r}: missing {missing}, extra {extra}",
            )
    return out


def _validate_derived(derived: Any, table: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    if not isinstance(derived, dict):
        raise KeyError(("derived",), "expected a mapping variant -> {attribute: value}")
    for variant in derived:
        if variant not in table:
            raise KeyError(("derived", variant), f"not a variant of the table ({', '.join(table)})")
    return {variant: _scalar_row(row, ("derived", variant)) for variant, row in derived.items()}


def _validate_rejects(rejects: Any, table: Mapping[str, Any]) -> list[dict[str, Any]]:
    if not isinstance(rejects, list):
        raise KeyError(("rejects",), "expected a list of {variant or args, error, message}")
    return [_validate_reject(case, ("rejects", i), table) for i, case in enumerate(rejects)]


def _validate_reject(case: Any, path: tuple, table: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(case, dict):
        raise KeyError(path, "expected a mapping with variant or args, error and message")
    for key in case:
        if key not in _REJECT_KEYS:
            raise KeyError(path + (key,), f"unknown key; expected one of: {', '.join(sorted(_REJECT_KEYS))}")
    if ("args" in case) == ("variant" in case):
        raise KeyError(path, "expected exactly one of 'variant' (a name for the constructor) or 'args' (keyword arguments)")
    for key in ("error", "message"):
        if key not in case:
            raise KeyError(path, f"missing required key: {key}")
    out: dict[str, Any] = {"error": _exception_name(case["error"], path + ("error",)), "message": _fragments(case, path)}
    if "variant" in case:
        if "row" in case:
            raise KeyError(path + ("row",), "applies to 'args' cases only")
        if not isinstance(case["variant"], _SCALARS):
            raise KeyError(path + ("variant",), f"expected a variant name (a string, number or null), got {case['variant']!r}")
        if case["variant"] in table:
            raise KeyError(path + ("variant",), f"{case['variant']!r} is a variant of the table; a rejected one must not be")
        out["variant"] = case["variant"]
        return out
    args = case["args"]
    if not isinstance(args, dict) or not all(isinstance(k, str) and _NAME.match(k) for k in args):
        raise KeyError(path + ("args",), "expected a mapping keyword -> value")
    row = case.get("row", next(iter(table)))
    if row not in table:
        raise KeyError(path + ("row",), f"expected a variant of the table ({', '.join(table)}), got {row!r}")
    return {**out, "args": dict(args), "row": row}


def _exception_name(name: Any, path: tuple) -> str:
    error = getattr(builtins, name, None) if isinstance(name, str) else None
    if not (isinstance(error, type) and issubclass(error, Exception)):
        raise KeyError(path, f"expected the name of a built-in exception type (ValueError, TypeError, ...), got {name!r}")
    return name


def _fragments(case: Mapping[str, Any], path: tuple) -> tuple[str, ...]:
    message = case["message"]
    message = [message] if isinstance(message, str) else message
    if not isinstance(message, list) or not message or not all(isinstance(m, (str, int)) and str(m) for m in message):
        raise KeyError(path + ("message",), "expected a non-empty list of message fragments")
    return tuple(str(m) for m in message)


# -- the check ------------------------------------------------------------------------------------
def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _same(actual: Any, expected: Any) -> bool:
    """Equal value and type: an int field must hold an int, not 512.0 or True."""
    return type(actual) is type(expected) and actual == expected


def _call(problems: list[str], tag: str, what: str, fn: Callable[[], Any]) -> Any:
    """``fn()``, or ``None`` with a problem recorded if it raises."""
    try:
        return fn()
    except Exception as exc:
        problems.append(f"[{tag}] {what} raised {type(exc).__name__}: {exc}")
        return None


def _compare(problems: list[str], tag: str, label: str, actual: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    if missing or extra:
        differences = ([f"missing {missing}"] if missing else []) + ([f"unexpected {extra}"] if extra else [])
        problems.append(f"[{tag}] {label}: fields differ from the table: {', '.join(differences)}")
    for name in expected:
        if name in actual and not _same(actual[name], expected[name]):
            problems.append(f"[{tag}] {label}.{name} = {_describe(actual[name])}, table: {_describe(expected[name])}")


def _check_dict(problems: list[str], label: str, cfg: Any, to_dict: str, row: Mapping[str, Any]) -> dict | None:
    """``[table]`` and ``[to_dict]``: the returned dict's type, JSON values and content."""
    data = _call(problems, "to_dict", f"{label}.{to_dict}()", lambda: getattr(cfg, to_dict)())
    if data is None:
        return None
    if type(data) is not dict:
        problems.append(f"[to_dict] {label}.{to_dict}() returned {type(data).__name__}, expected a plain dict")
        if not isinstance(data, Mapping):
            return None
        data = dict(data)
    try:
        if json.loads(json.dumps(data)) != data:
            problems.append(f"[to_dict] {label}.{to_dict}() does not survive a JSON round trip: {data!r}")
    except (TypeError, ValueError) as exc:
        problems.append(f"[to_dict] {label}.{to_dict}() is not JSON-serialisable: {exc}")
    _compare(problems, "table", label, data, row)
    return data


def _check_fresh_dict(problems: list[str], label: str, cfg: Any, to_dict: str) -> None:
    """``[to_dict]``: a new dict per call; writing to it leaves the config unchanged (then undone)."""
    first = _call(problems, "to_dict", f"{label}.{to_dict}()", lambda: getattr(cfg, to_dict)())
    probe = _call(problems, "to_dict", f"{label}.{to_dict}()", lambda: getattr(cfg, to_dict)())
    if not isinstance(first, Mapping) or not isinstance(probe, dict):
        return
    if probe is first:
        problems.append(f"[to_dict] {label}.{to_dict}() returns the same dict object on every call")
    saved, sentinel = dict(probe), object()
    try:
        for key in saved:
            probe[key] = sentinel
        probe[PROBE_KEY] = sentinel
        after = _call(problems, "to_dict", f"{label}.{to_dict}() after changing a returned dict", lambda: getattr(cfg, to_dict)())
        if isinstance(after, Mapping) and (PROBE_KEY in after or any(v is sentinel for v in after.values())):
            problems.append(
                f"[to_dict] changing the dict {label}.{to_dict}() returned changed the config (a live view, not a copy)"
            )
    finally:  # whatever the dict aliased (a live __dict__) gets its values back
        probe.clear()
        probe.update(saved)


def _probes(original: Any) -> list[Any]:
    """Values to write into a field: a sentinel, then (for a config that refuses it) one of the field's type."""
    probes: list[Any] = [object()]
    if isinstance(original, bool):
        probes.append(not original)
    elif isinstance(original, (int, float)):
        probes.append(original + 1)
    elif isinstance(original, str):
        probes.append(original + "_probe")
    return probes


def _check_fresh_instance(problems: list[str], variant: str, build: Callable[[], Any], fields: Iterable[str]) -> None:
    """``[fresh instance]``: changing one built config does not change the next one built."""
    cfg = _call(problems, "fresh instance", f"from the constructor({variant!r})", build)
    if cfg is None:
        return
    changed: dict[str, tuple[Any, Any]] = {}  # field -> (original, probe written)
    try:
        for name in fields:
            if not hasattr(cfg, name):
                continue
            original = getattr(cfg, name)
            for probe in _probes(original):
                try:
                    setattr(cfg, name, probe)
                except Exception:  # frozen or validating: try the next probe; none taken means unchangeable
                    continue
                changed[name] = (original, probe)
                break
        if not changed:
            return
        again = _call(problems, "fresh instance", f"the constructor({variant!r}) again", build)
        if again is None:
            return
        shared = sorted(name for name, (_, probe) in changed.items() if _holds(getattr(again, name, None), probe))
        if shared:
            problems.append(
                f"[fresh instance] setting {', '.join(shared)} on one {variant!r} config changed the next one built "
                f"(the constructor returns a shared instance{' — it is the same object' if again is cfg else ''})"
            )
    finally:
        for name, (original, _) in changed.items():
            setattr(cfg, name, original)


def _holds(value: Any, probe: Any) -> bool:
    """Whether ``value`` is the probe written: the sentinel itself, or an equal value of the same type."""
    return value is probe or (type(probe) is not object and _same(value, probe))


def _check_variant(problems: list[str], target: Any, options: Mapping[str, Any], variant: str) -> None:
    row, to_dict = options["table"][variant], options["to_dict"]
    constructor = getattr(target, options["constructor"], None)
    label = f"{options['constructor']}({variant!r})"
    if not callable(constructor):
        problems.append(f"[table] {getattr(target, '__name__', target)!r} has no callable {options['constructor']!r}")
        return
    cfg = _call(problems, "table", label, lambda: constructor(variant))
    if cfg is None:
        return
    if isinstance(target, type) and not isinstance(cfg, target):
        problems.append(f"[table] {label} returned {type(cfg).__name__}, not a {target.__name__}")
    data = _check_dict(problems, label, cfg, to_dict, row)
    for name, expected in options["derived"].get(variant, {}).items():
        actual = _call(problems, "derived", f"{label}.{name}", lambda name=name: getattr(cfg, name))
        if actual is not None and not _same(actual, expected):
            problems.append(f"[derived] {label}.{name} = {_describe(actual)}, table: {_describe(expected)}")
    if data is not None:
        what = f"{getattr(target, '__name__', 'the class')}(**{label}.{to_dict}())"
        rebuilt = _call(problems, "round trip", what, lambda: target(**data))
        if rebuilt is not None and not rebuilt == cfg:
            same = _call([], "round trip", "", lambda: getattr(rebuilt, to_dict)() == data)
            hint = " (their dicts are equal: equality is not by value)" if same else f": {rebuilt!r} vs {cfg!r}"
            problems.append(f"[round trip] {what} != {label}{hint}")
    _check_fresh_dict(problems, label, cfg, to_dict)
    _check_fresh_instance(problems, variant, lambda: constructor(variant), row)


def _check_reject(problems: list[str], target: Any, options: Mapping[str, Any], case: Mapping[str, Any]) -> None:
    error = getattr(builtins, case["error"])
    if "variant" in case:
        what = f"{options['constructor']}({case['variant']!r})"
        call: Callable[[], Any] = lambda: getattr(target, options["constructor"])(case["variant"])  # noqa: E731
    else:
        kwargs = {**options["table"][case["row"]], **case["args"]}
        what = f"{getattr(target, '__name__', 'the class')}({', '.join(f'{k}={v!r}' for k, v in case['args'].items())}, ...)"
        call = lambda: target(**kwargs)  # noqa: E731
    expected = f"{case['error']} mentioning {list(case['message'])}"
    try:
        result = call()
    except Exception as exc:
        if not isinstance(exc, error):
            problems.append(f"[rejects] {what} raised {type(exc).__name__}: {exc}; expected {expected}")
            return
        missing = [m for m in case["message"] if m not in str(exc)]
        if missing:
            problems.append(f"[rejects] {what} raised {type(exc).__name__}: {exc!s} — the message lacks {missing}")
        return
    problems.append(f"[rejects] {what} returned {result!r}; expected {expected}")


def _run(ctx: PatternContext) -> Measurement:
    target, options = ctx.target(), ctx.options
    problems: list[str] = []
    for variant in options["table"]:
        _check_variant(problems, target, options, variant)
    for case in options["rejects"]:
        _check_reject(problems, target, options, case)
    examples = len(options["table"]) + len(options["rejects"])
    if problems:
        return Measurement(float(len(problems)), float(len(problems)), None, False, "; ".join(problems), examples=examples)
    detail = (
        f"{len(options['table'])} variants ({', '.join(options['table'])}) match the table, round-trip and are independent; "
        f"{len(options['rejects'])} invalid configurations rejected"
    )
    return Measurement(0.0, 0.0, None, True, detail, examples=examples)


KIND = PatternKind(
    name="config_table",
    required=frozenset({"table"}),
    optional=frozenset({"constructor", "to_dict", "derived", "rejects"}),
    validate=_validate,
    run=_run,
    dtypes=("float32",),
    devices=("cpu",),
)
