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
  component;
* ``params_model``: a pydantic model of the component's parameters; the configuration's
  other keys are validated against it right after plugins load, before anything heavy runs.

Every hook here has a section in ``docs/plugins.md`` (a test checks it).
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("prosper")


@hookspec
def register_backbones(register):
    """Register backbones: factories that load a language model and tokenizer.

    The factory returns an object with ``load(precision, quantization, device)`` giving a
    :class:`prosper.modeling.backbones.base.LoadedBackbone`. See ``prosper.modeling.backbones``.
    """


@hookspec
def register_losses(register):
    """Register ranking losses: factories returning a ``torch.nn.Module`` whose
    ``forward(query_vectors, item_vectors, batch)`` returns a scalar loss tensor."""


@hookspec
def register_regularizers(register):
    """Register sparsity regularizers: factories returning an object with
    ``penalty(vectors) -> tensor`` and ``weight(step, side) -> float``."""


@hookspec
def register_exporters(register):
    """Register exporters: factories returning an object with ``open(path, vocabulary,
    side)`` giving a writer that accepts :class:`prosper.sparse.SparseVectors` batches."""


@hookspec
def register_searchers(register):
    """Register searchers: factories returning an object that builds an index over item
    vectors and answers top-k queries (see ``prosper.retrieval``)."""


@hookspec
def register_commands(app):
    """Add commands to the ``prosper`` command line.

    ``app`` is the root :class:`typer.Typer`; add commands with ``@app.command()`` or
    sub-groups with ``app.add_typer(...)``. Import heavy modules inside the command
    functions, never at module level: ``prosper --help`` must stay fast.
    """
