"""Every export format read back with its own ecosystem's reader: exact times, counts and audio samples."""

from __future__ import annotations

import io
import json
import shlex
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from curate import audio
from curate.export import export
from curate.export.common import words_ltr
from curate.export.materialize import to_int16
from curate.export.select import Selection, Split, load_segments
from curate.testing.export import LABELLED, make_labelled_run

SR = 16000


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_labelled_run(tmp_path_factory.mktemp("exp"))


@pytest.fixture(scope="module")
def segments(run_dir):
    return {r["segment_id"]: r for r in load_segments(run_dir, LABELLED).to_dict("records")}


def reference(seg: dict) -> np.ndarray:
    """What curate itself reads for a segment, as int16."""
    return to_int16(audio.load(seg["audio_path"], seg["start_s"], seg["end_s"]))


SEL = Selection(name="t", split=Split(method="median_per_recording"))


def test_fairseq_tsv_and_labels_as_fairseq_reads_them(run_dir, segments, tmp_path):
    info = export(run_dir, LABELLED, "fairseq", tmp_path, SEL)
    seen = []
    for split in ("train", "valid"):
        lines = (tmp_path / f"{split}.tsv").read_text().splitlines()
        root = lines[0].strip()  # FileAudioDataset: first line is the root, then "path\tsize"
        assert Path(root) == tmp_path.resolve()
        wrd = (tmp_path / f"{split}.wrd").read_text().splitlines()
        ltr = (tmp_path / f"{split}.ltr").read_text().splitlines()
        assert len(wrd) == len(ltr) == len(lines) - 1
        for line, w, lt in zip(lines[1:], wrd, ltr, strict=True):
            rel, size = line.split("\t")
            x, sr = sf.read(Path(root) / rel, dtype="int16")
            seg = segments[Path(rel).stem]
            assert sr == SR and len(x) == int(size)
            np.testing.assert_array_equal(x, reference(seg))
            assert w == seg["text"].upper()
            assert lt == " ".join(seg["text"].upper().replace(" ", "|")) + " |"
            seen.append(seg["segment_id"])
    assert sorted(seen) == sorted(segments)
    assert info["segments"] == {"train": len(segments) - 3, "valid": 3}  # one median segment per recording


def test_words_ltr_matches_libri_labels():
    assert words_ltr("Goede  avond") == ("GOEDE AVOND", "G O E D E | A V O N D |")


def test_lhotse_cuts_are_views_with_exact_times_and_samples(run_dir, segments, tmp_path):
    from lhotse import CutSet, load_manifest

    export(run_dir, LABELLED, "lhotse", tmp_path)
    cuts = CutSet.from_file(tmp_path / "cuts_train.jsonl.gz")
    recs = load_manifest(tmp_path / "recordings_train.jsonl.gz")
    sups = load_manifest(tmp_path / "supervisions_train.jsonl.gz")
    assert len(cuts) == len(sups) == len(segments) and len(recs) == 3
    for cut in cuts:
        seg = segments[cut.id]
        assert cut.start == seg["start_s"] and cut.duration == seg["duration_s"]
        assert cut.recording.sources[0].source == seg["audio_path"]  # a view, no copied audio
        (sup,) = cut.supervisions
        assert sup.start == 0 and sup.duration == seg["duration_s"]
        assert (sup.text, sup.speaker, sup.language) == (seg["text"], seg["speaker"], seg["language"])
        x = cut.load_audio()
        assert x.shape == (1, round(seg["end_s"] * SR) - round(seg["start_s"] * SR))
        np.testing.assert_array_equal(to_int16(x[0]), reference(seg))
    assert not list(tmp_path.rglob("*.flac"))


def test_hf_parquet_loads_with_datasets_and_decodes_audio(run_dir, segments, tmp_path):
    import datasets

    export(run_dir, LABELLED, "hf", tmp_path, Selection(split=Split(method="random", valid_pct=30)), shard_segments=5)
    files = {
        "train": sorted(map(str, (tmp_path / "data").glob("train-*.parquet"))),
        "validation": sorted(map(str, (tmp_path / "data").glob("validation-*.parquet"))),
    }
    assert len(files["train"]) >= 2  # sharded
    ds = datasets.load_dataset("parquet", data_files=files, cache_dir=str(tmp_path / "cache"))
    assert isinstance(ds["train"].features["audio"], datasets.Audio)
    assert ds["train"].num_rows + ds["validation"].num_rows == len(segments)
    raw = ds["train"].cast_column("audio", datasets.Audio(decode=False))
    for row in raw:
        seg = segments[row["segment_id"]]
        assert (row["start_s"], row["end_s"], row["text"]) == (seg["start_s"], seg["end_s"], seg["text"])
        x, sr = sf.read(io.BytesIO(row["audio"]["bytes"]), dtype="int16")
        assert sr == SR
        np.testing.assert_array_equal(x, reference(seg))
    decoded = ds["train"][0]["audio"]  # datasets 5 decodes through torchcodec
    samples = decoded.get_all_samples() if hasattr(decoded, "get_all_samples") else None
    arr = samples.data.numpy()[0] if samples is not None else np.asarray(decoded["array"])
    np.testing.assert_array_equal(to_int16(arr), reference(segments[ds["train"][0]["segment_id"]]))


