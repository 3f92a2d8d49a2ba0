"""``torch.compile`` for the compile-equivalence checks: compiled code, never eager code in disguise.

Dynamo keeps compiled code per code object across a process and, past its recompile limit, silently
runs the function eagerly. A check that compiles the same module class again (the next case, the next
test) could then compare eager with eager and pass a defect that exists only when compiled. So each
check compiles from an empty cache (:func:`fresh_compile`), and its compiled calls run with
``fail_on_recompile_limit_hit`` (:func:`strict_compiled_calls`): hitting the limit is an error, not a pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch


def fresh_compile(module: Any) -> Any:
    """``torch.compile(module)`` after emptying Dynamo's caches."""
    torch._dynamo.reset()
    return torch.compile(module)


@contextlib.contextmanager
def strict_compiled_calls() -> Iterator[None]:
    """Compiled calls inside fail if Dynamo would fall back to eager at its recompile limit."""
    with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):
        yield
