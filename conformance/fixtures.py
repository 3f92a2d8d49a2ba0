"""Opt-in pytest fixtures for users' own tests: ``device`` and ``sample_batch``.

The conformance plugin does not provide them to every session (a test of another project asking for
a ``device`` must get its own, or pytest's "fixture not found"). Enable them where wanted::

    # conftest.py
    pytest_plugins = ["conformance.fixtures"]

or on the command line with ``-p conformance.fixtures``.
"""

from conformance.testing import device, sample_batch

__all__ = ["device", "sample_batch"]
