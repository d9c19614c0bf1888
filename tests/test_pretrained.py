"""``SparseEncoder.from_pretrained``: prosper checkpoints, plain SPLADE folders (== sentence-transformers)
and causal LMs, by folder; ``--model`` on the command line; clear errors for what cannot load."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from prosper.cli.app import main  # noqa: E402
from prosper.demo.scratch import build_random_causal_lm, build_random_masked_lm, train_tokenizer  # noqa: E402
from prosper.errors import CheckpointError, ConfigError, InputError  # noqa: E402
from prosper.modeling.encoder import SparseEncoder  # noqa: E402
from prosper.modeling.pretrained import inspect_pretrained  # noqa: E402
from prosper.settings import ModelSettings  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEXTS = [
    "Cordless drill with lithium battery and charger",
    "sink",
    "",
    "oak nightstand, 2 drawers " * 40,  # past 64 tokens: truncation must agree too
    "LED light bulb 60 watt equivalent soft white",
]


@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory):
    """A tiny random BERT masked LM saved like any hub model (config.json, safetensors, tokenizer)."""
    tokenizer = train_tokenizer(vocab_size=300, kind="wordpiece")
    return build_random_masked_lm(tokenizer, tmp_path_factory.mktemp("mlm") / "bert", hidden_size=32, layers=1, heads=2)


@pytest.fixture(scope="module")
def st_dir(mlm_dir, tmp_path_factory):
    """The same model saved by sentence-transformers (modules.json, 1_SpladePooling/, ...)."""
    st = pytest.importorskip("sentence_transformers")
    out = tmp_path_factory.mktemp("st") / "splade"
    st.SparseEncoder(str(mlm_dir), device="cpu").save_pretrained(str(out))
    return out


def _st_vectors(folder, texts, side):
    import sentence_transformers as st

    model = st.SparseEncoder(str(folder), device="cpu")
    encode = model.encode_query if side == "query" else model.encode_document
    out = encode(texts, convert_to_tensor=True)
    return (out.to_dense() if out.is_sparse else out).numpy()


def test_plain_mlm_folder_gets_splade_settings(mlm_dir):
    spec = inspect_pretrained(mlm_dir)
    assert spec.kind == "mlm"
    assert spec.model == {
        "backbone": {"path": str(mlm_dir), "name": "bert"},
        "pooling": "max",
        "pool_special_tokens": True,
        "lrn": {"enabled": False},
        "lfw": {"enabled": False},
        "scoring": "none",
        "max_length": 512,  # tokenizer model_max_length (512) capped at max_position_embeddings (512)
    }
    encoder = SparseEncoder.from_pretrained(mlm_dir, device="cpu")
    assert encoder.kind == "mlm" and encoder.lrn is None and encoder.pooling == "max"
    assert encoder.source == str(mlm_dir) and encoder.settings.scoring == "none"


def test_plain_mlm_equals_wrapped_checkpoint_and_sentence_transformers(mlm_dir, tmp_path):
    """from_pretrained == the hand-written wrapping (benchmarks' old plain_splade) == its saved
    checkpoint reloaded, and == sentence-transformers' SparseEncoder on the same folder."""
    ours = SparseEncoder.from_pretrained(mlm_dir, device="cpu")
    by_hand = SparseEncoder.from_settings(
        ModelSettings(backbone={"name": "bert", "path": str(mlm_dir)}, pooling="max", lrn={"enabled": False},
                      lfw={"enabled": False}, scoring="none", max_length=512, device="cpu")
    )
    ours.save(tmp_path / "wrapped")
    reloaded = SparseEncoder.from_pretrained(tmp_path / "wrapped", device="cpu")
    def same(settings):  # all but where the weights live and the device asked for
        return settings.model_dump(exclude={"backbone", "device"})

    assert same(SparseEncoder.load(tmp_path / "wrapped").settings) == same(reloaded.settings) == same(ours.settings)
    assert inspect_pretrained(tmp_path / "wrapped").kind == "checkpoint"
    with pytest.warns(UserWarning, match="is the backbone of the prosper checkpoint"):
        assert inspect_pretrained(tmp_path / "wrapped" / "backbone").kind == "mlm"
    for side in ("query", "item"):
        vectors = ours.encode(TEXTS, side=side)
        assert vectors.equals(by_hand.encode(TEXTS, side=side))
        assert vectors.equals(reloaded.encode(TEXTS, side=side))  # bit for bit
        assert vectors.nnz.min() > 100  # dense-ish random MLM: a real comparison
    pytest.importorskip("sentence_transformers")
    np.testing.assert_allclose(ours.encode_items(TEXTS).to_dense(), _st_vectors(mlm_dir, TEXTS, "item"), atol=1e-5, rtol=0)
    np.testing.assert_allclose(ours.encode_queries(TEXTS).to_dense(), _st_vectors(mlm_dir, TEXTS, "query"), atol=1e-5, rtol=0)


def test_sentence_transformers_folder_settings_are_read(st_dir, tmp_path):
    """Sum pooling, cosine similarity and max_active_dims from the folder's own config files."""
    folder = tmp_path / "st"
    shutil.copytree(st_dir, folder)
    (folder / "1_SpladePooling" / "config.json").write_text(json.dumps({"pooling_strategy": "sum", "activation_function": "relu"}))
    config = json.loads((folder / "config_sentence_transformers.json").read_text())
    config.update(similarity_fn_name="cosine", max_active_dims=7)
    (folder / "config_sentence_transformers.json").write_text(json.dumps(config))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"transformer_task": "fill-mask", "max_seq_length": 16}))

    spec = inspect_pretrained(folder)
    assert spec.model["pooling"] == "sum" and spec.model["scoring"] == "both_l2" and spec.model["max_length"] == 16
    assert spec.model["lfw"] == {"enabled": True, "k_query": 7, "k_item": 7}
    ours = SparseEncoder.from_pretrained(folder, device="cpu").encode_items(TEXTS)
    assert ours.nnz.max() == 7
    np.testing.assert_allclose(ours.to_dense(), _st_vectors(folder, TEXTS, "item"), atol=1e-4, rtol=0)


