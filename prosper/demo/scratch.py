"""Tiny random models and tokenizers built from scratch: the demo's backbone, and tests and benchmarks.

Nothing here downloads anything: a byte-level BPE (causal) or WordPiece (masked LM) tokenizer
is trained on the given texts with the ``tokenizers`` library, and a randomly initialised
Qwen2/Qwen3 causal LM or BERT masked LM is built from a config and saved with
``save_pretrained`` (safetensors). The results load with ``AutoModelForCausalLM`` /
``AutoModelForMaskedLM`` and ``AutoTokenizer`` like any hub model, so they exercise exactly
the code paths a real backbone uses.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

#: Texts used when the caller gives none: enough variety for a few hundred merges.
DEFAULT_TEXTS = [
    "cordless drill with lithium ion battery and charger",
    "stainless steel kitchen sink with single bowl",
    "led light bulb 60 watt equivalent soft white",
    "outdoor patio chair in brown wicker",
    "garden hose 50 ft heavy duty",
    "white ceramic floor tile 12 in x 12 in",
    "copper pipe fitting 1/2 in elbow",
    "interior latex paint satin finish gallon",
    "wood screws #8 x 1-1/4 in 100 pack",
    "portable space heater with thermostat",
    "bathroom vanity with marble top and faucet",
    "lawn mower self propelled gas 21 in",
]

CAUSAL_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
MLM_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def train_tokenizer(
    texts: Iterable[str] | None = None,
    vocab_size: int = 512,
    kind: str = "bpe",
    lowercase: bool = False,
):
    """Train a small tokenizer and wrap it in a ``PreTrainedTokenizerFast``.

    ``kind="bpe"``: byte-level BPE in the style of Qwen (``<|endoftext|>`` is pad and eos, no BOS,
    no special tokens added around the text). ``kind="wordpiece"``: BERT style
    (``[CLS] text [SEP]``, ``[PAD]``, ``[UNK]``, ``[MASK]``), for masked LMs.
    """
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    texts = list(texts) if texts is not None else list(DEFAULT_TEXTS)
    if kind == "bpe":
        tok = Tokenizer(models.BPE(unk_token=None))
        if lowercase:
            tok.normalizer = normalizers.Lowercase()
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=list(CAUSAL_SPECIALS),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator(texts, trainer=trainer)
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
        wrapped = PreTrainedTokenizerFast(
            tokenizer_object=tok,
            eos_token="<|endoftext|>",
            pad_token="<|endoftext|>",
            unk_token=None,
            additional_special_tokens=list(CAUSAL_SPECIALS[1:]),
            padding_side="left",
            model_max_length=512,
        )
        return wrapped
    if kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=list(MLM_SPECIALS), show_progress=False)
        tok.train_from_iterator(texts, trainer=trainer)
        cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=tok,
            pad_token="[PAD]",
            unk_token="[UNK]",
            cls_token="[CLS]",
            sep_token="[SEP]",
            mask_token="[MASK]",
            padding_side="right",
            model_max_length=512,
        )
    raise ValueError(f"unknown tokenizer kind {kind!r} (bpe | wordpiece)")


def _sizes(tokenizer, hidden_size: int, layers: int, heads: int) -> dict:
    """The config fields both architectures share: sized to the tokenizer, FFN twice the width."""
    return dict(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        pad_token_id=tokenizer.pad_token_id,
    )


def _build_and_save(auto_class, config, tokenizer, out_dir: str | Path, seed: int) -> Path:
    """Random weights from ``config`` (seeded), saved with the tokenizer as safetensors."""
    import torch

    torch.manual_seed(seed)
    model = auto_class.from_config(config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def build_random_causal_lm(
    tokenizer,
    out_dir: str | Path,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 4,
    arch: str = "qwen2",
    seed: int = 0,
    tie_word_embeddings: bool = False,
) -> Path:
    """A random Qwen2 or Qwen3 causal LM sized to ``tokenizer``, saved (with it) to ``out_dir``."""
    from transformers import AutoModelForCausalLM, Qwen2Config, Qwen3Config

    common = dict(
        _sizes(tokenizer, hidden_size, layers, heads),
        num_key_value_heads=max(1, heads // 2),
        max_position_embeddings=1024,
        tie_word_embeddings=tie_word_embeddings,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    if arch == "qwen2":
        config = Qwen2Config(**common)
    elif arch == "qwen3":
        config = Qwen3Config(head_dim=hidden_size // heads, **common)
    else:
        raise ValueError(f"unknown arch {arch!r} (qwen2 | qwen3)")
    return _build_and_save(AutoModelForCausalLM, config, tokenizer, out_dir, seed)


def build_random_masked_lm(
    tokenizer,
    out_dir: str | Path,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 4,
    seed: int = 0,
) -> Path:
    """A random BERT masked LM sized to ``tokenizer``, saved (with it) to ``out_dir``."""
    from transformers import AutoModelForMaskedLM, BertConfig

    config = BertConfig(**_sizes(tokenizer, hidden_size, layers, heads), max_position_embeddings=512)
    return _build_and_save(AutoModelForMaskedLM, config, tokenizer, out_dir, seed)


def build_collection_backbone(
    data_dir: str | Path, target: str | Path, *, vocab_size: int, hidden_size: int, layers: int, heads: int,
    seed: int = 0, split: str = "train",
) -> tuple[int, int]:
    """The demo's backbone: a lowercase byte-level BPE trained on a BEIR folder's items and its
    ``split`` queries (never the dev ones), and a random Qwen2 sized to it, saved to ``target``.

    Returns ``(tokenizer size, texts it was trained on)``.
    """
    from prosper.data.collections import iter_collection
    from prosper.data.qrels import read_qrels, split_path

    texts = [r.text for r in iter_collection(data_dir, side="item")]
    wanted = set(read_qrels(split_path(data_dir, split)))
    texts += [r.text for r in iter_collection(data_dir, side="query") if r.id in wanted]
    tokenizer = train_tokenizer(texts, vocab_size=vocab_size, kind="bpe", lowercase=True)
    build_random_causal_lm(tokenizer, target, hidden_size=hidden_size, layers=layers, heads=heads, arch="qwen2", seed=seed)
    return len(tokenizer), len(texts)
