"""``prosper train`` on the command line: config + overrides, one-line errors."""

from __future__ import annotations

import pytest

from prosper.cli.app import main
from tests.training_helpers import build_backbone, build_shop, overrides, read_jsonl, write_config


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    build_shop(root)
    return root, build_backbone(root, "bert")


def test_train_command_with_overrides(tiny, capsys, clean_env):
    root, backbone = tiny
    config = write_config(root / "c.yaml", overrides(root, backbone, out="cli-run", name="bert"))
    rc = main(["train", "--config", str(config), "train.max_steps=3", "train.eval_every=3"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "trained 3 steps" in out.out
    assert (root / "cli-run" / "final" / "prosper.yaml").is_file()
    assert any(r["event"] == "eval" for r in read_jsonl(root / "cli-run" / "metrics.jsonl"))


def test_bad_input_is_one_line(tiny, tmp_path, capsys, clean_env):
    root, backbone = tiny
    triples = tmp_path / "t.jsonl"
    triples.write_text('{"query": "q", "positives": ["d"]}\n{oops\n')
    config = write_config(tmp_path / "c.yaml", overrides(root, backbone, out=str(tmp_path / "o"), name="bert"))
    rc = main(["train", "--config", str(config), f"data.triples={triples}"])
    err = capsys.readouterr().err
    assert rc == 4 and f"{triples}:2: invalid JSON" in err.replace("\n", "") and "Traceback" not in err


def test_unknown_loss_is_a_config_error(tiny, tmp_path, capsys, clean_env):
    root, backbone = tiny
    config = write_config(tmp_path / "c.yaml", overrides(root, backbone, out=str(tmp_path / "o"), name="bert"))
    rc = main(["train", "--config", str(config), "train.loss.name=nope"])
    err = capsys.readouterr().err
    assert rc == 2 and "in_batch_nll" in err
