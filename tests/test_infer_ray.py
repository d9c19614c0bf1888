"""``infer.engine=ray``: the shard plan (no Ray needed) and the Ray Data engine on a local 2-CPU Ray.

The plan is checked against prosper's reader itself (every format, blank and bad lines, BOM, TSV
header, duplicates within and across files). The engine is checked against the local path on a
tiny random checkpoint: the same manifest bytes and the same vectors; a run whose driver is
killed (SIGKILL) after its first shard resumes to the same files; bad lines follow
``infer.on_error`` and are reported with file and line, also when found inside an actor.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from prosper.data.collections import CollectionStats, iter_collection
from prosper.errors import ConfigError, InputError
from prosper.inference.shard_plan import Shard, line_offsets, plan_shards, read_segment, resolve_inputs

WORDS = ["cordless", "drill", "battery", "steel", "sink", "led", "bulb", "patio", "chair", "hose", "tile", "pipe", "paint"]


def _titles(n, seed=0):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, int(rng.integers(1, 10)))) for _ in range(n)]


def _write_jsonl(path, n, seed=0, prefix="p"):
    with path.open("w", encoding="utf-8") as handle:
        for i, title in enumerate(_titles(n, seed)):
            handle.write(json.dumps({"_id": f"{prefix}{i}", "title": title}) + "\n")
    return path


def _messy_jsonl(path):
    """A BOM, blank lines, every kind of bad line and a duplicate id, among good records."""
    lines = ["\ufeff" + json.dumps({"_id": "a0", "title": "first drill"})]
    for i in range(1, 40):
        lines.append(json.dumps({"_id": f"a{i}", "title": f"{WORDS[i % len(WORDS)]} {i}"}))
        if i % 9 == 0:
            lines.append("")
        if i == 5:
            lines.append("{not json")
        if i == 12:
            lines.append(json.dumps({"_id": "a3", "title": "a duplicate"}))
        if i == 20:
            lines.append(json.dumps({"_id": "e", "title": "", "text": " "}))
        if i == 27:
            lines.append(json.dumps({"title": "no id"}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _read_plan(shards, side="item"):
    return [r for shard in shards for segment in shard.segments for r in read_segment(segment, side)]


def _round_trip(shards):
    return [Shard.from_json(s.to_json()) for s in shards]


# -- the plan: no Ray needed ------------------------------------------------------------
@pytest.mark.parametrize("shard_size", [1, 7, 1000])
def test_plan_reads_back_exactly_what_the_reader_yields(tmp_path, shard_size):
    path = _messy_jsonl(tmp_path / "c.jsonl")
    expected = list(iter_collection(path.resolve(), on_error="skip"))
    stats = CollectionStats()
    shards = _round_trip(plan_shards([path.resolve()], "item", shard_size, on_error="skip", stats=stats))
    assert [s.rows for s in shards[:-1]] == [shard_size] * (len(shards) - 1)
    assert _read_plan(shards) == expected  # ids, texts, file and line of every record
    assert stats.skipped == {"malformed": 1, "duplicate_id": 1, "empty_text": 1, "missing_id": 1}
    assert expected[0].text == "first drill"  # the BOM is stripped on line 1 only


def test_plan_over_tsv_gzip_and_parquet_rows(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    tsv = tmp_path / "q.tsv"
    tsv.write_text("id\ttext\n" + "".join(f"q{i}\t{t}\n" for i, t in enumerate(_titles(30))) + "id\ttext\n",
                   encoding="utf-8")  # a header line, and a record that only looks like one at line 32
    gz = tmp_path / "c.jsonl.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as handle:
        for i, t in enumerate(_titles(25, 1)):
            handle.write(json.dumps({"_id": f"g{i}", "title": t}) + "\n")
    parquet = tmp_path / "c.parquet"
    titles = _titles(50, 2)
    table = pa.table({"id": [f"r{i}" for i in range(50)], "title": titles, "text": ["" if i % 11 else "x" for i in range(50)]})
    pq.write_table(table, parquet, row_group_size=8)  # segments cut across row groups
    for path in (tsv, gz, parquet):
        expected = list(iter_collection(path.resolve(), on_error="skip"))
        shards = _round_trip(plan_shards([path.resolve()], "item", 6, on_error="skip"))
        assert _read_plan(shards) == expected, path.name
    assert _read_plan(plan_shards([tsv.resolve()], "item", 6))[-1].id == "id"  # line 32 kept, as the reader keeps it


def test_files_and_globs_read_as_one_collection(tmp_path):
    (tmp_path / "parts").mkdir()
    a = _write_jsonl(tmp_path / "parts" / "a.jsonl", 10, prefix="a")
    b = _write_jsonl(tmp_path / "parts" / "b.jsonl", 10, prefix="b")
    with b.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"_id": "a4", "title": "seen in a.jsonl"}) + "\n")
    files = resolve_inputs([str(tmp_path / "parts" / "*.jsonl")])
    assert files == [a.resolve(), b.resolve()]
    stats = CollectionStats()
    shards = plan_shards(files, "item", 4, on_error="skip", stats=stats)
    ids = [r.id for r in _read_plan(shards)]
    assert ids == [f"a{i}" for i in range(10)] + [f"b{i}" for i in range(10)]
    assert [len(s.segments) for s in shards] == [1, 1, 2, 1, 1]  # shard 2 spans both files
    assert stats.skipped == {"duplicate_id": 1} and stats.yielded == 20
    with pytest.raises(InputError, match=rf"b\.jsonl:11: duplicate id 'a4' \(first at .*a\.jsonl:5\)"):
        plan_shards(files, "item", 4)
    with pytest.raises(InputError, match="no file matches"):
        resolve_inputs(str(tmp_path / "nothing-*.jsonl"))


def test_a_bad_line_fails_the_plan_with_file_and_line(tmp_path):
    path = _write_jsonl(tmp_path / "c.jsonl", 5)
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"_id": "x", "title": \n')
    with pytest.raises(InputError, match=r"c\.jsonl:6: invalid JSON"):
        plan_shards([path.resolve()], "item", 2)


def test_a_file_changed_after_planning_is_detected(tmp_path):
    path = _write_jsonl(tmp_path / "c.jsonl", 20)
    shards = plan_shards([path.resolve()], "item", 8)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:10]), encoding="utf-8")
    assert len(read_segment(shards[0].segments[0])) == 8
    with pytest.raises(InputError, match=r"c\.jsonl: lines 9-16 now hold 2 records where the plan found 8"):
        read_segment(shards[1].segments[0])


def test_line_offsets_match_the_bytes(tmp_path):
    path = tmp_path / "t.txt"
    data = "".join(f"{'é' * (i % 5)}line {i}\n" for i in range(3000)).encode()
    path.write_bytes(data)
    starts = [0] + [i + 1 for i, byte in enumerate(data) if byte == 10]
    wanted = {1, 2, 17, 2999, 3000, 3001, 5000}
    got = line_offsets(path, wanted)
    assert got == {n: starts[n - 1] if n - 1 < len(starts) else len(data) for n in wanted}


def test_settings_and_a_missing_ray(tmp_path, monkeypatch, clean_env, capsys):
    from prosper.cli.app import main
    from prosper.inference import ray_engine
    from prosper.settings import InferSettings, load_settings

    settings = load_settings(overrides=["infer.engine=ray", "infer.ray.num_actors=3", "infer.ray.num_gpus_per_actor=0.5"])
    assert settings.infer.engine == "ray" and settings.infer.ray.num_actors == 3
    assert InferSettings().engine == "local" and InferSettings().ray.num_gpus_per_actor is None
    with pytest.raises(ConfigError, match="infer.engine"):
        load_settings(overrides=["infer.engine=spark"])
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ConfigError, match=r"pip install 'prosper-retrieval\[ray\]'"):
        ray_engine.import_ray()
    (tmp_path / "ckpt").mkdir()  # the CLI checks that model and input exist before the engine runs
    source = _write_jsonl(tmp_path / "c.jsonl", 2)
    code = main(["infer", "--checkpoint", str(tmp_path / "ckpt"), "-i", str(source), "-o", str(tmp_path / "v.parquet"),
                 "--engine", "ray"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "prosper-retrieval[ray]" in err


# -- the engine on a local Ray cluster ---------------------------------------------------
@pytest.fixture(scope="module")
def ray_address():
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'prosper-retrieval[ray]')")
    pytest.importorskip("ray.data")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    pytest.importorskip("prosper.modeling.encoder")
    from prosper.demo.scratch import build_random_causal_lm, train_tokenizer
    from prosper.modeling.encoder import SparseEncoder
    from prosper.settings import ModelSettings

    root = tmp_path_factory.mktemp("tiny")
    tokenizer = train_tokenizer(_titles(200), vocab_size=300)
    backbone = build_random_causal_lm(tokenizer, root / "backbone-src", hidden_size=32, layers=1, heads=2)
    settings = ModelSettings(backbone={"name": "qwen", "path": str(backbone)}, max_length=16,
                             lfw={"k_item": 24, "k_query": 8})
    SparseEncoder.from_settings(settings, device="cpu").save(root / "ckpt")
    return root / "ckpt"


def _settings(**ray):
    from prosper.settings import InferSettings

    return InferSettings(batch_size=8, buffer_size=10, shard_size=25, ray=ray)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, checkpoint, one_torch_thread):
    """The local path's output (merge=False, Parquet) on 90 items: 4 shards of 25, 25, 25, 15.

    One torch thread, as each 1-CPU actor uses: with equal thread counts the vectors are equal
    bit for bit (other counts change float32 sums in the last bit)."""
    from prosper.inference.api import infer

    root = tmp_path_factory.mktemp("reference")
    source = _write_jsonl(root / "c.jsonl", 90)
    summary = infer(checkpoint, source, "item", root / "local", "parquet", _settings(), merge=False, device="cpu")
    assert summary.shards == 4
    return source, root / "local"


def _assert_same_output(folder, reference_folder, shards=4):
    from prosper.export.parquet import read_parquet_vectors

    assert (folder / "manifest.prosper").read_text() == (reference_folder / "manifest.prosper").read_text()
    for k in range(shards):
        got, got_meta = read_parquet_vectors(folder / f"part-{k:05d}.parquet")
        want, want_meta = read_parquet_vectors(reference_folder / f"part-{k:05d}.parquet")
        assert got.equals(want) and got_meta == want_meta, f"shard {k}"


@pytest.mark.slow
def test_two_actors_write_what_the_local_path_writes(ray_address, checkpoint, reference, tmp_path, clean_env, capsys):
    from prosper.cli.app import main
    from prosper.export.parquet import read_parquet_vectors
    from prosper.inference.ray_engine import infer_ray

    source, local = reference
    summary = infer_ray(checkpoint, source, "item", tmp_path / "ray", "parquet", _settings(num_actors=2), merge=False)
    _assert_same_output(tmp_path / "ray", local)
    assert summary.rows == 90 and summary.shards_encoded == 4 and summary.num_actors == 2
    assert sum(a["rows"] for a in summary.actors.values()) == 90
    assert all(a["peak_rss_mb"] > 0 for a in summary.actors.values())
    # the CLI: --engine ray, merged into one file, equal to the local shards read as one
    out = tmp_path / "merged.parquet"
    code = main(["infer", "--checkpoint", str(checkpoint), "-i", str(source), "-o", str(out), "--engine", "ray",
                 "--no-progress", "infer.shard_size=25", "infer.batch_size=8", "infer.buffer_size=10",
                 "infer.ray.num_actors=1"])
    assert code == 0, capsys.readouterr().err
    assert "on 1 Ray actor(s)" in " ".join(capsys.readouterr().out.split())  # rich may wrap the line
    assert read_parquet_vectors(out)[0].equals(read_parquet_vectors(local)[0])


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_files(ray_address, checkpoint, reference, tmp_path):
    """The driver kills itself (SIGKILL) once its first shard is written; --resume finishes the job."""
    import ray

    from prosper.inference.ray_engine import infer_ray

    source, local = reference
    out = tmp_path / "ray"
    script = textwrap.dedent(f"""
        import os, signal, ray
        from prosper.inference.ray_engine import infer_ray
        from prosper.settings import InferSettings
        ray.init(address={ray_address!r}, log_to_driver=False)
        settings = InferSettings(batch_size=8, buffer_size=10, shard_size=25, ray={{"num_actors": 1}})
        infer_ray({str(checkpoint)!r}, {str(source)!r}, "item", {str(out)!r}, "parquet", settings, merge=False,
                  on_shard_done=lambda k: os.kill(os.getpid(), signal.SIGKILL))
    """)
    process = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert process.returncode == -9, process.stderr[-2000:]
    done = sorted(p.name for p in out.glob("part-*.parquet.prosper"))
    assert 1 <= len(done) < 4 and not (out / "manifest.prosper").exists()
    deadline = time.monotonic() + 60  # the dead driver's actor gives its CPU back
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    with pytest.raises(InputError, match="--resume"):
        infer_ray(checkpoint, source, "item", out, "parquet", _settings(num_actors=1), merge=False)
    summary = infer_ray(checkpoint, source, "item", out, "parquet", _settings(num_actors=2), resume=True, merge=False)
    assert summary.shards_resumed == len(done) and summary.shards_encoded == 4 - len(done)
    _assert_same_output(out, local)


@pytest.mark.slow
def test_bad_lines_follow_on_error_with_file_and_line(ray_address, checkpoint, tmp_path, clean_env, capsys,
                                                     one_torch_thread):
    from prosper.cli.app import main
    from prosper.export.parquet import read_parquet_vectors
    from prosper.inference.api import infer
    from prosper.inference.ray_engine import infer_ray

    bad = _messy_jsonl(tmp_path / "bad.jsonl")
    code = main(["infer", "--checkpoint", str(checkpoint), "-i", str(bad), "-o", str(tmp_path / "v.parquet"),
                 "--engine", "ray", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 4 and f"{bad.resolve()}:7: invalid JSON" in err, err
    # on_error=skip over a glob of two files: the records the local path encodes from their concatenation
    (tmp_path / "parts").mkdir()
    text = bad.read_text(encoding="utf-8").splitlines(keepends=True)
    (tmp_path / "parts" / "1.jsonl").write_text("".join(text[:20]), encoding="utf-8")
    (tmp_path / "parts" / "2.jsonl").write_text("".join(text[20:]), encoding="utf-8")
    settings = _settings(num_actors=2).model_copy(update={"on_error": "skip", "shard_size": 9})
    summary = infer_ray(checkpoint, str(tmp_path / "parts" / "*.jsonl"), "item", tmp_path / "ray.parquet", "parquet",
                        settings)
    local = infer(checkpoint, bad, "item", tmp_path / "local.parquet", "parquet", settings, device="cpu")
    assert summary.collection["skipped"] == local.collection["skipped"] == {
        "malformed": 1, "duplicate_id": 1, "empty_text": 1, "missing_id": 1}
    got, want = read_parquet_vectors(tmp_path / "ray.parquet")[0], read_parquet_vectors(tmp_path / "local.parquet")[0]
    assert got.ids == want.ids and np.array_equal(got.to_dense(), want.to_dense())


@pytest.mark.slow
def test_an_error_inside_an_actor_reaches_the_driver_as_one_line(ray_address, checkpoint, tmp_path):
    from prosper.inference.ray_engine import infer_ray

    source = _write_jsonl(tmp_path / "c.jsonl", 100)
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)

    def truncate(shard):  # the collection changes under the running job
        source.write_text("".join(lines[:30]), encoding="utf-8")

    with pytest.raises(InputError) as caught:
        infer_ray(checkpoint, source, "item", tmp_path / "v", "parquet", _settings(num_actors=1), merge=False,
                  on_shard_done=truncate)
    message = str(caught.value)
    assert "\n" not in message and f"{source.resolve()}: lines" in message and "the file changed" in message
