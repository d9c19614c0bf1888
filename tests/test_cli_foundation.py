"""CLI wiring: --version, --help without torch, plugins list, config show/validate, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

import prosper
from prosper.cli.app import main

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


def run_cli(*args, env=None, cwd=None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PROSPER_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "prosper", *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=120
    )


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"prosper {prosper.__version__}"


def test_help_does_not_import_torch():
    code = (
        "import sys\n"
        "from prosper.cli.app import main\n"
        "rc = main(['--help'])\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'pyarrow', 'scipy', 'bm25s') if m in sys.modules)\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert "HEAVY=\n" in out, out
    assert "config" in out and "plugins" in out


def test_plugins_list_json(capsys):
    assert main(["plugins", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and {"kind", "name", "distribution", "version"} <= set(rows[0])
    assert any(r["distribution"] == "prosper-retrieval" for r in rows)


def test_plugins_list_table():
    result = run_cli("plugins", "list")
    assert result.returncode == 0
    assert "prosper-retrieval" in result.stdout and "distribution" in result.stdout


def test_config_show_prints_resolved_yaml(tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text("train:\n  batch_size: 8\n")
    result = run_cli("config", "show", "--config", str(conf), "model.pooling=max", env={"PROSPER_TRAIN__SEED": "3"})
    assert result.returncode == 0, result.stderr
    shown = yaml.safe_load(result.stdout)
    assert shown["train"]["batch_size"] == 8 and shown["train"]["seed"] == 3 and shown["model"]["pooling"] == "max"


def test_reference_config_validates():
    result = run_cli("config", "validate", str(REPO / "conf" / "config.yaml"))
    assert result.returncode == 0, result.stderr
    assert "is valid" in result.stdout


@pytest.mark.parametrize(
    "content, expected",
    [
        ("train:\n  batch_size: [1\n", "invalid YAML: expected ',' or ']', but got '<stream end>' (while parsing a flow sequence at line 2)"),
        ("train:\n  batch_size: lots\n", ":2: train.batch_size:"),
        ("model:\n  backbone: {name: gpt9}\n", "model.backbone: unknown backbone 'gpt9'"),
    ],
)
def test_errors_are_one_line_and_nonzero(tmp_path, content, expected):
    conf = tmp_path / "bad.yaml"
    conf.write_text(content)
    result = run_cli("config", "validate", str(conf))
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_missing_file_error(tmp_path):
    result = run_cli("config", "validate", str(tmp_path / "nope.yaml"))
    assert result.returncode == 4 and "configuration file not found" in result.stderr


def test_debug_shows_traceback(tmp_path):
    result = run_cli("config", "validate", str(tmp_path / "nope.yaml"), env={"PROSPER_DEBUG": "1"})
    assert result.returncode != 0 and "Traceback" in result.stderr
