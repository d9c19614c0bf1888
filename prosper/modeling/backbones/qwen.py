"""The ``qwen`` backbone: any causal LM with an LM head (Qwen2, Qwen2.5, Qwen3, Llama, ...).

Loaded with ``AutoModelForCausalLM`` from a hub id or a local directory;
``trust_remote_code`` stays off unless the user sets ``model.backbone.trust_remote_code``.
Inputs are left-padded by the encoder so the last real token sits at the last position
(Eq. 6-7, last-token pooling), and position ids are counted from the first real token so a
padded batch gives the same vectors as one text alone.
"""

from __future__ import annotations

from prosper.modeling.backbones.base import BackboneParams, HFBackbone


class CausalLMBackbone(HFBackbone):
    """Any causal LM with an LM head (Qwen2, Qwen2.5, Qwen3, ...): last pooling, left padding."""

    kind = "causal"

    def auto_class(self):
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM


def build(params: BackboneParams) -> CausalLMBackbone:
    return CausalLMBackbone(params)
