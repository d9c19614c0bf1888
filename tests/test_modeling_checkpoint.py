"""Checkpoint round trip (identical vectors), atomic layout, refusal of unsafe pickles."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")

from prosper.errors import CheckpointError  # noqa: E402
from prosper.modeling.encoder import SparseEncoder  # noqa: E402
from prosper.demo.scratch import build_random_causal_lm, train_tokenizer  # noqa: E402
from prosper.settings import ModelSettings  # noqa: E402

TEXTS = ["cordless drill with lithium battery", "sink", "garden hose 50 ft"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    tok = train_tokenizer(vocab_size=300)
    path = build_random_causal_lm(tok, tmp_path_factory.mktemp("qwen3"), arch="qwen3", hidden_size=32)
    torch.manual_seed(1)
    settings = ModelSettings(
        backbone={"name": "qwen", "path": str(path)}, device="cpu", lfw={"k_query": 16, "k_item": 40},
        lrn={"mode": "review"}, scoring="both_l2",
    )
    return SparseEncoder.from_settings(settings)


def test_save_load_round_trip_gives_identical_vectors(encoder, tmp_path):
    target = tmp_path / "ckpt"
    encoder.save(target)
    assert sorted(p.name for p in target.iterdir()) == ["backbone", "lrn.safetensors", "prosper.yaml"]
    assert (target / "backbone" / "model.safetensors").is_file()
    assert not list(target.rglob("*.bin")) and not list(tmp_path.glob("*.tmp-*"))
    saved = yaml.safe_load((target / "prosper.yaml").read_text())
    assert saved["model"]["lrn"]["mode"] == "review" and saved["model"]["scoring"] == "both_l2"
    loaded = SparseEncoder.load(target)
    assert loaded.settings.lfw.k_item == 40 and loaded.settings.scoring == "both_l2"
    for side in ("query", "item"):
        a = encoder.encode(TEXTS, side=side)
        b = loaded.encode(TEXTS, side=side)
        assert a.equals(b)  # bit for bit
    # saving again over an existing checkpoint replaces it atomically
    encoder.save(target)
    assert SparseEncoder.load(target).encode(TEXTS).equals(encoder.encode(TEXTS))


def test_load_overrides_model_settings(encoder, tmp_path):
    encoder.save(tmp_path / "c")
    loaded = SparseEncoder.load(tmp_path / "c", lfw={"k_item": 5})
    assert loaded.encode(TEXTS).nnz.max() == 5


class _Evil:
    def __reduce__(self):
        return (print, ("owned",))


def test_refuses_pickles_that_need_arbitrary_code(encoder, tmp_path):
    target = tmp_path / "c"
    encoder.save(target)
    with open(target / "backbone" / "pytorch_model.bin", "wb") as fh:
        pickle.dump({"x": _Evil()}, fh)
    with pytest.raises(CheckpointError, match="refusing pickled weights"):
        SparseEncoder.load(target)


def test_accepts_weights_only_pickles(encoder, tmp_path):
    target = tmp_path / "c"
    encoder.save(target)
    state = {k: v.clone() for k, v in encoder.lrn.state_dict().items()}
    (target / "lrn.safetensors").unlink()
    torch.save(state, target / "lrn.pt")
    loaded = SparseEncoder.load(target)
    assert np.allclose(loaded.encode(TEXTS).to_dense(), encoder.encode(TEXTS).to_dense())


def test_missing_pieces_are_checkpoint_errors(encoder, tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        SparseEncoder.load(tmp_path / "nothing")
    target = tmp_path / "c"
    encoder.save(target)
    (target / "lrn.safetensors").unlink()
    with pytest.raises(CheckpointError, match="lrn.safetensors"):
        SparseEncoder.load(target)
    assert SparseEncoder.load(target, lrn={"enabled": False}).lrn is None
