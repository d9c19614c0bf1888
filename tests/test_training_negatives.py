"""Training from qrels with train.hard_negatives: BM25 negatives are mined once into the run folder."""

from __future__ import annotations

import json

import pytest

from prosper.data.qrels import read_qrels, split_path
from prosper.data.training import load_training_data
from prosper.settings import load_settings
from prosper.training.negatives import NEGATIVES_FILE, training_data_settings
from tests.training_helpers import build_shop, overrides


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("negatives")
    build_shop(root)
    return root


def _settings(root, **extra):
    return load_settings(overrides=overrides(root, root / "unused", **extra), environ={})


def test_bm25_negatives_are_mined_once_and_never_positives(shop):
    settings = _settings(shop, train__hard_negatives=2)
    out = shop / "run-neg"
    data = training_data_settings(settings, out, True, lambda: None)
    assert data.triples == str(out / NEGATIVES_FILE)
    records = [json.loads(line) for line in (out / NEGATIVES_FILE).read_text().splitlines()]
    qrels = read_qrels(split_path(shop / "shop", "train"))
    assert len(records) == sum(any(g >= 1 for g in judged.values()) for judged in qrels.values())
    for record in records:
        judged = qrels[record["query"]]
        assert sorted(record["positives"]) == sorted(d for d, g in judged.items() if g >= 1)
        assert not set(record["negatives"]) & set(record["positives"]) and len(record["negatives"]) <= 8
        assert set(record["negative_origins"]) <= {"judged", "mined"}
    assert sum(len(r["negatives"]) for r in records) > len(records)  # most queries got several
    stamp = (out / NEGATIVES_FILE).stat().st_mtime_ns
    training_data_settings(settings, out, True, lambda: None)  # a resumed run reuses the file
    assert (out / NEGATIVES_FILE).stat().st_mtime_ns == stamp
    loaded = load_training_data(data)
    by_query = {r["query"]: set(r["negatives"]) for r in records}
    for i, qid in enumerate(loaded.query_ids):
        assert {loaded.item_ids[j] for j in loaded.negatives[i]} == by_query[qid]


def test_no_mining_without_hard_negatives_or_with_triples_or_none(shop):
    out = shop / "run-none"
    for extra in ({}, {"train__hard_negatives": 2, "data__negatives": "none"},
                  {"train__hard_negatives": 2, "data__triples": str(shop / "t.jsonl")}):
        settings = _settings(shop, **extra)
        assert training_data_settings(settings, out, True, lambda: None) == settings.data
    assert not out.exists()
