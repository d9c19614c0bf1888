"""Settings: the four sources, their precedence, and one-line errors naming the field."""

from __future__ import annotations

import pytest

from prosper.errors import ConfigError, InputError
from prosper.settings import ProsperSettings, load_settings, parse_overrides


def write(tmp_path, text, name="conf.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_the_measured_recipe(clean_env):
    s = load_settings(environ={})
    assert s.model.lfw.k_query == 256 and s.model.lfw.k_item == 512
    assert s.model.scoring == "query_l2"  # Eq. 11
    assert s.model.lrn.enabled and s.model.lrn.mode == "compensate" and s.model.max_length == 64
    assert (s.train.target_terms.query, s.train.target_terms.item) == (12, 48)
    assert s.train.optimizer.lr is None and s.train.optimizer.weight_decay == 0.1  # lr by backbone kind
    flops = s.train.regularizers[0]
    assert flops.name == "flops" and flops.params["lambda_query"] == 5e-3 and flops.params["lambda_item"] == 1e-3


def test_reference_config_is_the_paper_recipe(clean_env):
    from pathlib import Path

    s = load_settings(Path(__file__).resolve().parents[1] / "conf" / "config.yaml", environ={})
    assert s.model.scoring == "query_l2" and s.model.pooling == "last" and s.model.lrn.enabled
    assert (s.model.lfw.k_query, s.model.lfw.k_item) == (256, 512)
    assert s.train.target_terms is None and s.train.hard_negatives == 0
    assert s.train.optimizer.lr == 3e-5 and s.train.optimizer.lrn_lr is None
    flops = s.train.regularizers[0]
    assert flops.params == {"lambda_query": 5e-3, "lambda_item": 1e-3, "schedule": "quadratic", "ramp_steps": 400}


def test_learning_rates_by_backbone_kind():
    from prosper.settings import OptimizerSettings
    from prosper.training.optim import learning_rates

    assert learning_rates(OptimizerSettings(), "causal") == (3e-5, None)
    assert learning_rates(OptimizerSettings(), "mlm") == (1e-4, 1e-3)
    assert learning_rates(OptimizerSettings(lr=2e-5), "mlm") == (2e-5, 1e-3)
    assert learning_rates(OptimizerSettings(lrn_lr=5e-4), "causal") == (3e-5, 5e-4)


def test_precedence_defaults_file_env_overrides(tmp_path, clean_env):
    conf = write(tmp_path, "train:\n  batch_size: 8\n  seed: 7\nmodel:\n  pooling: max\n  max_length: 32\n")
    env = {"PROSPER_TRAIN__BATCH_SIZE": "16", "PROSPER_MODEL__MAX_LENGTH": "48"}
    s = load_settings(conf, ["train.batch_size=32"], environ=env)
    assert s.train.batch_size == 32  # override beats env and file
    assert s.model.max_length == 48  # env beats file
    assert s.model.pooling == "max"  # file beats default
    assert s.train.seed == 7
    assert s.train.warmup_steps == ProsperSettings().train.warmup_steps  # default survives


def test_env_and_file_merge_deeply(tmp_path, clean_env):
    conf = write(tmp_path, "model:\n  lfw: {k_query: 64}\n")
    s = load_settings(conf, ["model.lfw.enabled=false"], environ={"PROSPER_MODEL__LFW__K_ITEM": "128"})
    assert (s.model.lfw.enabled, s.model.lfw.k_query, s.model.lfw.k_item) == (False, 64, 128)


def test_real_environment_is_read(clean_env):
    clean_env.setenv("PROSPER_INFER__BATCH_SIZE", "17")
    clean_env.setenv("PROSPER_DEBUG", "1")  # not a setting: must be ignored
    assert load_settings().infer.batch_size == 17


def test_component_params_pass_through(clean_env):
    s = load_settings(overrides=["export.name=lucene", "export.scale=50"], environ={})
    assert s.export.name == "lucene" and s.export.params == {"scale": 50}


def test_override_values_are_typed():
    assert parse_overrides(["a.b=1", "a.c=false", "a.d=x y", "e.f=[1, 2]"]) == {
        "a": {"b": 1, "c": False, "d": "x y"},
        "e": {"f": [1, 2]},
    }


@pytest.mark.parametrize("bad", ["nodot", "train.batch_size", "=3", "train..x=1"])
def test_malformed_override_is_one_line(bad):
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_overrides([bad])


def test_wrong_type_names_field_and_file_line(tmp_path, clean_env):
    conf = write(tmp_path, "model:\n  pooling: last\ntrain:\n  seed: 1\n  batch_size: many\n")
    with pytest.raises(ConfigError) as info:
        load_settings(conf, environ={})
    message = str(info.value)
    assert "train.batch_size" in message and f"{conf}:5" in message and "\n" not in message


def test_unknown_field_is_named(clean_env):
    with pytest.raises(ConfigError, match=r"model\.lfw\.k_doc: unknown field"):
        load_settings(overrides=["model.lfw.k_doc=3"], environ={})


def test_bad_literal_choice_is_named(clean_env):
    with pytest.raises(ConfigError, match=r"model\.pooling: .*'first'"):
        load_settings(environ={"PROSPER_MODEL__POOLING": "first"})


def test_invalid_yaml_names_file_and_line(tmp_path):
    conf = write(tmp_path, "model:\n  pooling: [last\ntrain: {}\n")
    with pytest.raises(ConfigError, match=rf"{conf}:\d+: invalid YAML"):
        load_settings(conf, environ={})


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="configuration file not found"):
        load_settings(tmp_path / "absent.yaml", environ={})


