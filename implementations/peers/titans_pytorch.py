"""titans-pytorch's ``NeuralMemory`` behind ``memory_linear`` / ``memory_mlp`` (docs/titans.md), for the audit.

Library: titans-pytorch 0.5.5 (PyPI), class ``titans_pytorch.neural_memory.NeuralMemory`` with its memory model
``titans_pytorch.memory_models.MemoryMLP``; imported lazily, so this module imports without the ``peers`` extra.
Line references below are to ``titans_pytorch/neural_memory.py`` (nm) and ``memory_models.py`` (mm) of 0.5.5.

What the library computes (per batch row, ``heads = 1``; ``C`` = chunk size, ``W0`` = the state's ``weights``):

- input: one sequence ``x`` [B, T, dim]; ``k = x W_K``, ``v = x W_V`` (nm 652-653), ``q = x W_Q`` (nm 877), after a
  learned RMSNorm of ``x`` by default (``pre_rmsnorm``, nm 325-326, 618, 873). The memory maps ``dim_head`` to
  ``dim_head`` (``dim_head == dim`` when ``heads == 1``, nm 304), so keys and values have one width.
- θ per token: ``sigmoid(Linear(x_t)) * max_lr``, ``max_lr = 1`` (nm 255-256, 629-630), used as the weight of the
  token's loss (nm 400-404); α and η per chunk: ``sigmoid(Linear(mean of the chunk's x))`` (nm 632-640).
- loss: ``mean_j (M(k)_j − v_j)²`` (nm 258-259), an option (``store_memory_loss_fn``).
- gradient: one per chunk, ``g_n = Σ_{i∈chunk n} θ_i ∇ℓ(W0; k_i, v_i)`` at the *same* ``W0`` for every chunk of the
  call (``weights_for_surprise``, nm 614, 703, 714). ``W0`` only moves to the latest memory every ``batch_size``
  tokens when that option (or ``ttt_batch_size``) is set (nm 974-1063); by default it never moves, so a stream's
  every gradient is taken at its initial memory.
- momentum, Eq. 14 per chunk: ``S_n = η_n S_{n−1} − g_n`` (negated gradients nm 739, associative scan nm 789,
  ``a_j * a_i, kv_j + a_j kv_i`` in assoc_scan/assoc_scan.py 43-49).
- forgetting, Eq. 13 per chunk: ``W_n = (1 − α_n) W_{n−1} + S_n``, the scan started from the state's last
  update (nm 813), one decay per chunk (not per token).
- tokens after the last complete chunk are not stored; they wait, raw, in the state's ``cache_store_segment``
  (nm 597-602) for the next call.
- retrieval: the list ``[W_0, W_1, …, W_n]`` (the memory before the call, then after each complete chunk), the
  query sequence shifted right by one and chunked by ``C`` (nm 854-864, 892): token ``i`` reads
  ``W_{⌊(i+1)/C⌋}`` — at ``C = 1`` the memory after its own update (docs/titans.md ``retrieve: after``); at
  ``C > 1`` the memory at the start of its chunk, except the chunk's last token, which reads the memory after it.
- memory model: ``MemoryMLP`` (mm 54-82) is ``x @ W1``, then ``gelu(·) @ W`` per further layer, exact GELU, no
  biases, hidden width ``int(dim * expansion_factor)``; by default wrapped in ``ResidualNorm``
  (``LayerNorm(M(x)) * (γ + 1) + x``, mm 36-50, γ a memory weight learned at test time too; nm 373-374); the
  default model is depth 2, expansion 4 (nm 297-300).

The default configuration departs from the closest in four options (:data:`DEPARTURES`): ``pre_rmsnorm``,
``mem_model_norm_add_residual``, no ``batch_size`` and the MSE loss. ``<spec>_closest_with_<departure>`` is the
closest configuration with that one alone; the audit's default entries declare them, so a failure names the
departures that alone make its example fail (conformance.diagnosis.departures_note).

The adapters feed the drawn ``k, v, q, θ, α, η`` through one sequence ``x = [k | v | q | θ | α | η | 1]``
([B, T, D], ``D = 2 Dk + Dv + 4``): the library's ``to_keys`` / ``to_values`` / ``to_queries`` are set to the
selections ``x ↦ [k | 0]``, ``[v | 0]``, ``[q | 0]`` (exact), the Linear of each gate is replaced by a read of
its channel (divided by the constant-one channel, which cancels a pre-norm's row scale; α and η as tensors
whose sigmoid, which the library applies, nm 634, 640, is the gate itself), and the memory is ``D`` wide with
the drawn weights in its top-left block and zeros elsewhere. The zero rows see zero keys and the zero output columns zero targets,
so the padding gets zero gradients and stays zero: the embedding is exact. Per-chunk gates at ``C > 1`` are
the library's pooling of the drawn ones: the chunk's mean α (η) in the closest configuration; with the default's
RMSNorm before the pooling, their mean weighted by each token's RMSNorm scale.

Not honoured by either configuration (the harness judges the effect):

- ``retrieve``: ignored; the library's read is the one above.
- ``start % chunk_size != 0``: refused with ``NotImplementedError`` — mid-chunk the library's state is the raw
  tokens of the open chunk, which the interface's ``(W, S, A)`` does not carry.
- ``T % chunk_size != 0``: the trailing tokens are read but not stored (the returned ``W, S`` are those after
  the last complete chunk), as the library does with its cache dropped.
- the token-by-token momentum and forgetting steps inside a chunk of ``C > 1``: one step per chunk, with the
  chunk's summed θ-weighted gradient and its pooled α, η (the gradients' point, the chunk-start memory, is the
  recurrence's ``A`` in the closest configuration) — the specs' coarser reading ``step = chunk``, against which the
  audit also judges the closest configuration, declared.
- default configuration only: ``ResidualNorm``'s γ is a memory weight with its own momentum, updated at test time,
  which ``(W, S, A)`` has no slot for: every call starts it (and its momentum) at 0, its init, so a stream split
  into calls reads differently from the library's own stream (the stored ``W, S`` are unaffected: their
  gradients are taken at the gradient point, whose γ is the initial 0).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

LIBRARY = "titans-pytorch"
VERSION = "0.5.5"  # the version read and tested; the extra allows >= 0.5
WRAPPED = "titans_pytorch.neural_memory.NeuralMemory"
LOSSES = ("sum", "mean")
RETRIEVES = ("before", "after")
GATE_CHANNELS = 4  # θ, α, η and a constant one, after [k | v | q]
# The default configuration's departures from the closest one, each in words (the audit names those that cause a
# failure: conformance.diagnosis.departures_note); the closest configuration has none of them, the default all.
DEPARTURES = {
    "pre_rmsnorm": "the RMSNorm of the module input before the projections (pre_rmsnorm)",
    "residual_norm": "the ResidualNorm memory, LayerNorm(M(k)) · (γ + 1) + k (mem_model_norm_add_residual)",
    "fixed_gradient_point": "every gradient at the memory the stream started from (no batch_size)",
    "mse_loss": "the MSE loss whatever the loss option (the default store_memory_loss_fn)",
}
CLOSEST: frozenset[str] = frozenset()
DEFAULT = frozenset(DEPARTURES)


class _ChannelGate(nn.Module):
    """Stands in for a gate's ``Linear``: the drawn gate read from channel ``channel`` of the rows it is given.

    Divided by the constant-one channel ``one`` so a pre-norm's per-row scale cancels. Where the library applies a
    sigmoid after the Linear (α, η: ``sigmoid_follows``), the gate is clamped to [0, 1] against the division's
    roundoff and handed over as a :class:`_GateForSigmoid`, whose sigmoid is the gate itself.
    """

    def __init__(self, channel: int, one: int, sigmoid_follows: bool) -> None:
        super().__init__()
        self.channel, self.one, self.sigmoid_follows = channel, one, sigmoid_follows

    def forward(self, x: Tensor) -> Tensor:
        gate = x[..., self.channel] / x[..., self.one]  # [b, n] (tokens, or chunk means)
        if self.sigmoid_follows:
            gate = gate.clamp(0.0, 1.0).as_subclass(_GateForSigmoid)
        return gate.unsqueeze(-1)  # [b, n, 1]: the Linear's output, heads = 1


class _GateForSigmoid(torch.Tensor):
    """A gate handed to the library where it takes a logit: the library's ``.sigmoid()`` of it (nm 634, 640) returns
    the gate itself, a plain tensor on the same autograd graph — so α and η reach Eq. 13-14 exactly and their
    gradients come back unscaled, at every order. The shape operations between the Linear and the sigmoid (the
    library's ``Rearrange``) keep the type; nothing after the sigmoid has it.

    Why not a logit whose sigmoid rounds back to the gate: the library's float16 sigmoid backward multiplies the
    gradient by σ (1 − σ), which for a gate near 0 or 1 rounds it into float16's subnormals, and undoing that
    product amplifies the rounding by 1 / (σ (1 − σ)) — about 27× at α = 0.96, the float16 ∂/∂α excess the audit
    once reported on the closest configuration, an error of the translation, not of the library's recurrence."""

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func in (torch.Tensor.sigmoid, torch.sigmoid):
            (gate,) = args
            with torch._C.DisableTorchFunctionSubclass():
                return gate.view_as(gate)  # the gate, as a plain tensor: identity forward and backward
        return super().__torch_function__(func, types, args, kwargs or {})


def _identity(t: Tensor) -> Tensor:
    return t


def _loss_fn(dv: int, loss: str) -> Callable[[Tensor, Tensor], Tensor]:
    """Eq. 12 over the ``Dv`` value features: ``Σ_j (M(k)_j − v_j)²`` (``sum``) or that over ``Dv`` (``mean``)."""

    def per_token(pred: Tensor, target: Tensor) -> Tensor:
        total = (pred[..., :dv] - target[..., :dv]).pow(2).sum(dim=-1)
        return total if loss == "sum" else total / dv

    return per_token


def _mse_fn(dv: int) -> Callable[[Tensor, Tensor], Tensor]:
    """The library's default loss (nm 258-259), its mean over the ``Dv`` value features only (not the padding)."""

    def per_token(pred: Tensor, target: Tensor) -> Tensor:
        return (pred[..., :dv] - target[..., :dv]).pow(2).mean(dim=-1)

    return per_token


def _check(
    k: Tensor, v: Tensor, q: Tensor, gates: tuple[Tensor, ...], start: int, chunk_size: int, retrieve: str, loss: str
) -> None:
    if k.ndim != 3 or v.ndim != 3 or q.shape != k.shape or v.shape[:2] != k.shape[:2]:
        raise ValueError(f"k, q must be [B, T, Dk] and v [B, T, Dv]; got {tuple(k.shape)}, {tuple(v.shape)}, {tuple(q.shape)}")
    if any(g.shape != k.shape[:2] for g in gates):
        raise ValueError(f"theta, alpha, eta must be [B, T] = {tuple(k.shape[:2])}")
    if k.shape[1] < 1:
        raise ValueError("at least one token")
    if chunk_size < 1 or start < 0:
        raise ValueError(f"chunk_size >= 1 and start >= 0; got {chunk_size}, {start}")
    if retrieve not in RETRIEVES or loss not in LOSSES:
        raise ValueError(f"retrieve in {RETRIEVES}, loss in {LOSSES}; got {retrieve!r}, {loss!r}")
    if start % chunk_size:
        raise NotImplementedError(
            f"{LIBRARY} {VERSION}: start={start} is inside a chunk (chunk_size={chunk_size}); the library's mid-chunk "
            "state is the open chunk's raw tokens, which (W, S, A) does not carry"
        )


def _embed(t: Tensor, rows: int, cols: int) -> Tensor:
    """``t`` [B, r, c] in the top-left block of zeros [B, rows, cols]."""
    out = t.new_zeros(t.shape[0], rows, cols)  # [B, rows, cols]
    out[:, : t.shape[1], : t.shape[2]] = t
    return out


def _run(
    k: Tensor,
    v: Tensor,
    q: Tensor,
    theta: Tensor,
    alpha: Tensor,
    eta: Tensor,
    layers: tuple[tuple[Tensor, Tensor, Tensor], ...],
    hidden: int,
    *,
    start: int,
    chunk_size: int,
    retrieve: str,
    loss: str,
    departures: frozenset[str],
) -> tuple[Tensor, list[Tensor], list[Tensor], list[Tensor]]:
    """One ``NeuralMemory`` forward over the embedded inputs, configured as close to the paper as the library allows
    but for ``departures`` (of :data:`DEPARTURES`); returns ``y`` and the per-layer ``W, S, A``."""
    _check(k, v, q, (theta, alpha, eta), start, chunk_size, retrieve, loss)
    from tensordict import TensorDict
    from titans_pytorch.memory_models import MemoryMLP
    from titans_pytorch.neural_memory import NeuralMemory, NeuralMemState

    batch, tokens, dk = k.shape
    dv = v.shape[-1]
    width = 2 * dk + dv + GATE_CHANNELS
    ones = k.new_ones(batch, tokens, 1)
    x = torch.cat([k, v, q, theta.unsqueeze(-1), alpha.unsqueeze(-1), eta.unsqueeze(-1), ones], dim=-1)  # [B, T, D]
    i_theta, i_alpha, i_eta, i_one = range(2 * dk + dv, width)
    depth = len(layers)
    unknown = departures - DEFAULT
    if unknown:
        raise ValueError(f"unknown departures {sorted(unknown)}; known: {', '.join(DEPARTURES)}")
    options: dict[str, Any] = dict(
        pre_rmsnorm="pre_rmsnorm" in departures,
        mem_model_norm_add_residual="residual_norm" in departures,
        store_memory_loss_fn=_mse_fn(dv) if "mse_loss" in departures else _loss_fn(dv, loss),
    )
    fixed_point = "fixed_gradient_point" in departures
    if not fixed_point:
        options["batch_size"] = chunk_size
    with torch.random.fork_rng(devices=[]):  # the library draws initial weights and a test input: leave the caller's RNG alone
        # (hidden + 0.5) / D: int(D * expansion_factor) is then `hidden` whatever the rounding (mm 62).
        model = MemoryMLP(width, depth=depth, expansion_factor=(hidden + 0.5) / width)
        mem = NeuralMemory(dim=width, chunk_size=chunk_size, heads=1, model=model, adaptive_step_transform=_identity, **options)
    with torch.no_grad():
        for proj, offset, size in ((mem.to_keys, 0, dk), (mem.to_values, dk, dv), (mem.to_queries, dk + dv, dk)):
            assert isinstance(proj, nn.Linear)
            proj.weight.zero_()  # [D, D]: out x in
            proj.weight[torch.arange(size), offset + torch.arange(size)] = 1.0
    mem.to_adaptive_step[0] = _ChannelGate(i_theta, i_one, sigmoid_follows=False)
    mem.to_decay_factor[0] = _ChannelGate(i_alpha, i_one, sigmoid_follows=True)
    mem.to_momentum[0] = _ChannelGate(i_eta, i_one, sigmoid_follows=True)
    # Its own parameters are fixed here, not learned: outputs need grad only where the drawn inputs do.
    mem = mem.requires_grad_(False).to(dtype=k.dtype, device=k.device)

    # The drawn layers embedded in the D-wide memory: W1 [Dk, H] -> [D, H], last [H, Dv] -> [H, D]; linear [Dk, Dv] -> [D, D].
    outer = [width] + [hidden] * (depth - 1) + [width]
    big = [tuple(_embed(t, outer[i], outer[i + 1]) for t in layer) for i, layer in enumerate(layers)]
    names = mem.memory_model_parameter_names
    weight_names = [n for n in names if not n.endswith("gamma")]
    assert len(weight_names) == depth, names

    def state_dict(which: int) -> dict[str, Tensor]:
        out = {n: big[weight_names.index(n)][which] for n in weight_names}
        out.update({n: k.new_zeros(batch, width) for n in names if n.endswith("gamma")})  # ResidualNorm's γ at its init
        return out

    current, momentum, anchor = state_dict(0), state_dict(1), state_dict(2)
    # The point where gradients are taken (the state's `weights`): the chunk-start memory, W, for the closest
    # configuration; the default's persists across calls (it never moves), so a continuing call passes A.
    grad_point = current if (not fixed_point or start == 0) else anchor
    momentum = {n: s.unsqueeze(0) for n, s in momentum.items()}  # [1, B, ...]: momentum order 1 first
    # TensorDicts, as the library makes them (nm 610, 1071 call their .apply).
    grad_point, current, momentum = (TensorDict(d) for d in (grad_point, current, momentum))
    state = NeuralMemState(start, grad_point, None, (current, momentum), None)
    y, nxt = mem(x, state=state)
    last_update, last_momentum = nxt.states
    if not fixed_point:  # the library's record of the memory at the start of the chunk holding the last token
        a_out = {n: nxt.updates[n][:, (tokens - 1) // chunk_size] for n in weight_names}
    else:
        a_out = dict(nxt.weights)

    def unembed(t: Tensor, layer: int) -> Tensor:
        rows, cols = layers[layer][0].shape[1:]
        return t[:, :rows, :cols]  # [B, rows, cols]

    ws = [unembed(last_update[n], i) for i, n in enumerate(weight_names)]
    ss = [unembed(last_momentum[n][0], i) for i, n in enumerate(weight_names)]
    as_ = [unembed(a_out[n], i) for i, n in enumerate(weight_names)]
    return y[..., :dv], ws, ss, as_  # y: [B, T, Dv]


def memory_linear_closest(
    k: Tensor,
    v: Tensor,
    q: Tensor,
    theta: Tensor,
    alpha: Tensor,
    eta: Tensor,
    W: Tensor,
    S: Tensor,
    A: Tensor,
    *,
    start: int = 0,
    chunk_size: int = 1,
    retrieve: str = "before",
    loss: str = "sum",
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Eq. 13-16, linear memory, through ``NeuralMemory`` (titans-pytorch 0.5.5) as close to the paper as it allows.

    ``NeuralMemory(dim=D, chunk_size=C, heads=1, model=MemoryMLP(D, depth=1), pre_rmsnorm=False,
    mem_model_norm_add_residual=False, batch_size=C, store_memory_loss_fn=<Eq. 12 over Dv>,
    adaptive_step_transform=identity)``: no norms, no residual, the memory ``k @ W``; ``batch_size=C`` moves the
    gradient point to the latest memory after every chunk, so a chunk's gradients are taken at the memory at its
    start (Eq. 16's ``t'``); ``loss`` is honoured through the loss option. ``A`` in is unused (at an aligned
    ``start`` the gradient point is ``W``, as in the recurrence); ``A`` out is the library's memory at the start of
    the chunk holding the last token. Shapes as docs/titans.md: ``[B,T,Dk], [B,T,Dv], [B,T,Dk], [B,T] x 3,
    [B,Dk,Dv] x 3 -> (y [B,T,Dv], W, S, A)``.

    Not honoured (module docstring): ``retrieve``; per-token α, η inside a chunk of ``C > 1``; a ``start`` inside a
    chunk (``NotImplementedError``); storing a trailing partial chunk.
    """
    y, ws, ss, as_ = _run(
        k, v, q, theta, alpha, eta, ((W, S, A),), 0,
        start=start, chunk_size=chunk_size, retrieve=retrieve, loss=loss, departures=CLOSEST,
    )  # fmt: skip
    return y, ws[0], ss[0], as_[0]


def memory_linear_default(
    k: Tensor,
    v: Tensor,
    q: Tensor,
    theta: Tensor,
    alpha: Tensor,
    eta: Tensor,
    W: Tensor,
    S: Tensor,
    A: Tensor,
    *,
    start: int = 0,
    chunk_size: int = 1,
    retrieve: str = "before",
    loss: str = "sum",
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Eq. 13-16, linear memory, through ``NeuralMemory`` (titans-pytorch 0.5.5) in its default configuration.

    ``NeuralMemory(dim=D, chunk_size=C, heads=1, model=MemoryMLP(D, depth=1), store_memory_loss_fn=<MSE over Dv>,
    adaptive_step_transform=identity)``, the rest default: the learned RMSNorm before the projections (weight 1 at
    init), ``ResidualNorm`` around the memory (``LayerNorm(k @ W) * (γ + 1) + k``, γ = 0 at the start and updated
    at test time like ``W``), no ``batch_size``, so every gradient of a stream is taken at the memory the stream
    started from (``W`` at ``start = 0``, then ``A``, the library's gradient point, carried across calls and
    returned). Fixed only where unavoidable: the depth-1 memory holding the drawn ``W``; the projections selecting
    the drawn ``k, v, q``; the gates read from their channels (the default θ transform, ``sigmoid · 1``, cannot
    reach θ > 1, so it is the identity); the MSE over the ``Dv`` value features, not the padded width. ``loss`` is
    ignored (always the mean). γ is not carried across calls (module docstring). Shapes as
    :func:`memory_linear_closest`.

    Not honoured (module docstring): ``retrieve``; per-token α, η inside a chunk of ``C > 1``; a ``start`` inside a
    chunk (``NotImplementedError``); storing a trailing partial chunk.
    """
    y, ws, ss, as_ = _run(
        k, v, q, theta, alpha, eta, ((W, S, A),), 0,
        start=start, chunk_size=chunk_size, retrieve=retrieve, loss=loss, departures=DEFAULT,
    )  # fmt: skip
    return y, ws[0], ss[0], as_[0]


def memory_mlp_closest(
    k: Tensor,
    v: Tensor,
    q: Tensor,
    theta: Tensor,
    alpha: Tensor,
    eta: Tensor,
    W1: Tensor,
    W2: Tensor,
    S1: Tensor,
    S2: Tensor,
    A1: Tensor,
    A2: Tensor,
    *,
    start: int = 0,
    chunk_size: int = 1,
    retrieve: str = "before",
    loss: str = "sum",
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Eq. 13-16, two-layer MLP memory, through ``NeuralMemory`` (titans-pytorch 0.5.5) as close to the paper as it allows.

    As :func:`memory_linear_closest` with ``MemoryMLP(D, depth=2, expansion_factor=(H + 0.5) / D)``:
    ``gelu(k @ W1) @ W2``, exact GELU, no biases, the hidden width ``H`` of the drawn ``W1``. ``W1, S1, A1``
    [B, Dk, H], ``W2, S2, A2`` [B, H, Dv] -> ``(y [B,T,Dv], W1, W2, S1, S2, A1, A2)``.

    Not honoured (module docstring): ``retrieve``; per-token α, η inside a chunk of ``C > 1``; a ``start`` inside a
    chunk (``NotImplementedError``); storing a trailing partial chunk.
    """
    y, ws, ss, as_ = _run(
        k, v, q, theta, alpha, eta, ((W1, S1, A1), (W2, S2, A2)), W1.shape[-1],
        start=start, chunk_size=chunk_size, retrieve=retrieve, loss=loss, departures=CLOSEST,
    )  # fmt: skip
    return y, ws[0], ws[1], ss[0], ss[1], as_[0], as_[1]


def memory_mlp_default(
    k: Tensor,
    v: Tensor,
    q: Tensor,
    theta: Tensor,
    alpha: Tensor,
    eta: Tensor,
    W1: Tensor,
    W2: Tensor,
    S1: Tensor,
    S2: Tensor,
    A1: Tensor,
    A2: Tensor,
    *,
    start: int = 0,
    chunk_size: int = 1,
    retrieve: str = "before",
    loss: str = "sum",
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Eq. 13-16, two-layer MLP memory, through ``NeuralMemory`` (titans-pytorch 0.5.5) in its default configuration.

    As :func:`memory_linear_default` with the library's default model kind, ``ResidualNorm(MemoryMLP(D,
    depth=2))``, its hidden width set to the drawn ``H`` (the default is ``4 D``) so the drawn weights fit.
    Shapes as :func:`memory_mlp_closest`.

    Not honoured (module docstring): ``retrieve``; per-token α, η inside a chunk of ``C > 1``; a ``start`` inside a
    chunk (``NotImplementedError``); storing a trailing partial chunk.
    """
    y, ws, ss, as_ = _run(
        k, v, q, theta, alpha, eta, ((W1, S1, A1), (W2, S2, A2)), W1.shape[-1],
        start=start, chunk_size=chunk_size, retrieve=retrieve, loss=loss, departures=DEFAULT,
    )  # fmt: skip
    return y, ws[0], ws[1], ss[0], ss[1], as_[0], as_[1]


def _chunk_gates(adapter: Callable[..., Any]) -> Callable[..., Any]:
    def memory_chunk_gates(
        k: Tensor, v: Tensor, q: Tensor, theta: Tensor, alpha: Tensor, eta: Tensor, W: Tensor, S: Tensor,
        *, chunk_size: int, retrieve: str = "before", loss: str = "sum",
    ) -> tuple[Tensor, Tensor, Tensor]:
        gates = [g.repeat_interleave(chunk_size, dim=1) for g in (theta, alpha, eta)]  # [B, N] -> [B, N·C]
        y, W_T, S_T, _ = adapter(k, v, q, *gates, W, S, W, start=0, chunk_size=chunk_size, retrieve=retrieve, loss=loss)
        return y, W_T, S_T

    memory_chunk_gates.__doc__ = f"""Eq. 16 with per-chunk gates ``[B, N]`` (spec ``memory_chunk_gates``) through
    :func:`{adapter.__name__}`: each chunk's gates repeated over its tokens, so the library's per-chunk pooling of α
    and η (a mean of equal values) and its per-token θ receive exactly the drawn per-chunk values. ``-> (y, W, S)``."""
    return memory_chunk_gates


memory_chunk_gates_closest = _chunk_gates(memory_linear_closest)
memory_chunk_gates_default = _chunk_gates(memory_linear_default)


# -- the closest configuration with one of the default's departures: the audit's diagnosis runs these -----------
def _linear_with(departure: str) -> Callable[..., Any]:
    def adapter(
        k: Tensor, v: Tensor, q: Tensor, theta: Tensor, alpha: Tensor, eta: Tensor, W: Tensor, S: Tensor, A: Tensor,
        *, start: int = 0, chunk_size: int = 1, retrieve: str = "before", loss: str = "sum",
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        y, ws, ss, as_ = _run(
            k, v, q, theta, alpha, eta, ((W, S, A),), 0,
            start=start, chunk_size=chunk_size, retrieve=retrieve, loss=loss, departures=frozenset({departure}),
        )  # fmt: skip
        return y, ws[0], ss[0], as_[0]

    return _named(adapter, "memory_linear", departure)


def _mlp_with(departure: str) -> Callable[..., Any]:
    def adapter(
        k: Tensor, v: Tensor, q: Tensor, theta: Tensor, alpha: Tensor, eta: Tensor,
        W1: Tensor, W2: Tensor, S1: Tensor, S2: Tensor, A1: Tensor, A2: Tensor,
        *, start: int = 0, chunk_size: int = 1, retrieve: str = "before", loss: str = "sum",
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        y, ws, ss, as_ = _run(
            k, v, q, theta, alpha, eta, ((W1, S1, A1), (W2, S2, A2)), W1.shape[-1],
            start=start, chunk_size=chunk_size, retrieve=retrieve, loss=loss, departures=frozenset({departure}),
        )  # fmt: skip
        return y, ws[0], ws[1], ss[0], ss[1], as_[0], as_[1]

    return _named(adapter, "memory_mlp", departure)


def _named(adapter: Callable[..., Any], kind: str, departure: str) -> Callable[..., Any]:
    adapter.__name__ = adapter.__qualname__ = f"{kind}_closest_with_{departure}"
    adapter.__doc__ = f""":func:`{kind}_closest` with one departure of the default configuration: {DEPARTURES[departure]}.
    Run by the audit's diagnosis of the default configuration (conformance.diagnosis.departures_note)."""
    return adapter


memory_linear_closest_with_pre_rmsnorm = _linear_with("pre_rmsnorm")
memory_linear_closest_with_residual_norm = _linear_with("residual_norm")
memory_linear_closest_with_fixed_gradient_point = _linear_with("fixed_gradient_point")
memory_linear_closest_with_mse_loss = _linear_with("mse_loss")
memory_mlp_closest_with_pre_rmsnorm = _mlp_with("pre_rmsnorm")
memory_mlp_closest_with_residual_norm = _mlp_with("residual_norm")
memory_mlp_closest_with_fixed_gradient_point = _mlp_with("fixed_gradient_point")
memory_mlp_closest_with_mse_loss = _mlp_with("mse_loss")
memory_chunk_gates_closest_with_pre_rmsnorm = _chunk_gates(memory_linear_closest_with_pre_rmsnorm)
memory_chunk_gates_closest_with_residual_norm = _chunk_gates(memory_linear_closest_with_residual_norm)
memory_chunk_gates_closest_with_fixed_gradient_point = _chunk_gates(memory_linear_closest_with_fixed_gradient_point)
memory_chunk_gates_closest_with_mse_loss = _chunk_gates(memory_linear_closest_with_mse_loss)


# -- the audit (conformance audit-peers) ---------------------------------------------------------------------------
def _missing() -> str | None:
    import importlib.util

    return None if importlib.util.find_spec("titans_pytorch") else "titans-pytorch is not installed (pip install -e '.[peers]')"


def _audit_entries() -> tuple[Any, ...]:
    from conformance.peers import Departure, PeerEntry

    here = "implementations.peers.titans_pytorch"
    # The library cannot start a call inside a chunk (see above): every entry draws start = 0. Three domains are
    # reported apart: chunk size 1 (the token-by-token recurrence, Eq. 13-14), chunk sizes 2..4 over whole chunks
    # (Eq. 16's chunked form), and 2..4 with any length (a trailing partial chunk too).
    one = {"chunk_size": (1, 1), "start": (0, 0)}
    chunked = {"chunk_size": (2, 4), "start": (0, 0)}
    domains = ((one, ()), (chunked, ("T % chunk_size == 0",)), (chunked, ()))
    options = {
        "memory_linear": [(r, lo) for r in RETRIEVES for lo in LOSSES],
        "memory_mlp": [("before", "sum"), ("after", "mean")],  # each value of each option once
    }
    names = {"closest": "closest to the paper", "default": "default"}

    def entry(spec: str, kind: str, config: str, options: str = "", narrow: Any = None, constraints: tuple = ()) -> Any:
        ref = f"{here}:{kind}_{config}{options}"
        if config == "closest":
            return PeerEntry(spec, ref, names[config], dict(narrow or {}), constraints)
        # the default: on a failure, the harness names which of its departures alone make the example fail
        departures = tuple(Departure(say, f"{here}:{kind}_closest_with_{name}") for name, say in DEPARTURES.items())
        return PeerEntry(spec, ref, names[config], dict(narrow or {}), constraints,
                         baseline=f"{here}:{kind}_closest", departures=departures)  # fmt: skip

    entries = []
    for config in ("closest", "default"):
        for spec, opts in options.items():
            # the default configuration ignores both options: it is run at the spec's defaults only
            for retrieve, loss in opts if config == "closest" else [("before", "sum")]:
                brackets = f"[retrieve='{retrieve}',loss='{loss}']"
                entries += [entry(spec, spec, config, brackets, d, c) for d, c in domains]
        for retrieve, loss in [("before", "sum"), ("after", "mean")] if config == "closest" else [("before", "sum")]:
            entries.append(entry("memory_chunk_gates", "memory_chunk_gates", config, f"[retrieve='{retrieve}',loss='{loss}']"))
        for spec in ("plain_gradient_descent", "forgetting_only", "one_chunk_step", "descent_step"):
            entries.append(entry(spec, "memory_linear", config))
    # the closest configuration judged under the coarser reading it matches, declared (the specs' option step = chunk;
    # its read is retrieve = after): whole chunks, where every drawn input reaches an output
    declared = "closest to the paper, step = chunk declared"
    whole = (chunked, ("T % chunk_size == 0",))
    for spec, loss in (("memory_linear", "sum"), ("memory_mlp", "mean")):
        ref = f"{here}:{spec}_closest[retrieve='after',loss='{loss}',step='chunk']"
        entries.append(PeerEntry(spec, ref, declared, dict(whole[0]), whole[1]))
    gates = f"{here}:memory_chunk_gates_closest[retrieve='after',loss='sum',step='chunk']"
    entries.append(PeerEntry("memory_chunk_gates", gates, declared))
    return tuple(entries)


def __getattr__(name: str) -> Any:
    """``AUDIT`` is built on first access, so importing this module imports no part of the harness."""
    if name != "AUDIT":
        raise AttributeError(name)
    from conformance.peers import PeerAudit

    return PeerAudit(
        LIBRARY,
        VERSION,
        WRAPPED,
        _audit_entries(),
        importable=_missing,
        notes=(
            "Adapter: implementations/peers/titans_pytorch.py (its docstring says what the library computes, with line "
            "references, and which points of the interface it cannot honour).",
            "Every entry draws start = 0: the library refuses a call that starts inside a chunk (NotImplementedError).",
            "The default configuration ignores the retrieve and loss options; it is run at the specs' defaults only.",
            "The default configuration declares its four departures from the closest one (pre_rmsnorm, "
            "mem_model_norm_add_residual, no batch_size, the MSE loss): on a failure the harness judges the example "
            "with the closest configuration and with each departure alone, and names those that alone make it fail.",
            "Chunks of 2..4 step once per chunk (the specs' reading step = chunk); declared, the closest configuration "
            "is judged against that reading.",
        ),
    )
