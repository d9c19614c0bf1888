"""prosper: LLMs as sparse retrievers for first-stage product search.

Importing the package is cheap on purpose: no torch, no transformers. Heavy modules are
imported inside the functions that need them so that ``prosper --help`` answers at once.
"""

import pluggy

__version__ = "0.1.0"

#: Decorator plugin authors use to implement the hooks in :mod:`prosper.hookspecs`.
hookimpl = pluggy.HookimplMarker("prosper")

__all__ = ["__version__", "hookimpl", "SparseEncoder", "SparseVectors", "Index"]


def __getattr__(name: str):
    """``from prosper import SparseEncoder`` imports torch only when it is asked for; ``Index``
    and ``SparseVectors`` import numpy only then (see docs/api.md)."""
    if name == "SparseEncoder":
        from prosper.modeling.encoder import SparseEncoder

        return SparseEncoder
    if name == "Index":
        from prosper.retrieval.handle import Index

        return Index
    if name == "SparseVectors":
        from prosper.sparse import SparseVectors

        return SparseVectors
    raise AttributeError(f"module 'prosper' has no attribute {name!r}")
