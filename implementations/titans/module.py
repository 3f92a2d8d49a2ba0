"""``NeuralMemory``: the Titans long-term memory as a module (arXiv 2501.00663, Eq. 11–16; docs/titans.md).

Per head ``h``: keys, values and queries of Eq. 11 and 15 (``k = x W_K^h``, ``v = x W_V^h``, ``q = x W_Q^h``,
widths ``dim_head``), a memory of depth ``L_M`` (linear for 1, an MLP with exact GELU and no biases for ≥ 2, hidden
width ``hidden_mult · dim_head``) whose initial weights ``M_0`` are learned, and the chunked update of
``chunked.memory_sequence``. Heads are folded into the batch (``[B, T, heads·d] -> [B·heads, T, d]``), so a
state tensor is ``[B·heads, d_in, d_out]``. With ``heads > 1`` a bias-free linear layer mixes the heads' outputs
back to ``dim`` (as titans-pytorch's ``combine_heads``); with one head of width ``dim`` the output is the memory's.

Gates (one per token, batch row and head): passed to ``forward`` as ``[B, T]`` (shared by the heads) or
``[B, heads, T]``, or — ``gates="learned"`` — computed from ``x`` by linear layers and sigmoids:
``θ = max_lr · σ(x w_θ + b_θ)``, ``α = σ(x w_α + b_α)``, ``η = σ(x w_η + b_η)``. Gates passed always win.

The returned state carries ``W``, ``S``, ``A`` and the absolute position of the next token, so calling on a
prefix and then on the rest with that state equals one call. The state keeps its autograd graph (detach it to
truncate backpropagation between calls). Keys and queries are ℓ2-normalised per head by default (``qk_norm``, the
paper's §4.4), which keeps the inner step stable: with ``‖k‖ = 1`` the linear memory's step scales the error by
``1 − 2θ``, so any θ < 1 lowers the loss, where raw keys of width d make it ``1 − 2θ‖k‖²`` and θ = 0.1 diverges at
d ≈ 96. The rest of §4.4 (SiLU, a depthwise convolution) is left to the caller.
"""

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from implementations.titans.chunked import METHODS, RETRIEVES, memory_sequence
from implementations.titans.memory import LOSSES, memory_forward

GATES = ("learned", "input")


class NeuralMemoryState(NamedTuple):
    """The memory between calls: per layer ``[B·heads, d_in, d_out]``, and the next token's absolute position."""

    weights: tuple[Tensor, ...]
    momentum: tuple[Tensor, ...]
    anchor: tuple[Tensor, ...]
    start: int


