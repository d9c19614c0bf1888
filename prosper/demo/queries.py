"""Synthetic queries of six kinds over a catalog, with misspellings and graded judgments.

See :mod:`prosper.demo.synth` for the kinds and the grades. Everything is deterministic for a
``random.Random``.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from prosper.demo.catalog import DEPARTMENTS, Product, catalog_words
from prosper.errors import ConfigError

#: Query kinds, in report order.
KINDS = ("model_number", "brand_category", "attribute", "synonym", "hypernym", "misspelling")

#: Default share of each kind among the generated queries.
DEFAULT_MIX = {
    "model_number": 0.12,
    "brand_category": 0.13,
    "attribute": 0.15,
    "synonym": 0.22,
    "hypernym": 0.13,
    "misspelling": 0.25,
}



@dataclass
class Query:
    text: str
    kind: str
    categories: tuple[str, ...]  # nouns of the categories the query asks for (empty: model number)
    constraints: dict[str, str]  # attribute -> value among brand, colour, material, size, model
    metadata: dict[str, str] = field(default_factory=dict)
    id: str = ""



# -- misspellings ----------------------------------------------------------------------------
_KEYBOARD = {
    "q": "wa", "w": "qes", "e": "wrd", "r": "etf", "t": "ryg", "y": "tuh", "u": "yij", "i": "uok",
    "o": "ipl", "p": "ol", "a": "qsz", "s": "adw", "d": "sfe", "f": "dgr", "g": "fht", "h": "gjy",
    "j": "hku", "k": "jli", "l": "kop", "z": "asx", "x": "zcs", "c": "xvd", "v": "cbf", "b": "vng",
    "n": "bmh", "m": "nj",
}  # fmt: skip

MISSPELLING_OPS = ("transpose", "delete", "substitute", "double")


def misspell(word: str, rng: random.Random, forbidden: Iterable[str] = ()) -> str:
    """One typing error inside ``word`` (the first letter is kept, as shoppers mostly do).

    The result differs from ``word`` and from every word in ``forbidden``. Words shorter than four
    letters are returned unchanged.
    """
    if len(word) < 4:
        return word
    forbidden = set(forbidden) | {word}
    for _ in range(50):
        op = rng.choice(MISSPELLING_OPS)
        i = rng.randrange(1, len(word) - 1) if op == "transpose" else rng.randrange(1, len(word))
        if op == "transpose":
            out = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        elif op == "delete":
            out = word[:i] + word[i + 1 :]
        elif op == "substitute":
            near = _KEYBOARD.get(word[i], "")
            if not near:
                continue
            out = word[:i] + rng.choice(near) + word[i + 1 :]
        else:
            out = word[:i] + word[i] + word[i:]
        if out not in forbidden:
            return out
    raise AssertionError(f"could not misspell {word!r}")  # pragma: no cover - 50 tries never all fail


# -- queries ---------------------------------------------------------------------------------
_CATEGORY_BY_NOUN = {c.noun: (d, c) for d in DEPARTMENTS for c in d.categories}


def _categories_under(hypernym: str) -> tuple[str, ...]:
    return tuple(sorted(c.noun for d in DEPARTMENTS for c in d.categories if hypernym in c.hypernyms))


def _attribute_query(rng: random.Random, p: Product, noun_word: str) -> tuple[list[str], dict[str, str]]:
    """Words and constraints for ``[attrs] noun [size]`` with one or two attributes of ``p``."""
    choice = rng.randrange(5)
    if choice == 0:
        return [p.colour, noun_word], {"colour": p.colour}
    if choice == 1:
        return [p.material, noun_word], {"material": p.material}
    if choice == 2:
        return [p.colour, p.material, noun_word], {"colour": p.colour, "material": p.material}
    if choice == 3:
        return [noun_word, p.size], {"size": p.size}
    return [p.colour, noun_word, p.size], {"colour": p.colour, "size": p.size}


def _make_query(rng: random.Random, kind: str, p: Product, forbidden: set[str]) -> Query:
    dep, cat = _CATEGORY_BY_NOUN[p.category]
    brand = p.brand.lower()
    if kind == "model_number":
        text = p.model if rng.random() < 0.7 else f"{brand} {p.model.lower()}"
        return Query(text, kind, (), {"model": p.model})
    if kind == "brand_category":
        words = [brand, cat.noun] if rng.random() < 0.8 else [cat.noun, brand]
        return Query(" ".join(words), kind, (cat.noun,), {"brand": p.brand})
    if kind == "attribute":
        words, cons = _attribute_query(rng, p, cat.noun)
        return Query(" ".join(words), kind, (cat.noun,), cons)
    if kind == "synonym":
        if not cat.synonyms:
            raise _Retry
        synonym = rng.choice(cat.synonyms)
        if rng.random() < 0.35:
            words, cons = [brand, synonym], {"brand": p.brand}
        else:
            words, cons = _attribute_query(rng, p, synonym)
        meta = {"term": synonym, "canonical": cat.noun}
        return Query(" ".join(words), kind, (cat.noun,), cons, meta)
    if kind == "hypernym":
        hypernym = rng.choice(cat.hypernyms)
        roll = rng.random()
        if roll < 0.4:
            words, cons = [brand, hypernym], {"brand": p.brand}
        elif roll < 0.8:
            words, cons = [p.colour, hypernym], {"colour": p.colour}
        else:
            words, cons = [p.colour, brand, hypernym], {"colour": p.colour, "brand": p.brand}
        return Query(" ".join(words), kind, _categories_under(hypernym), cons, {"term": hypernym})
    if kind == "misspelling":
        base_kind = rng.choice(("brand_category", "attribute", "attribute", "synonym"))
        base = _make_query(rng, base_kind, p, forbidden)
        words = base.text.split()
        candidates = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
        if not candidates:
            raise _Retry
        i = rng.choice(candidates)
        wrong = misspell(words[i], rng, forbidden)
        meta = {"misspelled": wrong, "correct": words[i], "base_kind": base_kind}
        words[i] = wrong
        return Query(" ".join(words), kind, base.categories, base.constraints, meta)
    raise ValueError(f"unknown query kind {kind!r}")


class _Retry(Exception):
    """The sampled product cannot carry this kind of query; sample another."""


class Judge:
    """Graded judgments for queries over one catalog (see the module docstring for the grades)."""

    def __init__(self, products: list[Product]):
        self.by_model = {p.model: p.id for p in products}
        self.by_category: dict[str, set[str]] = {}
        self.by_value: dict[tuple[str, str], set[str]] = {}
        for p in products:
            self.by_category.setdefault(p.category, set()).add(p.id)
            for key in ("brand", "colour", "material", "size"):
                self.by_value.setdefault((key, getattr(p, key)), set()).add(p.id)

    def __call__(self, query: Query, rng: random.Random) -> dict[str, int]:
        if "model" in query.constraints:
            return {self.by_model[query.constraints["model"]]: 2}
        in_category = set().union(*(self.by_category[noun] for noun in query.categories))
        matching = [self.by_value.get(item, set()) for item in query.constraints.items()]
        satisfied = Counter(pid for ids in matching for pid in ids & in_category)
        total = len(matching)
        grades = {}
        for pid in in_category:
            hits = satisfied.get(pid, 0)
            if hits == total:
                grades[pid] = 2
            elif hits == total - 1 and len(query.categories) == 1:
                grades[pid] = 1
        # Judged-irrelevant distractors: outside the category, every other constraint met.
        outside = sorted(set.intersection(*matching) - in_category) if matching else []
        for pid in rng.sample(outside, min(3, len(outside))):
            grades[pid] = 0
        return grades


def generate_queries(
    rng: random.Random, products: list[Product], n_queries: int, mix: dict[str, float] | None = None
) -> list[Query]:
    """``n_queries`` distinct queries, each with at least one grade-2 product."""
    mix = dict(DEFAULT_MIX if mix is None else mix)
    unknown = set(mix) - set(KINDS)
    if unknown:
        raise ConfigError(f"synth mix: unknown query kinds {sorted(unknown)} (known: {', '.join(KINDS)})")
    total = sum(mix.values())
    if total <= 0:
        raise ConfigError("synth mix: the shares must add up to more than zero")
    counts = {k: int(n_queries * mix.get(k, 0) / total) for k in KINDS}
    for k in sorted(KINDS, key=lambda k: -mix.get(k, 0))[: n_queries - sum(counts.values())]:
        counts[k] += 1  # hand out the rounding remainder to the largest shares
    forbidden = catalog_words()
    for dep in DEPARTMENTS:
        for c in dep.categories:
            forbidden |= set(c.synonyms) | set(c.hypernyms)
    seen: set[str] = set()
    queries: list[Query] = []
    for kind in KINDS:
        made, attempts = 0, 0
        while made < counts[kind]:
            attempts += 1
            if attempts > 50 * counts[kind] + 1000:
                raise ConfigError(
                    f"synth: could not make {counts[kind]} distinct {kind} queries from {len(products)} products; "
                    "ask for fewer queries or more products"
                )
            try:
                q = _make_query(rng, kind, rng.choice(products), forbidden)
            except _Retry:
                continue
            if q.text in seen:
                continue
            seen.add(q.text)
            queries.append(q)
            made += 1
    return queries
