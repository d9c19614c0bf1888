"""Backbone registration and the lazy top-level import."""

from __future__ import annotations

import subprocess
import sys

import pytest

from prosper.errors import ConfigError


def test_backbones_are_registered_with_safe_defaults():
    from prosper.plugins import get_registry

    registry = get_registry()
    params = registry.validate("backbone", {"name": "qwen", "path": "Qwen/Qwen2.5-0.5B"})
    assert params.trust_remote_code is False and params.revision is None
    assert registry.validate("backbone", {"name": "bert", "path": "x"}).path == "x"
    with pytest.raises(ConfigError, match="model.backbone"):
        registry.validate("backbone", {"name": "qwen", "path": "x", "nope": 1}, "model.backbone")


def test_import_prosper_stays_light_and_sparse_encoder_is_lazy():
    code = (
        "import sys, prosper, prosper.modeling.plugin, prosper.cli.explain;"
        "assert 'torch' not in sys.modules, 'torch imported early';"
        "from prosper import SparseEncoder; assert 'torch' in sys.modules;"
        "print(SparseEncoder.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "SparseEncoder"


def test_missing_local_backbone_is_a_config_error(tmp_path):
    pytest.importorskip("torch")
    from prosper.modeling.encoder import SparseEncoder
    from prosper.settings import ModelSettings

    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="model.backbone.path"):
        SparseEncoder.from_settings(ModelSettings(backbone={"name": "qwen", "path": str(tmp_path / "empty")}, device="cpu"))
