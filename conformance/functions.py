"""Expression functions as open records: one :class:`ExprFunction` per function a spec may call.

A record holds everything the harness needs about one function: its arity (which positional
arguments must be integer constants, whether it takes ``keepdim=``), its SymPy constructor, and one
callable per backend of :mod:`conformance.evaluate`:

- ``numpy`` — float64 NumPy, the oracle (required);
- ``torch`` — torch at the backend's dtype and device: the same-precision reference, and the
  gradient oracle through autograd (required);
- ``symbolic`` — NumPy object arrays of SymPy scalars, for proofs (``None``: the function has no
  symbolic form, and a fact that uses it is refused with that message);
- ``abs_backward`` — a torch callable whose backward propagates absolute values of the partials,
  for :mod:`conformance.error_bounds` (``None``: the plain torch backward already maps a non-negative
  cotangent to a non-negative one, so it is a bound as it is).

Every callable is called as ``fn(backend, *args)``: ``backend`` is the evaluating backend (torch's
has ``dtype`` and ``device``), the arguments come in the order the spec wrote them, the integer
arguments (``int_args``) as Python ints, a string argument (``string_args``: einsum's subscripts) as a
Python str, and where ``keepdim`` is allowed its value comes last as a Python bool. Sizes (``eye(n)``,
``ones(a, b)``) and index tensors (``one_hot``, ``gather``) arrive evaluated; :func:`as_size`,
:func:`as_shape` and :func:`check_indices` refuse, alike in every backend, those that are not integers in range.

The harness's own records are :data:`BUILTIN`; :data:`conformance.registry.FUNCTIONS` holds them and
any a user adds (``FUNCTIONS.register(record)`` or an entry point in ``conformance.functions``).
Importing this module does not import torch: the torch callables of the builtins are
:class:`LazyCallable` refs into :mod:`conformance.evaluate_torch` and :mod:`conformance.error_bounds`.

>>> FUNCTIONS_BY_NAME = {f.name: f for f in BUILTIN}
>>> FUNCTIONS_BY_NAME["softmax"].int_args, FUNCTIONS_BY_NAME["sum"].keepdim
((1,), True)
>>> ExprFunction("pi", numpy=np.abs, torch=np.abs)
Traceback (most recent call last):
...
conformance.registry.RegistryError: expression function 'pi': the name is a constant of the expression language
"""

from __future__ import annotations

import fractions
import importlib
import keyword
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy

from conformance.expr_error import ExprError
from conformance.registry import RegistryError

Array = Any
BackendFn = Callable[..., Array]

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
MAX_STRING = 64  # characters of a string constant (string_args)
MAX_ELEMENTS = 2**24  # elements of a tensor that eye, ones, zeros or one_hot builds from sizes
# Names the expression language gives another meaning (see conformance.expr.CONSTANTS).
RESERVED_NAMES = frozenset({"inf", "pi", "True", "False", "None"})


@dataclass(frozen=True)
class LazyCallable:
    """A callable named by ``"module:attribute"`` (optionally an item ``key`` of that attribute), imported on first call.

    It lets a record name a torch callable without importing torch when the record is built.
    """

    ref: str
    key: str | None = None

    def resolve(self) -> BackendFn:
        module, _, attr = self.ref.partition(":")
        value = getattr(importlib.import_module(module), attr)
        return value[self.key] if self.key is not None else value

    def __call__(self, *args: Any) -> Array:
        return self.resolve()(*args)