def test_unsupported_sentence_transformers_folders_are_refused(st_dir, tmp_path):
    folder = tmp_path / "st"
    shutil.copytree(st_dir, folder)
    pooling = folder / "1_SpladePooling" / "config.json"
    pooling.write_text(json.dumps({"pooling_strategy": "max", "activation_function": "log1p_relu"}))
    with pytest.raises(ConfigError, match=r"1_SpladePooling/config.json: activation_function='log1p_relu'"):
        inspect_pretrained(folder)
    pooling.write_text(json.dumps({"pooling_strategy": "max", "activation_function": "relu"}))
    modules = json.loads((folder / "modules.json").read_text())
    modules[0]["type"] = "sentence_transformers.base.modules.router.Router"
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ConfigError, match=r"modules.json: modules \[Router, SpladePooling\] are not supported"):
        inspect_pretrained(folder)
    (folder / "modules.json").write_text("[{")
    with pytest.raises(InputError, match=r"modules.json:1: invalid JSON"):
        inspect_pretrained(folder)


def test_prompts_are_not_applied_silently(st_dir, tmp_path):
    folder = tmp_path / "st"
    shutil.copytree(st_dir, folder)
    config = json.loads((folder / "config_sentence_transformers.json").read_text())
    config["prompts"] = {"query": "query: ", "document": ""}
    (folder / "config_sentence_transformers.json").write_text(json.dumps(config))
    with pytest.warns(UserWarning, match=r"does not prepend the sentence-transformers prompts \['query'\]"):
        inspect_pretrained(folder)


def test_causal_lm_folder(tmp_path):
    path = build_random_causal_lm(train_tokenizer(vocab_size=300), tmp_path / "qwen", hidden_size=32, layers=1, heads=2)
    spec = inspect_pretrained(path)
    assert spec.kind == "causal" and spec.model == {"backbone": {"path": str(path), "name": "qwen"}, "lrn": {"enabled": False}}
    encoder = SparseEncoder.from_pretrained(path, device="cpu", lfw={"k_query": 5})
    assert encoder.kind == "causal" and encoder.pooling == "last" and encoder.lrn is None
    first = encoder.encode_queries(["cordless drill", "sink"])
    assert first.nnz.tolist() == [5, 5]  # LFW stays on (prosper's default) with the override's k
    again = SparseEncoder.from_pretrained(path, device="cpu", lfw={"k_query": 5}).encode_queries(["cordless drill", "sink"])
    assert first.equals(again)  # no random LRN layer: the same folder gives the same vectors


