"""Reading a spec file's YAML safely: bounded before anything is built, every problem keyed.

``yaml.safe_load`` builds no Python objects beyond plain data, but it still expands aliases (a
4 KB "billion laughs" file becomes gigabytes), accepts duplicate keys (the last one silently
wins), recurses as deep as the file nests, and turns a 5000-digit integer into a
``ValueError`` from Python's int-string limit. :func:`load_yaml` first walks the *event stream*
(nothing is constructed yet) and refuses, each with a :class:`~conformance.validation.SpecError`
naming the file and key path:

- aliases and anchors (``*name``, ``&name``): refused outright, before any expansion;
- nesting deeper than :data:`MAX_DEPTH`;
- integers with more than :data:`MAX_INT_DIGITS` digits;
- keys that are not plain scalars, and duplicate keys in one mapping.

Only then is the document constructed, by :class:`SpecLoader` (a ``SafeLoader`` whose mapping
constructor refuses duplicate keys once more, after YAML resolved them: ``1`` and ``0x1``).

>>> load_yaml("a: 1\\nb: [x, y]\\n", "s.yaml").data
{'a': 1, 'b': ['x', 'y']}
>>> load_yaml("a: 1\\na: 2\\n", "s.yaml").data
Traceback (most recent call last):
...
conformance.validation.SpecError: s.yaml: a: duplicate key 'a' (first at line 1, again at line 2)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.resolver import Resolver

from conformance.validation import SpecError, Where

MAX_DEPTH = 32
MAX_INT_DIGITS = 64  # far below Python's int-string limit (4300), far above any size or count a spec needs
MAX_NODES = 200_000
_INT_TAG = "tag:yaml.org,2002:int"
_DIGITS = re.compile(r"[0-9a-fA-F]")


@dataclass(frozen=True)
class Document:
    """A spec file's data and the 1-based line of each key path (keys and list indices)."""

    data: Any
    lines: dict[tuple, int] = field(default_factory=dict)


class SpecLoader(yaml.SafeLoader):
    """``SafeLoader`` whose mappings refuse a key given twice."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            try:
                first = seen.setdefault(key, line)
            except TypeError:
                raise yaml.constructor.ConstructorError(None, None, "expected a plain key", key_node.start_mark) from None
            if first != line:
                raise DuplicateKey(key, first, line)
        return super().construct_mapping(node, deep=deep)


class DuplicateKey(yaml.YAMLError):
    """A key given twice in one mapping (found after YAML resolved the keys)."""

    def __init__(self, key: Any, first: int, again: int) -> None:
        super().__init__(f"duplicate key {key!r} (first at line {first}, again at line {again})")
        self.key, self.first, self.again = key, first, again


def read_text(file: Path, max_bytes: int) -> str:
    """A spec-like file's text: at most ``max_bytes``, UTF-8; each problem one :class:`SpecError` naming the file."""
    raw = file.read_bytes()
    if len(raw) > max_bytes:
        raise SpecError(file, "", f"file is {len(raw)} bytes (at most {max_bytes})")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError(file, "", "expected UTF-8 text") from None


def load_yaml(text: str, file: str | Path) -> Document:
    """The data of one YAML document, checked (see the module docstring) before it is constructed."""
    lines: dict[tuple, int] = {}
    try:
        _check_events(text, file)
        loader = SpecLoader(text)
        try:
            node = loader.get_single_node()
            lines = _line_index(node)
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except DuplicateKey as exc:
        path = max((p for p, line in lines.items() if line == exc.again), key=len, default=())
        raise Where(file, path).error(str(exc)) from None
    except yaml.YAMLError as exc:
        raise SpecError(file, "", f"invalid YAML: {exc}") from None
    return Document(data, lines)


@dataclass
class _Frame:
    """An open collection in the event stream: its key path, and the next key or index."""

    path: tuple
    mapping: bool
    key: Any = None
    want_key: bool = True
    index: int = -1
    keys: dict[str, int] = field(default_factory=dict)


def _check_events(text: str, file: str | Path) -> None:
    """Walk the event stream (nothing is constructed) and refuse what :func:`load_yaml` refuses."""
    stack: list[_Frame] = []
    resolver = Resolver()
    for count, event in enumerate(yaml.parse(text, Loader=yaml.SafeLoader)):
        if count > MAX_NODES:
            raise SpecError(file, "", f"more than {MAX_NODES} YAML nodes")
        if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            stack.pop()
            _value_done(stack)
            continue
        if not isinstance(event, yaml.NodeEvent):
            continue
        line = event.start_mark.line + 1
        path, is_key = _position(stack)
        where = Where(file, path)
        if isinstance(event, yaml.AliasEvent):
            raise where.error(f"YAML aliases are refused (*{event.anchor} at line {line}): write the value out")
        if event.anchor is not None:
            raise where.error(f"YAML anchors are refused (&{event.anchor} at line {line}): write the value out")
        if is_key:
            _key(stack[-1], event, where, line)
            continue
        if isinstance(event, yaml.ScalarEvent):
            _check_scalar(event, resolver, where)
            _value_done(stack)
            continue
        if len(stack) >= MAX_DEPTH:
            raise where.error(f"nested more than {MAX_DEPTH} levels deep")
        stack.append(_Frame(path, mapping=isinstance(event, yaml.MappingStartEvent)))


def _position(stack: list[_Frame]) -> tuple[tuple, bool]:
    """The key path of the next node, and whether it is a mapping key."""
    if not stack:
        return (), False
    top = stack[-1]
    if top.mapping:
        return (top.path + (top.key,) if not top.want_key else top.path), top.want_key
    top.index += 1
    return top.path + (top.index,), False


def _key(frame: _Frame, event: yaml.Event, where: Where, line: int) -> None:
    if not isinstance(event, yaml.ScalarEvent):
        raise where.error(f"expected a plain key (a name), got a collection at line {line}")
    key = event.value
    if key in frame.keys:
        raise where.at(key).error(f"duplicate key {key!r} (first at line {frame.keys[key]}, again at line {line})")
    frame.keys[key] = line
    frame.key, frame.want_key = key, False


def _value_done(stack: list[_Frame]) -> None:
    if stack and stack[-1].mapping:
        stack[-1].want_key = True


def _check_scalar(event: yaml.ScalarEvent, resolver: Resolver, where: Where) -> None:
    tag = event.tag if event.tag not in (None, "!") else resolver.resolve(yaml.ScalarNode, event.value, event.implicit)
    if tag == _INT_TAG:
        digits = len(_DIGITS.findall(event.value))
        if digits > MAX_INT_DIGITS:
            raise where.error(f"an integer of {digits} digits (at most {MAX_INT_DIGITS})")


def _line_index(node: yaml.Node | None, path: tuple = ()) -> dict[tuple, int]:
    """Map each key path (tuple of keys / list indices) to its 1-based line in the file."""
    index: dict[tuple, int] = {}
    if node is None:
        return index
    index[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            index[path + (key.value,)] = key.start_mark.line + 1
            index.update({k: v for k, v in _line_index(value, path + (key.value,)).items() if k != path + (key.value,)})
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            index.update(_line_index(value, path + (i,)))
    return index
