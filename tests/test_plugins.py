"""Plugin system: entry points, in-process registration, unknown/duplicate names, blocking."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from prosper import hookimpl, plugins
from prosper.components import RankingLoss
from prosper.errors import ConfigError, PluginError
from prosper.plugins import get_registry
from prosper.registry import Component, Registry


class NoParams(BaseModel):
    pass


class Greeter(RankingLoss):
    """Says hello (a fake loss)."""

    def __init__(self, params):
        super().__init__()
        self.params = params

    def forward(self, query_vectors, item_vectors, batch):
        return self.score(query_vectors, item_vectors).sum()


class NotALoss:
    def __init__(self, params):
        self.params = params


class FakeLosses:
    @hookimpl
    def register_losses(self, register):
        register("hello", Greeter, NoParams)


def test_builtins_come_through_entry_points():
    pm = plugins.get_plugin_manager()
    names = {name for name, _ in pm.list_name_plugin()}
    assert {"prosper-backbones", "prosper-losses", "prosper-exporters"} <= names
    dists = {dist.metadata["name"] for _, dist in pm.list_plugin_distinfo()}
    assert "prosper-retrieval" in dists


def test_register_fake_plugin_in_process(plugin_registry):
    plugin_registry.add(FakeLosses(), "fake-losses")
    registry = get_registry()
    component = registry.get("loss", "hello")
    assert component.provider == plugins.IN_PROCESS and component.plugin == "fake-losses"
    built = registry.build("loss", {"name": "hello"})
    assert isinstance(built, Greeter) and isinstance(built.params, NoParams)
    assert component.doc == "Says hello (a fake loss)."


def test_factory_must_return_the_contract_class(plugin_registry):
    class Wrong:
        @hookimpl
        def register_losses(self, register):
            register("wrong", NotALoss, NoParams)

    plugin_registry.add(Wrong(), "wrong-losses")
    with pytest.raises(PluginError, match=r"loss 'wrong' from \(in-process\): its factory returned a NotALoss, not a prosper.components.RankingLoss"):
        get_registry().build("loss", {"name": "wrong"})


def test_unregistered_after_fixture():
    assert "hello" not in get_registry().names("loss")


def test_unknown_name_lists_registered_names(plugin_registry):
    plugin_registry.add(FakeLosses(), "fake-losses")
    with pytest.raises(ConfigError, match=r"train\.loss: unknown loss 'nope'; registered: .*hello"):
        get_registry().get("loss", "nope", where="train.loss")


def test_duplicate_name_names_both_providers():
    registry = Registry()
    registry.add(Component("loss", "dup", Greeter, NoParams, "dist-a", "1.0", "a"))
    with pytest.raises(PluginError) as info:
        registry.add(Component("loss", "dup", Greeter, NoParams, "dist-b", "2.0", "b"))
    assert "dist-a" in str(info.value) and "dist-b" in str(info.value)


def test_duplicate_across_plugins_fails_on_load(plugin_registry):
    class Again:
        @hookimpl
        def register_losses(self, register):
            register("hello", Greeter, NoParams)

    plugin_registry.add(FakeLosses(), "first")
    with pytest.raises(PluginError, match="registered twice"):
        plugin_registry.add(Again(), "second")


def test_params_model_must_be_pydantic():
    with pytest.raises(PluginError, match="pydantic"):
        Registry().add(Component("loss", "x", Greeter, dict, "d", "1", "p"))


def test_disable_plugins_blocks_by_name(monkeypatch):
    monkeypatch.setenv("PROSPER_DISABLE_PLUGINS", "prosper-exporters, something-else")
    plugins.reset()
    try:
        pm = plugins.get_plugin_manager()
        assert pm.is_blocked("prosper-exporters")
        assert get_registry().names("exporter") == []
        assert get_registry().names("loss")  # others still load
    finally:
        monkeypatch.delenv("PROSPER_DISABLE_PLUGINS")
        plugins.reset()


def test_blocked_in_process_plugin(monkeypatch, plugin_registry):
    monkeypatch.setenv("PROSPER_DISABLE_PLUGINS", "fake-losses")
    plugins.reset()
    with pytest.raises(PluginError, match="blocked"):
        plugin_registry.add(FakeLosses(), "fake-losses")