@dataclass(frozen=True)
class ExprFunction:
    """One function of the expression language (see the module docstring for the calling convention).

    ``sympy_function``: SymPy's own elementwise function (``sympy.exp``): the parser builds it, so SymPy
    may simplify it, and its one argument must be a number or tensor. ``None`` (the default): an opaque
    SymPy function of this name that SymPy never rewrites, the right choice for tensor operations.
    ``operator_only``: reached only through an operator (``@``, ``&``, ``|``, ``~``), not callable by name.
    ``defaults``: where given, one integer constant per optional argument; the parser fills in those a spec
    leaves off, so the callables always receive ``max_args`` arguments (``var(x, -1)`` is ``var(x, -1, 1)``).
    ``string_args``: ``(0,)`` where the first argument is a string constant (``einsum('ij,jk->ik', a, b)``);
    the only place a string may appear in an expression. The parser bounds it (:data:`MAX_STRING` characters of
    letters, ``,``, ``-`` and ``>``) and, where given, ``check_string(text, n_args)`` returns what is wrong with
    it (``None``: nothing); the callables receive it as a Python ``str``.
    """

    name: str
    numpy: BackendFn
    torch: BackendFn
    symbolic: BackendFn | None = None
    abs_backward: BackendFn | None = None
    min_args: int = 1
    max_args: int | None = None  # None: the same as min_args
    int_args: tuple[int, ...] = ()
    defaults: tuple[int, ...] = ()  # integer constants for the optional arguments min_args .. max_args - 1
    keepdim: bool = False
    string_args: tuple[int, ...] = ()
    check_string: Callable[[str, int], str | None] | None = None
    sympy_function: Callable[..., sympy.Basic] | None = None
    operator_only: bool = False
    doc: str = ""
    _undefined: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_args is None:
            object.__setattr__(self, "max_args", self.min_args)
        object.__setattr__(self, "int_args", tuple(self.int_args))
        object.__setattr__(self, "defaults", tuple(self.defaults))
        object.__setattr__(self, "string_args", tuple(self.string_args))
        self._check()
        if self.sympy_function is None:
            # commutative=True: an applied tensor function is an elementwise factor under ``*`` whatever its
            # arguments (a True/False keepdim argument would otherwise make SymPy treat it as non-commutative).
            object.__setattr__(self, "_undefined", sympy.Function(self.name, commutative=True))

    @property
    def constructor(self) -> Callable[..., sympy.Basic]:
        """What the parser applies to the arguments: SymPy's own function or the opaque one of this name."""
        return self.sympy_function if self.sympy_function is not None else self._undefined

    @property
    def elementwise(self) -> bool:
        """A function that is SymPy's own (one number or tensor argument, elementwise)."""
        return self.sympy_function is not None

    def builds(self, func: Any) -> bool:
        """Whether an applied SymPy function ``func(...)`` is this record's."""
        if self.sympy_function is not None:
            return func is self.sympy_function
        return isinstance(func, sympy.core.function.UndefinedFunction) and func.__name__ == self.name

    def arity(self) -> str:
        """``"2 argument(s)"`` or ``"1 to 3 arguments"``, for messages."""
        if self.min_args == self.max_args:
            return f"{self.min_args} argument(s)"
        return f"{self.min_args} to {self.max_args} arguments"

    def _check(self) -> None:
        def fail(message: str) -> RegistryError:
            return RegistryError(f"expression function {self.name!r}: {message}")

        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise fail("a name is a letter, then letters, digits and '_' (at most 64)")
        if self.name in RESERVED_NAMES or keyword.iskeyword(self.name):
            raise fail("the name is a constant of the expression language" if self.name in RESERVED_NAMES else "a Python keyword")
        for slot in ("numpy", "torch"):
            if not callable(getattr(self, slot)):
                raise fail(f"'{slot}' must be a callable fn(backend, *args)")
        for slot in ("symbolic", "abs_backward", "sympy_function", "check_string"):
            if getattr(self, slot) is not None and not callable(getattr(self, slot)):
                raise fail(f"'{slot}' must be a callable or None")
        max_args = self.max_args if self.max_args is not None else self.min_args
        if not 0 <= self.min_args <= max_args:
            raise fail(f"expected 0 <= min_args <= max_args, got {self.min_args} and {max_args}")
        if self.defaults and (
            len(self.defaults) != max_args - self.min_args or not all(isinstance(d, int) for d in self.defaults)
        ):
            raise fail(f"defaults must be one integer per optional argument ({max_args - self.min_args}), got {self.defaults}")
        filled = self.min_args + len(self.defaults)
        if any(not isinstance(i, int) or not 0 <= i < filled for i in self.int_args):
            raise fail(f"int_args must be indices of required (or defaulted) arguments (below {filled}), got {self.int_args}")
        if self.sympy_function is not None and (max_args != 1 or self.min_args != 1 or self.int_args or self.keepdim):
            raise fail("a SymPy elementwise function takes exactly one argument (no int_args, no keepdim)")
        if self.string_args not in ((), (0,)) or (self.string_args and (self.min_args < 1 or 0 in self.int_args)):
            raise fail(f"string_args may only be (0,): a required first argument that is not an int_arg, got {self.string_args}")
        if self.check_string is not None and not self.string_args:
            raise fail("check_string needs string_args=(0,)")


# -- the harness's own functions -------------------------------------------------------------------
def _torch(name: str) -> LazyCallable:
    return LazyCallable("conformance.evaluate_torch:TORCH_FUNCTIONS", name)


def _abs_bound(name: str) -> LazyCallable:
    return LazyCallable("conformance.error_bounds:ABS_BACKWARD", name)


def _sym(fn: Callable[[Any], sympy.Basic]) -> BackendFn:
    """An elementwise SymPy function on object arrays."""
    vectorized = np.vectorize(fn, otypes=[object])
    return lambda b, x: vectorized(x)


