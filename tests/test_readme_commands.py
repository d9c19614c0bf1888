"""Every ``prosper`` command of the README quickstart and docs/quickstart.md runs as written.

Run from a scratch folder outside the source tree with the ``prosper`` next to this Python
(CI runs this file again with the installed wheel's). The placeholders of the docs are mapped
to tiny local stand-ins: ``data/my-shop`` is a synthetic shop, ``Qwen/Qwen2.5-0.5B`` a random
one-layer Qwen2 and ``my-splade`` a random BERT masked LM; training commands get a few-step
budget appended (the docs' real budgets take hours). Nothing else is changed.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", REPO / "docs" / "quickstart.md"]
# Appended to `prosper train` so a run takes seconds; everything the docs wrote is kept.
FAST_TRAIN = [
    "train.max_steps=4", "train.batch_size=8", "train.warmup_steps=1", "train.save_every=2",
    "train.eval_every=2", "train.progress=false", "model.max_length=24", "model.device=cpu",
    "model.precision=fp32", "train.amp=none", "data.max_dev_queries=10", "data.max_dev_items=40",
    "model.lfw.k_query=24", "model.lfw.k_item=48", "model.quantization=none",
]
SKIP = ("prosper demo",)  # tests/test_demo.py runs the demo


def documented_commands(path: Path) -> list[str]:
    """The ``prosper ...`` lines of every bash block, continuation lines joined, comments cut."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S):
        text = block.replace("\\\n", " ")
        for line in text.splitlines():
            line = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
            for part in line.split("&&"):
                part = part.strip()
                if part.startswith("prosper ") and not part.startswith(SKIP):
                    commands.append(part)
    return commands


def prosper_executable() -> str:
    candidate = Path(sys.executable).with_name("prosper")
    return str(candidate) if candidate.exists() else shutil.which("prosper")


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    from prosper.contracts.fixtures import tiny_backbone, tiny_shop

    root = tmp_path_factory.mktemp("stand-ins")
    return tiny_shop(root), {
        "Qwen/Qwen2.5-0.5B": str(tiny_backbone(root, "causal")),
        "my-splade": str(tiny_backbone(root, "mlm")),
    }


@pytest.mark.parametrize("doc", DOCS, ids=[p.name for p in DOCS])
def test_documented_commands_run_as_written(doc, stand_ins, tmp_path):
    shop, stand_ins = stand_ins
    root = tmp_path  # a fresh scratch folder per document, outside the source tree
    (root / "data").mkdir()
    shutil.copytree(shop, root / "data" / "my-shop")
    commands = documented_commands(doc)
    assert len(commands) >= 8, f"{doc.name}: expected the quickstart's commands"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PROSPER_DEBUG": "0"}
    for command in commands:
        argv = shlex.split(command)
        argv = [stand_ins.get(arg, re.sub(r"=(Qwen/Qwen2\.5-0\.5B|my-splade)$", lambda m: "=" + stand_ins[m.group(1)], arg)) for arg in argv]
        if argv[1] == "train":
            argv += FAST_TRAIN
        if argv[1] == "config" and argv[2] == "init":
            (root / argv[3]).unlink(missing_ok=True)
        done = subprocess.run([prosper_executable(), *argv[1:]], cwd=root, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{doc.name}: `{command}` failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
