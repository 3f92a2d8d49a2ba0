"""Paper-to-code conformance harness for PyTorch.

Specs (``specs/*.yaml``) record a paper's equations; the harness turns each into oracles and
Hypothesis property checks, runs every implementation on CPU and CUDA across dtypes, and writes a
report. Run it with ``pytest conformance``.
"""

__version__ = "0.1.0"
