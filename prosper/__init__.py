"""prosper: LLMs as sparse retrievers for first-stage product search.

Importing the package is cheap on purpose: no torch, no transformers. Heavy modules are
imported inside the functions that need them so that ``prosper --help`` answers at once.
"""

import pluggy

__version__ = "0.1.0"

#: Decorator plugin authors use to implement the hooks in :mod:`prosper.hookspecs`.
hookimpl = pluggy.HookimplMarker("prosper")

__all__ = ["__version__", "hookimpl", "SparseEncoder"]


def __getattr__(name: str):
    """``from prosper import SparseEncoder`` imports torch only when it is asked for."""
    if name == "SparseEncoder":
        from prosper.modeling.encoder import SparseEncoder

        return SparseEncoder
    raise AttributeError(f"module 'prosper' has no attribute {name!r}")
