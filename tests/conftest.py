"""Shared fixtures. ``../shared`` (models and data for development) is optional: tests that
need it use the ``shared_dir`` fixture and skip cleanly when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PROSPER_SHARED_DIR", REPO.parent / "shared"))

# Keep the suite from oversubscribing the CI machine's cores.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is absent (development models and data)")
    return SHARED


@pytest.fixture()
def clean_env(monkeypatch):
    """Remove PROSPER_* variables the developer may have set, so settings tests are hermetic."""
    for name in list(os.environ):
        if name.startswith("PROSPER_"):
            monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture()
def plugin_registry():
    """Register fake plugins in-process; they are unregistered after the test.

    Usage: ``plugin_registry.add(obj, "name")`` then ``get_registry()`` sees them.
    """
    from prosper import plugins

    class _Fakes:
        def __init__(self):
            self.names: list[str] = []

        def add(self, plugin, name):
            self.names.append(plugins.register_plugin(plugin, name))

    fakes = _Fakes()
    plugins.reset()
    yield fakes
    for name in fakes.names:
        plugins.unregister_plugin(name)
    plugins.reset()


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models: thread hand-offs cost more than the maths on a busy 2-core machine.

    Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    from tests.training_helpers import one_thread

    with one_thread():
        yield
