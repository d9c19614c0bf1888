"""The repository tracks sources only: no wheels, archives, caches or egg-info; a LICENSE ships."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ARTEFACT = re.compile(r"(\.whl|\.tar\.gz|\.pyc|\.egg)$|(^|/)(__pycache__|[^/]+\.egg-info|build|dist)/")


def test_no_build_artefacts_are_tracked():
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    bad = [path for path in tracked.splitlines() if ARTEFACT.search(path)]
    assert not bad, f"build artefacts tracked in git: {bad[:5]}"


def test_license_matches_the_package_metadata():
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0" in text
    assert 'license = "Apache-2.0"' in (REPO / "pyproject.toml").read_text(encoding="utf-8")
