"""The synthetic product-search generator: determinism, layout, and the phenomena per kind."""

from __future__ import annotations

import json
import random
import re

import pytest

from prosper.data.qrels import read_qrels
from prosper.demo.synth import (
    DEPARTMENTS,
    KINDS,
    catalog_words,
    generate,
    load_query_kinds,
    misspell,
)

FILES = ("corpus.jsonl", "queries.jsonl", "qrels/train.tsv", "qrels/dev.tsv", "manifest.json")


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = generate(tmp_path_factory.mktemp("synth") / "data", seed=7, n_products=400, n_queries=300)
    corpus = {r["_id"]: r for r in map(json.loads, (out / "corpus.jsonl").read_text().splitlines())}
    queries = {r["_id"]: r for r in map(json.loads, (out / "queries.jsonl").read_text().splitlines())}
    train, dev = read_qrels(out / "qrels" / "train.tsv"), read_qrels(out / "qrels" / "dev.tsv")
    return out, corpus, queries, train, dev


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = generate(tmp_path / "a", seed=3, n_products=120, n_queries=60)
    b = generate(tmp_path / "b", seed=3, n_products=120, n_queries=60)
    c = generate(tmp_path / "c", seed=4, n_products=120, n_queries=60)
    for name in FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "corpus.jsonl").read_bytes() != (c / "corpus.jsonl").read_bytes()
    assert not list(a.rglob("*.tmp-*"))


def test_layout_sizes_and_manifest(synth):
    out, corpus, queries, train, dev = synth
    assert len(corpus) == 400 and len(queries) == 300
    assert all(set(r) == {"_id", "title", "text"} and r["title"] and r["text"] for r in corpus.values())
    assert all(r["kind"] in KINDS and r["text"] for r in queries.values())
    assert (out / "qrels" / "dev.tsv").read_text().splitlines()[0] == "query-id\tcorpus-id\tscore"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 7 and manifest["n_products"] == 400 and manifest["n_queries"] == 300
    assert manifest["splits"]["train"]["queries"] == len(train)
    assert manifest["splits"]["dev"]["queries"] == len(dev)
    assert load_query_kinds(out) == {qid: r["kind"] for qid, r in queries.items()}


def test_qrels_reference_existing_ids_and_splits_are_disjoint(synth):
    _, corpus, queries, train, dev = synth
    assert not set(train) & set(dev)
    assert set(train) | set(dev) == set(queries)
    texts = {split: {queries[q]["text"] for q in qrels} for split, qrels in (("train", train), ("dev", dev))}
    assert not texts["train"] & texts["dev"]
    for qrels in (train, dev):
        for qid, judged in qrels.items():
            assert set(judged) <= set(corpus)
            assert set(judged.values()) <= {0, 1, 2}
            assert 2 in judged.values(), qid  # every query has a highly relevant product


def test_every_kind_in_both_splits(synth):
    _, _, queries, train, dev = synth
    for qrels in (train, dev):
        assert {queries[q]["kind"] for q in qrels} == set(KINDS)


def test_model_number_queries_hit_their_product(synth):
    _, corpus, queries, train, dev = synth
    for qid, judged in {**train, **dev}.items():
        if queries[qid]["kind"] != "model_number":
            continue
        (pid,) = [p for p, g in judged.items() if g == 2]
        model = queries[qid]["text"].split()[-1]
        assert model.upper() in corpus[pid]["title"]


def test_synonyms_and_hypernyms_never_occur_in_the_catalog(synth):
    _, corpus, _, _, _ = synth
    words = set().union(*(_words(r["title"] + " " + r["text"]) for r in corpus.values()))
    for dep in DEPARTMENTS:
        for cat in dep.categories:
            assert not (set(cat.synonyms) | set(cat.hypernyms)) & words, cat
    model_words = {w for r in corpus.values() for w in _words(r["title"].rsplit(", ", 1)[1])}
    assert words <= catalog_words() | model_words


def test_synonym_queries_point_to_items_titled_with_the_other_word(synth):
    _, corpus, queries, train, dev = synth
    seen = 0
    for qid, judged in {**train, **dev}.items():
        q = queries[qid]
        if q["kind"] != "synonym":
            continue
        term, canonical = q["metadata"]["term"], q["metadata"]["canonical"]
        assert term in q["text"].split() and canonical not in q["text"].split()
        for pid, grade in judged.items():
            title = _words(corpus[pid]["title"])
            if grade >= 1:
                assert canonical in title and term not in title
                seen += 1
    assert seen


