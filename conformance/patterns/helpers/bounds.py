"""A tolerance that states its own basis (a statistical bound, an exact comparison), for pattern kinds."""

from __future__ import annotations

from dataclasses import dataclass

from conformance.tolerance import Tolerance


@dataclass(frozen=True)
class Bound(Tolerance):
    """A tolerance with its own stated basis (a statistical bound, an exact comparison)."""

    basis: str = ""

    def describe(self) -> str:
        return self.basis


def bound(atol: float, basis: str) -> Bound:
    """A :class:`Bound` of ``atol`` whose description is ``basis``.

    >>> bound(0.5, "exact").describe()
    'exact'
    """
    return Bound(atol=atol, baseline=None, floor=0.0, slack=0.0, factor=1.0, reason=None, basis=basis)
