"""Every registered component keeps its contract (prosper.contracts), and broken ones are caught.

The same checks run as ``prosper plugins check NAME`` for third-party packages.
"""

from __future__ import annotations

import pytest

from prosper import hookimpl
from prosper.components import Exporter, Regularizer, RegularizerParams, Searcher
from prosper.contracts import ContractError, check_component
from prosper.plugins import get_registry
from prosper.registry import KINDS

pytestmark = pytest.mark.slow

COMPONENTS = [(c.kind, c.name) for kind in KINDS for c in get_registry().components(kind)]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("contracts")  # tiny models and shop built once for all checks


@pytest.mark.parametrize("kind, name", COMPONENTS, ids=[f"{k}-{n}" for k, n in COMPONENTS])
def test_registered_component_keeps_its_contract(kind, name, workdir):
    if name == "seismic":
        pytest.importorskip("seismic")
    params = None
    if name == "milvus":  # a database target: it needs a URI, here a Milvus Lite file
        pytest.importorskip("pymilvus")
        pytest.importorskip("milvus_lite")
        params = {"uri": str(workdir / f"contract-milvus-{kind}.db")}
    report = check_component(name, kind, params=params, workdir=workdir)
    assert report.passed and report.kind == kind


def test_example_plugin_is_checked():
    assert ("regularizer", "hoyer") in COMPONENTS  # plugins/prosper-example, installed by make test


# -- deliberately broken components ----------------------------------------------------------
class GrowingRegularizer(Regularizer):
    """Its weight overshoots the peak it declares."""

    def __init__(self, params):
        self.ramp_steps = 10

    def penalty(self, vectors):
        return vectors.abs().sum()

    def weight(self, step, side):
        return 0.01 * step

    def peak_weight(self, side):
        return 0.01


class RisingPenalty(Regularizer):
    """Minimising this 'penalty' cannot lower it: it ignores its input."""

    def __init__(self, params):
        pass

    def penalty(self, vectors):
        return vectors.sum() * 0 + 1.0

    def weight(self, step, side):
        return 0.001


class LossyExporter(Exporter):
    """Reads back vectors without their last row."""

    def __init__(self, params):
        from prosper.export.parquet import ParquetExporter

        self.inner = ParquetExporter()

    def suffix(self, side):
        return ".parquet"

    def open(self, path, vocabulary, side, metadata=None):
        return self.inner.open(path, vocabulary, side, metadata)

    def merge(self, parts, output, side):
        self.inner.merge(parts, output, side)

    def read(self, path, vocabulary, side):
        vectors = self.inner.read(path, vocabulary, side)
        return vectors.slice(0, len(vectors) - 1)


class ReversedSearcher(Searcher):
    """Returns the exact results in reverse order."""

    def __init__(self, params):
        from prosper.retrieval.searchers import ExactSearcher

        self.inner = ExactSearcher()

    def build(self, items, vocabulary=None, metadata=None):
        return _Reversed(self.inner.build(items, vocabulary, metadata))

    def open(self, directory):
        return _Reversed(self.inner.open(directory))


class _Reversed:
    def __init__(self, index):
        self.index = index

    def __len__(self):
        return len(self.index)

    def search(self, queries, k=10, scoring=None, query_top_terms=None):
        from prosper.components import SearchResult

        return [SearchResult(r.ids[::-1], r.scores[::-1]) for r in self.index.search(queries, k, scoring or "query_l2")]

    def save(self, directory, overwrite=False):
        return self.index.save(directory, overwrite)


class BrokenPlugin:
    @hookimpl
    def register_regularizers(self, register):
        register("broken_weight", GrowingRegularizer, RegularizerParams)
        register("broken_penalty", RisingPenalty, RegularizerParams)

    @hookimpl
    def register_exporters(self, register):
        register("broken_exporter", LossyExporter, RegularizerParams)

    @hookimpl
    def register_searchers(self, register):
        register("broken_searcher", ReversedSearcher, RegularizerParams)


@pytest.mark.parametrize(
    "name, message",
    [
        ("broken_weight", r"regularizer 'broken_weight' \(\(in-process\)\): weight\(step, 'query'\) must never exceed peak_weight"),
        ("broken_penalty", r"regularizer 'broken_penalty' .*minimising the penalty alone must lower it"),
        ("broken_exporter", r"exporter 'broken_exporter' .*read\(\) of a item file must equal roundtrip\(\)"),
        ("broken_searcher", r"searcher 'broken_searcher' .*must return a prosper.components.SearchIndex"),
    ],
)
def test_broken_component_fails_with_one_clear_line(name, message, plugin_registry, workdir):
    plugin_registry.add(BrokenPlugin(), "broken-plugin")
    with pytest.raises(ContractError, match=message) as info:
        check_component(name, workdir=workdir)
    assert "\n" not in str(info.value)


def test_cli_check_exit_codes(plugin_registry, workdir, capsys):
    from prosper.cli.app import main

    plugin_registry.add(BrokenPlugin(), "broken-plugin")
    assert main(["plugins", "check", "jsonl"]) == 0
    assert "ok exporter jsonl" in capsys.readouterr().out
    assert main(["plugins", "check", "broken_exporter"]) == 1
    assert "FAIL exporter 'broken_exporter'" in capsys.readouterr().out
