"""Term inspection (the paper's case studies): the top terms of one text's vector.

Each term is marked *literal* (its token occurs in the input, ``I = 1``) or *expansion*
(added by the model). Used by ``prosper explain`` and usable from Python.
"""

from __future__ import annotations

from typing import Any

import torch


def explain(encoder, text: str, side: str = "query", top: int = 30) -> dict[str, Any]:
    """``{"text", "side", "nnz", "terms": [{"term", "id", "weight", "literal"}, ...]}``.

    ``nnz`` counts all non-zero terms of the final vector (after LRN and LFW); ``terms`` holds
    the ``top`` largest, highest first.
    """
    features = encoder.tokenize([text], side)
    with torch.inference_mode():
        out = encoder(features, side)
    vector = out.vectors[0].float().cpu()
    literal = out.literal[0].cpu()
    nnz = int((vector > 0).sum())
    k = max(0, min(int(top), nnz))
    weights, ids = vector.topk(k) if k else (vector[:0], torch.zeros(0, dtype=torch.long))
    id_list = [int(i) for i in ids]
    names = encoder.term_text(id_list)
    terms = [
        {"term": name, "id": i, "weight": round(float(w), 6), "literal": bool(literal[i] > 0)}
        for name, i, w in zip(names, id_list, weights.tolist())
    ]
    return {"text": text, "side": side, "nnz": nnz, "terms": terms}