def _np_reduce(kind: str) -> BackendFn:
    return lambda b, x, axis, keepdim: getattr(np, kind)(np.asarray(x), axis=axis, keepdims=keepdim)


def _sym_reduce(kind: str) -> BackendFn:
    def run(b: Any, x: Array, axis: int, keepdim: bool) -> Array:
        x = np.asarray(x, dtype=object)
        if kind in ("sum", "mean"):
            total = np.sum(x, axis=axis, keepdims=keepdim)
            return total / sympy.Integer(x.shape[axis]) if kind == "mean" else total
        fn = sympy.Max if kind == "max" else sympy.Min
        reduced = np.apply_along_axis(lambda v: fn(*v), axis, x)
        return np.expand_dims(reduced, axis) if keepdim else reduced

    return run


def _np_softmax(b: Any, x: Array, axis: int) -> Array:
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


_sym_exp = np.vectorize(sympy.exp, otypes=[object])


def _sym_softmax(b: Any, x: Array, axis: int) -> Array:
    e = _sym_exp(x)
    return e / np.sum(e, axis=axis, keepdims=True)


def _np_cat(b: Any, x: Array, y: Array, axis: int) -> Array:
    return np.concatenate(np.broadcast_arrays(x, y) if np.ndim(x) != np.ndim(y) else (x, y), axis=axis)


def _np_interleave(b: Any, x: Array, y: Array) -> Array:
    stacked = np.stack(np.broadcast_arrays(x, y), axis=-1)  # (..., n, 2)
    return stacked.reshape(*stacked.shape[:-2], -1)  # (..., 2n)


