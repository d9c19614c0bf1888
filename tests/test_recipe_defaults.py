"""The recipe's backbone-kind defaults: model.scoring=auto, resolved once and saved concrete."""

from __future__ import annotations

import pytest

from prosper.settings import load_settings
from tests.training_helpers import build_backbone, build_shop


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe")
    build_shop(root)
    return root, build_backbone(root, "bert")


@pytest.mark.usefixtures("one_torch_thread")
def test_scoring_auto_resolves_by_backbone_kind_and_is_saved_concrete(tiny, tmp_path):
    """model.scoring=auto: dot product for a masked LM, Eq. 11 (query_l2) for a causal LM."""
    from prosper.modeling.encoder import SparseEncoder

    root, bert = tiny
    qwen = build_backbone(root, "qwen")
    for path, name, expected in ((bert, "bert", "none"), (qwen, "qwen", "query_l2")):
        settings = load_settings(overrides=[f"model.backbone.name={name}", f"model.backbone.path={path}",
                                            "model.device=cpu"], environ={})
        assert settings.model.scoring == "auto"
        encoder = SparseEncoder.from_settings(settings.model, device="cpu")
        assert encoder.settings.scoring == expected
        encoder.save(tmp_path / name)
        assert SparseEncoder.load(tmp_path / name, device="cpu").settings.scoring == expected
