"""Built-in backbones, registered through the ``prosper`` entry-point group like any plugin.

``qwen``: any causal LM (``AutoModelForCausalLM``); ``bert``: any masked LM
(``AutoModelForMaskedLM``). Nothing heavy is imported here: ``prosper --help`` stays fast.
"""

from prosper import hookimpl


@hookimpl
def register_backbones(register):
    from prosper.modeling.backbones.base import BackboneParams
    from prosper.modeling.backbones.bert import MaskedLMBackbone
    from prosper.modeling.backbones.qwen import CausalLMBackbone

    register("qwen", CausalLMBackbone, BackboneParams)
    register("bert", MaskedLMBackbone, BackboneParams)
