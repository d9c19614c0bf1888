"""The PROSPER sparse encoder: backbone -> pooled saturated logits -> LRN -> LFW (Eq. 5-11).

Over 300 lines on purpose: the encoder is the one ``nn.Module`` users hold; construction, the
forward of Eq. 5-11 and the encode API share its state (pooling lives in :mod:`.pooling`).

::

    from prosper import SparseEncoder
    encoder = SparseEncoder.from_pretrained("runs/prosper/best")   # or a SPLADE folder / hub id
    vectors = encoder.encode_queries(["cordless drill 18v"])        # SparseVectors

Each choice of the method is a setting of :class:`prosper.settings.ModelSettings`; see
docs/method.md for the mapping from the paper's equations to settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import nn

from prosper.errors import ConfigError, InputError
from prosper.modeling import scoring as _scoring
from prosper.modeling.backbones.base import LoadedBackbone
from prosper.modeling.batching import plan_batches
from prosper.modeling.lfw import focusing_window
from prosper.modeling.lrn import LiteralResidual
from prosper.modeling.pooling import pool
from prosper.modeling.screen import HeadScreen, onednn, screen_applies
from prosper.modeling.transforms import keep_terms, literal_indicator
from prosper.settings import ModelSettings
from prosper.sparse import SparseVectors

SIDES = ("query", "item")
#: Texts per tokenizer call: a fast tokenizer keeps an ``Encoding`` (ids, offsets, token strings)
#: per text until the call returns, ~40 KB for a 512-token text; slices bound that to a few MB.
TOKENIZE_SLICE = 512
#: Elements of a ``[rows, |V|]`` group at inference (8 MiB in float32; 68 rows of a BERT
#: vocabulary, 13 of Qwen's): the pooled vectors, LRN, LFW and the sparse conversion run on at
#: most this many, so no ``[batch, |V|]`` tensor exists. Smaller groups fit the cache better but
#: cost more small operations, which stall when the torch threads share cores with other work.
ROW_CHUNK_ELEMENTS = 1 << 21


@dataclass
class EncoderOutput:
    """``base``: ``w`` before LRN and top-k (what FLOPS regularises, Eq. 13);
    ``vectors``: the final ``W`` (after LRN, analysis filter and LFW); ``literal``: ``I``."""

    base: torch.Tensor
    vectors: torch.Tensor
    literal: torch.Tensor


def _check_side(side: str) -> None:
    if side not in SIDES:
        raise ValueError(f"side must be 'query' or 'item', not {side!r}")


def _check_texts(texts) -> None:
    """A bare string is a sequence of characters: refuse it rather than encode one vector per character."""
    if isinstance(texts, (str, bytes)):
        shown = texts if len(texts) <= 40 else texts[:37] + "..."
        raise InputError(f"texts must be a list of strings, not one string; wrap it in a list: [{shown!r}]")


class SparseEncoder(nn.Module):
    """A backbone LM turned into a sparse (vocabulary-wide) encoder for queries and items."""

    #: The folder or hub id :meth:`from_pretrained` loaded (None when built otherwise).
    source: str | None = None
    #: LoRA adapters added for training (:func:`prosper.modeling.lora.add_adapters`), else None.
    lora_layers: dict | None = None

    def __init__(self, settings: ModelSettings, backbone: LoadedBackbone, lrn: LiteralResidual | None = None):
        super().__init__()
        self.settings = settings
        self.model = backbone.model
        self.tokenizer = backbone.tokenizer
        self.kind = backbone.kind
        self.vocab_size = backbone.vocab_size
        self.hidden_size = backbone.hidden_size
        # body and head live inside self.model; kept outside nn.Module bookkeeping on purpose
        self._parts = SimpleNamespace(
            body=backbone.body,
            head=backbone.head,
            postprocess=backbone.logit_postprocess,
            accepts_position_ids=backbone.accepts_position_ids,
            head_split=backbone.head_split,
        )
        self.full_settings = None  # the trainer may attach the full ProsperSettings for save()
        self._screen = HeadScreen()  # bf16 copy of the head for max-pooling inference, made on first use
        self._check_settings()
        if lrn is None and settings.lrn.enabled:
            lrn = LiteralResidual(self.hidden_size, self.vocab_size)
        self.lrn = lrn
        if self.lrn is not None:
            self.lrn.to(self.device)
        special = torch.zeros(max(self.vocab_size, len(self.tokenizer)), dtype=torch.bool)
        special[[i for i in self.tokenizer.all_special_ids if i is not None and i >= 0]] = True
        self._special = special.numpy()
        self.eval()

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_settings(cls, model_settings: ModelSettings, device=None, registry=None) -> SparseEncoder:
        """A fresh encoder: the backbone from its hub id or directory, a new (Xavier) LRN layer."""
        if registry is None:
            from prosper.plugins import get_registry

            registry = get_registry()
        backbone = registry.build("backbone", model_settings.backbone, where="model.backbone")
        device = device if device is not None else model_settings.device
        loaded = backbone.load(
            precision=model_settings.precision, quantization=model_settings.quantization, device=str(device)
        )
        return cls(model_settings, loaded)

    @classmethod
    def from_pretrained(cls, path_or_id, device=None, revision: str | None = None, **model_overrides) -> SparseEncoder:
        """A prosper checkpoint, a plain SPLADE (masked-LM) model or a causal LM, by folder or hub id.

        How each is detected and which settings a plain model gets (the ones that reproduce
        sentence-transformers' ``SparseEncoder`` on a SPLADE folder) is in
        :mod:`prosper.modeling.pretrained`; ``model_overrides`` change ModelSettings fields.
        """
        from prosper.modeling.pretrained import load_pretrained

        return load_pretrained(path_or_id, device=device, revision=revision, **model_overrides)

    @classmethod
    def load(cls, checkpoint_dir, device=None, **model_overrides) -> SparseEncoder:
        """Load a checkpoint directory written by :meth:`save` (see :mod:`prosper.modeling.checkpoint`)."""
        from prosper.modeling.checkpoint import load_checkpoint

        return load_checkpoint(checkpoint_dir, device=device, **model_overrides)

    def save(self, directory) -> None:
        """Atomically write ``backbone/``, ``lrn.safetensors`` and ``prosper.yaml`` to ``directory``."""
        from prosper.modeling.checkpoint import save_checkpoint

        save_checkpoint(self, directory)

    def _check_settings(self) -> None:
        s = self.settings
        if self.kind == "mlm" and s.echo:
            raise ConfigError("model.echo: echo input is for causal backbones; a masked LM already sees the whole text")
        if self._parts.head is None and s.quantization != "none":
            raise ConfigError("model.quantization: this backbone's LM head could not be separated; use quantization=none")

    # -- properties -------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def pooling(self) -> str:
        if self.settings.pooling == "auto":
            return "last" if self.kind == "causal" else "max"
        return self.settings.pooling

    @property
    def pool_special_tokens(self) -> bool:
        if self.settings.pool_special_tokens is None:
            return self.kind == "mlm"
        return self.settings.pool_special_tokens

    def lrn_applies(self, side: str) -> bool:
        lrn = self.settings.lrn
        return self.lrn is not None and lrn.enabled and lrn.sides in ("both", side)

    # -- tokenisation -----------------------------------------------------------------------
    def _token_rows(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Token ids per text (int32 arrays: 4 bytes a token where a list of ints costs ~36)."""
        texts = list(texts)
        rows: list[np.ndarray] = []
        for start in range(0, len(texts), TOKENIZE_SLICE):
            enc = self.tokenizer(
                texts[start : start + TOKENIZE_SLICE],
                add_special_tokens=True,
                truncation=True,
                max_length=self.settings.max_length,
                return_attention_mask=False,
                return_token_type_ids=False,
            )
            rows.extend(np.asarray(ids, dtype=np.int32) for ids in enc["input_ids"])
        return rows

    def _collate(self, rows: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
        """Pad token rows (left for causal LMs, right for MLMs) and build the masks pooling needs."""
        special = self._special
        echo = self.settings.echo and self.kind == "causal"
        pool_special = self.pool_special_tokens
        built = []
        for ids in rows:
            ids = list(ids)
            flags = [bool(special[i]) if 0 <= i < len(special) else False for i in ids]
            literal = [not f for f in flags]
            if echo:  # leading specials, text, text again, trailing specials; pool the second copy
                start = 0
                while start < len(ids) and flags[start]:
                    start += 1
                end = len(ids)
                while end > start and flags[end - 1]:
                    end -= 1
                body = ids[start:end]
                body_flags = flags[start:end]
                ids = ids[:start] + body + body + ids[end:]
                literal = [False] * start + [not f for f in body_flags] + [False] * (len(ids) - start - len(body))
                poolable = [False] * (start + len(body)) + [not f for f in body_flags] + [False] * (len(ids) - start - 2 * len(body))
            else:
                poolable = [True] * len(ids) if pool_special else [not f for f in flags]
            built.append((ids, literal, poolable))
        length = max(1, max(len(ids) for ids, _, _ in built))
        batch = len(built)
        pad_id = self.tokenizer.pad_token_id
        input_ids = np.full((batch, length), pad_id, dtype=np.int64)
        attention = np.zeros((batch, length), dtype=np.int64)
        literal = np.zeros((batch, length), dtype=bool)
        poolable = np.zeros((batch, length), dtype=bool)
        left = self.kind == "causal"
        for b, (ids, lit, poo) in enumerate(built):
            n = len(ids)
            sl = slice(length - n, length) if left else slice(0, n)
            input_ids[b, sl] = ids
            attention[b, sl] = 1
            literal[b, sl] = lit
            poolable[b, sl] = poo
        positions = np.arange(length)
        # last pooled position (last pooling, LRN 'last'); first attended position (LRN 'first')
        last_index = np.where(poolable, positions, -1).max(axis=1)
        last_index = np.where(last_index < 0, length - 1, last_index)
        first_index = np.where(attention > 0, positions, length).min(axis=1)
        first_index = np.where(first_index >= length, 0, first_index)
        how = self.settings.lrn.hidden
        if how == "auto":
            how = "last" if self.kind == "causal" else "first"
        h_index = last_index if how == "last" else first_index
        features = {
            "input_ids": torch.from_numpy(input_ids),
            "attention_mask": torch.from_numpy(attention),
            "literal_mask": torch.from_numpy(literal),
            "pool_mask": torch.from_numpy(poolable),
            "last_index": torch.from_numpy(last_index.astype(np.int64)),
            "h_index": torch.from_numpy(h_index.astype(np.int64)),
        }
        if left:  # count positions from the first real token: padding never shifts them
            features["position_ids"] = torch.from_numpy(np.clip(np.cumsum(attention, axis=1) - 1, 0, None))
        return features

    def tokenize(self, texts: list[str], side: str = "item") -> dict[str, torch.Tensor]:
        """Tokenise and pad a batch (left padding for causal LMs); specials never count."""
        _check_side(side)
        return self._collate(self._token_rows(texts))

    # -- forward ----------------------------------------------------------------------------
    def _attention_mask(self, attention: torch.Tensor):
        if not (self.settings.bidirectional and self.kind == "causal"):
            return attention
        # A 4-D additive mask without the causal triangle: every real token sees every other.
        # Padded query rows attend to themselves only, so no row is fully masked (no NaN).
        dtype = next(self.model.parameters()).dtype
        if not dtype.is_floating_point:
            dtype = torch.float32
        length = attention.shape[1]
        allowed = attention.bool()[:, None, None, :] | torch.eye(length, dtype=torch.bool, device=attention.device)
        mask = torch.zeros(allowed.shape, dtype=dtype, device=attention.device)
        return mask.masked_fill(~allowed, torch.finfo(dtype).min)

    def hidden_states(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[B, L, H]`` last hidden states of the backbone body."""
        kwargs: dict[str, Any] = {
            "input_ids": features["input_ids"],
            "attention_mask": self._attention_mask(features["attention_mask"]),
        }
        if "position_ids" in features and self._parts.accepts_position_ids:
            kwargs["position_ids"] = features["position_ids"]
        if self.kind == "causal":
            kwargs["use_cache"] = False
        return self._parts.body(**kwargs).last_hidden_state

    def _base_vectors(self, features: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(w [B, V], hidden [B, L, H]): Eq. 5-7 with the memory-lean head."""
        head = self._parts.head
        if head is None:  # the head could not be separated: full logits (not memory-lean)
            out = self.model(
                input_ids=features["input_ids"],
                attention_mask=self._attention_mask(features["attention_mask"]),
                output_hidden_states=True,
            )
            hidden = out.hidden_states[-1]
            base = pool(self.pooling, out.logits, lambda x: x, features["pool_mask"], features["last_index"],
                        self.settings.head_chunk_size)
            return base, hidden
        hidden = self.hidden_states(features)
        base = pool(
            self.pooling,
            hidden,
            head,
            features["pool_mask"],
            features["last_index"],
            self.settings.head_chunk_size,
            self._parts.postprocess,
            self._parts.head_split,
        )
        return base, hidden

    def forward(self, features: dict[str, torch.Tensor], side: str = "item") -> EncoderOutput:
        """Encode a tokenised batch: ``.base`` (w), ``.vectors`` (W after LRN and LFW), ``.literal`` (I)."""
        _check_side(side)
        device = self.device
        features = {k: v.to(device) for k, v in features.items()}
        indicator = literal_indicator(features["input_ids"], features["literal_mask"], self.vocab_size)
        settings = self.settings
        if side == "query" and settings.query_encoder == "inference_free":
            # Inference-free query side: the vector is the literal indicator itself.
            return EncoderOutput(base=indicator, vectors=keep_terms(indicator, indicator, settings.query_terms), literal=indicator)
        base, hidden = self._base_vectors(features)
        vectors = self._final_vectors(base, hidden, features, indicator, side)
        return EncoderOutput(base=base, vectors=vectors, literal=indicator)

    def _final_vectors(self, base, hidden, features, indicator, side: str) -> torch.Tensor:
        """``W`` from ``w``: LRN (Eq. 8-9), the analysis term filter, then LFW (Eq. 10), row by row."""
        settings = self.settings
        vectors = base
        if self.lrn_applies(side):
            rows = torch.arange(hidden.shape[0], device=hidden.device)
            h = hidden[rows, features["h_index"]]
            vectors = self.lrn(base, h, indicator, settings.lrn.mode, settings.lrn.transform_hidden)
        vectors = keep_terms(vectors, indicator, self._term_filter(side))
        if settings.lfw.enabled:
            vectors = focusing_window(vectors, settings.lfw.k_query if side == "query" else settings.lfw.k_item)
        return vectors

    def _term_filter(self, side: str) -> str:
        """The analysis term filter of ``side`` (``all``, ``literal`` or ``expansion``)."""
        return self.settings.query_terms if side == "query" else self.settings.item_terms

    def _reads_indicator(self, side: str) -> bool:
        """Whether :meth:`_final_vectors` reads the literal indicator I (Eq. 9) on ``side``."""
        return self.lrn_applies(side) or self._term_filter(side) != "all"

    # -- encoding ---------------------------------------------------------------------------
    def encode(
        self,
        texts: Sequence[str],
        side: str = "item",
        batch_size: int = 64,
        ids: Sequence[str] | None = None,
        show_progress: bool = False,
        *,
        batch_tokens: int | None = None,
    ) -> SparseVectors:
        """Encode texts to :class:`SparseVectors` (no grad; length-sorted batches; input order kept).

        ``batch_size`` bounds the texts of a batch; ``batch_tokens`` (optional) also bounds its
        padded tokens (texts x longest text), which is what memory and time follow
        (:mod:`prosper.modeling.batching`). The vectors do not depend on either.
        """
        _check_texts(texts)
        parts = list(self.encode_batches(texts, side, batch_size, ids, show_progress, batch_tokens=batch_tokens))
        if not parts:
            return SparseVectors.empty(self.vocab_size)
        return SparseVectors.concat(parts)

    def encode_batches(
        self,
        texts: Sequence[str],
        side: str = "item",
        batch_size: int = 64,
        ids: Sequence[str] | None = None,
        show_progress: bool = False,
        buffer_size: int | None = None,
        *,
        batch_tokens: int | None = None,
    ):
        """Yield :class:`SparseVectors` blocks in input order, reading ``buffer_size`` texts at a time.

        Within a buffer, texts are sorted by token count so batches carry little padding, and
        cut into batches of at most ``batch_size`` texts and ``batch_tokens`` padded tokens.
        Memory depends on the buffer and batch sizes, not on the number of texts.
        """
        _check_side(side)
        _check_texts(texts)
        texts = list(texts)
        ids = [str(i) for i in range(len(texts))] if ids is None else [str(i) for i in ids]
        if len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids for {len(texts)} texts")
        buffer_size = buffer_size or max(4096, batch_size * 32)
        was_training = self.training
        self.eval()
        progress = _progress(len(texts), show_progress, side)
        try:
            with torch.inference_mode():
                for start in range(0, len(texts), buffer_size):
                    chunk = texts[start : start + buffer_size]
                    chunk_ids = ids[start : start + buffer_size]
                    yield self._encode_buffer(chunk, chunk_ids, side, batch_size, progress, batch_tokens)
        finally:
            if progress is not None:
                progress.stop()
            self.train(was_training)

    def _encode_buffer(self, texts, ids, side, batch_size, progress, batch_tokens=None) -> SparseVectors:
        rows = self._token_rows(texts)
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        if self.settings.echo and self.kind == "causal":
            lengths = 2 * lengths  # the text is repeated: budget the collated length
        batches = plan_batches(lengths, batch_size, batch_tokens)
        parts: list[SparseVectors] = []
        for idx in batches:
            features = self._collate([rows[i] for i in idx])
            parts.extend(self._encode_features(features, [ids[i] for i in idx], side))
            if progress is not None:
                progress.advance(len(idx))
        if not parts:
            return SparseVectors.empty(self.vocab_size)
        merged = SparseVectors.concat(parts)
        return merged.take(np.argsort(np.concatenate(batches), kind="stable"))

    def _encode_features(self, features: dict[str, torch.Tensor], ids: list[str], side: str) -> list[SparseVectors]:
        """Inference on one collated batch: the backbone once, then the head, LRN, LFW and the
        sparse conversion a group of rows at a time (:meth:`_row_chunks`), each group cut to its
        own longest text. The same arithmetic as :meth:`forward`, row by row, but the largest
        vocabulary-wide tensor is one group's, never ``[batch, |V|]``."""
        settings = self.settings
        if self._parts.head is None or (side == "query" and settings.query_encoder == "inference_free"):
            return [SparseVectors.from_dense(self.forward(features, side).vectors, ids)]
        lengths = features["attention_mask"].sum(dim=1).tolist()
        device = self.device
        features = {k: v.to(device) for k, v in features.items()}
        with _without_onednn(device.type == "cpu" and next(self.model.parameters()).dtype == torch.float32):
            return self._encode_rows(features, lengths, ids, side)

    def _encode_rows(self, features, lengths, ids, side) -> list[SparseVectors]:
        settings = self.settings
        hidden = self.hidden_states(features)
        full = hidden.shape[1]
        left = self.kind == "causal"
        needs_indicator = self._reads_indicator(side)
        screen = self._head_screen()
        parts = []
        for r0, r1, width in self._row_chunks(lengths, full):
            cols = slice(full - width, full) if left else slice(0, width)
            shift = full - width if left else 0
            sub = {k: features[k][r0:r1, cols] for k in ("input_ids", "literal_mask", "pool_mask")}
            for key in ("last_index", "h_index"):
                sub[key] = (features[key][r0:r1] - shift).clamp(0, width - 1)
            h = hidden[r0:r1, cols]
            indicator = literal_indicator(sub["input_ids"], sub["literal_mask"], self.vocab_size) if needs_indicator else None
            base = pool(self.pooling, h, self._parts.head, sub["pool_mask"], sub["last_index"],
                        settings.head_chunk_size, self._parts.postprocess, self._parts.head_split, screen)
            vectors = self._final_vectors(base, h, sub, indicator, side)
            parts.append(SparseVectors.from_dense(vectors, ids[r0:r1]))
        return parts

    def _head_screen(self) -> HeadScreen | None:
        """The bf16 screen when ``model.head_screen`` resolves to on for this head (max pooling over
        a plain ``(transform, weight, bias)`` head, :mod:`prosper.modeling.screen`), else None."""
        split = self._parts.head_split
        if self.pooling != "max" or split is None or self._parts.postprocess is not None:
            return None
        return self._screen if screen_applies(self.settings.head_screen, self.device, split[1]) else None

    def _row_chunks(self, lengths: Sequence[int], full: int):
        """``(start, stop, width)`` row groups of a batch: :data:`ROW_CHUNK_ELEMENTS` vector
        entries each at most, ``width`` the group's longest row (the head inside runs on
        ``model.head_chunk_size`` positions at a time, :func:`prosper.modeling.pooling.pool_max`)."""
        rows = max(1, ROW_CHUNK_ELEMENTS // max(1, self.vocab_size))
        for r0 in range(0, len(lengths), rows):
            r1 = min(len(lengths), r0 + rows)
            yield r0, r1, min(full, max(1, max(int(x) for x in lengths[r0:r1])))

    def encode_queries(
        self, texts: Sequence[str], ids: Sequence[str] | None = None, batch_size: int = 64, show_progress: bool = False
    ) -> SparseVectors:
        """Query vectors (query-side LFW k, LRN side and analysis modes); ids default to 0, 1, ..."""
        return self.encode(texts, side="query", batch_size=batch_size, ids=ids, show_progress=show_progress)

    def encode_items(
        self, texts: Sequence[str], ids: Sequence[str] | None = None, batch_size: int = 64, show_progress: bool = False
    ) -> SparseVectors:
        """Item (document) vectors; ``ids`` name the rows (default 0, 1, ...), e.g. for an index."""
        return self.encode(texts, side="item", batch_size=batch_size, ids=ids, show_progress=show_progress)

    # -- vocabulary and scoring -------------------------------------------------------------
    def vocabulary(self) -> list[str]:
        """One unique term string per term id (``0 .. vocab_size-1``)."""
        known = min(len(self.tokenizer), self.vocab_size)
        tokens = self.tokenizer.convert_ids_to_tokens(list(range(known)))
        terms, seen = [], set()
        for i in range(self.vocab_size):
            token = tokens[i] if i < known else None
            if token is None or token in seen:
                token = f"<unused_{i}>" if token is None else f"{token}#{i}"
            seen.add(token)
            terms.append(token)
        return terms

    def term_text(self, term_ids: Sequence[int]) -> list[str]:
        """Readable text of each term id (byte-level BPE markers decoded), for display only."""
        out = []
        for i in term_ids:
            i = int(i)
            text = self.tokenizer.decode([i]) if i < len(self.tokenizer) else ""
            if not text.strip() or "\ufffd" in text:  # partial UTF-8 byte: show the raw token
                text = self.tokenizer.convert_ids_to_tokens(i) if i < len(self.tokenizer) else f"<unused_{i}>"
            out.append(text)
        return out

    def score(self, q: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """``[Bq, V] x [Bd, V] -> [Bq, Bd]`` per ``settings.scoring`` (Eq. 11)."""
        return _scoring.score(q, d, self.settings.scoring)


def _without_onednn(active: bool):
    """Run fp32 CPU inference on ATen's own kernels instead of oneDNN's (GELU is the only oneDNN
    op an fp32 encoder hits). oneDNN JIT-compiles and caches one primitive per tensor shape
    (up to 1,024): batches of ever new shapes leave each cached primitive's small allocations
    between the freed activations, so glibc cannot reuse or return that memory and the peak
    grew by ~0.25 GB over 2,000 long texts. ATen's GELU is as fast here and keeps the peak flat;
    the vectors agree to float tolerance. bf16/fp16 keep oneDNN (their fast matmuls need it)."""
    return onednn(False) if active else nullcontext()


class _progress:
    """A small rich progress bar, or nothing."""

    def __new__(cls, total: int, show: bool, side: str):
        if not show:
            return None
        return super().__new__(cls)

    def __init__(self, total: int, show: bool, side: str):
        from rich.progress import Progress

        self._bar = Progress(transient=True)
        self._task = self._bar.add_task(f"encoding {side}s", total=total)
        self._bar.start()

    def advance(self, n: int) -> None:
        self._bar.advance(self._task, n)

    def stop(self) -> None:
        self._bar.stop()