def test_nemo_manifest_offsets_read_the_segment(run_dir, segments, tmp_path):
    export(run_dir, LABELLED, "nemo", tmp_path)
    entries = [json.loads(line) for line in (tmp_path / "train_manifest.jsonl").read_text().splitlines()]
    assert len(entries) == len(segments)
    for e in entries:
        seg = segments[e["segment_id"]]
        assert (e["offset"], e["duration"], e["text"]) == (seg["start_s"], seg["duration_s"], seg["text"])
        # NeMo's AudioSegment.from_file: seek to int(offset * sr), read int(duration * sr) frames.
        with sf.SoundFile(e["audio_filepath"]) as f:
            f.seek(int(e["offset"] * f.samplerate))
            x = f.read(int(e["duration"] * f.samplerate), dtype="int16")
        np.testing.assert_array_equal(x, reference(seg))


def test_webdataset_shards_read_with_webdataset(run_dir, segments, tmp_path):
    import webdataset as wds

    export(run_dir, LABELLED, "webdataset", tmp_path, shard_segments=4)
    shards = sorted(str(p) for p in tmp_path.glob("train-*.tar"))
    assert len(shards) == 3
    n = 0
    for sample in wds.WebDataset(shards, shardshuffle=False, empty_check=False):
        meta = json.loads(sample["json"])
        seg = segments[meta["segment_id"]]
        assert "." not in sample["__key__"] and set(sample) >= {"flac", "json"}
        assert (meta["start_s"], meta["end_s"], meta["speaker"]) == (seg["start_s"], seg["end_s"], seg["speaker"])
        x, sr = sf.read(io.BytesIO(sample["flac"]), dtype="int16")
        assert sr == SR and meta["num_samples"] == len(x)
        np.testing.assert_array_equal(x, reference(seg))
        n += 1
    assert n == len(segments)


def _kv(path: Path) -> list[tuple[str, str]]:
    return [tuple(line.split(" ", 1)) for line in path.read_text().splitlines()]


def test_kaldi_data_dir_is_valid_and_reads_the_segment(run_dir, segments, tmp_path):
    export(run_dir, LABELLED, "kaldi", tmp_path)
    d = tmp_path / "train"
    files = {name: _kv(d / name) for name in ("wav.scp", "segments", "text", "utt2spk", "spk2utt", "reco2dur")}
    for name, rows in files.items():  # what utils/validate_data_dir.sh checks: C-sorted, unique keys
        keys = [k for k, _ in rows]
        assert keys == sorted(keys, key=str.encode) and len(set(keys)) == len(keys), name
    utt2spk = dict(files["utt2spk"])
    assert {u for s, us in files["spk2utt"] for u in us.split()} == set(utt2spk)
    assert all(u.startswith(s) for u, s in utt2spk.items())
    assert set(dict(files["segments"])) == set(dict(files["text"])) == set(utt2spk)
    assert len(utt2spk) == len(segments)
    wav, dur = dict(files["wav.scp"]), dict(files["reco2dur"])
    for utt, rest in files["segments"]:
        reco, start, end = rest.split()
        seg = segments[utt.split("-", 2)[-1]]
        assert (reco, float(start), float(end)) == (seg["recording_id"], seg["start_s"], seg["end_s"])
        assert 0 <= float(start) < float(end) <= float(dur[reco])
        assert dict(files["text"])[utt] == seg["text"]
    # The wav.scp entry is a pipe Kaldi runs; run it as Kaldi would and cut one segment out.
    utt, rest = files["segments"][1]
    reco, start, end = rest.split()
    cmd = wav[reco]
    assert cmd.endswith("|")
    wav_bytes = subprocess.run(cmd[:-1], shell=True, capture_output=True, check=True).stdout
    x, sr = sf.read(io.BytesIO(wav_bytes), dtype="int16")
    assert sr == SR
    got = x[round(float(start) * SR) : round(float(end) * SR)]
    np.testing.assert_array_equal(got, reference(segments[utt.split("-", 2)[-1]]))
    assert shlex.split(cmd[:-1])[0] == "ffmpeg"


def test_export_records_selection_and_reproduces_it(run_dir, tmp_path):
    from curate.export.select import load_selection

    sel = Selection(name="half", seed=3, max_hours=30 / 3600, split=Split(method="random", valid_pct=20))
    export(run_dir, LABELLED, "nemo", tmp_path / "a", sel)
    again = load_selection(tmp_path / "a" / "selection.yaml")
    assert again == sel
    export(run_dir, LABELLED, "nemo", tmp_path / "b", again)
    for f in ("train_manifest.jsonl", "valid_manifest.jsonl"):
        assert (tmp_path / "a" / f).read_text() == (tmp_path / "b" / f).read_text()
    stats = json.loads((tmp_path / "a" / "selection.json").read_text())
    assert stats["train"]["hours"] + stats["valid"]["hours"] <= 30 / 3600 + 1e-9


def test_export_errors_name_the_problem(run_dir, tmp_path):
    from curate.export import ExportError

    with pytest.raises(ExportError, match="unknown export format 'tfrecord'"):
        export(run_dir, LABELLED, "tfrecord", tmp_path)
    with pytest.raises(FileNotFoundError, match="no variant 'nope'"):
        export(run_dir, "nope", "nemo", tmp_path)
    with pytest.raises(ExportError, match="leaves no segments"):
        export(run_dir, LABELLED, "nemo", tmp_path, Selection(min_duration_s=100))


def test_export_demo_writes_three_formats(run_dir, tmp_path):
    from curate.export import export_demo

    infos = export_demo(run_dir, LABELLED, tmp_path)
    assert set(infos) == {"lhotse", "nemo", "fairseq"}
    assert (tmp_path / "lhotse" / "cuts_train.jsonl.gz").exists() and (tmp_path / "fairseq" / "valid.tsv").exists()
    for info in infos.values():
        assert sum(info["segments"].values()) == 12
