"""Exports of a messy archive (44.1 kHz stereo next to 16 kHz mono, 125-character ids, punctuation, digits,
U+FFFD, segments without text) pass each ecosystem's own loader and validator rules."""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from curate import audio
from curate.export import export
from curate.export.materialize import to_int16
from curate.export.select import Selection, Split, load_segments
from curate.rundir import safe_name
from curate.testing.export import LONG_ID, MESSY, make_messy_run

SR = 16000


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_messy_run(tmp_path_factory.mktemp("messy"))


@pytest.fixture(scope="module")
def segments(run_dir):
    return {r["segment_id"]: r for r in load_segments(run_dir, MESSY).to_dict("records")}


def has_text(seg: dict) -> bool:
    return isinstance(seg["text"], str) and bool(seg["text"].strip())


def curate_decode(seg: dict) -> np.ndarray:
    return audio.load(seg["audio_path"], seg["start_s"], seg["end_s"])


# -- fairseq ------------------------------------------------------------------------------------------------
def fairseq_dictionary(path: Path) -> dict[str, int]:
    """fairseq's ``Dictionary.load``: <s> <pad> </s> <unk> first, then ``SYMBOL COUNT`` lines, no duplicates."""
    symbols = {s: i for i, s in enumerate(("<s>", "<pad>", "</s>", "<unk>"))}
    for line in path.read_text(encoding="utf-8").splitlines():
        word, count = line.rstrip().rsplit(" ", 1)
        int(count)  # ValueError: "Incorrect dictionary format, expected '<token> <cnt> [flags]'"
        assert word not in symbols, f"Duplicate word found when loading Dictionary: '{word}'"
        symbols[word] = len(symbols)
    return symbols


def check_fairseq_split(out: Path, stem: str, symbols: dict[str, int]) -> list[str]:
    tsv = (out / f"{stem}.tsv").read_text().splitlines()
    ltr = (out / f"{stem}.ltr").read_text().splitlines()
    wrd = (out / f"{stem}.wrd").read_text().splitlines()
    # audio_finetuning: "labels length ... not equal to dataset length"
    assert len(ltr) == len(wrd) == len(tsv) - 1
    for line, lt, w in zip(tsv[1:], ltr, wrd, strict=True):
        rel, n = line.split("\t")
        info = sf.info(Path(tsv[0]) / rel)
        assert (info.samplerate, info.channels, info.frames) == (SR, 1, int(n))
        toks = lt.split()
        assert toks and all(symbols.get(t, 3) != 3 for t in toks), lt  # no <unk> after encode_line
        assert lt.endswith(" |") and w == lt.replace(" ", "").replace("|", " ").strip()
        assert re.fullmatch(r"[A-Z' ]+", w)
    return [Path(line.split("\t")[0]).stem for line in tsv[1:]]


def test_fairseq_labels_dictionary_and_valid_split(run_dir, segments, tmp_path):
    info = export(run_dir, MESSY, "fairseq", tmp_path)  # no split asked: one median segment per recording
    symbols = fairseq_dictionary(tmp_path / "dict.ltr.txt")
    assert set(symbols) >= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ'|")
    assert info["segments"]["valid"] == 2 and len((tmp_path / "valid.tsv").read_text().splitlines()) == 3
    for split in ("train", "valid"):
        everything = (tmp_path / f"{split}.tsv").read_text().splitlines()[1:]
        assert len(everything) == info["segments"][split]  # pre-training sees every segment
        stem = f"{split}_labelled" if (tmp_path / f"{split}_labelled.tsv").exists() else split
        by_file = {safe_name(sid): seg for sid, seg in segments.items()}  # ids are never raw file names
        for name in check_fairseq_split(tmp_path, stem, symbols):
            assert has_text(by_file[name])
    wrd = "".join(p.read_text() for p in tmp_path.glob("*.wrd"))
    assert "NINETEEN NINETY NINE THREE POINT FIVE PERCENT OF VIEWERS SAID DON'T" in wrd
    assert "HET IS EENENTWINTIG GRADEN" in wrd


