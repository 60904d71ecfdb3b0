"""Inputs that cannot hurt (issue 24, item 5): ids are free text, never raw file names; a row with an unknown or
unreachable URL scheme is a failure row, not the end of the run."""

import os
from pathlib import Path

import pytest

from curate import manifest
from curate.config import load_pipeline
from curate.rundir import RunDir, safe_name
from curate.runners import run_pipeline
from curate.testing import make_catalog, tone, write_audio

LONG_300 = "x" * 300
LONG_5000 = "programme-" * 500
CJK = "日本語の放送番組" * 5 + "第一回"  # 43 characters, 387 bytes quoted
EVIL = ["../escape", "../../..", "/abs/x", ".", "..", ".hidden", "", "a\x00b", "a/b", "a%2Fb", "tab\tand\nnewline"]


@pytest.mark.parametrize("key", [LONG_300, LONG_5000, CJK, *EVIL, "rec001", "a b", "ü"])
def test_a_safe_name_stays_in_its_folder_and_within_bounds(key, tmp_path):
    name = safe_name(key, ".parquet")
    assert "/" not in name and "\x00" not in name and not name.startswith(".")
    assert len(name.encode()) <= 130 and name.endswith(".parquet")
    (tmp_path / name).write_bytes(b"ok")  # a real file system takes it
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_safe_names_are_unique_and_plain_ids_are_their_own_names():
    keys = [LONG_300, LONG_300 + "y", LONG_5000, CJK, CJK + "x", *EVIL, "a_b", "a b", "%", "%~", "%2E"]
    names = [safe_name(k) for k in keys]
    assert len(set(names)) == len(keys)
    assert safe_name("rec001_00000000_00030000") == "rec001_00000000_00030000"


@pytest.fixture(scope="module")
def evil_archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("evil")
    ids = [LONG_300, LONG_5000, CJK, "../escape", "a/b", "plain"]
    rows = []
    for i, rid in enumerate(ids):
        p = write_audio(root / "audio" / f"r{i}.flac", tone(35.0, 16000, 200 + 30 * i, seed=i), 16000)
        rows.append({"recording_id": rid, "audio_path": str(p)})
    rows.append({"recording_id": "unknown-scheme", "audio_path": "foo://host/a.flac"})
    rows.append({"recording_id": "unreachable-ftp", "audio_path": "ftp://127.0.0.1:1/a.flac"})
    return make_catalog(root / "catalog.csv", rows), ids


def test_long_cjk_and_path_like_ids_and_bad_urls_do_not_stop_a_run(evil_archive, tmp_path):
    catalog, ids = evil_archive
    out = tmp_path / "run"
    result = run_pipeline(load_pipeline("pipelines/seq.yaml"), catalog, out, runner="local")
    assert result["counts"]["processed"] == len(ids)
    segs = manifest.read_table(RunDir(out).variant_path("seq"), "segments").to_pylist()
    assert {s["recording_id"] for s in segs} == set(ids)  # ids are kept whole in the manifests
    failures = {f["recording_id"]: f for f in manifest.read_table(RunDir(out).failures, "failures").to_pylist()}
    assert set(failures) == {"unknown-scheme", "unreachable-ftp"}
    assert (
        "unsupported or unreachable URL scheme foo:// (ValueError: Protocol not known"
        in failures["unknown-scheme"]["message"]
    )
    assert "ftp:// (ConnectionRefusedError" in failures["unreachable-ftp"]["message"]
    assert all("\n" not in f["message"] for f in failures.values())
    assert not (tmp_path / "escape").exists() and not (out.parent / "escape").exists()


