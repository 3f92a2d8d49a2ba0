"""Safe parser from spec text to SymPy expressions.

Equations, invariants and constraints in a spec are strings in a small, Python-like tensor language.
They are parsed with :mod:`ast` and a whitelist, and SymPy objects are built directly from the
syntax tree: spec text never reaches ``eval``, ``exec``, ``sympify`` or ``parse_expr``.

Arithmetic (``+ - * / **``) is elementwise with broadcasting, which is a commutative ring, so
SymPy's automatic canonicalisation is sound for it. Tensor operations (``@``, reductions,
``softmax``...) are opaque SymPy functions that SymPy never rewrites. Every function a spec may
call is an :class:`~conformance.functions.ExprFunction` in :data:`conformance.registry.FUNCTIONS`
(its arity, integer arguments and ``keepdim`` are checked here); a user adds one with
``FUNCTIONS.register(record)`` without editing the package.

>>> parse("x / sqrt(mean(x**2, -1, keepdim=True) + eps)")
x/sqrt(eps + mean(x**2, -1, True))
>>> parse("__import__('os')")
Traceback (most recent call last):
...
conformance.expr.ExprError: name '__import__' is not allowed: names must not start with '_'
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import sympy

from conformance.expr_error import ExprError
from conformance.functions import MAX_STRING, RESERVED_NAMES, ExprFunction
from conformance.registry import FUNCTIONS

MAX_CHARS = 2000
MAX_NODES = 400
MAX_DEPTH = 40
MAX_INT = 10**9
MAX_EXPONENT = 64
MAX_CONSTANT_MAGNITUDE = 1e300

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_STRING_RE = re.compile(r"^[A-Za-z,>\-]*$")  # what any string constant may hold (a record checks it further)


class _FunctionView(Mapping[str, Any]):
    """A live, read-only view of the registered functions (those ``select`` keeps), by name."""

    def __init__(self, select: Callable[[ExprFunction], bool], value: Callable[[ExprFunction], Any]) -> None:
        self._select, self._value = select, value

    def __getitem__(self, name: str) -> Any:
        record = FUNCTIONS.get(name)
        if record is None or not self._select(record):
            raise KeyError(name)
        return self._value(record)

    def __iter__(self) -> Iterator[str]:
        return iter([name for name, record in FUNCTIONS.items() if self._select(record)])

    def __len__(self) -> int:
        return sum(1 for _ in self)


# Every function is an ExprFunction in conformance.registry.FUNCTIONS; these are views of it.
# Tensor functions: opaque to SymPy, evaluated by :mod:`conformance.evaluate` (name -> record).
TENSOR_FUNCTIONS: Mapping[str, ExprFunction] = _FunctionView(lambda r: not r.elementwise, lambda r: r)
# Elementwise functions that are SymPy's own (name -> SymPy function).
SCALAR_FUNCTIONS: Mapping[str, Any] = _FunctionView(lambda r: r.elementwise, lambda r: r.sympy_function)
# The SymPy function each tensor function builds (name -> sympy.Function).
F: Mapping[str, Any] = _FunctionView(lambda r: not r.elementwise, lambda r: r.constructor)
CONSTANTS = {"inf": sympy.oo, "pi": sympy.pi, "True": sympy.true, "False": sympy.false}
assert set(CONSTANTS) <= RESERVED_NAMES  # no function may take a constant's name


def parse(text: str) -> sympy.Basic:
    """Parse spec text into a SymPy expression, or raise :class:`ExprError` naming the problem.

    >>> parse("D % H == 0")
    Eq(Mod(D, H), 0)
    >>> parse("9**9**9")
    Traceback (most recent call last):
    ...
    conformance.expr.ExprError: exponent 387420489 is too large (at most 64 in absolute value)
    """
    if not isinstance(text, str):
        raise ExprError(f"expected an expression string, got {type(text).__name__}")
    if len(text) > MAX_CHARS:
        raise ExprError(f"expression is {len(text)} characters long (at most {MAX_CHARS})")
    if _bracket_depth(text) > MAX_DEPTH:  # redundant parentheses leave no trace in the syntax tree
        raise ExprError(f"expression is nested more than {MAX_DEPTH} levels deep")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExprError(f"not a valid expression: {exc.msg} (column {exc.offset})") from None
    except (RecursionError, MemoryError, ValueError):
        raise ExprError("expression is nested too deeply to parse") from None
    nodes = sum(1 for _ in ast.walk(tree))
    if nodes > MAX_NODES:
        raise ExprError(f"expression has {nodes} syntax nodes (at most {MAX_NODES})")
    return _Builder().build(tree.body, depth=0)


def names_in(expr: sympy.Basic) -> set[str]:
    """The free names an expression refers to.

    >>> sorted(names_in(parse("softmax(Q @ transpose(K), -1)")))
    ['K', 'Q']
    """
    return {s.name for s in expr.free_symbols}


class _Builder:
    """Turns a whitelisted :mod:`ast` tree into SymPy objects; anything else is an error."""

    _BINOPS = {
        ast.Add: lambda a, b: a + b,
        ast.Sub: lambda a, b: a - b,
        ast.Mult: lambda a, b: a * b,
        ast.Div: lambda a, b: a / b,
        ast.Mod: lambda a, b: sympy.Mod(a, b),
        ast.FloorDiv: lambda a, b: sympy.floor(a / b),
        ast.MatMult: lambda a, b: F["matmul"](a, b),
        ast.BitAnd: lambda a, b: F["logical_and"](a, b),
        ast.BitOr: lambda a, b: F["logical_or"](a, b),
    }
    _COMPARE = {
        ast.Eq: sympy.Eq,
        ast.NotEq: sympy.Ne,
        ast.Lt: sympy.Lt,
        ast.LtE: sympy.Le,
        ast.Gt: sympy.Gt,
        ast.GtE: sympy.Ge,
    }

    def build(self, node: ast.AST, depth: int) -> sympy.Basic:
        if depth > MAX_DEPTH:
            raise ExprError(f"expression is nested more than {MAX_DEPTH} levels deep")
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise ExprError(f"{_describe(node)} is not allowed in a spec expression")
        return method(node, depth + 1)

    def _Constant(self, node: ast.Constant, depth: int) -> sympy.Basic:
        value = node.value
        if isinstance(value, bool):
            return sympy.true if value else sympy.false
        if isinstance(value, int):
            if abs(value) > MAX_INT:
                raise ExprError(f"integer {value} is too large (at most {MAX_INT})")
            return sympy.Integer(value)
        if isinstance(value, float):
            if not math.isfinite(value) or abs(value) > MAX_CONSTANT_MAGNITUDE:
                raise ExprError(f"number {value!r} is out of range")
            return sympy.Float(value)
        raise ExprError(f"constant {value!r} is not allowed (numbers and True/False only)")

    def _Name(self, node: ast.Name, depth: int) -> sympy.Basic:
        return _symbol(node.id)

    def _UnaryOp(self, node: ast.UnaryOp, depth: int) -> sympy.Basic:
        operand = self.build(node.operand, depth)
        if isinstance(node.op, ast.USub):
            return _arithmetic("-", lambda: -operand)
        if isinstance(node.op, ast.UAdd):
            return operand
        if isinstance(node.op, (ast.Not, ast.Invert)):
            return F["logical_not"](operand)
        raise ExprError(f"operator {type(node.op).__name__} is not allowed")

    def _BinOp(self, node: ast.BinOp, depth: int) -> sympy.Basic:
        left = self.build(node.left, depth)
        right = self.build(node.right, depth)
        if isinstance(node.op, ast.Pow):
            return _arithmetic("**", lambda: _power(left, right))
        op = self._BINOPS.get(type(node.op))
        if op is None:
            raise ExprError(f"operator {type(node.op).__name__} is not allowed")
        return _arithmetic(_SYMBOLS.get(type(node.op), type(node.op).__name__), lambda: op(left, right))

    def _BoolOp(self, node: ast.BoolOp, depth: int) -> sympy.Basic:
        name = "logical_and" if isinstance(node.op, ast.And) else "logical_or"
        values = [self.build(v, depth) for v in node.values]
        result = values[0]
        for value in values[1:]:
            result = F[name](result, value)
        return result

    def _Compare(self, node: ast.Compare, depth: int) -> sympy.Basic:
        operands = [self.build(node.left, depth)] + [self.build(c, depth) for c in node.comparators]
        parts = []
        for op, left, right in zip(node.ops, operands, operands[1:]):
            relation = self._COMPARE.get(type(op))
            if relation is None:
                raise ExprError(f"comparison {type(op).__name__} is not allowed")
            parts.append(relation(left, right, evaluate=False))
        result = parts[0]
        for part in parts[1:]:
            result = F["logical_and"](result, part)
        return result

    def _Call(self, node: ast.Call, depth: int) -> sympy.Basic:
        if not isinstance(node.func, ast.Name):
            raise ExprError(f"{_describe(node.func)} cannot be called: only whitelisted functions")
        name = node.func.id
        # The callee is refused before its arguments are looked at: eval('...') names eval.
        if name.startswith("_"):
            raise ExprError(f"name {name!r} is not allowed: names must not start with '_'")
        record = FUNCTIONS.get(name)
        if record is None or record.operator_only:
            allowed = sorted(n for n, r in FUNCTIONS.items() if not r.operator_only)
            raise ExprError(f"function {name!r} is not allowed; allowed: {', '.join(allowed)}")
        args = [
            self._string(a, name, record, len(node.args)) if i in record.string_args else self.build(a, depth)
            for i, a in enumerate(node.args)
        ]
        if record.elementwise:
            if len(args) != 1 or node.keywords:
                raise ExprError(f"{name}() takes exactly one argument")
            if isinstance(args[0], _NOT_NUMBERS):
                raise ExprError(f"{name}() needs a number or tensor, not True/False or a comparison")
            return _arithmetic(f"{name}()", lambda: record.constructor(args[0]))
        assert record.max_args is not None
        if not record.min_args <= len(args) <= record.max_args:
            raise ExprError(f"{name}() takes {record.arity()}, got {len(args)}")
        if record.defaults:
            args += [sympy.Integer(d) for d in record.defaults[len(args) - record.min_args :]]
        for index in record.int_args:
            if not isinstance(args[index], sympy.Integer):
                raise ExprError(f"argument {index + 1} of {name}() must be an integer constant")
        keepdim = self._keepdim(node, name, record)
        if record.keepdim:
            args.append(sympy.true if keepdim else sympy.false)
        return record.constructor(*args)

    def _string(self, node: ast.AST, name: str, record: ExprFunction, n_args: int) -> sympy.Basic:
        """A string constant where ``record`` declares one (``string_args``): bounded, charset-checked, then
        checked by the record; it becomes an inert SymPy ``Str`` (no free symbol, never evaluated)."""
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
            raise ExprError(f"argument 1 of {name}() must be a string constant, such as '...' in quotes")
        text = node.value
        if len(text) > MAX_STRING:
            raise ExprError(f"the string argument of {name}() is {len(text)} characters long (at most {MAX_STRING})")
        if not _STRING_RE.match(text):
            raise ExprError(f"the string argument of {name}() may hold letters, ',', '-' and '>' only, got {text!r}")
        problem = record.check_string(text, n_args) if record.check_string is not None else None
        if problem is not None:
            raise ExprError(f"{name}(): {problem}")
        return sympy.core.symbol.Str(text)

    def _keepdim(self, node: ast.Call, name: str, record: ExprFunction) -> bool:
        keepdim = False
        for keyword in node.keywords:
            if keyword.arg != "keepdim" or not record.keepdim:
                raise ExprError(f"keyword {keyword.arg!r} is not allowed in {name}()")
            if not isinstance(keyword.value, ast.Constant) or not isinstance(keyword.value.value, bool):
                raise ExprError(f"keepdim of {name}() must be True or False")
            keepdim = keyword.value.value
        return keepdim


def _bracket_depth(text: str) -> int:
    depth = deepest = 0
    for char in text:
        if char in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]}":
            depth -= 1
    return deepest


_NOT_NUMBERS = (sympy.logic.boolalg.BooleanAtom, sympy.core.relational.Relational)
_SYMBOLS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Mod: "%", ast.FloorDiv: "//"}


def _arithmetic(what: str, build: Callable[[], sympy.Basic]) -> sympy.Basic:
    """Build one arithmetic node; SymPy's own errors (``x % 0``, ``-True``) and undefined or complex
    constants (``1/0`` is ``zoo``, ``sqrt(-1)`` is ``I``) become :class:`ExprError` instead of
    escaping or reaching an evaluator."""
    try:
        result = build()
    except (TypeError, ValueError, ArithmeticError) as exc:
        if isinstance(exc, ExprError):
            raise
        raise ExprError(f"{what} cannot be applied to these operands: {exc}") from None
    if result.has(sympy.zoo, sympy.nan, sympy.I):
        raise ExprError(f"{what} gives an undefined or complex value (such as 1/0, inf - inf or sqrt(-1))")
    return result


def _symbol(name: str) -> sympy.Basic:
    if name in CONSTANTS:
        return CONSTANTS[name]
    if name.startswith("_"):
        raise ExprError(f"name {name!r} is not allowed: names must not start with '_'")
    if not _NAME_RE.match(name):
        raise ExprError(f"name {name!r} is not allowed: letters, digits and '_' only, at most 64")
    if name in FUNCTIONS:
        raise ExprError(f"name {name!r} is a function and must be called")
    return sympy.Symbol(name)


def _power(base: sympy.Basic, exponent: sympy.Basic) -> sympy.Basic:
    """``base ** exponent`` with bounded constants (``9**9**9`` is refused, not computed)."""
    if isinstance(base, _NOT_NUMBERS) or isinstance(exponent, _NOT_NUMBERS):
        raise ExprError("operands of ** must be numbers or tensors, not True/False or a comparison")
    if exponent.is_Number:
        if abs(exponent) > MAX_EXPONENT:
            raise ExprError(f"exponent {exponent} is too large (at most {MAX_EXPONENT} in absolute value)")
        if base.is_Number and base != 0:
            magnitude = abs(float(exponent)) * math.log10(abs(float(base)))
            if magnitude > 300:
                raise ExprError(f"constant {base}**{exponent} is out of range")
    elif base.is_Number and abs(base) > MAX_EXPONENT:
        raise ExprError(f"constant base {base} with a variable exponent is too large")
    return sympy.Pow(base, exponent)


def _describe(node: ast.AST) -> str:
    kinds = {
        ast.Attribute: "attribute access",
        ast.Subscript: "subscripting",
        ast.Lambda: "a lambda",
        ast.IfExp: "a conditional expression",
        ast.ListComp: "a comprehension",
        ast.GeneratorExp: "a generator",
        ast.Starred: "unpacking",
        ast.NamedExpr: "an assignment expression",
    }
    what = kinds.get(type(node), f"syntax '{type(node).__name__}'")
    col = getattr(node, "col_offset", None)
    return what if col is None else f"{what} (column {col + 1})"