class NeuralMemory(nn.Module):
    """Titans neural long-term memory.

    Args:
        dim: width ``D`` of the input ``x [B, T, D]``.
        heads: number of memories, each with its own projections and ``M_0``.
        dim_head: width of each head's keys, values and queries (default ``dim // heads``).
        depth: the memory's depth ``L_M`` (1: linear, ≥ 2: MLP).
        hidden_mult: the MLP's hidden width is ``round(hidden_mult · dim_head)``.
        chunk_size: the chunk size ``C`` of Eq. 16 (gradients within a chunk at its start).
        retrieve: ``"before"`` (``y_t = M_{t−1}(q_t)``) or ``"after"`` (``y_t = M_t(q_t)``).
        loss: ``"sum"`` (Eq. 12) or ``"mean"`` (over ``Dv``).
        gates: ``"learned"`` (projections of ``x``, used where a gate is not passed) or ``"input"`` (all passed).
        max_lr: the largest inner learning rate θ of learned gates.
        qk_norm: ℓ2-normalise each head's keys and queries (§4.4; ``F.normalize``, eps 1e-12, in float32 for
            half-precision inputs: see ``_normalize``).
        method: the chunked evaluation (``chunked.memory_sequence``): ``"factored"`` (any depth), ``"per_token"``
            (the literal per-token weights, slow) or ``"chunk_scan"`` (depth 1: all chunks at once by a scan over
            chunks; fewer, larger steps — for accelerators).

    >>> memory = NeuralMemory(8, heads=2, depth=2, chunk_size=4)
    >>> y, state = memory(torch.randn(3, 10, 8))
    >>> y.shape, state.start, state.weights[0].shape
    (torch.Size([3, 10, 8]), 10, torch.Size([6, 4, 16]))
    """

    def __init__(
        self,
        dim: int,
        heads: int = 1,
        dim_head: int | None = None,
        depth: int = 1,
        hidden_mult: float = 4.0,
        chunk_size: int = 16,
        retrieve: str = "before",
        loss: str = "sum",
        gates: str = "learned",
        max_lr: float = 0.1,
        qk_norm: bool = True,
        method: str = "factored",
    ) -> None:
        super().__init__()
        for name, value in (("dim", dim), ("heads", heads), ("depth", depth), ("chunk_size", chunk_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if dim_head is None:
            if dim % heads:
                raise ValueError(f"dim ({dim}) must be divisible by heads ({heads}) when dim_head is not given")
            dim_head = dim // heads
        if isinstance(dim_head, bool) or not isinstance(dim_head, int) or dim_head < 1:
            raise ValueError(f"dim_head must be an int >= 1, got {dim_head!r}")
        hidden = round(hidden_mult * dim_head)
        if depth > 1 and hidden < 1:
            raise ValueError(f"hidden_mult * dim_head must round to >= 1, got {hidden_mult} * {dim_head}")
        if retrieve not in RETRIEVES:
            raise ValueError(f"retrieve must be one of {RETRIEVES}, got {retrieve!r}")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        if gates not in GATES:
            raise ValueError(f"gates must be one of {GATES}, got {gates!r}")
        if method not in METHODS or (method == "chunk_scan" and depth != 1):
            raise ValueError(f"method must be one of {METHODS} ('chunk_scan' only at depth 1), got {method!r}")
        if not max_lr > 0:
            raise ValueError(f"max_lr must be > 0, got {max_lr!r}")
        self.dim, self.heads, self.dim_head, self.depth = dim, heads, dim_head, depth
        self.chunk_size, self.retrieve_mode, self.loss, self.gates, self.max_lr = chunk_size, retrieve, loss, gates, max_lr
        self.qk_norm = bool(qk_norm)
        self.method = method
        inner = heads * dim_head
        self.to_k = nn.Linear(dim, inner, bias=False)  # W_K of every head (Eq. 11)
        self.to_v = nn.Linear(dim, inner, bias=False)  # W_V (Eq. 11)
        self.to_q = nn.Linear(dim, inner, bias=False)  # W_Q (Eq. 15)
        widths = [dim_head] + [hidden] * (depth - 1) + [dim_head]
        self.initial = nn.ParameterList(  # M_0 per head, [heads, d_in, d_out] per layer
            nn.Parameter(torch.randn(heads, d_in, d_out) / math.sqrt(d_in)) for d_in, d_out in zip(widths, widths[1:])
        )
        if gates == "learned":
            self.to_theta = nn.Linear(dim, heads)
            self.to_alpha = nn.Linear(dim, heads)
            self.to_eta = nn.Linear(dim, heads)
            # Initial gates: slow forgetting (σ(−8) ≈ 3.4e-4 a token: a memory of some 3k tokens) and strong momentum
            # (σ(2) ≈ 0.88). At σ(0) = 0.5 the memory would forget within a chunk (0.5^64 ≈ 5e-20), and at σ(−4) within
            # 4k tokens (the MLP memory then sits at its zero saddle, where its gradients vanish too), its state passing
            # through subnormal floats (slow arithmetic) to exact zeros: nothing remembered.
            nn.init.constant_(self.to_alpha.bias, -8.0)
            nn.init.constant_(self.to_eta.bias, 2.0)
        self.to_out: nn.Module = nn.Linear(inner, dim, bias=False) if heads > 1 else nn.Identity()

    def _fold(self, t: Tensor) -> Tensor:
        batch, steps, _ = t.shape
        # [B, T, heads*d] -> [B, T, heads, d] -> [B, heads, T, d] -> [B*heads, T, d]
        d = self.dim_head
        return t.reshape(batch, steps, self.heads, d).transpose(1, 2).reshape(batch * self.heads, steps, d)

    def _unfold(self, y: Tensor, batch: int) -> Tensor:
        steps = y.shape[1]
        # [B*heads, T, d] -> [B, heads, T, d] -> [B, T, heads, d] -> [B, T, heads*d]
        d = self.dim_head
        return self.to_out(y.reshape(batch, self.heads, steps, d).transpose(1, 2).reshape(batch, steps, self.heads * d))

    def _keys(self, x: Tensor) -> Tensor:
        k = self._fold(self.to_k(x))  # [B*heads, T, d]
        return _normalize(k) if self.qk_norm else k

    def _queries(self, x: Tensor) -> Tensor:
        q = self._fold(self.to_q(x))  # [B*heads, T, d]
        return _normalize(q) if self.qk_norm else q

    def _check_x(self, x: Tensor) -> None:
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"x must be [B, T, {self.dim}], got shape {tuple(x.shape)}")

    def _gate(self, name: str, given: Tensor | None, x: Tensor) -> Tensor:
        batch, steps, _ = x.shape
        if given is None:
            if self.gates != "learned":
                raise ValueError(f"{name} must be given (gates='input')")
            gate = torch.sigmoid(getattr(self, f"to_{name}")(x)).transpose(1, 2)  # [B, T, heads] -> [B, heads, T]
            if name == "theta":
                gate = self.max_lr * gate
        elif given.shape == (batch, steps):
            gate = given.unsqueeze(1).expand(batch, self.heads, steps)  # [B, T] -> [B, heads, T]
        elif given.shape == (batch, self.heads, steps):
            gate = given
        else:
            expected = f"[B, T] = {(batch, steps)} or [B, heads, T] = {(batch, self.heads, steps)}"
            raise ValueError(f"{name} must be {expected}, got shape {tuple(given.shape)}")
        return gate.reshape(batch * self.heads, steps)  # [B, heads, T] -> [B*heads, T]

    def initial_state(self, batch: int) -> NeuralMemoryState:
        """The state before any token: ``W = A = M_0`` for every batch row, ``S = 0``, position 0."""
        weights = tuple(  # [heads, d_in, d_out] -> [B, heads, d_in, d_out] -> [B*heads, d_in, d_out]
            w.unsqueeze(0).expand(batch, *w.shape).reshape(batch * self.heads, *w.shape[1:]) for w in self.initial
        )
        return NeuralMemoryState(weights, tuple(torch.zeros_like(w) for w in weights), weights, 0)

    def _check_state(self, state: NeuralMemoryState, batch: int) -> None:
        expected = self.initial_state(batch)
        for name in ("weights", "momentum", "anchor"):
            got = getattr(state, name)
            if len(got) != self.depth or any(g.shape != e.shape for g, e in zip(got, expected.weights, strict=False)):
                shapes = [tuple(e.shape) for e in expected.weights]
                raise ValueError(f"state.{name} must have shapes {shapes}, got {[tuple(g.shape) for g in got]}")

    def forward(
        self,
        x: Tensor,
        theta: Tensor | None = None,
        alpha: Tensor | None = None,
        eta: Tensor | None = None,
        state: NeuralMemoryState | None = None,
        return_state: bool = True,
    ) -> tuple[Tensor, NeuralMemoryState] | Tensor:
        """Read and update the memory over ``x [B, T, dim]``: ``-> (y [B, T, dim], state)`` (Eq. 11–16), or ``y``
        alone with ``return_state=False``."""
        self._check_x(x)
        batch = x.shape[0]
        if state is None:
            state = self.initial_state(batch)
        self._check_state(state, batch)
        k, v, q = self._keys(x), self._fold(self.to_v(x)), self._queries(x)  # [B*heads, T, d]
        gates = [self._gate(name, given, x) for name, given in (("theta", theta), ("alpha", alpha), ("eta", eta))]
        y, weights, momentum, anchor = memory_sequence(
            k, v, q, *gates, state.weights, state.momentum, state.anchor,
            start=state.start, chunk_size=self.chunk_size, retrieve=self.retrieve_mode, loss=self.loss, method=self.method,
        )
        if not return_state:
            return self._unfold(y, batch)
        return self._unfold(y, batch), NeuralMemoryState(weights, momentum, anchor, state.start + x.shape[1])

    def retrieve(self, x: Tensor, state: NeuralMemoryState | None = None) -> Tensor:
        """Eq. 15 only: ``y = M(q)`` with the state's weights (``M_0`` without one); no state changes."""
        self._check_x(x)
        batch = x.shape[0]
        if state is None:
            state = self.initial_state(batch)
        self._check_state(state, batch)
        return self._unfold(memory_forward(self._queries(x), state.weights), batch)


def _normalize(t: Tensor) -> Tensor:
    """``F.normalize(t, dim=-1)``, computed in float32 where ``t`` is float16 or bfloat16 and cast back.

    In float16 the backward of ``t / ‖t‖`` divides by ‖t‖² (and ‖t‖³ through the norm), which underflows for a
    head whose ‖t‖ is below about 2.5e-4: the gradient is ±inf where the exact one is finite (at a head width of 1
    it is exactly zero). Found by the ``gradient`` check of ``neural_memory`` at float16 (``retrieve`` before,
    ``qk_norm``; tests/implementations/test_titans.py keeps the case).
    """
    if t.dtype in (torch.float16, torch.bfloat16):
        return F.normalize(t.float(), dim=-1).to(t.dtype)
    return F.normalize(t, dim=-1)