def test_corrupt_render_keeps_escaping_and_nul_ids_inside_out(tmp_path):
    """`curate corrupt render` names its files after segment ids: an absolute, a climbing and a NUL id stay in
    --out, and a 5,000-character id works."""
    from curate.corrupt.conditions import condition_from_name
    from curate.corrupt.render import render
    from curate.corrupt.sources import Sources
    from curate.schema import Decision, Recording, Segment

    src = tmp_path / "src"
    outside = tmp_path / "outside"
    ids = [f"{outside}/abs", "../../climb", "nul\x00id", LONG_5000, CJK, "plain"]
    recs, segs = [], []
    for i, rid in enumerate(ids):
        p = write_audio(src / "audio" / f"u{i}.flac", tone(2.0, 16000, 300 + 40 * i, seed=i), 16000)
        recs.append(Recording(rid, str(p), 2.0, 16000, 1, "pcm_16", language="en"))
        segs.append(Segment.new(rid, str(p), 0.0, 2.0, "v", speaker="S0"))
    rd = RunDir(src)
    manifest.write_records(rd.recordings, recs, "recordings")
    manifest.write_records(rd.decisions, [Decision(r.recording_id, True, "kept") for r in recs], "decisions")
    manifest.write_records(rd.variant_part("v", 0), segs, "segments")
    out = tmp_path / "out"
    render(condition_from_name("1spk-concat"), src, "v", Sources(), out, batch_size=2)
    written = [p for p in out.rglob("*") if p.is_file()]
    assert all(p.resolve().is_relative_to(out.resolve()) for p in written)
    assert not outside.exists() and not (tmp_path.parent / "climb").exists()
    rendered = manifest.read_table(RunDir(out).recordings, "recordings").to_pylist()
    assert len(rendered) >= 3 and all(os.path.isfile(r["audio_path"]) for r in rendered)
    assert all(Path(r["audio_path"]).resolve().is_relative_to(out.resolve()) for r in rendered)


def test_kaldi_ids_never_split_a_line_and_never_collide():
    from curate.export.kaldi import kaldi_id

    ids = ["a b", "a_b", "a\tb", "nul\x00id", "line\nbreak", "plain"]
    out = [kaldi_id(i) for i in ids]
    assert all(not any(c.isspace() or ord(c) < 32 for c in k) for k in out)
    assert len(set(out)) == len(ids) and kaldi_id("plain") == "plain"


def test_audio_replaced_by_a_file_of_the_same_length_is_noticed(tmp_path):
    """Ingest fingerprints each file (size, mtime, head/tail hash): a replacement of the same byte length and
    modification time, before segmentation or before materialize, becomes a failure row naming what changed,
    not segments of the wrong audio."""
    from curate.export.materialize import materialize

    def wav(name, hz, seed):
        return write_audio(tmp_path / name, tone(35.0, 16000, hz, seed=seed), 16000)

    a, b, other = wav("audio/a.wav", 220, 1), wav("audio/b.wav", 330, 2), wav("other.wav", 440, 3)
    assert a.stat().st_size == b.stat().st_size == other.stat().st_size

    def replace(target):
        st = target.stat()
        target.write_bytes(other.read_bytes())
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # only the content differs

    rows = [{"recording_id": "a", "audio_path": str(a)}, {"recording_id": "b", "audio_path": str(b)}]
    catalog = make_catalog(tmp_path / "c.csv", rows)
    pipe = load_pipeline("pipelines/seq.yaml", ["settings.shard_size=1"])
    out = tmp_path / "run"
    seen = []

    def replace_b_after_the_first_shard(summary):
        seen.append(summary)
        if len(seen) == 1:
            replace(b)

    run_pipeline(pipe, catalog, out, runner="local", on_done=replace_b_after_the_first_shard)
    (row,) = manifest.read_table(RunDir(out).failures, "failures").to_pylist()
    assert row["recording_id"] == "b" and row["error_type"] == "ContentChanged"
    assert "changed since ingest (content differ" in row["message"]
    replace(a)  # a finished run whose audio is replaced afterwards: materialize names it instead of exporting it
    info = materialize(out, "seq", tmp_path / "mat", fmt="flac", runner="local")
    fails = manifest.read_table(RunDir(tmp_path / "mat").failures, "failures").to_pylist()
    assert [f["recording_id"] for f in fails] == ["a"] and "changed since ingest" in fails[0]["message"]
    assert info["segments"] == 0
