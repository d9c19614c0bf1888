"""The ``bert`` backbone: any masked LM (BERT, DistilBERT, RoBERTa, SPLADE checkpoints, ...).

Loaded with ``AutoModelForMaskedLM``; the MLM head gives the vocabulary logits. Inputs are
right-padded (absolute position embeddings start at the first token), attention is
bidirectional by nature, and max pooling over every attended position, [CLS] and [SEP]
included, is the default: exactly SPLADE's pooling, so a SPLADE checkpoint gives the same
vectors here as in sentence-transformers.
"""

from __future__ import annotations

from prosper.modeling.backbones.base import BackboneParams, HFBackbone


class MaskedLMBackbone(HFBackbone):
    """Any masked LM (BERT, SPLADE checkpoints, ...): max pooling, as in SPLADE."""

    kind = "mlm"

    def auto_class(self):
        from transformers import AutoModelForMaskedLM

        return AutoModelForMaskedLM


def build(params: BackboneParams) -> MaskedLMBackbone:
    return MaskedLMBackbone(params)