def test_hypernym_queries_cover_several_categories(synth):
    _, corpus, queries, train, dev = synth
    nouns = {c.noun for d in DEPARTMENTS for c in d.categories}
    for qid, judged in {**train, **dev}.items():
        q = queries[qid]
        if q["kind"] != "hypernym":
            continue
        allowed = {c.noun for d in DEPARTMENTS for c in d.categories if q["metadata"]["term"] in c.hypernyms}
        assert len(allowed) >= 1
        for pid, grade in judged.items():
            (noun,) = _words(corpus[pid]["title"]) & nouns
            assert (noun in allowed) == (grade >= 1)


def test_misspellings_differ_from_the_source_word(synth):
    _, corpus, queries, train, dev = synth
    known = catalog_words()
    n = 0
    for q in queries.values():
        if q["kind"] != "misspelling":
            continue
        wrong, right = q["metadata"]["misspelled"], q["metadata"]["correct"]
        assert wrong != right and wrong in q["text"].split() and right not in q["text"].split()
        assert wrong not in known
        assert wrong[0] == right[0] and abs(len(wrong) - len(right)) <= 1
        n += 1
    assert n >= 20


def test_misspell_is_one_edit_and_deterministic():
    for word in ("samsung", "sofa", "refrigerator", "veltra"):
        a = [misspell(word, random.Random(s)) for s in range(20)]
        assert a == [misspell(word, random.Random(s)) for s in range(20)]
        for out in a:
            assert out != word and out[0] == word[0]
            assert _damerau_one(word, out), (word, out)
    assert misspell("tee", random.Random(0)) == "tee"  # too short to misspell


def _damerau_one(a: str, b: str) -> bool:
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long_ = sorted((a, b), key=len)
    if len(long_) - len(short) != 1:
        return False
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


def test_grades_follow_the_constraints(tmp_path):
    out = generate(tmp_path / "g", seed=1, n_products=300, n_queries=120)
    corpus = {r["_id"]: r for r in map(json.loads, (out / "corpus.jsonl").read_text().splitlines())}
    queries = {r["_id"]: r for r in map(json.loads, (out / "queries.jsonl").read_text().splitlines())}
    qrels = {**read_qrels(out / "qrels" / "train.tsv"), **read_qrels(out / "qrels" / "dev.tsv")}
    for qid, judged in qrels.items():
        q = queries[qid]
        if q["kind"] != "brand_category":
            continue
        brand, noun = sorted(q["text"].split(), key=lambda w: w not in {b.lower() for d in DEPARTMENTS for b in d.brands})
        for pid, grade in judged.items():
            title = _words(corpus[pid]["title"])
            expected = 2 if {brand, noun} <= title else 1 if noun in title else 0
            assert grade == expected, (q["text"], corpus[pid]["title"], grade)
        # every product of that brand and category is judged 2
        all_hits = {pid for pid, r in corpus.items() if {brand, noun} <= _words(r["title"])}
        assert all_hits == {pid for pid, g in judged.items() if g == 2}


def test_bad_sizes_raise_config_errors(tmp_path):
    from prosper.errors import ConfigError

    with pytest.raises(ConfigError, match="n_products"):
        generate(tmp_path / "x", n_products=10)
    with pytest.raises(ConfigError, match="dev_fraction"):
        generate(tmp_path / "x", dev_fraction=1.5)
    with pytest.raises(ConfigError, match="unknown query kinds"):
        generate(tmp_path / "x", n_products=100, n_queries=20, mix={"bogus": 1.0})


def test_cli_data_synth(tmp_path, capsys):
    from prosper.cli.app import main

    rc = main(["data", "synth", str(tmp_path / "d"), "--products", "100", "--queries", "30", "--seed", "2"])
    assert rc == 0
    assert "misspelling" in capsys.readouterr().out
    for name in FILES:
        assert (tmp_path / "d" / name).is_file()
    assert main(["data", "synth", str(tmp_path / "e"), "--products", "5"]) == 2
    assert "n_products" in capsys.readouterr().err
