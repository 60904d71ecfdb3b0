"""The bounded driver: ingest, filters and planning stream in chunks and checkpoint their probes, yet give
exactly what the in-memory path gives (same recordings, decisions, failure rows in the same order, same plan);
a killed ingest probes only the files it had not probed; shards read their recordings from the plan's file."""

import json

import pytest

from curate import audio, manifest
from curate.catalog import ingest
from curate.config import load_pipeline, parse_pipeline
from curate.rundir import RunDir
from curate.runners import probes, streaming
from curate.runners.driver import collect_failures, plan_shards, prepare
from curate.schema import recording_from_row
from curate.testing import make_archive, make_catalog, tone, write_audio
from curate.testing.oracle import run_filters

SEQ = "pipelines/seq.yaml"


def _rows(path, kind):
    return manifest.read_table(path, kind).to_pylist()


@pytest.fixture
def messy(tmp_path):
    """40 rows over 5 files (a missing, a short and a 44.1 kHz stereo one among them), with reruns that dedup
    drops, an over-long recording, an empty field, a duplicate id and a non-ISO date."""
    write_audio(tmp_path / "a.flac", tone(3.0), 16000)
    write_audio(tmp_path / "b.wav", tone(2.0, 44100, channels=2), 44100)
    write_audio(tmp_path / "c.wav", tone(0.5), 16000)
    write_audio(tmp_path / "d.flac", tone(4.0), 16000)
    files = ["a.flac", "b.wav", "c.wav", "missing.wav", "d.flac"]
    rows = []
    for i in range(40):
        rows.append(
            {
                "recording_id": f"r{39 - i:03d}" if i != 11 else "r030",  # row 11: a duplicate id
                "audio_path": files[i % 5] if i != 13 else "",  # row 13: missing field
                "title": f"T{i // 2}",  # consecutive pairs are reruns of one programme
                "summary": "s",
                "genre": "news" if i % 7 else "music",
                "published": "05/01/2020" if i == 17 else f"2021-03-{1 + i // 2:02d}",
                "channel": f"c{i % 3}",
            }
        )
    return make_catalog(tmp_path / "catalog.csv", rows)


PIPE = {
    "name": "p",
    "settings": {"shard_size": 3},
    "filters": [
        {"stage": "genre_filter", "deny": ["music"]},
        {"stage": "duration_filter", "max_s": 3.5},
        {"stage": "metadata_dedup"},
    ],
    "passes": {"seq": [{"stage": "naive_segment", "window_s": 1, "emit": "seq"}]},
}


def test_chunked_prepare_equals_the_in_memory_path(messy, tmp_path, monkeypatch):
    """Chunks of 4 catalog rows and probe checkpoints of 1 file give the tables, failure order and plan that
    ingest() + run_filters() + plan_shards() give on the whole catalog at once."""
    pipe = parse_pipeline(PIPE)
    res = ingest(messy)
    df = manifest.read_table(manifest.write_records(tmp_path / "r.parquet", res.recordings, "recordings"), "recordings")
    decisions, _ = run_filters(df.to_pandas(), pipe.filters)
    kept = sorted(d.recording_id for d in decisions if d.kept)
    durations = {r.recording_id: r.duration_s for r in res.recordings}
    shards = plan_shards(kept, [durations[r] for r in kept], 3)
    assert len(kept) > 3 and any(not d.kept for d in decisions) and res.failures  # the catalog exercises all

    monkeypatch.setattr(streaming, "CHUNK_ROWS", 4)
    monkeypatch.setattr(probes, "CHUNK_FILES", 1)
    out = tmp_path / "run"
    plan = prepare(pipe, messy, out)
    assert _rows(out / "recordings.parquet", "recordings") == df.to_pylist()
    assert _rows(out / "decisions.parquet", "decisions") == manifest.to_table(decisions, "decisions").to_pylist()
    assert collect_failures(out) == res.failures
    assert plan.shards == shards
    by_id = {r.recording_id: r for r in res.recordings}
    for i, shard in enumerate(shards):
        assert plan.shard_recordings(i) == [by_id[r] for r in shard]
        assert plan.shard_duration_s(i).tolist() == [by_id[r].duration_s for r in shard]
    assert plan.num_recordings == len(res.recordings)
    assert len(list(RunDir(out).probes_dir.glob("part-*.parquet"))) == 5  # one checkpoint per distinct file


class Killed(RuntimeError):
    pass


