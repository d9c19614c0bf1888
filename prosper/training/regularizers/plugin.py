"""Built-in sparsity regularizers, registered through the ``prosper`` entry-point group.

Imports nothing heavy: the factories are thin functions and torch is only used inside
``penalty``.
"""

from __future__ import annotations

from prosper import hookimpl
from prosper.training.regularizers.flops import FlopsParams, FlopsRegularizer
from prosper.training.regularizers.l0 import L0Params, L0Regularizer
from prosper.training.regularizers.l1 import L1Params, L1Regularizer


@hookimpl
def register_regularizers(register):
    register("flops", FlopsRegularizer, FlopsParams)
    register("l0", L0Regularizer, L0Params)
    register("l1", L1Regularizer, L1Params)
