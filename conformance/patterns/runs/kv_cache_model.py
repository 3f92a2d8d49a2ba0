"""What runs for the pattern kind ``append_cache`` (:mod:`conformance.patterns.kv_cache_model`)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule, run_state_machine_as_test

from conformance.checks import CheckSkipped
from conformance.dtype_helpers import to_numpy64, torch_dtype
from conformance.patterns import PatternContext
from conformance.patterns.kv_cache_model import DEFAULT_INTERFACE
from conformance.references import attention as attention_reference
from conformance.tolerance import Measurement, compare, max_abs, worst

if TYPE_CHECKING:
    from conformance.model import ToleranceRule

_BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
_FOREIGN_MODULES = ("builtins", "torch", "numpy")  # exceptions from here are not an implementation's own
# an overflow failure's cause in words, before " — " and the evidence (conformance.peers reads it for the table)
NO_CAPACITY_ERROR = "no capacity error"
LOST = "a refused update changes the cache"


class Violation(Exception):
    """A property the cache broke, with what was measured (``check`` names the property)."""

    def __init__(self, check: str, message: str, error: float = math.nan, measurement: Measurement | None = None) -> None:
        super().__init__(f"{check}: {message}")
        self.check, self.error, self.measurement = check, error, measurement


# -- tensors --------------------------------------------------------------------------------------


def _specials(dtype: torch.dtype) -> torch.Tensor:
    """Values a copy must keep bit for bit: signed zeros, infinities, NaN, subnormal, extremes."""
    info = torch.finfo(dtype)
    values = [0.0, -0.0, math.inf, -math.inf, math.nan, info.smallest_normal / 4, -info.max, info.tiny]
    return torch.tensor(values, dtype=torch.float64).to(dtype)


def draw_values(shape: tuple[int, ...], seed: int, dtype: str, device: str, *, special: bool, wide: bool) -> torch.Tensor:
    """Deterministic values for one tensor: ``wide`` spans the dtype's exponent range, else U(−1, 1).

    >>> draw_values((2, 3), 0, "float16", "cpu", special=False, wide=False).abs().max() <= 1
    tensor(True)
    """
    gen = torch.Generator().manual_seed(seed)
    dt = torch_dtype(dtype)
    uniform = torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1
    if wide:  # sign × [1, 2) × 2^e, e uniform over the dtype's normal exponents
        info = torch.finfo(dt)
        e_lo, e_hi = int(math.log2(info.smallest_normal)), int(math.floor(math.log2(info.max)))
        exps = torch.randint(e_lo, e_hi, shape, generator=gen, dtype=torch.float64)
        uniform = torch.sign(uniform) * (1 + uniform.abs()) * torch.exp2(exps)
    out = uniform.to(dt)
    if special:
        table = _specials(dt)
        pick = torch.rand(shape, generator=gen) < 0.15
        which = torch.randint(len(table), shape, generator=gen)
        out = torch.where(pick, table[which], out)
    return out.to(device)


def first_difference(actual: torch.Tensor, expected: torch.Tensor) -> tuple[str, float] | None:
    """Where ``actual`` (converted to ``expected``'s dtype and device) differs bitwise, and the max |error|.

    Where the dtypes differ, a NaN for a NaN counts as equal: dtype conversions need not keep NaN
    payloads, and the wrong dtype is the dtype_device check's to report.

    >>> first_difference(torch.tensor([0.0, 1.0]), torch.tensor([-0.0, 1.0]))[0]
    'at (0,): expected -0.0, found 0.0 (1 of 2 elements differ)'
    """
    if tuple(actual.shape) != tuple(expected.shape):
        return f"shape {tuple(actual.shape)}, expected {tuple(expected.shape)}", math.inf
    a = actual.detach().to(device=expected.device, dtype=expected.dtype).contiguous()
    e = expected.detach().contiguous()
    bits = _BITS[e.element_size()]
    diff = a.view(bits) != e.view(bits)
    if actual.dtype != expected.dtype:
        diff &= ~(a.isnan() & e.isnan())
    if not bool(diff.any()):
        return None
    where = tuple(int(i) for i in diff.nonzero()[0])
    err = max_abs(to_numpy64(a[diff]), to_numpy64(e[diff]))
    found = actual.detach()[where].item()
    text = f"at {where}: expected {e[where].item()!r}, found {found!r} ({int(diff.sum())} of {diff.numel()} elements differ)"
    return text, err


# -- the model and the machine --------------------------------------------------------------------


@dataclass
class RunLog:
    """What the machines did, over every run of one check."""

    runs: int = 0
    updates: int = 0
    refused: int = 0
    resets: int = 0
    worst: Measurement | None = None

    def observe(self, m: Measurement) -> None:
        self.worst = m if self.worst is None else worst([self.worst, m])


@dataclass
class Setup:
    """Everything the machine needs from the context, resolved once."""

    target: Callable[..., Any]
    attention: Callable[..., torch.Tensor] | None
    device: str
    dtype: str
    options: Mapping[str, Any]
    tolerance_rule: ToleranceRule  # for decoding: the spec's tolerance at the tested dtype
    convention: Mapping[str, Any] = field(default_factory=lambda: DEFAULT_INTERFACE)  # how the cache is built and called
    log: RunLog = field(default_factory=RunLog)

    def has(self, check: str) -> bool:
        return check in self.options["checks"]

    def build(self, sizes: Mapping[str, int]) -> tuple[str, Any]:
        """The cache for ``sizes``, built with the constructor keywords the convention declares, and the call in words."""
        values: dict[str, Any] = {**sizes, "device": self.device, "dtype": torch_dtype(self.dtype)}
        kwargs = {kw: values[size] for kw, size in self.convention["init"].items()}
        shown = ", ".join(f"{kw}={value!r}" for kw, value in kwargs.items())
        what = f"{getattr(self.target, '__name__', 'cache')}({shown})"
        cache = _call(what, self.target, **kwargs)
        if self.convention["to_device"]:
            what += f".to({self.device!r})"
            cache = _call(what, cache.to, self.device)
        return what, cache

    def update(self, cache: Any, k: torch.Tensor, v: torch.Tensor) -> Any:
        """The cache's update as the convention declares it: its method, with its literal keywords."""
        return getattr(cache, self.convention["update"])(k, v, **self.convention["constants"])

    def contents(self, cache: Any, result: Any, what: str) -> tuple[torch.Tensor, torch.Tensor]:
        """What an update returned, as (K, V) of the cached positions: a whole buffer is cut to the length the cache
        reports (``returns: buffer`` with ``length``)."""
        K, V = _pair(result, what)
        if self.convention["returns"] != "buffer":
            return K, V
        name = self.convention["length"]
        found = getattr(cache, name)
        length = found() if callable(found) else found
        length = int(length.item()) if isinstance(length, torch.Tensor) else length
        if not isinstance(length, int) or isinstance(length, bool) or not 0 <= length <= min(K.size(2), V.size(2)):
            shapes = f"{tuple(K.shape)}, {tuple(V.shape)}"
            said = f"the cache's {name} is {length!r}: not a length within the buffers {shapes}"
            raise Violation("interface", f"after {what}, {said}")
        return K[:, :, :length], V[:, :, :length]  # (B, H, length, Dh): views of the buffers


def _call(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call the implementation; an exception on a valid call is a violation, with its context."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        raise Violation("valid call", f"{what} raised {type(exc).__name__}: {exc}") from exc


def _pair(result: Any, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not (isinstance(result, (tuple, list)) and len(result) == 2 and all(isinstance(t, torch.Tensor) for t in result)):
        raise Violation("interface", f"{what} returned {type(result).__name__}, expected a pair of tensors (K, V)")
    return result[0], result[1]


def _clear_error(exc: Exception, capacity: int, used: int, length: int) -> str | None:
    """Why an overflow error is not clear enough, or None: its type, then the numbers its message names."""
    cls = type(exc)
    dedicated = cls.__module__.split(".")[0] not in _FOREIGN_MODULES
    if not (isinstance(exc, ValueError) or dedicated):
        return (
            f"{NO_CAPACITY_ERROR} (a bare {cls.__name__}) — raised {cls.__name__} ({exc}), expected ValueError or an "
            "exception class of the implementation's own"
        )
    text = str(exc)
    if not _names(text, capacity) or not (_names(text, length) or _names(text, used + length)):
        wanted = f"the capacity ({capacity}) and the requested length ({length} or {used + length})"
        return f"an unclear capacity error — the error message {text!r} must name {wanted}"
    return None


def _names(text: str, number: int) -> bool:
    """``number`` appears in ``text`` as a whole number (4 in "capacity 4", not in "48")."""
    return re.search(rf"(?<!\d){number}(?!\d)", text) is not None


def build_machine(setup: Setup) -> type[RuleBasedStateMachine]:
    """The state machine class for one (implementation, device, dtype) and the entry's options."""
    opts = setup.options
    (b_lo, b_hi), (h_lo, h_hi), (d_lo, d_hi) = opts["batch_size"], opts["n_heads"], opts["head_dim"]
    (c_lo, c_hi), (u_lo, u_hi) = opts["max_seq_len"], opts["update_length"]
    dt = torch_dtype(setup.dtype)

    class KVCacheMachine(RuleBasedStateMachine):
        """Model: the lists of k, v (and q) since the last reset; their concatenation is the truth."""

        @initialize(
            batch_size=st.integers(b_lo, b_hi),
            n_heads=st.integers(h_lo, h_hi),
            head_dim=st.integers(d_lo, d_hi),
            max_seq_len=st.integers(c_lo, c_hi),
            seed=st.integers(0, 2**31 - 1),
        )
        def build(self, batch_size: int, n_heads: int, head_dim: int, max_seq_len: int, seed: int) -> None:
            setup.log.runs += 1
            self.dims, self.capacity, self.seed, self.draws = (batch_size, n_heads, head_dim), max_seq_len, seed, 0
            sizes = {"batch_size": batch_size, "max_seq_len": max_seq_len, "n_heads": n_heads, "head_dim": head_dim}
            self.built, self.cache = setup.build(sizes)
            self._forget()
            self.just_reset = True  # a fresh cache is as good as reset: no reset before the first update

        def _forget(self) -> None:
            self.ks: list[torch.Tensor] = []
            self.vs: list[torch.Tensor] = []
            self.qs: list[torch.Tensor] = []
            self.returned: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (K, V, K copy, V copy)

        @property
        def length(self) -> int:
            return sum(k.size(2) for k in self.ks)

        def _tensor(self, length: int) -> torch.Tensor:
            self.draws += 1
            b, h, d = self.dims
            return draw_values(
                (b, h, length, d),  # (B, H, L, Dh)
                self.seed * 1_000_003 + self.draws,
                setup.dtype,
                setup.device,
                special=opts["special_values"],
                wide=not setup.has("decoding"),
            )

        def _last(self) -> tuple[torch.Tensor, torch.Tensor]:
            """Copies of the last (K, V) the cache returned since the reset (empty before any)."""
            if self.returned:
                return self.returned[-1][2], self.returned[-1][3]
            b, h, d = self.dims
            empty = torch.empty(b, h, 0, d, dtype=dt, device=setup.device)  # (B, H, 0, Dh)
            return empty, empty

        def _send(self, length: int) -> tuple[torch.Tensor, torch.Tensor]:
            """One valid update: call, record, check everything the entry lists."""
            k, v = self._tensor(length), self._tensor(length)
            q = self._tensor(length) if setup.has("decoding") else None
            before = self.length
            what = f"an update of length {length} with {before} of max_seq_len={self.capacity} positions cached"
            K, V = setup.contents(self.cache, _call(what, setup.update, self.cache, k, v), what)
            setup.log.updates += 1
            self.just_reset = False
            self.ks.append(k.clone())
            self.vs.append(v.clone())
            if q is not None:
                self.qs.append(q)
            self._check_returned(K, V, k, what)
            if setup.has("history"):
                self._check_history(f"after {what}")
            self.returned.append((K, V, K.detach().clone(), V.detach().clone()))
            if q is not None and length > 0:
                self._check_decoding(q, K, V, before, length)
            return K, V

        def _check_returned(self, K: torch.Tensor, V: torch.Tensor, k: torch.Tensor, what: str) -> None:
            if setup.has("dtype_device"):
                for name, t in (("K", K), ("V", V)):
                    if t.dtype != k.dtype or t.device != k.device:
                        raise Violation(
                            "dtype_device",
                            f"after {what}, returned {name} is {t.dtype} on {t.device}; the inputs are {k.dtype} on {k.device}",
                        )
            if setup.has("contents"):
                for name, t, parts in (("K", K, self.ks), ("V", V, self.vs)):
                    found = first_difference(t, torch.cat(parts, dim=2))  # (B, H, len, Dh)
                    if found is not None:
                        raise Violation(
                            "contents",
                            f"after {what}, returned {name} is not the concatenation of the "
                            f"{len(parts)} update(s) since the last reset: {found[0]}",
                            found[1],
                        )

        def _check_history(self, when: str) -> None:
            for i, (K, V, K0, V0) in enumerate(self.returned):
                for name, t, copy in (("K", K, K0), ("V", V, V0)):
                    found = first_difference(t, copy)
                    if found is not None:
                        raise Violation(
                            "history",
                            f"{when}, the {name} returned by update #{i + 1} since the last reset changed: {found[0]} "
                            "(returned tensors must stay valid until reset)",
                            found[1],
                        )

        def _check_decoding(self, q: torch.Tensor, K: torch.Tensor, V: torch.Tensor, before: int, length: int) -> None:
            assert setup.attention is not None
            what = f"attention of {length} new queries over {before + length} cached positions"
            out = _call(what, setup.attention, q, K, V)
            m = decoding_error(out, length, torch.cat(self.qs, 2), torch.cat(self.ks, 2), torch.cat(self.vs, 2), setup)
            setup.log.observe(m)
            if not m.passed:
                raise Violation("decoding", f"{what} (positions {before}..{before + length - 1}): {m.detail}", m.max_abs_err, m)

        @precondition(lambda self: self.capacity - self.length >= u_lo)
        @rule(data=st.data())
        def update(self, data: st.DataObject) -> None:
            room = self.capacity - self.length  # updates that do not fit are the overflow rule's
            self._send(data.draw(st.integers(u_lo, min(u_hi, room)), label="length"))

        @precondition(lambda self: not self.just_reset)  # two resets in a row test nothing new, and crowd out updates
        @rule()
        def reset(self) -> None:
            _call(f"{setup.convention['reset']}()", getattr(self.cache, setup.convention["reset"]))
            setup.log.resets += 1
            self._forget()
            self.just_reset = True

        @precondition(lambda self: setup.has("overflow") and setup.convention["capacity"])
        @rule(excess=st.integers(1, max(1, u_hi)))
        def overflow(self, excess: int) -> None:
            used = self.length
            length = self.capacity - used + excess
            k, v = self._tensor(length), self._tensor(length)
            what = f"an update of length {length} with {used} of max_seq_len={self.capacity} positions cached"
            try:
                result = setup.update(self.cache, k, v)
            except Exception as exc:
                why = _clear_error(exc, self.capacity, used, length)
                if why is not None:
                    said, evidence = why.split(" — ", 1)
                    raise Violation("overflow", f"{said} — {what} {evidence}") from exc
            else:
                shapes = [tuple(t.shape) for t in result] if isinstance(result, (tuple, list)) else type(result).__name__
                said = f"{NO_CAPACITY_ERROR} (the update is accepted)"
                raise Violation("overflow", f"{said} — {what} was accepted (returned {shapes}); expected an error")
            setup.log.refused += 1
            self.just_reset = False
            self._probe(f"after {what} was refused")

        def _probe(self, when: str) -> None:
            """The next update returns what the last one did plus what it appends: nothing was lost."""
            if setup.has("history"):
                self._check_history(when)
            probe = u_lo
            if self.length + probe > self.capacity:
                return  # full and empty updates not drawn: the next reset starts afresh
            K0, V0 = self._last()
            try:
                K, V = self._send(probe)
            except Violation as exc:
                if exc.check != "valid call":
                    raise
                crash = str(exc).split(": ", 1)[1]
                raise Violation("overflow", f"{LOST} — {when}, {crash} (the refused update changed the cache)") from exc
            for name, t, last, new in (("K", K, K0, self.ks[-1]), ("V", V, V0, self.vs[-1])):
                found = first_difference(t, torch.cat([last, new.to(last.dtype)], dim=2))
                if found is not None:
                    raise Violation(
                        "overflow",
                        f"{LOST} — {when}, an update of length {probe} returned {name} that is not the previous result plus the "
                        f"new positions: {found[0]} (the refused update changed the cache)",
                        found[1],
                    )

    return KVCacheMachine


# -- decoding -------------------------------------------------------------------------------------


def _causal_attention_torch(Q: torch.Tensor, K: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """Eq. 1 with a causal mask over a whole sequence, at Q's precision: the same-precision reference."""
    n = Q.size(-2)
    allowed = torch.ones(n, n, dtype=torch.bool, device=Q.device).tril()  # (n, n)
    scores = (Q @ K.transpose(-2, -1)) / math.sqrt(Q.size(-1))  # (B, H, n, n)
    return torch.softmax(scores.masked_fill(~allowed, -math.inf), dim=-1) @ V  # (B, H, n, Dh)


def decoding_error(out: Any, chunk: int, Q: torch.Tensor, K: torch.Tensor, V: torch.Tensor, setup: Setup) -> Measurement:
    """The last ``chunk`` positions' attention through the cache vs full causal attention.

    Q, K, V: (B, H, n, Dh), everything since the reset. Expected: the float64 reference
    (``conformance.references.attention``, query t attends keys <= t) on the inputs as the dtype
    holds them; the tolerance is derived from the same computation at the tested dtype (the spec's
    ``tolerances`` may override its factor, with a reason). Scale: max |V|, since each output row
    is a convex combination of rows of V, so rounding grows with |V|, not with the output, which
    may cancel to near zero.
    """
    if not isinstance(out, torch.Tensor):
        return Measurement(math.inf, math.inf, None, False, f"attention returned {type(out).__name__}, expected a tensor")
    if out.dtype != Q.dtype or out.device != Q.device:
        found = f"output is {out.dtype} on {out.device}, expected {Q.dtype} on {Q.device}"
        return Measurement(math.inf, math.inf, None, False, found)
    n = Q.size(-2)
    q64, k64, v64 = to_numpy64(Q), to_numpy64(K), to_numpy64(V)
    full = attention_reference(q64, k64, v64, mask=np.ones((n, n), dtype=bool), is_causal=True, Lq=n, Lk=n)  # (B, H, n, Dh)
    expected = full[..., n - chunk :, :]  # (B, H, L, Dh)
    same = to_numpy64(_causal_attention_torch(Q, K, V))[..., n - chunk :, :]  # (B, H, L, Dh)
    scale = float(np.max(np.abs(v64))) if v64.size else 1.0
    rule = setup.tolerance_rule
    return compare(to_numpy64(out), expected, dtype=setup.dtype, rule=rule, reference=same, scale=scale)


# -- running --------------------------------------------------------------------------------------


def _violation(exc: BaseException) -> Violation | None:
    """The Violation inside ``exc`` (Hypothesis may wrap it in a group)."""
    if isinstance(exc, Violation):
        return exc
    for inner in getattr(exc, "exceptions", ()) or ():
        found = _violation(inner)
        if found is not None:
            return found
    return None


def _steps(*excs: BaseException) -> str:
    notes = [line for exc in excs for line in getattr(exc, "__notes__", ()) or () if line.strip()]
    return "\n".join(notes) if notes else "(Hypothesis printed no steps)"


def run(ctx: PatternContext) -> Measurement:
    """Run the state machine for ``ctx``'s implementation, device and dtype; a failing Measurement carries the steps."""
    options = ctx.options
    attention = None
    if "decoding" in options["checks"]:
        from conformance.calling import resolve

        attention = resolve(options["attention"], Path(ctx.spec.file).parent)
    convention = ctx.interface or DEFAULT_INTERFACE
    if "overflow" in options["checks"] and not convention["capacity"]:
        raise CheckSkipped(
            "the implementation declares no capacity (interface capacity: false; it grows without bound), "
            "so there is no update past max_seq_len to refuse"
        )
    setup = Setup(ctx.target(), attention, ctx.device, ctx.dtype, options, ctx.rule, convention)
    machine = build_machine(setup)
    run_settings = settings(
        ctx.settings,
        phases=[p for p in ctx.settings.phases if p != Phase.explain],  # explain traces every line: slow, and noise here
        stateful_step_count=options["max_steps"],
        deadline=None,
        database=None,
        report_multiple_bugs=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
    log = setup.log
    try:
        run_state_machine_as_test(machine, settings=run_settings)
    except Exception as exc:
        found = _violation(exc)
        if found is None:
            raise
        m = found.measurement
        detail = f"{found}\nFalsifying steps:\n{_steps(exc, found) if exc is not found else _steps(found)}"
        if m is not None:
            return Measurement(m.max_abs_err, m.max_rel_err, m.tolerance, False, detail, examples=log.runs)
        return Measurement(found.error, found.error, None, False, detail, examples=log.runs)
    summary = f"{log.runs} runs: {log.updates} updates, {log.refused} refused past capacity, {log.resets} resets"
    if log.worst is not None:
        w = log.worst
        return Measurement(w.max_abs_err, w.max_rel_err, w.tolerance, True, summary, examples=log.runs)
    return Measurement(0.0, 0.0, None, True, summary + "; bitwise", examples=log.runs)