def test_what_cannot_load_says_why(tmp_path, mlm_dir):
    with pytest.raises(CheckpointError, match="not found"):
        SparseEncoder.from_pretrained(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"neither a prosper checkpoint \(prosper.yaml\) nor a Hugging Face model folder"):
        SparseEncoder.from_pretrained(tmp_path / "empty")
    folder = tmp_path / "encoder-only"
    shutil.copytree(mlm_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["BertModel"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=r"config.json: architectures \[BertModel\] are neither \*ForMaskedLM"):
        SparseEncoder.from_pretrained(folder)
    with pytest.raises(ConfigError, match="model.lfw.k_item"):
        SparseEncoder.from_pretrained(mlm_dir, lfw={"k_item": 0})


def test_hub_id_offline_is_one_clear_error(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConfigError, match="not in the Hugging Face cache"):
        SparseEncoder.from_pretrained("prosper-tests/no-such-model")


def test_cli_model_option_encodes_a_plain_splade_folder(mlm_dir, tmp_path, capsys, clean_env):
    from prosper.export.parquet import read_parquet_vectors

    texts = [t for t in TEXTS if t]  # the collection reader refuses empty texts
    source = tmp_path / "items.jsonl"
    source.write_text("".join(json.dumps({"_id": f"p{i}", "title": t}) + "\n" for i, t in enumerate(texts)), encoding="utf-8")
    encoder = SparseEncoder.from_pretrained(mlm_dir, device="cpu")
    direct = encoder.encode_items(texts, ids=[f"p{i}" for i in range(len(texts))])
    for option, out in (("--model", "a.parquet"), ("--checkpoint", "b.parquet")):
        rc = main(["infer", option, str(mlm_dir), "-i", str(source), "-o", str(tmp_path / out), "--no-progress", "model.device=cpu"])
        assert rc == 0, capsys.readouterr().err
        vectors, meta = read_parquet_vectors(tmp_path / out)
        assert vectors.ids == direct.ids
        np.testing.assert_allclose(vectors.to_dense(), direct.to_dense(), atol=1e-5, rtol=0)
        assert meta["scoring"] == "none" and meta["checkpoint"] == str(mlm_dir)
    capsys.readouterr()
    assert main(["explain", "--model", str(mlm_dir), "cordless drill", "--json", "--top", "3"]) == 0
    shown = json.loads(capsys.readouterr().out)
    query = encoder.encode_queries(["cordless drill"])
    assert shown["nnz"] == int(query.nnz[0])
    assert [t["weight"] for t in shown["terms"]] == pytest.approx([w for _, w in query.decode(3)[0]], abs=1e-5)


@pytest.mark.shared
def test_splade_tiny_equals_sentence_transformers(shared_dir):
    """The real splade-tiny folder: from_pretrained == sentence-transformers' SparseEncoder, both sides."""
    pytest.importorskip("sentence_transformers")
    model = shared_dir / "models" / "splade-tiny"
    corpus = shared_dir / "datasets" / "homedepot" / "corpus.jsonl"
    if not model.is_dir() or not corpus.is_file():
        pytest.skip("splade-tiny or homedepot missing from ../shared")
    with corpus.open(encoding="utf-8") as fh:
        titles = [json.loads(next(fh))["title"] for _ in range(24)] + ["", "ALL CAPS 3/4 in. x 10 ft."]
    encoder = SparseEncoder.from_pretrained(model, device="cpu")
    assert encoder.settings.max_length == 512 and encoder.settings.scoring == "none"
    np.testing.assert_allclose(encoder.encode_items(titles).to_dense(), _st_vectors(model, titles, "item"), atol=1e-4, rtol=0)
    np.testing.assert_allclose(encoder.encode_queries(titles).to_dense(), _st_vectors(model, titles, "query"), atol=1e-4, rtol=0)
