"""The base of the built-in regularizers: a λ per side on a schedule (Eq. 12-13 recipe).

The contract (:class:`prosper.components.Regularizer`) and the scheduled implementation every
built-in shares (:class:`prosper.components.ScheduledRegularizer`, params
:class:`prosper.components.RegularizerParams`) live in :mod:`prosper.components` so plugin
authors subclass the same classes. The trainer adds
``weight(t, "query") · penalty(w_q) + weight(t, "item") · penalty(w_d)`` to the ranking loss
(Eq. 12), where ``w`` is the BASE vector (before LRN and top-k, Eq. 13) unless ``target: final``.
"""

from __future__ import annotations

from prosper.components import RegularizerParams, ScheduledRegularizer

__all__ = ["RegularizerParams", "ScheduledRegularizer"]
