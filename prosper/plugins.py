"""The plugin manager: loads the ``prosper`` entry-point group and fills the registry.

Built-in components come through the same entry-point group as third-party ones (see
``[project.entry-points.prosper]`` in pyproject.toml); nothing here special-cases them.
``PROSPER_DISABLE_PLUGINS`` (comma-separated entry-point names) blocks plugins before they load.
"""

from __future__ import annotations

import os
from functools import lru_cache

import pluggy

from prosper import hookspecs
from prosper.errors import PluginError
from prosper.registry import Component, Registry

ENTRY_POINT_GROUP = "prosper"
IN_PROCESS = "(in-process)"

#: hook name -> component kind
REGISTRATION_HOOKS = {
    "register_backbones": "backbone",
    "register_losses": "loss",
    "register_regularizers": "regularizer",
    "register_exporters": "exporter",
    "register_searchers": "searcher",
}


def disabled_plugins() -> set[str]:
    raw = os.environ.get("PROSPER_DISABLE_PLUGINS", "")
    return {name.strip() for name in raw.split(",") if name.strip()}


@lru_cache(maxsize=1)
def get_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("prosper")
    pm.add_hookspecs(hookspecs)
    for name in disabled_plugins():
        pm.set_blocked(name)
    try:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    except ValueError as exc:  # two distributions used the same entry-point name
        raise PluginError(f"plugin entry points clash: {exc}") from None
    except Exception as exc:  # a broken third-party plugin must not look like our bug
        raise PluginError(f"a plugin failed to load: {type(exc).__name__}: {exc}") from None
    pm.check_pending()
    return pm


def _providers(pm: pluggy.PluginManager) -> dict[int, tuple[str, str]]:
    """plugin object id -> (distribution name, version)."""
    found = {}
    for plugin, dist in pm.list_plugin_distinfo():
        found[id(plugin)] = (dist.metadata["name"], dist.version)
    return found


@lru_cache(maxsize=1)
def get_registry() -> Registry:
    """The registry of every component the installed (and in-process) plugins provide."""
    return build_registry(get_plugin_manager())


def build_registry(pm: pluggy.PluginManager) -> Registry:
    registry = Registry()
    providers = _providers(pm)
    for hook_name, kind in REGISTRATION_HOOKS.items():
        caller = getattr(pm.hook, hook_name)
        # Call implementations one by one so each registration knows which plugin made it.
        for impl in caller.get_hookimpls():
            provider, version = providers.get(id(impl.plugin), (IN_PROCESS, ""))

            def register(name, factory, params_model, *, _kind=kind, _impl=impl, _p=provider, _v=version):
                registry.add(Component(_kind, name, factory, params_model, _p, _v, _impl.plugin_name))

            impl.function(register=register)
    return registry


def reset() -> None:
    """Forget the loaded plugins (tests use this after registering fakes)."""
    get_registry.cache_clear()
    get_plugin_manager.cache_clear()


def register_plugin(plugin: object, name: str | None = None) -> str:
    """Register a plugin object in-process (tests, notebooks) and rebuild the registry."""
    pm = get_plugin_manager()
    registered = pm.register(plugin, name=name)
    if registered is None:
        raise PluginError(f"plugin {name or plugin!r} is blocked")
    get_registry.cache_clear()
    try:
        get_registry()  # fail now, not at first use, if it clashes with what is there
    except PluginError:
        pm.unregister(name=registered)
        get_registry.cache_clear()
        raise
    return registered


def unregister_plugin(name: str) -> None:
    pm = get_plugin_manager()
    pm.unregister(name=name)
    get_registry.cache_clear()
