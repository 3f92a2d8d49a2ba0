"""Testing utilities for your own tests: tolerant comparison, parameter counts, gradient flow, fixtures.

The implementation guide's testing helpers as a small public API, with their gaps closed:

- :func:`assert_close` — a comparison whose default tolerance is derived from the dtype's precision
  with the rule the harness uses (:mod:`conformance.tolerance`), and whose failure message says the
  max absolute and relative errors, where they are, and the tolerance with its derivation;
- :func:`assert_tensor_equal` — the guide's own helper and signature, ``|a − b| ≤ atol + rtol·|b|``
  elementwise with the guide's defaults, its gaps closed: shapes must match (``torch.allclose``
  broadcasts, so a (3,) tensor "equals" a (1, 3) one), it raises even under ``python -O`` (the guide
  used ``assert``), tensors of different dtypes or devices are compared in float64 on the CPU (the
  guide's ``allclose`` raised), and the message says how many elements differ and where the worst is;
- :func:`count_parameters` — trainable (or all) parameters, shared ones counted once;
- :func:`check_gradient_flow` — every trainable parameter gets a gradient that is present and finite;
  reports *all* offenders, including parameters that are never used (the guide's check relied on
  ``.grad`` being reset to ``None`` and stopped at the first offender);
- pytest fixtures ``device`` (``cuda`` if available, else ``cpu``) and ``sample_batch``.

Importing this module is cheap (torch and NumPy are imported when first used), so the pytest plugin
can expose the fixtures without slowing down every test session.

>>> import torch
>>> x = torch.linspace(-1, 1, 5, dtype=torch.float64)
>>> m = assert_close(x.float(), x)  # float32 against the float64 truth: 72 ulps of float32 at scale 1
>>> m.passed, f"{m.tolerance.atol:.3g}"
(True, '8.58e-06')
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import numpy as np
    import torch

    from conformance.tolerance import Measurement

__all__ = [
    "accumulation_dtype",
    "assert_close",
    "assert_tensor_equal",
    "check_gradient_flow",
    "count_parameters",
    "default_tolerance",
    "device",
    "make_sample_batch",
    "sample_batch",
]

_HALF = ("float16", "bfloat16")


# -- assert_close -----------------------------------------------------------------------------------
def accumulation_dtype(dtype: str) -> str:
    """The precision a computation at ``dtype`` accumulates in: torch sums float16/bfloat16 in float32.

    >>> accumulation_dtype("bfloat16"), accumulation_dtype("float64")
    ('float32', 'float64')
    """
    return "float32" if dtype in _HALF else dtype


def default_tolerance(dtype: str, scale: float) -> float:
    """The bound :func:`assert_close` applies without a same-precision reference.

    ``(8 × eps(dtype) + 64 × eps(accumulation dtype)) × scale``: the harness's noise floor
    (``ToleranceRule().floor_ulps`` units of the result's own precision, its final rounding) plus the
    harness's bound for a result with no same-precision reference (``FALLBACK_ULPS`` units of the
    precision the computation accumulates in). At scale 1 that is 1.6e-14 (float64), 8.6e-6
    (float32), 7.8e-3 (float16) and 6.3e-2 (bfloat16).

    >>> f"{default_tolerance('float16', 1.0):.3g}"
    '0.00782'
    """
    from conformance.dtype_helpers import eps
    from conformance.spec import ToleranceRule
    from conformance.tolerance import FALLBACK_ULPS

    return (ToleranceRule().floor_ulps * eps(dtype) + FALLBACK_ULPS * eps(accumulation_dtype(dtype))) * scale


def assert_close(
    actual: Any,
    expected: Any,
    *,
    dtype: str | torch.dtype | None = None,
    msg: str = "",
    reference: Any = None,
    scale: float | None = None,
) -> Measurement:
    """Assert ``max |actual − expected| ≤ tolerance``, the tolerance derived from ``dtype``'s precision.

    ``expected`` is the truth (ideally computed in float64); ``actual`` the result under test. The
    error is measured in float64 as the largest absolute difference (equal infinities count as no
    error, a NaN on either side as an infinite one), against a bound at the *scale* of the result,
    ``scale`` = max |expected| unless given (pass the magnitude of the terms a result is summed from
    when it cancels, as :mod:`conformance.error_bounds` does):

    - with ``reference`` — the same computation at the tested precision by a trusted implementation —
      the harness's own rule (:func:`conformance.tolerance.derive`): 2 × max |reference − expected|
      + 8 × eps(dtype) × scale, which adapts to the rounding the computation really accumulates;
    - without, :func:`default_tolerance`: (8 × eps(dtype) + 64 × eps(float32 for float16/bfloat16,
      else dtype)) × scale.

    ``dtype`` defaults to the less precise floating dtype of ``actual`` and ``expected``; two
    integer or boolean tensors are compared exactly. Shapes must be equal (no broadcasting).

    Relation to ``torch.testing.assert_close`` (elementwise ``|a − e| ≤ atol + rtol·|e|`` with a table
    per dtype): its rtol is about 11 ulps for float32, 1 ulp for float16, 2 ulps for bfloat16 and
    4.5e8 ulps for float64, plus a fixed atol of 1e-5 (1e-7 for float64) whatever the magnitude — so
    every tensor below 1e-5 passes, and float64 is checked far below its precision. Here the bound is
    a whole number of ulps at the result's scale for every dtype: about as strict as torch's for
    float32 (8.6e-6 against 1.1e-5 at scale 1), about 1e7 times stricter for float64, and looser for
    float16 (7.8e-3 against 1e-3) and bfloat16 (6.3e-2 against 1.6e-2), whose results are rounded
    to few bits — torch's 1–2 ulps there flake on correct code. Being normwise, it checks elements
    far below the scale only to the scale's precision.

    Returns the :class:`~conformance.tolerance.Measurement`; raises ``AssertionError`` on failure.

    >>> import torch
    >>> assert_close(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.5]), msg="logits")
    Traceback (most recent call last):
    ...
    AssertionError: logits: not close at float32: max |actual - expected| = 0.5 at index (1,) (actual 2, expected 2.5); ...
    """
    from conformance.tolerance import Measurement, Tolerance, derive

    prefix = f"{msg}: " if msg else ""
    a, e = _as_tensor(actual, "actual"), _as_tensor(expected, "expected")
    if tuple(a.shape) != tuple(e.shape):
        raise AssertionError(f"{prefix}shape {tuple(a.shape)} != expected {tuple(e.shape)}")
    name = _dtype_name(dtype) if dtype is not None else _common_dtype(a, e)
    if name is None:
        return _assert_equal(a, e, prefix)
    a64, e64 = _to_float64(a), _to_float64(e)
    scale_basis = "given" if scale is not None else "max |expected|"
    scale = float(scale) if scale is not None else _scale_of(e64)
    if reference is not None:
        from conformance.spec import ToleranceRule
        from conformance.tolerance import max_abs

        ref64 = _to_float64(_as_tensor(reference, "reference"))
        if ref64.shape != e64.shape:
            raise ValueError(f"reference shape {ref64.shape} != expected {e64.shape}")
        tol = derive(name, baseline=max_abs(ref64, e64), scale=scale, rule=ToleranceRule())
        basis = f"{tol.describe()}, at scale {scale:.4g} ({scale_basis})"
    else:
        atol = default_tolerance(name, scale)
        tol = Tolerance(atol, None, atol, 0.0, 1.0, None)
        basis = f"(8 ulps of {name} + 64 ulps of {accumulation_dtype(name)} accumulation) × scale {scale:.4g} ({scale_basis})"
    diff = _abs_diff(a64, e64)
    err = float(diff.max()) if diff.size else 0.0
    rel = err / scale if scale > 0 else err
    if err <= tol.atol:
        return Measurement(err, rel, tol, True, f"max |error| {err:.4g} <= tolerance {tol.atol:.4g}")
    detail = _failure_detail(a64, e64, diff, tol.atol)
    message = f"{prefix}not close at {name}: {detail}; tolerance {tol.atol:.4g} = {basis}"
    if scale == 0:
        message += "; expected is all zero, so only exact zeros pass: pass scale= the magnitude errors are measured against"
    raise AssertionError(message)


def assert_tensor_equal(a: Any, b: Any, msg: str = "", rtol: float = 1e-5, atol: float = 1e-5) -> None:
    """Assert ``a`` and ``b`` are approximately equal: ``|a − b| ≤ atol + rtol·|b|`` at every element.

    The implementation guide's helper with its signature and semantics (those of ``torch.allclose``:
    NaNs are never equal, equal infinities are), and without its defects: the shapes must be equal,
    the check is an explicit ``raise`` (it survives ``python -O``), and operands of different dtypes or
    devices are compared in float64 on the CPU. For a tolerance derived from the dtype's precision use
    :func:`assert_close`.

    >>> import torch
    >>> assert_tensor_equal(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.00001]))
    >>> assert_tensor_equal(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.5]), msg="logits")
    Traceback (most recent call last):
    ...
    AssertionError: logits: max diff = 0.5 (1 of 2 elements differ; worst at index (1,): 2 vs 2.5, allowed 3.5e-05)
    """
    import torch

    prefix = f"{msg}: " if msg else ""
    x, y = _as_tensor(a, "a"), _as_tensor(b, "b")
    if tuple(x.shape) != tuple(y.shape):
        raise AssertionError(f"{prefix}shape {tuple(x.shape)} != {tuple(y.shape)}")
    if x.numel() == 0:
        return
    x64 = x.detach().to("cpu", torch.float64)
    y64 = y.detach().to("cpu", torch.float64)
    close = torch.isclose(x64, y64, rtol=rtol, atol=atol)
    if bool(close.all()):
        return
    diff = (x64 - y64).abs()
    diff = torch.where(torch.isnan(diff) | ~close & torch.isinf(diff), torch.full_like(diff, float("inf")), diff)
    worst = torch.where(close, torch.full_like(diff, -1.0), diff)
    index = tuple(int(i) for i in torch.unravel_index(torch.argmax(worst), worst.shape)) if worst.dim() else ()
    allowed = atol + rtol * abs(float(y64[index]))
    allowed_text = f"allowed {allowed:.2g}" if allowed == allowed else "a NaN is never equal"
    raise AssertionError(
        f"{prefix}max diff = {float(diff[index]):.4g} ({int((~close).sum())} of {close.numel()} elements differ; "
        f"worst at index {index}: {float(x64[index]):.6g} vs {float(y64[index]):.6g}, {allowed_text})"
    )


def _np() -> Any:
    import numpy

    return numpy


def _as_tensor(value: Any, what: str) -> torch.Tensor:
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor):
        tensor = value
    elif isinstance(value, np.ndarray):
        tensor = torch.from_numpy(np.ascontiguousarray(value))
    else:  # Python numbers and nested lists: floats as float64, not torch's float32 default
        tensor = torch.from_numpy(np.asarray(value))
    if tensor.is_complex():
        raise TypeError(f"{what}: complex tensors are not supported")
    return tensor


def _dtype_name(dtype: Any) -> str:
    from conformance.dtype_helpers import DTYPES

    name = str(dtype).removeprefix("torch.")
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return name


def _common_dtype(a: torch.Tensor, e: torch.Tensor) -> str | None:
    """The less precise floating dtype of the two (largest epsilon), or None if neither is floating."""
    import torch

    floating = [t.dtype for t in (a, e) if t.is_floating_point()]
    if not floating:
        return None
    return _dtype_name(max(floating, key=lambda d: torch.finfo(d).eps))


def _to_float64(t: torch.Tensor) -> np.ndarray:
    import torch

    return t.detach().to(device="cpu", dtype=torch.float64).numpy()


def _scale_of(e64: np.ndarray) -> float:
    """max |expected|, or 1 where it has no finite maximum (as :func:`conformance.tolerance.compare`)."""
    np = _np()
    return float(np.max(np.abs(e64))) if e64.size and np.all(np.isfinite(e64)) else 1.0


def _abs_diff(a64: np.ndarray, e64: np.ndarray) -> np.ndarray:
    """|a − e| per element: equal values (equal infinities too) 0, NaN on either side +inf."""
    np = _np()
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(a64 == e64, 0.0, np.abs(a64 - e64))
    return np.where(np.isnan(diff), np.inf, diff)


def _failure_detail(a64: np.ndarray, e64: np.ndarray, diff: np.ndarray, atol: float) -> str:
    np = _np()
    where = np.unravel_index(int(np.argmax(diff)), diff.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(diff == 0, 0.0, diff / np.abs(e64))  # |e| = 0 with an error: infinite
    rel = np.where(np.isnan(rel), np.inf, rel)
    where_rel = np.unravel_index(int(np.argmax(rel)), rel.shape)
    return (
        f"max |actual - expected| = {diff[where]:.4g} at index {tuple(int(i) for i in where)} "
        f"(actual {a64[where]:.6g}, expected {e64[where]:.6g}); "
        f"max |actual - expected| / |expected| = {rel[where_rel]:.4g} at index {tuple(int(i) for i in where_rel)} "
        f"(actual {a64[where_rel]:.6g}, expected {e64[where_rel]:.6g}); "
        f"{int(np.sum(diff > atol))} of {diff.size} elements exceed the tolerance"
    )


def _assert_equal(a: torch.Tensor, e: torch.Tensor, prefix: str) -> Measurement:
    """Integer and boolean tensors: exact equality."""
    from conformance.tolerance import Measurement

    av, ev = a.detach().cpu().numpy(), e.detach().cpu().numpy()
    unequal = av != ev
    if not unequal.any():
        return Measurement(0.0, 0.0, None, True, "exactly equal")
    np = _np()
    where = tuple(int(i) for i in np.argwhere(unequal)[0])
    raise AssertionError(
        f"{prefix}not equal ({a.dtype} and {e.dtype} are compared exactly): {int(unequal.sum())} of {unequal.size} "
        f"elements differ; first at index {where} (actual {av[where]}, expected {ev[where]})"
    )


# -- parameters and gradients -----------------------------------------------------------------------
def count_parameters(model: torch.nn.Module, trainable_only: bool = True) -> int:
    """The number of parameter entries: those with ``requires_grad`` (or all), a shared one once.

    >>> import torch
    >>> model = torch.nn.Linear(4, 3)
    >>> count_parameters(model)
    15
    >>> model.bias.requires_grad_(False)
    Parameter containing:
    ...
    >>> count_parameters(model), count_parameters(model, trainable_only=False)
    (12, 15)
    """
    from torch.nn.parameter import UninitializedParameter

    lazy = [name for name, p in model.named_parameters() if isinstance(p, UninitializedParameter)]
    if lazy:
        raise ValueError(f"parameters {', '.join(lazy)} are not initialised yet (lazy modules): run a forward pass first")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def check_gradient_flow(
    model: torch.nn.Module, inputs: Any, loss_fn: Callable[[Any], torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """Assert that every trainable parameter of ``model`` gets a present, finite gradient.

    Calls ``model(**inputs)`` (a mapping), ``model(*inputs)`` (a tuple or list) or ``model(inputs)``,
    takes ``loss_fn(outputs)`` — by default ``outputs.loss`` if there is one, else the sum of every
    floating tensor in the outputs — and differentiates it with ``torch.autograd.grad``, so stale
    ``.grad`` values from earlier steps cannot hide an unused parameter and the model's ``.grad``
    are left untouched. A parameter fails if its gradient is ``None`` (never used for the loss, or
    only through a detached path) or has a NaN or infinite entry; all failures are reported in one
    ``AssertionError``. A gradient of zeros passes (a dead ReLU is not a defect by itself). The model
    stays in the mode it is in (train or eval).

    Returns the gradients by parameter name.

    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    >>> sorted(check_gradient_flow(model, torch.randn(5, 3)))
    ['0.bias', '0.weight', '1.bias', '1.weight']
    """
    import torch

    params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"{type(model).__name__} has no trainable parameters: there is no gradient flow to check")
    if isinstance(inputs, Mapping):
        outputs = model(**inputs)
    elif isinstance(inputs, (tuple, list)):
        outputs = model(*inputs)
    else:
        outputs = model(inputs)
    loss = loss_fn(outputs) if loss_fn is not None else _default_loss(outputs)
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ValueError(f"the loss must be a tensor with one element, got {_shape_text(loss)}")
    grads: tuple[torch.Tensor | None, ...] = (None,) * len(params)
    if loss.requires_grad:
        grads = torch.autograd.grad(loss.sum(), [p for _, p in params], allow_unused=True)
    problems = [problem for (name, _), g in zip(params, grads) if (problem := _gradient_problem(name, g))]
    if problems:
        head = f"gradient flow: {len(problems)} of {len(params)} trainable parameters have no finite gradient"
        if not loss.requires_grad:
            head += " (the loss does not require grad: no parameter reaches it)"
        elif not bool(torch.isfinite(loss.detach()).all()):
            head += f" (the loss itself is {loss.detach().item()})"
        raise AssertionError(head + ":\n  " + "\n  ".join(problems))
    return {name: g for (name, _), g in zip(params, grads) if g is not None}


def _gradient_problem(name: str, grad: torch.Tensor | None) -> str | None:
    import torch

    if grad is None:
        return f"{name}: no gradient (None): not used to compute the loss, or only through a detached path"
    nan, inf = int(torch.isnan(grad).sum()), int(torch.isinf(grad).sum())
    if nan or inf:
        return f"{name}: non-finite gradient: {nan} NaN and {inf} infinite of {grad.numel()} entries"
    return None


def _default_loss(outputs: Any) -> torch.Tensor:
    """``outputs.loss`` if present, else the sum of every floating tensor in the outputs (in ≥ float32)."""
    import torch

    loss = getattr(outputs, "loss", None)
    if isinstance(loss, torch.Tensor):
        return loss
    tensors = [t for t in _tensors(outputs) if t.is_floating_point()]
    if not tensors:
        raise TypeError(f"cannot build a loss from outputs of type {type(outputs).__name__}; pass loss_fn")
    return sum(t.to(torch.promote_types(t.dtype, torch.float32)).sum() for t in tensors)


def _tensors(value: Any) -> list[torch.Tensor]:
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, Mapping):
        return [t for v in value.values() for t in _tensors(v)]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    return []


def _shape_text(value: Any) -> str:
    shape = getattr(value, "shape", None)
    return f"{type(value).__name__} of shape {tuple(shape)}" if shape is not None else type(value).__name__


# -- fixtures -----------------------------------------------------------------------------------------
SAMPLE_BATCH_SIZE, SAMPLE_SEQ_LEN, SAMPLE_VOCAB_SIZE = 2, 10, 1000


def make_sample_batch(
    device: str | torch.device = "cpu",
    *,
    batch_size: int = SAMPLE_BATCH_SIZE,
    seq_len: int = SAMPLE_SEQ_LEN,
    vocab_size: int = SAMPLE_VOCAB_SIZE,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """A token batch: ``input_ids`` (B, L) int64 in [0, vocab_size) and ``attention_mask`` (B, L) int64 ones.

    Drawn on the CPU from a generator seeded with ``seed`` and then moved to ``device``, so the same
    seed gives the same tokens on every device and in every run. The mask follows the tokenizer
    convention (1 = a real token, 0 = padding).

    >>> batch = make_sample_batch()
    >>> batch["input_ids"].shape, batch["attention_mask"].dtype
    (torch.Size([2, 10]), torch.int64)
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(0, vocab_size, (batch_size, seq_len), generator=generator)  # (B, L)
    attention_mask = torch.ones(batch_size, seq_len, dtype=torch.long)  # (B, L)
    return {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device)}


@pytest.fixture
def device() -> torch.device:
    """``cuda`` when a GPU is available, else ``cpu``."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.fixture
def sample_batch(device: torch.device) -> dict[str, torch.Tensor]:
    """:func:`make_sample_batch` on the ``device`` fixture's device (2 sequences of 10 tokens, seed 0)."""
    return make_sample_batch(device)