def test_a_killed_ingest_probes_only_the_files_left(tmp_path, monkeypatch):
    catalog = make_archive(tmp_path / "arch", n=6, duration_s=3.0)
    pipe = load_pipeline(SEQ)
    reference = prepare(pipe, catalog, tmp_path / "ref")
    monkeypatch.setattr(probes, "CHUNK_FILES", 2)
    real, calls = audio.probe, []

    def dying(path):  # the process dies while probing the third chunk of two files
        if len(calls) >= 4:
            raise Killed(path)
        calls.append(str(path))
        return real(path)

    monkeypatch.setattr(audio, "probe", dying)
    out = tmp_path / "run"
    with pytest.raises(Killed):
        prepare(pipe, catalog, out)
    assert len(list(RunDir(out).probes_dir.glob("part-*.parquet"))) == 2
    assert not (out / "recordings.parquet").exists() and not list(out.rglob("*.tmp"))

    calls.clear()
    monkeypatch.setattr(audio, "probe", lambda path: calls.append(str(path)) or real(path))
    plan = prepare(pipe, catalog, out)
    assert sorted(p.rsplit("/", 1)[-1] for p in calls) == ["rec004.flac", "rec005.flac"]
    for name, kind in [("recordings.parquet", "recordings"), ("decisions.parquet", "decisions")]:
        assert _rows(out / name, kind) == _rows(tmp_path / "ref" / name, kind)
    assert plan.shards == reference.shards


def test_a_rerun_after_the_plan_probes_nothing(tmp_path, monkeypatch):
    catalog = make_archive(tmp_path / "arch", n=2, duration_s=3.0)
    prepare(load_pipeline(SEQ), catalog, tmp_path / "run")
    monkeypatch.setattr(audio, "probe", lambda path: pytest.fail(f"probed {path} again"))
    assert prepare(load_pipeline(SEQ), catalog, tmp_path / "run").shards == [["rec000", "rec001"]]


def test_a_plan_without_its_recordings_file_resumes(tmp_path):
    """A run planned before the plan's recordings file existed: the file is written when the run resumes."""
    catalog = make_archive(tmp_path / "arch", n=5, duration_s=3.0)
    pipe = load_pipeline(SEQ, ["settings.shard_size=2"])
    first = prepare(pipe, catalog, tmp_path / "run")
    RunDir(tmp_path / "run").plan_recordings.unlink()
    again = prepare(pipe, catalog, tmp_path / "run")
    want = {
        r["recording_id"]: recording_from_row(r) for r in _rows(tmp_path / "run" / "recordings.parquet", "recordings")
    }
    assert again.shards == first.shards == [["rec000", "rec001"], ["rec002", "rec003"], ["rec004"]]
    assert [again.shard_recordings(i) for i in range(3)] == [[want[r] for r in s] for s in first.shards]


def test_read_rows_reads_a_range_across_row_groups(tmp_path):
    rows = [
        {"recording_id": f"r{i:02d}", "audio_path": "/a", "duration_s": float(i), "sample_rate": 1, "num_channels": 1}
        for i in range(25)
    ]
    with manifest.writer(tmp_path / "x.parquet", "recordings", row_group_rows=4) as w:
        w.write(rows[:10])
        w.write(rows[10:])
    for start, stop in [(0, 0), (0, 3), (3, 9), (8, 12), (23, 25), (0, 25)]:
        got = manifest.read_rows(tmp_path / "x.parquet", "recordings", start, stop).column("recording_id").to_pylist()
        assert got == [r["recording_id"] for r in rows[start:stop]]


def test_ingest_progress_counts_every_probed_row(messy):
    seen = []
    ingest(messy, on_progress=seen.append)
    assert sum(seen) == 38  # 40 rows less the missing-field and the duplicate-id row


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ray_probes_give_the_recordings_of_thread_probes(messy, tmp_path):
    from curate.runners import ray as ray_runner

    pipe = parse_pipeline(PIPE)
    prepare(pipe, messy, tmp_path / "threads")
    ray_backend, chunks = ray_runner.probe_backend(), []

    def counted(todo):  # the Ray tasks' results, as the checkpoint receives them
        for rows in ray_backend(todo):
            chunks.append(len(rows))
            yield rows

    prepare(pipe, messy, tmp_path / "ray", probe_backend=counted)
    assert sum(chunks) == 5  # every distinct file was probed by a Ray task
    for name, kind in [("recordings.parquet", "recordings"), ("decisions.parquet", "decisions")]:
        assert _rows(tmp_path / "ray" / name, kind) == _rows(tmp_path / "threads" / name, kind)
    assert collect_failures(tmp_path / "ray") == collect_failures(tmp_path / "threads")
    stored = _rows(RunDir(tmp_path / "ray").probes_dir, "probes")
    assert sorted(json.dumps(r, sort_keys=True) for r in stored) == sorted(
        json.dumps(r, sort_keys=True) for r in _rows(RunDir(tmp_path / "threads").probes_dir, "probes")
    )


