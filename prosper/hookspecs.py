"""The public extension API of prosper: every hook a plugin may implement.

A plugin is any module (usually in its own pip package) listed under the ``prosper``
entry-point group. It implements some of these hooks with :data:`prosper.hookimpl`::

    from prosper import hookimpl

    @hookimpl
    def register_exporters(register):
        register("tsv", TsvExporter, TsvParams)

Registration hooks receive a ``register(name, factory, params_model)`` callback:

* ``name``: the name users write in the configuration (``{name: tsv, ...}``);
* ``factory``: a callable taking one validated ``params_model`` instance and returning the
  component, an instance of the kind's base class in :mod:`prosper.components` (checked);
* ``params_model``: a pydantic model of the component's parameters; the configuration's
  other keys are validated against it right after plugins load, before anything heavy runs.

Every hook here has a section in ``docs/plugins.md`` (a test checks it).
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("prosper")


@hookspec
def register_backbones(register):
    """Register backbones: factories returning a :class:`prosper.components.Backbone`, whose
    ``load(precision, quantization, device)`` gives a
    :class:`prosper.modeling.backbones.base.LoadedBackbone` (body, head, tokenizer)."""


@hookspec
def register_losses(register):
    """Register ranking losses: factories returning a :class:`prosper.components.RankingLoss`,
    called as ``loss(query_vectors, item_vectors, batch)`` with a
    :class:`prosper.components.TrainingBatch`, returning a scalar tensor."""


@hookspec
def register_regularizers(register):
    """Register sparsity regularizers: factories returning a
    :class:`prosper.components.Regularizer` (``penalty(vectors)``, ``weight(step, side)``,
    ``peak_weight(side)``, ``target``, ``ramp_steps``)."""


@hookspec
def register_exporters(register):
    """Register exporters: factories returning a :class:`prosper.components.Exporter`:
    ``suffix(side)``, ``open(path, vocabulary, side, metadata)`` giving a
    :class:`prosper.components.Writer` (``write``, ``close``, ``abort``), ``merge(parts,
    output, side)``, ``read(path, vocabulary, side)`` and ``roundtrip(vectors, side)``."""


@hookspec
def register_searchers(register):
    """Register searchers: factories returning a :class:`prosper.components.Searcher`
    (``build(items, vocabulary, metadata)`` and ``open(directory)`` giving a
    :class:`prosper.components.SearchIndex` with ``search``, ``save`` and ``len``)."""


@hookspec
def register_commands(app):
    """Add commands to the ``prosper`` command line.

    ``app`` is the root :class:`typer.Typer`; add commands with ``@app.command()`` or
    sub-groups with ``app.add_typer(...)``. Import heavy modules inside the command
    functions, never at module level: ``prosper --help`` must stay fast.
    """