# -- kaldi ---------------------------------------------------------------------------------------------------
def validate_data_dir(d: Path) -> None:
    """The rules of Kaldi's ``utils/validate_data_dir.sh --no-feats`` and ``utils/validate_text.pl``."""

    def rows(name: str) -> list[list[str]]:
        raw = (d / name).read_bytes()
        assert raw.endswith(b"\n") and b"\r" not in raw, f"{name}: invalid newline"
        lines = raw.decode("utf-8").split("\n")[:-1]  # UTF-8 or the validator fails
        keys = [line.split(" ")[0] for line in lines]
        assert keys == sorted(keys, key=str.encode) and len(set(keys)) == len(keys), f"{name} not sorted/unique"
        return [line.split(" ") for line in lines]

    utt2spk = rows("utt2spk")
    assert utt2spk and all(len(r) == 2 for r in utt2spk)
    assert [r[1] for r in utt2spk] == sorted((r[1] for r in utt2spk), key=str.encode), "sort -k2 -C utt2spk"
    spk2utt = rows("spk2utt")
    assert sorted((u, s) for s, *us in spk2utt for u in us) == sorted(map(tuple, utt2spk))
    utts = [r[0] for r in utt2spk]
    assert (d / "text").exists(), "no such file text (if this is by design, specify --no-text)"
    text = rows("text")
    assert [r[0] for r in text] == utts, "utterance lists extracted from utt2spk and text differ"
    for r in text:
        line = " ".join(r)
        assert all(c.isprintable() for c in line), "text contains non-printable characters"
        assert not re.search(r"\s", line.replace(" ", "")), "disallowed Unicode whitespaces"
        assert not {"<s>", "</s>", "#0"} & set(r[1:]), "illegal symbol"
    segments = rows("segments")
    assert [r[0] for r in segments] == utts
    assert all(len(r) == 4 and float(r[3]) > float(r[2]) for r in segments), "badly formatted segments file"
    wav = rows("wav.scp")
    assert sorted({r[1] for r in segments}) == [r[0] for r in wav]
    assert not any(r[1].startswith("~") for r in wav)
    dur = rows("reco2dur")
    assert [r[0] for r in dur] == [r[0] for r in wav] and all(float(r[1]) > 0 for r in dur)


def test_kaldi_writes_text_for_every_utterance(run_dir, segments, tmp_path):
    export(run_dir, MESSY, "kaldi", tmp_path)
    validate_data_dir(tmp_path / "train")
    lines = (tmp_path / "train" / "text").read_text().splitlines()
    text = dict(line.split(" ", 1) if " " in line else (line, "") for line in lines)
    assert len(text) == len(segments)
    assert sum(1 for t in text.values() if not t) == sum(not has_text(s) for s in segments.values())
    assert '"Don\'t!"' in "".join(text.values()) and "\ufffd" not in "".join(text.values())


# -- webdataset ----------------------------------------------------------------------------------------------
def test_webdataset_long_ids_and_size_limited_shards(run_dir, segments, tmp_path):
    import webdataset as wds

    assert max(map(len, segments)) >= 120
    info = export(run_dir, MESSY, "webdataset", tmp_path, shard_bytes=100_000)  # ≈ 2 segments per shard
    shards = sorted(str(p) for p in tmp_path.glob("train-*.tar"))
    assert [Path(s).name for s in shards] == [f"train-{i:06d}.tar" for i in range(len(shards))]
    assert len(shards) == info["shards"]["train"] >= 3
    assert all(Path(s).stat().st_size < 2 * 100_000 for s in shards)  # closed after crossing the limit
    with tarfile.open(shards[-1]) as t:
        assert all(m.size > 0 for m in t.getmembers())
    seen = {}
    for sample in wds.WebDataset(shards, shardshuffle=False, empty_check=False):
        meta = json.loads(sample["json"])
        x, sr = sf.read(io.BytesIO(sample["flac"]), dtype="int16")
        assert sr == SR and x.ndim == 1
        np.testing.assert_array_equal(x, to_int16(curate_decode(segments[meta["segment_id"]])))
        seen[meta["segment_id"]] = sample["__key__"]
    assert set(seen) == set(segments)
    assert any(len(k) > 100 for k in seen.values())


