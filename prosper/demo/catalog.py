"""The synthetic catalog: departments, categories and their words, and the products built from them.

Each category has the noun titles use, synonyms shoppers use that no title contains, and
hypernyms shared with sibling categories (the raw material of :mod:`prosper.demo.queries`).
A product has a brand, a product line, an alphanumeric model number (``VL-4821G``) and
attributes (colour, material, size); :func:`build_catalog` spreads products evenly over the
categories, deterministically for a ``random.Random``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

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
