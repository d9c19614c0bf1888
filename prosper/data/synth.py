"""A synthetic product-search collection in the BEIR layout, deterministic for a seed.

The catalog has products across departments and categories, each with a brand, a product line,
an alphanumeric model number (``VL-4821G``) and attributes (colour, material, size). Queries come
in the kinds that hurt lexical engines on real shops, with graded judgments:

``model_number``    the exact model number (``VL-4821G``): BM25's home ground.
``brand_category``  ``veltra sofa``.
``attribute``       ``grey linen sofa``, ``hoodie large``.
``synonym``         a word no title uses for the category (``grey couch`` for sofas).
``hypernym``        a broader word (``kasumi footwear`` for sneakers, boots, sandals, slippers).
``misspelling``     one word of a brand, attribute or synonym query misspelt (``veltar sofa``).

Synonyms and hypernyms never occur in titles or descriptions, so a lexical engine cannot match
them; misspellings never equal a catalog word. Train and dev queries are disjoint texts drawn
from the same phenomena (the same synonym pairs, hypernyms and misspelling operations), so a
learned model can pick up ``couch -> sofa`` on train and use it on dev for other products.

Grades: 2 = the product satisfies every constraint of the query; 1 = it is in the queried
category and misses exactly one constraint (for single-category queries); 0 = judged irrelevant
(a few items outside the category that share every other constraint, the distractors a lexical
engine likes). Unjudged products are not relevant.

Files: ``corpus.jsonl`` (``{"_id", "title", "text"}``), ``queries.jsonl`` (``{"_id", "text",
"kind", "metadata"}``), ``qrels/train.tsv`` and ``qrels/dev.tsv`` (``query-id<TAB>corpus-id<TAB>score``
with a header) and ``manifest.json`` (seed, sizes, counts per kind and split).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from prosper.errors import ConfigError
from prosper.fileio import atomic_write_text

GENERATOR_VERSION = 1

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

COLOURS = ("black", "white", "grey", "navy", "red", "green", "beige", "brown", "blue", "pink", "yellow", "charcoal")

LINES = (
    "Oslo", "Aria", "Nova", "Luna", "Atlas", "Echo", "Terra", "Vega", "Orion", "Zephyr",
    "Sienna", "Cobalt", "Harbor", "Juniper", "Solstice", "Alto", "Fjord", "Mesa",
)  # fmt: skip


@dataclass(frozen=True)
class Category:
    noun: str  # the word titles use
    synonyms: tuple[str, ...]  # words shoppers use that no title contains
    hypernyms: tuple[str, ...]  # broader words, shared with sibling categories


@dataclass(frozen=True)
class Department:
    name: str
    brands: tuple[str, ...]
    materials: tuple[str, ...]
    sizes: tuple[str, ...]
    features: tuple[str, ...]
    categories: tuple[Category, ...]


def _cat(noun: str, synonyms: str = "", hypernyms: str = "") -> Category:
    return Category(noun, tuple(synonyms.split()), tuple(hypernyms.split()))


DEPARTMENTS: tuple[Department, ...] = (
    Department(
        "furniture",
        ("Veltra", "Norrland", "Oakhaven", "Tessaro", "Marlow", "Hartwell"),
        ("leather", "linen", "velvet", "oak", "walnut", "rattan"),
        ("small", "medium", "large"),
        ("removable covers", "solid frame", "easy assembly", "stain resistant finish", "soft close hinges"),
        (
            _cat("sofa", "couch settee", "seating furniture"),
            _cat("armchair", "", "seating furniture"),
            _cat("wardrobe", "closet armoire", "storage furniture"),
            _cat("bookcase", "bookshelf", "storage furniture"),
            _cat("nightstand", "bedside", "furniture"),
            _cat("desk", "workstation", "furniture"),
        ),
    ),
    Department(
        "clothing",
        ("Kasumi", "Lumina", "Solenne", "Rovana", "Brisk", "Duskin"),
        ("cotton", "wool", "denim", "fleece", "polyester", "cashmere"),
        ("xs", "small", "medium", "large", "xl"),
        ("relaxed fit", "ribbed cuffs", "machine washable", "brushed lining", "reinforced seams"),
        (
            _cat("hoodie", "sweatshirt", "apparel clothing"),
            _cat("trousers", "pants slacks", "apparel clothing"),
            _cat("sweater", "jumper pullover", "apparel knitwear"),
            _cat("jacket", "anorak", "apparel outerwear"),
            _cat("tshirt", "tee", "apparel clothing"),
        ),
    ),
    Department(
        "footwear",
        ("Axton", "Pellam", "Ferro", "Vireo", "Nimbra", "Calder"),
        ("leather", "suede", "canvas", "mesh", "rubber"),
        ("38", "39", "40", "41", "42", "43", "44", "45"),
        ("cushioned insole", "grippy outsole", "padded collar", "lightweight build", "water repellent upper"),
        (
            _cat("sneakers", "trainers kicks", "footwear shoes"),
            _cat("boots", "", "footwear shoes"),
            _cat("sandals", "flipflops", "footwear shoes"),
            _cat("slippers", "mules", "footwear"),
        ),
    ),
    Department(
        "electronics",
        ("Zentro", "Korvex", "Quillon", "Ondina", "Trevi", "Brightwell"),
        ("aluminium", "plastic", "glass", "steel"),
        ("mini", "standard", "max"),
        ("long battery life", "fast charging", "bluetooth pairing", "slim bezel", "voice control"),
        (
            _cat("television", "tv telly", "electronics"),
            _cat("laptop", "notebook", "electronics computers"),
            _cat("headphones", "headset earphones", "electronics audio"),
            _cat("smartphone", "cellphone mobile", "electronics phones"),
            _cat("speaker", "loudspeaker", "electronics audio"),
            _cat("monitor", "display", "electronics computers"),
        ),
    ),
    Department(
        "kitchen",
        ("Cucina", "Ferrano", "Maribel", "Stovell", "Pentra", "Koshi"),
        ("stainless", "iron", "copper", "ceramic", "glass", "aluminium"),
        ("small", "medium", "large"),
        ("dishwasher safe", "induction ready", "cool touch handle", "quick boil", "easy clean interior"),
        (
            _cat("saucepan", "pot", "cookware"),
            _cat("skillet", "frypan", "cookware"),
            _cat("kettle", "", "appliances"),
            _cat("blender", "liquidiser", "appliances"),
            _cat("refrigerator", "fridge", "appliances"),
            _cat("microwave", "", "appliances"),
        ),
    ),
    Department(
        "bedding",
        ("Dormi", "Snugwell", "Restova", "Linnea", "Morrow", "Halcyon"),
        ("cotton", "silk", "linen", "wool", "microfiber"),
        ("single", "double", "queen", "king"),
        ("breathable weave", "hypoallergenic fill", "hidden zip", "anti pilling", "oeko certified"),
        (
            _cat("duvet", "comforter quilt", "bedding"),
            _cat("pillow", "cushion", "bedding"),
            _cat("rug", "carpet", "decor"),
            _cat("curtains", "drapes", "decor"),
            _cat("blanket", "throw", "bedding"),
        ),
    ),
    Department(
        "tools",
        ("Gritmor", "Torvik", "Hammerly", "Bolten", "Greenvale", "Sproutly"),
        ("steel", "plastic", "aluminium", "fiberglass"),
        ("compact", "standard", "heavyduty"),
        ("ergonomic grip", "rust resistant", "cordless operation", "folding frame", "lifetime warranty"),
        (
            _cat("drill", "", "tools powertools"),
            _cat("wrench", "spanner", "tools handtools"),
            _cat("ladder", "stepladder", "tools"),
            _cat("lawnmower", "mower", "gardening"),
            _cat("wheelbarrow", "barrow", "gardening"),
            _cat("hose", "hosepipe", "gardening"),
        ),
    ),
)


@dataclass(frozen=True)
class Product:
    id: str
    department: str
    category: str  # the noun
    brand: str
    line: str
    colour: str
    material: str
    size: str
    model: str
    title: str
    text: str


@dataclass
class Query:
    text: str
    kind: str
    categories: tuple[str, ...]  # nouns of the categories the query asks for (empty: model number)
    constraints: dict[str, str]  # attribute -> value among brand, colour, material, size, model
    metadata: dict[str, str] = field(default_factory=dict)
    id: str = ""


# -- the catalog -----------------------------------------------------------------------------
def _model_number(rng: random.Random, brand: str, used: set[str]) -> str:
    prefix = (brand[0] + brand[2]).upper()
    while True:
        number = f"{prefix}-{rng.randrange(1000, 10000)}{rng.choice('ABCDEFGHJKLMNPRSTVWXZ')}"
        if number not in used:
            used.add(number)
            return number


def build_catalog(rng: random.Random, n_products: int) -> list[Product]:
    """``n_products`` products spread evenly over the categories (round robin, then shuffled)."""
    slots = [(dep, cat) for dep in DEPARTMENTS for cat in dep.categories]
    used_models: set[str] = set()
    products = []
    for i in range(n_products):
        dep, cat = slots[i % len(slots)]
        brand = rng.choice(dep.brands)
        line = rng.choice(LINES)
        colour = rng.choice(COLOURS)
        material = rng.choice(dep.materials)
        size = rng.choice(dep.sizes)
        model = _model_number(rng, brand, used_models)
        size_text = f"Size {size}" if dep.name == "footwear" else size.capitalize()
        title = f"{brand} {line} {colour.capitalize()} {material.capitalize()} {cat.noun.capitalize()}, {size_text}, {model}"
        feats = rng.sample(dep.features, 2)
        text = (
            f"{colour.capitalize()} {material} {cat.noun} from the {brand} {line} range. "
            f"{feats[0].capitalize()}, {feats[1]}. Size: {size}. Model number {model}."
        )
        products.append(Product("", dep.name, cat.noun, brand, line, colour, material, size, model, title, text))
    rng.shuffle(products)
    width = max(5, len(str(n_products)))
    return [_with_id(p, f"p{i:0{width}d}") for i, p in enumerate(products, start=1)]


def _with_id(product: Product, pid: str) -> Product:
    return Product(pid, *[getattr(product, f) for f in Product.__dataclass_fields__ if f != "id"])


def catalog_words() -> set[str]:
    """Every lowercase word a product title or description can contain."""
    words = set(COLOURS) | {w.lower() for w in LINES}
    for dep in DEPARTMENTS:
        words |= {b.lower() for b in dep.brands} | set(dep.materials) | set(dep.sizes)
        for feature in dep.features:
            words |= set(feature.split())
        words |= {c.noun for c in dep.categories}
    words |= {"from", "the", "range", "size", "model", "number"}
    return words


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


# -- writing ---------------------------------------------------------------------------------


def _jsonl(rows: Iterable[dict]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def generate(
    out_dir: str | Path,
    seed: int = 0,
    n_products: int = 2000,
    n_queries: int = 1000,
    dev_fraction: float = 0.2,
    mix: dict[str, float] | None = None,
) -> Path:
    """Write a synthetic BEIR folder to ``out_dir`` and return its path.

    Same arguments, same bytes. ``dev_fraction`` of each kind's queries go to ``qrels/dev.tsv``,
    the rest to ``qrels/train.tsv`` (disjoint query texts). ``mix`` maps kinds to shares
    (default :data:`DEFAULT_MIX`).
    """
    if n_products < 50:
        raise ConfigError(f"synth: n_products={n_products}; need at least 50 (a few per category)")
    if n_queries < len(KINDS):
        raise ConfigError(f"synth: n_queries={n_queries}; need at least {len(KINDS)} (one per kind)")
    if not 0.0 < dev_fraction < 1.0:
        raise ConfigError(f"synth: dev_fraction={dev_fraction}; must be between 0 and 1")
    out = Path(out_dir)
    rng = random.Random(seed)
    products = build_catalog(rng, n_products)
    queries = generate_queries(rng, products, n_queries, mix)
    qwidth = max(5, len(str(len(queries))))
    rng.shuffle(queries)
    for i, q in enumerate(queries, start=1):
        q.id = f"q{i:0{qwidth}d}"

    judge = Judge(products)

    split: dict[str, str] = {}
    for kind in KINDS:
        ids = [q.id for q in queries if q.kind == kind]
        n_dev = max(1, round(len(ids) * dev_fraction)) if len(ids) > 1 else 0
        for j, qid in enumerate(ids):
            split[qid] = "dev" if j < n_dev else "train"

    qrel_lines = {"train": ["query-id\tcorpus-id\tscore\n"], "dev": ["query-id\tcorpus-id\tscore\n"]}
    counts: dict[str, Counter] = {"train": Counter(), "dev": Counter()}
    grade_counts: Counter = Counter()
    for q in sorted(queries, key=lambda q: q.id):
        grades = judge(q, rng)
        for pid in sorted(grades):
            qrel_lines[split[q.id]].append(f"{q.id}\t{pid}\t{grades[pid]}\n")
            grade_counts[grades[pid]] += 1
        counts[split[q.id]][q.kind] += 1

    atomic_write_text(out / "corpus.jsonl", _jsonl({"_id": p.id, "title": p.title, "text": p.text} for p in products))
    atomic_write_text(
        out / "queries.jsonl",
        _jsonl(
            {"_id": q.id, "text": q.text, "kind": q.kind, "metadata": q.metadata}
            for q in sorted(queries, key=lambda q: q.id)
        ),
    )
    for name, lines in qrel_lines.items():
        atomic_write_text(out / "qrels" / f"{name}.tsv", "".join(lines))
    manifest = {
        "generator": "prosper.data.synth",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "n_products": len(products),
        "n_queries": len(queries),
        "dev_fraction": dev_fraction,
        "mix": {k: (DEFAULT_MIX if mix is None else mix).get(k, 0.0) for k in KINDS},
        "splits": {name: {"queries": sum(c.values()), "kinds": {k: c[k] for k in KINDS}} for name, c in counts.items()},
        "judgments": {str(g): grade_counts[g] for g in (2, 1, 0)},
        "kinds": list(KINDS),
    }
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return out


def load_query_kinds(beir_dir: str | Path) -> dict[str, str]:
    """``{query_id: kind}`` from a synthetic folder's ``queries.jsonl`` (queries without a kind are left out)."""
    kinds = {}
    path = Path(beir_dir) / "queries.jsonl"
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                if "kind" in row:
                    kinds[str(row["_id"])] = row["kind"]
    return kinds