# -- NeMo ----------------------------------------------------------------------------------------------------
def check_nemo_manifest(path: Path) -> list[dict]:
    """The fields NeMo's ``ASRAudioText``/``collections.ASRAudioText`` read, with their types."""
    entries = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for e in entries:
        assert Path(e["audio_filepath"]).is_file()
        assert isinstance(e["duration"], float) and e["duration"] > 0
        assert isinstance(e["offset"], float) and e["offset"] >= 0
        assert "text" not in e or (isinstance(e["text"], str) and e["text"].strip())
    return entries


@pytest.mark.parametrize("materialize", [False, True])
def test_nemo_fields_and_labelled_manifest(run_dir, segments, tmp_path, materialize):
    export(run_dir, MESSY, "nemo", tmp_path, materialize=materialize)
    entries = check_nemo_manifest(tmp_path / "train_manifest.jsonl")
    labelled = check_nemo_manifest(tmp_path / "train_labelled_manifest.jsonl")
    assert len(entries) == len(segments) and 0 < len(labelled) < len(entries)
    assert all("text" in e for e in labelled)
    for e in entries:
        seg = segments[e["segment_id"]]
        if materialize:
            x, sr = sf.read(e["audio_filepath"], dtype="int16")
            assert (sr, e["offset"], e["duration"]) == (SR, 0.0, len(x) / SR)
            np.testing.assert_array_equal(x, to_int16(curate_decode(seg)))
        else:
            assert (e["audio_filepath"], e["offset"]) == (seg["audio_path"], seg["start_s"])


# -- lhotse --------------------------------------------------------------------------------------------------
def test_lhotse_default_cuts_are_16k_mono_and_validate(run_dir, segments, tmp_path):
    from lhotse import CutSet, validate
    from lhotse.dataset.collation import collate_audio

    export(run_dir, MESSY, "lhotse", tmp_path, Selection(split=Split(method="none")))
    cuts = CutSet.from_file(tmp_path / "cuts_train.jsonl.gz")
    validate(cuts, read_data=True)
    assert {c.sampling_rate for c in cuts} == {SR} and {c.num_channels for c in cuts} == {1}
    batch, _ = collate_audio(cuts)
    assert batch.shape[0] == len(segments) and batch.ndim == 2
    for cut in cuts:
        seg = segments[cut.id]
        start = cut.tracks[0].cut.start if hasattr(cut, "tracks") else cut.start  # MixedCut: the channel mean
        assert (start, len(cut.supervisions), cut.supervisions[0].text) == (
            seg["start_s"],
            1,
            seg["text"] if isinstance(seg["text"], str) else None,
        )
        x, ref = cut.load_audio()[0], curate_decode(seg)
        n = min(len(x), len(ref))
        assert abs(len(x) - len(ref)) <= 1 and np.corrcoef(x[:n], ref[:n])[0, 1] > 0.99  # another resampler
        if seg["recording_id"] == LONG_ID:  # the channel mean, not the left channel
            assert np.std(x) == pytest.approx(np.std(ref), rel=0.05)


def test_lhotse_native_and_materialized(run_dir, segments, tmp_path):
    from lhotse import CutSet, validate

    export(run_dir, MESSY, "lhotse", tmp_path / "native", sample_rate=None, downmix=False)
    native = CutSet.from_file(tmp_path / "native" / "cuts_train.jsonl.gz")
    validate(native)
    assert {(c.sampling_rate, c.num_channels) for c in native} == {(44100, 2), (SR, 1)}
    export(run_dir, MESSY, "lhotse", tmp_path / "mat", materialize=True)
    cuts = CutSet.from_file(tmp_path / "mat" / "cuts_train.jsonl.gz")
    validate(cuts, read_data=True)
    for cut in cuts:
        assert cut.recording.sources[0].source.startswith(str((tmp_path / "mat").resolve()))
        np.testing.assert_array_equal(to_int16(cut.load_audio()[0]), to_int16(curate_decode(segments[cut.id])))


def test_audio_options_are_checked(run_dir, tmp_path):
    from curate.export import ExportError

    with pytest.raises(ExportError, match="applies to lhotse"):
        export(run_dir, MESSY, "hf", tmp_path, sample_rate=8000)
    with pytest.raises(ExportError, match="materialize applies to lhotse, nemo"):
        export(run_dir, MESSY, "kaldi", tmp_path, materialize=True)