def test_non_mapping_yaml(tmp_path):
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(write(tmp_path, "- a\n- b\n"), environ={})


def test_component_params_validated_against_plugin_model(plugin_registry, clean_env):
    from pydantic import BaseModel, ConfigDict

    from prosper import hookimpl
    from prosper.plugins import get_registry
    from prosper.settings import validate_components

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        scale: int = 100

    class Fake:
        @hookimpl
        def register_exporters(self, register):
            register("fake-out", lambda p: p, Params)

    plugin_registry.add(Fake(), "fake")
    good = load_settings(overrides=["export.name=fake-out", "export.scale=7"], environ={})
    assert validate_components(good)["export"].scale == 7
    bad = load_settings(overrides=["export.name=fake-out", "export.scale=big"], environ={})
    with pytest.raises(ConfigError, match=r"^export\.scale: "):
        validate_components(bad)
    unknown = load_settings(overrides=["export.name=nope"], environ={})
    with pytest.raises(ConfigError, match=r"export: unknown exporter 'nope'; registered: .*fake-out"):
        validate_components(unknown)
    assert get_registry().get("exporter", "fake-out").provider == "(in-process)"


# -- partial component overrides (issue 10: settings that merge) ---------------------------
@pytest.mark.parametrize(
    "override, path, expected",
    [
        ("model.backbone.path=Qwen/Qwen2.5-0.5B", ("model", "backbone"), {"name": "qwen", "path": "Qwen/Qwen2.5-0.5B"}),
        ("train.loss.temperature=0.1", ("train", "loss"), {"name": "in_batch_nll", "temperature": 0.1}),
        ("search.searcher.heap_factor=0.5", ("search", "searcher"), {"name": "exact", "heap_factor": 0.5}),
    ],
)
def test_partial_component_override_keeps_the_name(override, path, expected, clean_env):
    s = load_settings(overrides=[override], environ={})
    spec = getattr(getattr(s, path[0]), path[1]).model_dump()
    assert spec == expected


def test_partial_override_from_env_keeps_file_params(tmp_path, clean_env):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model:\n  backbone: {name: bert, path: a, revision: v1}\n")
    s = load_settings(cfg, environ={"PROSPER_MODEL__BACKBONE__PATH": "b"})
    assert s.model.backbone.model_dump() == {"name": "bert", "path": "b", "revision": "v1"}
    s = load_settings(cfg, overrides=["model.backbone.tokenizer=t"], environ={})
    assert s.model.backbone.model_dump() == {"name": "bert", "path": "a", "revision": "v1", "tokenizer": "t"}


def test_new_component_name_starts_from_its_defaults(tmp_path, clean_env):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("export: {name: lucene, scale: 50}\ntrain:\n  loss: {name: in_batch_nll, temperature: 0.2}\n")
    s = load_settings(cfg, overrides=["export.name=jsonl", "train.loss={name: margin_mse}"], environ={})
    assert s.export.model_dump() == {"name": "jsonl"}  # lucene's scale is not carried over
    assert s.train.loss.model_dump() == {"name": "margin_mse"}
    s = load_settings(cfg, overrides=["export.name=lucene"], environ={})  # same name: params kept
    assert s.export.model_dump() == {"name": "lucene", "scale": 50}


def test_unknown_param_names_the_component_and_its_params(clean_env):
    from prosper.settings import resolve

    with pytest.raises(ConfigError, match=r"export\.scale: unknown field for exporter 'parquet' \(its parameters: compression, row_group_rows\)"):
        resolve(overrides=["export.scale=50"], environ={})