def _np_split_heads(b: Any, x: Array, heads: Array) -> Array:
    *lead, length, dim = np.shape(x)
    heads = int(heads)
    return np.swapaxes(np.reshape(x, (*lead, length, heads, dim // heads)), -2, -3)  # (..., H, L, D/H)


def _np_merge_heads(b: Any, x: Array) -> Array:
    *lead, heads, length, dh = np.shape(x)
    return np.reshape(np.swapaxes(x, -2, -3), (*lead, length, heads * dh))  # (..., L, H·Dh)


def _chunk(b: Any, x: Array, parts: int, index: int) -> Array:
    """Part ``index`` of ``parts`` equal parts of the last axis (any backend: plain slicing)."""
    size = x.shape[-1] // parts
    return x[..., index * size : (index + 1) * size]


def _strided(b: Any, x: Array, start: int, step: int) -> Array:
    """Elements ``start, start + step, ...`` of the last axis (any backend: plain slicing)."""
    return x[..., start::step]


def _np_tril(b: Any, rows: Array, cols: Array) -> Array:
    return np.tril(np.ones((int(rows), int(cols)), dtype=bool))


def _np_arange(b: Any, n: Array) -> Array:
    return np.arange(int(n), dtype=np.float64)


def _sym_arange(b: Any, n: Array) -> Array:
    return np.array([sympy.Integer(i) for i in range(int(n))], dtype=object)


# -- sizes, indices and subscripts: checked alike in every backend -------------------------------
def expr_error(message: str) -> Exception:
    """A :class:`conformance.expr_error.ExprError` (the parser's error type) with ``message``."""
    return ExprError(message)


def as_size(fn: str, value: Any, minimum: int = 0) -> int:
    """A size argument (an evaluated expression: a number, 0-d array or tensor) as an int >= ``minimum``."""
    try:
        if getattr(value, "ndim", 0) != 0:
            raise TypeError
        number = float(value)
    except (TypeError, ValueError):
        raise expr_error(f"{fn}(): a size must be one number (an expression over symbols), got {value!r}") from None
    if not math.isfinite(number) or number != math.floor(number) or number < minimum:
        least = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise expr_error(f"{fn}(): a size must be {least}, got {number:g}")
    return int(number)


def as_shape(fn: str, values: tuple[Any, ...], minimum: int = 0) -> tuple[int, ...]:
    """Size arguments as a shape of at most :data:`MAX_ELEMENTS` elements."""
    shape = tuple(as_size(fn, v, minimum) for v in values)
    if math.prod(shape) > MAX_ELEMENTS:
        raise expr_error(f"{fn}(): shape {shape} has more than {MAX_ELEMENTS} elements")
    return shape


def reshape_sizes(total: int, values: tuple[Any, ...]) -> tuple[int, ...]:
    """The sizes of ``reshape(x, ...)`` (one may be -1) for ``total`` elements, or an error saying why not."""
    sizes = tuple(-1 if _is_minus_one(v) else as_size("reshape", v) for v in values)
    known = math.prod(s for s in sizes if s != -1)
    if sizes.count(-1) > 1:
        raise expr_error(f"reshape(): at most one size may be -1, got {sizes}")
    if sizes.count(-1) == 1 and (known == 0 or total % known):
        raise expr_error(f"reshape(): {total} elements cannot be reshaped to {sizes}")
    if -1 not in sizes and known != total:
        raise expr_error(f"reshape(): {total} elements cannot be reshaped to {sizes} ({known} elements)")
    return sizes


def _is_minus_one(value: Any) -> bool:
    try:
        return getattr(value, "ndim", 0) == 0 and float(value) == -1.0
    except (TypeError, ValueError):
        return False


def check_indices(fn: str, values: Array, size: int) -> None:
    """Refuse index values (a float64 NumPy array) that are not integers in ``0 .. size - 1``."""
    bad = ~np.isfinite(values) | (values != np.floor(np.where(np.isfinite(values), values, 0.0)))
    if bad.any():
        raise expr_error(f"{fn}(): an index must be integer-valued, got {float(values[bad].flat[0])!r}")
    out = (values < 0) | (values >= size)
    if out.any():
        raise expr_error(f"{fn}(): index {int(values[out].flat[0])} is out of range (0 to {size - 1})")


def _np_index(fn: str, index: Array, size: int) -> Array:
    """An integer-valued index array (float, integer, or exact SymPy numbers) as int64, checked against ``size``."""
    index = np.asarray(index)
    if index.dtype == bool:
        raise expr_error(f"{fn}(): an index must be integer-valued, not True/False")
    if index.dtype == object:
        index = np.vectorize(_exact_number(fn), otypes=[np.float64])(index) if index.size else index.astype(np.float64)
    values = np.asarray(index, dtype=np.float64)
    check_indices(fn, values, size)
    return values.astype(np.int64)


def _exact_number(fn: str) -> Callable[[Any], float]:
    def number(e: Any) -> float:
        if isinstance(e, sympy.Basic) and not e.is_Number:
            raise expr_error(f"{fn}(): an index must be a number, got {e}")
        return float(e)

    return number


def check_gather(x_shape: tuple[int, ...], index_shape: tuple[int, ...], axis: int) -> int:
    """The axis of ``gather(x, i, axis)`` as a non-negative int, or an error: same rank, same sizes off the axis."""
    ndim = len(x_shape)
    if not -ndim <= axis < ndim:
        raise expr_error(f"gather(): axis {axis} is out of range for a tensor of {ndim} dimensions")
    axis %= ndim
    if len(index_shape) != ndim or any(a != b for d, (a, b) in enumerate(zip(x_shape, index_shape)) if d != axis):
        raise expr_error(
            f"gather(): the index has shape {index_shape}; expected {ndim} dimensions, the sizes of x {x_shape} off axis {axis}"
        )
    return axis


_EINSUM_RE = re.compile(r"^[A-Za-z]*(?:,[A-Za-z]*)*(?:->[A-Za-z]*)?$")


def check_einsum(subscripts: str, n_args: int) -> str | None:
    """What is wrong with einsum subscripts for ``n_args - 1`` operands (``None``: nothing).

    >>> check_einsum("ij,jk->ik", 3) is None, check_einsum("i...->i", 2)
    (True, "subscripts are letters, ',' and one '->' (no spaces, no ellipsis), e.g. 'ij,jk->ik'")
    """
    if not _EINSUM_RE.match(subscripts):
        return "subscripts are letters, ',' and one '->' (no spaces, no ellipsis), e.g. 'ij,jk->ik'"
    inputs, arrow, output = subscripts.partition("->")
    terms = inputs.split(",")
    if len(terms) != n_args - 1:
        return f"subscripts {subscripts!r} name {len(terms)} operand(s), got {n_args - 1}"
    if arrow and (len(set(output)) != len(output) or not set(output) <= set(inputs)):
        return f"the output {output!r} must name each letter once, and only letters of the operands"
    return None


def check_einsum_shapes(subscripts: str, shapes: list[tuple[int, ...]]) -> None:
    """Refuse operands whose ranks or letter sizes do not fit the subscripts."""
    sizes: dict[str, int] = {}
    for position, (term, shape) in enumerate(zip(subscripts.partition("->")[0].split(","), shapes), start=1):
        if len(term) != len(shape):
            raise expr_error(f"einsum(): operand {position} has {len(shape)} dimensions, subscripts {term!r} name {len(term)}")
        for letter, size in zip(term, shape):
            if sizes.setdefault(letter, size) != size:
                raise expr_error(f"einsum(): index {letter!r} has size {sizes[letter]} and {size}")


def _np_einsum(b: Any, subscripts: str, *operands: Array) -> Array:
    operands = tuple(np.asarray(o) for o in operands)
    check_einsum_shapes(subscripts, [o.shape for o in operands])
    return np.einsum(subscripts, *operands)


def _sym_array(values: Array) -> Array:
    """Numbers (0/1 masks, one-hot rows) as an object array of exact SymPy integers."""
    if not np.size(values):
        return np.asarray(values, dtype=object)
    return np.vectorize(lambda v: sympy.Integer(int(v)), otypes=[object])(values)


def _triu(x: Array, k: int) -> Array:
    if np.ndim(x) < 2:
        raise expr_error(f"triu(): x must have at least 2 dimensions, got {np.ndim(x)}")
    return np.triu(x, k)


def _np_reshape(b: Any, x: Array, *sizes: Array) -> Array:
    x = np.asarray(x)
    return np.reshape(x, reshape_sizes(x.size, sizes))


def _np_one_hot(b: Any, index: Array, n: Array) -> Array:
    size = as_size("one_hot", n, 1)
    index = _np_index("one_hot", index, size)
    as_shape("one_hot", (*index.shape, size))
    return (index[..., None] == np.arange(size)).astype(np.float64)


def _np_gather(b: Any, x: Array, index: Array, axis: int) -> Array:
    x = np.asarray(x)
    index_shape = np.shape(index)
    axis = check_gather(x.shape, index_shape, axis)
    return np.take_along_axis(x, _np_index("gather", index, x.shape[axis]), axis)


def _same(fn: Callable[..., Array]) -> BackendFn:
    """A NumPy function applied to the arguments (the backend unused)."""
    return lambda b, *args: fn(*args)


def _elementwise(
    name: str, sympy_function: Callable[..., sympy.Basic], numpy_fn: Callable[..., Array], **extra: Any
) -> ExprFunction:
    return ExprFunction(
        name,
        numpy=_same(numpy_fn),
        torch=_torch(name),
        symbolic=_sym(sympy_function),
        sympy_function=sympy_function,
        **extra,
    )


def _reduction(name: str) -> ExprFunction:
    return ExprFunction(
        name, numpy=_np_reduce(name), torch=_torch(name), symbolic=_sym_reduce(name), min_args=2, int_args=(1,), keepdim=True
    )


def _tensor(name: str, numpy_fn: BackendFn, *, symbolic: BackendFn | None = None, **extra: Any) -> ExprFunction:
    """A tensor function whose symbolic form is its NumPy form on object arrays unless given."""
    return ExprFunction(name, numpy=numpy_fn, torch=_torch(name), symbolic=symbolic or numpy_fn, **extra)


# -- deep-learning elementwise functions: float64 NumPy formulas (no torch, no SciPy), stable at large |x|
_np_erf = np.vectorize(math.erf, otypes=[np.float64])
_np_erfc = np.vectorize(math.erfc, otypes=[np.float64])
_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _np_Phi(x: Array) -> Array:
    return 0.5 * _np_erfc(-np.asarray(x, dtype=np.float64) * _SQRT_HALF)  # erfc: no cancellation in the lower tail


def _np_phi(x: Array) -> Array:
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-0.5 * x * x) * _INV_SQRT_2PI


def _np_sigmoid(x: Array) -> Array:
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(-np.abs(x))  # never overflows
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _np_softplus(x: Array) -> Array:
    return np.logaddexp(0.0, np.asarray(x, dtype=np.float64))  # log(1 + e^x), max + log1p(e^-|x|)


def _np_logsigmoid(x: Array) -> Array:
    return -np.logaddexp(0.0, -np.asarray(x, dtype=np.float64))  # −softplus(−x)


def _sym_round(e: sympy.Basic) -> sympy.Basic:
    """Round half to even, exactly, on a SymPy number; an opaque ``round(e)`` otherwise."""
    if e.is_Rational:
        return sympy.Integer(round(fractions.Fraction(int(e.p), int(e.q))))
    if e.is_number and e.is_real:
        return sympy.Integer(round(fractions.Fraction(str(sympy.N(e, 50)))))  # irrational: no ties
    return sympy.Function("round", commutative=True)(e)


_SYM_SQRT2 = sympy.sqrt(2)

# (significant bits, smallest exponent e of x = m·2^e, m in [0.5, 1), before subnormals) of the narrow formats
ROUNDED_FORMATS = {"bfloat16": (8, -125), "float16": (11, -13)}


def _np_rounded_to(bits: int, emin: int) -> Callable[[Array], Array]:
    """x rounded to the nearest value with ``bits`` significant bits (ties to even), subnormals included: the
    format's rounding of a float64, done once (no float32 on the way). Overflow is not modelled."""

    def rounded(x: Array) -> Array:
        x = np.asarray(x, dtype=np.float64)
        _, e = np.frexp(x)
        e = np.maximum(e, emin)  # below the normal range the quantum stays 2^(emin - bits)
        return np.ldexp(np.round(np.ldexp(x, bits - e)), e - bits)

    return rounded


def _sym_opaque(name: str) -> Callable[[Any], sympy.Basic]:
    return lambda e: sympy.Function(name, commutative=True)(e)


def _elementwise_tensor(
    name: str, numpy_fn: Callable[..., Array], symbolic: Callable[[Any], sympy.Basic], **extra: Any
) -> ExprFunction:
    """An elementwise function that is not SymPy's own: opaque to SymPy, its symbolic form a SymPy formula."""
    return ExprFunction(name, numpy=_same(numpy_fn), torch=_torch(name), symbolic=_sym(symbolic), **extra)


def _sym_binary(fn: Callable[..., sympy.Basic]) -> BackendFn:
    vectorized = np.vectorize(fn, otypes=[object])
    return lambda b, *args: vectorized(*args)


# -- reductions of deep-learning papers -------------------------------------------------------------
def _np_logsumexp(x: Array, axis: int, keepdim: bool) -> Array:
    x = np.asarray(x, dtype=np.float64)
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    out = np.log(np.sum(np.exp(x - top), axis=axis, keepdims=True)) + top
    return out if keepdim else np.squeeze(out, axis=axis)


def _np_log_softmax(b: Any, x: Array, axis: int) -> Array:
    return np.asarray(x, dtype=np.float64) - _np_logsumexp(x, axis, True)


def _sym_log_softmax(b: Any, x: Array, axis: int) -> Array:
    return x - _sym_log(np.sum(_sym_exp(np.asarray(x, dtype=object)), axis=axis, keepdims=True))


_sym_log = np.vectorize(sympy.log, otypes=[object])
_sym_sqrt = np.vectorize(sympy.sqrt, otypes=[object])


def _var(mean: Callable[..., Array], total: Callable[..., Array], x: Array, axis: int, correction: int, keepdim: bool) -> Array:
    """Σ (x − mean x)² / (n − correction) over one axis, in any array arithmetic."""
    d = x - mean(x, axis=axis, keepdims=True)
    return total(d * d, axis=axis, keepdims=keepdim) / (x.shape[axis] - correction)


def _np_var(b: Any, x: Array, axis: int, correction: int, keepdim: bool) -> Array:
    return np.var(np.asarray(x, dtype=np.float64), axis=axis, ddof=correction, keepdims=keepdim)


def _sym_var(b: Any, x: Array, axis: int, correction: int, keepdim: bool) -> Array:
    x = np.asarray(x, dtype=object)
    n = sympy.Integer(x.shape[axis])
    return _var(lambda v, **k: np.sum(v, **k) / n, np.sum, x, axis, sympy.Integer(correction), keepdim)


def _np_norm(b: Any, x: Array, axis: int, keepdim: bool) -> Array:
    x = np.asarray(x, dtype=np.float64)
    scale = np.max(np.abs(x), axis=axis, keepdims=True)  # scaled: no overflow or underflow of x²
    scale = np.where(scale > 0, scale, 1.0)
    out = scale * np.sqrt(np.sum((x / scale) ** 2, axis=axis, keepdims=True))
    return out if keepdim else np.squeeze(out, axis=axis)


def _sym_norm(b: Any, x: Array, axis: int, keepdim: bool) -> Array:
    x = np.asarray(x, dtype=object)
    return _sym_sqrt(np.sum(x * x, axis=axis, keepdims=keepdim))


def _sym_cumprod(b: Any, x: Array, axis: int) -> Array:
    return np.cumprod(np.asarray(x, dtype=object), axis=axis)


BUILTIN: tuple[ExprFunction, ...] = (
    # elementwise functions that are SymPy's own
    _elementwise("sqrt", sympy.sqrt, np.sqrt, doc="square root (parsed as x**(1/2))"),
    _elementwise("exp", sympy.exp, np.exp),
    _elementwise("log", sympy.log, np.log),
    _elementwise("abs", sympy.Abs, np.abs, abs_backward=_abs_bound("abs")),
    _elementwise("tanh", sympy.tanh, np.tanh, abs_backward=_abs_bound("tanh")),
    _elementwise("cos", sympy.cos, np.cos, abs_backward=_abs_bound("cos")),
    _elementwise("sin", sympy.sin, np.sin, abs_backward=_abs_bound("sin")),
    # elementwise functions of deep-learning papers
    _elementwise("erf", sympy.erf, _np_erf),
    _elementwise("erfc", sympy.erfc, _np_erfc, abs_backward=_abs_bound("erfc")),
    _elementwise_tensor(
        "Phi", _np_Phi, lambda e: (1 + sympy.erf(e / _SYM_SQRT2)) / 2, doc="standard normal CDF", abs_backward=_abs_bound("Phi")
    ),
    _elementwise_tensor(
        "phi",
        _np_phi,
        lambda e: sympy.exp(-(e**2) / 2) / sympy.sqrt(2 * sympy.pi),
        abs_backward=_abs_bound("phi"),
        doc="standard normal PDF",
    ),
    _elementwise_tensor(
        "sigmoid", _np_sigmoid, lambda e: 1 / (1 + sympy.exp(-e)), doc="1 / (1 + exp(-x))", abs_backward=_abs_bound("sigmoid")
    ),
    _elementwise_tensor("logsigmoid", _np_logsigmoid, lambda e: -sympy.log(1 + sympy.exp(-e)), doc="log sigmoid(x)"),
    _elementwise_tensor("softplus", _np_softplus, lambda e: sympy.log(1 + sympy.exp(e)), doc="log(1 + exp(x)), no threshold"),
    _elementwise_tensor("relu", lambda x: np.maximum(x, 0.0), lambda e: sympy.Max(e, 0), doc="max(x, 0)"),
    _elementwise_tensor("log1p", np.log1p, lambda e: sympy.log(1 + e), doc="log(1 + x)"),
    _elementwise_tensor("expm1", np.expm1, lambda e: sympy.exp(e) - 1, doc="exp(x) - 1"),
    _elementwise("sign", sympy.sign, np.sign),
    _elementwise("floor", sympy.floor, np.floor),
    _elementwise_tensor("round", np.round, _sym_round, doc="to the nearest integer, ties to even"),
    *(
        _elementwise_tensor(
            f"to_{fmt}", _np_rounded_to(bits, emin), _sym_opaque(f"to_{fmt}"),
            doc=f"x rounded to {fmt} (nearest, ties to even; a reading of a value held in {fmt}, as a cast buffer)",
        )
        for fmt, (bits, emin) in ROUNDED_FORMATS.items()
    ),
    # elementwise functions of two or three tensors
    _tensor("maximum", _same(np.maximum), symbolic=_sym_binary(sympy.Max), min_args=2),
    _tensor("minimum", _same(np.minimum), symbolic=_sym_binary(sympy.Min), min_args=2),
    _tensor(
        "clamp",
        _same(lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi)),
        symbolic=_sym_binary(lambda x, lo, hi: sympy.Min(sympy.Max(x, lo), hi)),
        min_args=3,
        doc="minimum(maximum(x, lo), hi)",
    ),
    # reductions over one axis: f(x, axis, keepdim=False)
    *(_reduction(name) for name in ("sum", "mean", "max", "min")),
    # reductions of deep-learning papers (axis an integer constant)
    ExprFunction(
        "logsumexp",
        numpy=lambda b, x, axis, keepdim: _np_logsumexp(x, axis, keepdim),
        torch=_torch("logsumexp"),
        symbolic=lambda b, x, axis, keepdim: _sym_log(np.sum(_sym_exp(np.asarray(x, dtype=object)), axis=axis, keepdims=keepdim)),
        min_args=2,
        int_args=(1,),
        keepdim=True,
        doc="log Σ exp(x) over one axis",
    ),
    _tensor(
        "log_softmax",
        _np_log_softmax,
        symbolic=_sym_log_softmax,
        abs_backward=_abs_bound("log_softmax"),
        min_args=2,
        int_args=(1,),
    ),
    *(
        ExprFunction(
            name,
            numpy=_np_var if name == "var" else lambda b, *a: np.sqrt(_np_var(b, *a)),
            torch=_torch(name),
            symbolic=_sym_var if name == "var" else lambda b, *a: _sym_sqrt(_sym_var(b, *a)),
            abs_backward=_abs_bound(name),
            min_args=2,
            max_args=3,
            defaults=(1,),
            int_args=(1, 2),
            keepdim=True,
            doc=f"{name}(x, axis, correction=1): Σ (x − mean)² / (n − correction){'' if name == 'var' else ', square-rooted'}",
        )
        for name in ("var", "std")
    ),
    _tensor("cumsum", lambda b, x, axis: np.cumsum(x, axis=axis), min_args=2, int_args=(1,)),
    _tensor(
        "cumprod",
        lambda b, x, axis: np.cumprod(x, axis=axis),
        symbolic=_sym_cumprod,
        abs_backward=_abs_bound("cumprod"),
        min_args=2,
        int_args=(1,),
    ),
    ExprFunction(
        "norm",
        numpy=_np_norm,
        torch=_torch("norm"),
        symbolic=_sym_norm,
        abs_backward=_abs_bound("norm"),
        min_args=2,
        int_args=(1,),
        keepdim=True,
        doc="the 2-norm over one axis",
    ),
    # tensor functions, opaque to SymPy
    _tensor("softmax", _np_softmax, symbolic=_sym_softmax, abs_backward=_abs_bound("softmax"), min_args=2, int_args=(1,)),
    _tensor("transpose", lambda b, x: np.swapaxes(x, -1, -2), doc="swap the last two axes"),
    _tensor("unsqueeze", lambda b, x, axis: np.expand_dims(x, axis), min_args=2, int_args=(1,)),
    _tensor("where", _same(np.where), min_args=3),
    _tensor("tril", _np_tril, min_args=2, doc="a (rows, cols) boolean mask, True on and below the diagonal"),
    ExprFunction(
        "triu",
        numpy=lambda b, x, k: _triu(x, k),
        torch=_torch("triu"),
        symbolic=lambda b, x, k: _triu(np.asarray(x, dtype=object), k),
        min_args=2,
        int_args=(1,),
        doc="x with the elements below diagonal k of its last two axes set to 0",
    ),
    ExprFunction(
        "eye",
        numpy=lambda b, n: np.eye(as_shape("eye", (n, n), 1)[0]),
        torch=_torch("eye"),
        symbolic=lambda b, n: _sym_array(np.eye(as_shape("eye", (n, n), 1)[0])),
        doc="the (n, n) identity",
    ),
    *(
        ExprFunction(
            name,
            numpy=lambda b, *sizes, fill=fill, name=name: np.full(as_shape(name, sizes), float(fill)),
            torch=_torch(name),
            symbolic=lambda b, *sizes, fill=fill, name=name: np.full(as_shape(name, sizes), sympy.Integer(fill), dtype=object),
            max_args=4,
            doc=f"a tensor of {name} of shape (a, b, ...), 1 to 4 sizes",
        )
        for name, fill in (("ones", 1), ("zeros", 0))
    ),
    _tensor("reshape", _np_reshape, min_args=2, max_args=5, doc="x reshaped to 1 to 4 sizes, one of which may be -1"),
    ExprFunction(
        "one_hot",
        numpy=_np_one_hot,
        torch=_torch("one_hot"),
        symbolic=lambda b, index, n: _sym_array(_np_one_hot(b, index, n)),
        min_args=2,
        doc="(..., n): 1 at each integer index of i in 0 .. n - 1, else 0",
    ),
    _tensor("gather", _np_gather, min_args=3, int_args=(2,), doc="x[..., i[...], ...] along one axis (torch.gather)"),
    ExprFunction(
        "einsum",
        numpy=_np_einsum,
        torch=_torch("einsum"),
        symbolic=_np_einsum,
        abs_backward=_abs_bound("einsum"),
        min_args=2,
        max_args=5,
        string_args=(0,),
        check_string=check_einsum,
        doc="einsum('ij,jk->ik', a, b): 1 to 4 operands, letters only",
    ),
    _tensor("arange", _np_arange, symbolic=_sym_arange),
    _tensor("cat", _np_cat, min_args=3, int_args=(2,)),
    ExprFunction("chunk", numpy=_chunk, torch=_chunk, symbolic=_chunk, min_args=3, int_args=(1, 2)),
    ExprFunction("strided", numpy=_strided, torch=_strided, symbolic=_strided, min_args=3, int_args=(1, 2)),
    _tensor("interleave", _np_interleave, min_args=2, doc="(..., n) and (..., n) to (..., 2n): x0, y0, x1, y1, ..."),
    _tensor("split_heads", _np_split_heads, min_args=2, doc="(..., L, D) to (..., H, L, D/H)"),
    _tensor("merge_heads", _np_merge_heads, doc="(..., H, L, Dh) to (..., L, H·Dh)"),
    # reached through operators only: @, &, |, ~
    _tensor("matmul", _same(np.matmul), abs_backward=_abs_bound("matmul"), min_args=2, operator_only=True),
    _tensor("logical_and", _same(np.logical_and), min_args=2, operator_only=True),
    _tensor("logical_or", _same(np.logical_or), min_args=2, operator_only=True),
    _tensor("logical_not", _same(np.logical_not), operator_only=True),
)