@pytest.mark.parametrize("block", [1, 2, 3, 7, 1 << 20])
def test_catalog_lines_split_as_splitlines_whatever_the_block_size(block):
    """The CSV is read a block at a time; a \\r\\n split between two blocks is still one line end."""
    import io
    import random

    from curate.catalog.read import _lines

    rng = random.Random(block)
    for _ in range(200):
        data = bytes(rng.choice(b'ab,\r\n"') for _ in range(rng.randrange(0, 40)))
        assert list(_lines(io.BytesIO(data), block)) == data.splitlines(keepends=True), data


def test_a_quoted_field_over_several_lines_survives_chunking(tmp_path):
    from curate.catalog.read import iter_catalog

    path = tmp_path / "c.csv"
    path.write_bytes(b'recording_id,audio_path,summary\r\na,x.wav,"one\r\ntwo"\r\nb,y.wav,plain\r\nc,z.wav,"3\n4"\n')
    frames = list(iter_catalog(path, chunk_rows=1))
    assert [f["summary"].tolist() for f in frames] == [["one\r\ntwo"], ["plain"], ["3\n4"]]
    assert [f["_row"].tolist() for f in frames] == [[2], [4], [5]]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_jsonl_and_parquet_catalogs_stream_in_chunks_as_read_whole(tmp_path, fmt):
    """JSONL and Parquet are read a chunk at a time too, with the rows (numbered across chunks) and values of
    one whole read; a JSONL field that a whole chunk lacks reads as empty, as for one row that lacks it."""
    import pandas as pd

    from curate.catalog import read_catalog
    from curate.catalog.read import iter_catalog

    rows = [
        {"recording_id": f"r{i}", "audio_path": f"a{i}.flac", "title": f"t{i}" if i % 2 else None} for i in range(7)
    ]
    rows[5]["channel"] = "NPO 1"  # a field only one row has
    path = tmp_path / f"catalog.{fmt}"
    if fmt == "jsonl":
        rows[6].pop("title")
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    else:
        pd.DataFrame(rows).to_parquet(path)
    whole = read_catalog(path)
    frames = list(iter_catalog(path, chunk_rows=2))
    assert [len(f) for f in frames] == [2, 2, 2, 1]
    cols = ["recording_id", "audio_path", "title", "channel", "_row"]
    chunked = [{c: r.get(c) for c in cols} for f in frames for r in f.to_dict("records")]
    assert chunked == [{c: r.get(c) for c in cols} for r in whole.to_dict("records")]
    assert [r["_row"] for r in chunked] == list(range(1, 8))
    assert [r["channel"] for r in chunked] == [None] * 5 + ["NPO 1", None]
    assert [r["title"] for r in chunked] == [None, "t1", None, "t3", None, "t5", None]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_the_first_chunk_comes_before_the_whole_file_is_read(tmp_path, monkeypatch, fmt):
    """What makes a 1,000,000-row JSONL or Parquet catalog cost one chunk of memory, not the whole file."""
    import functools

    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from curate.catalog import read

    rng = np.random.default_rng(0)  # titles that do not compress: the file is as big as its rows
    rows = [
        {"recording_id": f"r{i:05d}", "audio_path": f"a{i}.flac", "title": rng.bytes(24).hex()} for i in range(8000)
    ]
    path = tmp_path / f"catalog.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        monkeypatch.setattr(read, "_lines", functools.partial(read._lines, block=256))
    else:
        pq.write_table(pa.Table.from_pandas(pd.DataFrame(rows)), path, row_group_size=1000)
    read_bytes = []
    real_open = audio.open_binary

    class Counting:
        def __init__(self, f):
            self.f = f

        def read(self, *a):
            data = self.f.read(*a)
            read_bytes.append(len(data))
            return data

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(audio, "open_binary", lambda p: Counting(real_open(p)))
    chunks = read.iter_catalog(path, chunk_rows=1000)
    first = next(chunks)
    assert len(first) == 1000 and sum(read_bytes) < path.stat().st_size / 2
    assert sum(len(c) for c in chunks) == 7000
