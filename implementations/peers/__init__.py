"""Adapters that put third-party implementations of the specified papers behind the harness's signatures.

Each module wraps one published library (an optional extra, ``pip install -e ".[peers]"``), imports it lazily
inside its functions so importing the adapter never fails without it, and names the library version and the
exact class it wraps. An adapter only translates: it feeds the drawn inputs to the library as closely as the
library's own options allow and documents every point of the interface it cannot honour; whether the library
conforms is the harness's verdict, not the adapter's.

- :mod:`implementations.peers.titans_pytorch`: ``titans_pytorch.NeuralMemory`` (titans-pytorch 0.5.5) behind
  ``memory_linear`` / ``memory_mlp`` of docs/titans.md, in a closest-to-the-paper and a default configuration.
"""
