"""What runs for the pattern kind ``config_table`` (:mod:`conformance.patterns.config_table`)."""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from conformance.patterns import PatternContext
from conformance.patterns.helpers.options import evaluate_scalar
from conformance.tolerance import Measurement

_SCALARS = (bool, int, float, str, type(None))
PROBE_KEY = "__conformance_probe__"


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
        parsed = options.get("derived_expressions", {}).get(name)
        if parsed is not None:  # what the paper states, from the fields: no attribute of the implementation's demanded
            values = {
                s.name: _call(problems, "derived", f"{label}.{s.name}", lambda n=s.name: getattr(cfg, n))
                for s in parsed.free_symbols
            }
            if any(v is None for v in values.values()):
                continue
            actual = _call(problems, "derived", f"{label}: {name}", lambda p=parsed, v=values: evaluate_scalar(p, v))
            if actual is not None and actual != expected:
                problems.append(f"[derived] {label}: {name} = {actual:g}, table: {_describe(expected)}")
            continue
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


def run(ctx: PatternContext) -> Measurement:
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
