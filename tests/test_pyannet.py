"""The plain-torch copies of the diarization models (curate.models.pyannet, curate.models.ge2e) and the numpy
clustering give what pyannote, resemblyzer and scipy give, on a real conversation: frame scores, speech
scores, embeddings, clusters and the final speaker turns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from curate.models import diarization as D


@pytest.fixture(scope="module")
def both(realaudio, tmp_path_factory):
    """(conversation audio, pyannote model, resemblyzer encoder, plain PyanNet, plain GE2E)."""
    import resemblyzer
    import torch

    from curate import audio, models
    from curate.models import ge2e, pyannet
    from curate.models.vad import load_segmentation

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small LSTMs: one thread is faster than two on a loaded 2-core machine
    d = tmp_path_factory.mktemp("plain")
    x = audio.load(realaudio / "flac" / "cv_xx_paa_diarizationExample.flac")[: 16000 * 21 + 1234]  # a partial tail
    seg = load_segmentation(str(models.resolve("pyannote:segmentation").path))
    enc = resemblyzer.VoiceEncoder("cpu", verbose=False)
    plain_seg = pyannet.load(pyannet.export(seg, d / "pyannet.pt"))
    plain_enc = ge2e.load(ge2e.export(Path(resemblyzer.__file__).parent / "pretrained.pt", d / "ge2e.pt"))
    yield x, seg, enc, plain_seg, plain_enc
    torch.set_num_threads(threads)


def test_pyannet_frame_scores_match_pyannote(both):
    from curate.models.vad import pyannote_speech, segmentation_scores

    x, seg, _, plain, _ = both
    _ref, ref_data = segmentation_scores(seg, x, 1.0, aggregate_speech=False)
    out, data = segmentation_scores(plain, x, 1.0, aggregate_speech=False)
    assert data.shape == ref_data.shape == (18, 293, 3)  # 17 full chunks + the zero-padded tail
    assert np.abs(data - ref_data).max() < 1e-4
    assert (out.sliding_window.duration, out.sliding_window.step) == (5.0, 1.0)
    a, b = pyannote_speech(seg, x, 0.5), pyannote_speech(plain, x, 0.5)
    assert a.values.shape == b.values.shape and np.abs(a.values - b.values).max() < 1e-4
    assert (a.start_s, a.step_s, a.duration_s) == pytest.approx((b.start_s, b.step_s, b.duration_s))
    assert 0.3 < float(np.mean(b.values > 0.5)) < 1.0  # a conversation: mostly, not only, speech


def test_pyannet_half_precision_file_keeps_the_scores(both, tmp_path):
    import torch

    from curate.models import pyannet
    from curate.models.vad import segmentation_scores

    x, seg, _, plain, _ = both
    half = pyannet.load(pyannet.export(seg, tmp_path / "half.pt", torch.float16))
    assert (tmp_path / "half.pt").stat().st_size < 0.6 * 4 * sum(p.numel() for p in plain.state_dict().values())
    _, ref = segmentation_scores(plain, x, 1.0, aggregate_speech=False)
    _, out = segmentation_scores(half, x, 1.0, aggregate_speech=False)
    assert np.abs(out - ref).mean() < 2e-3 and np.mean((out > 0.5) == (ref > 0.5)) > 0.999


def test_ge2e_embeddings_and_numpy_clustering_match(both):
    x, seg, enc, plain_seg, plain_enc = both
    clips = [x[16000 * i : 16000 * (i + 2)] for i in range(0, 20, 2)]
    ref = D.SegmentationResemblyzer(seg, enc).embed_many(clips)
    out = D.SegmentationResemblyzer(plain_seg, plain_enc).embed_many(clips)
    assert np.min(np.sum(ref * out, axis=1)) > 0.9999
    for k in (None, 2, 3):
        a, b = D.cluster(ref, 0.25, k), D.average_linkage(ref, 0.25, k)
        assert len(set(a)) > 1 and len(set(zip(a, b, strict=True))) == len(set(a)) == len(set(b))  # same partition


def test_plain_diarization_gives_pyannote_resemblyzer_turns(both):
    x, seg, enc, plain_seg, plain_enc = both

    def read(a, b):
        return x[int(a * 16000) : int(b * 16000)]

    ref = D.SegmentationResemblyzer(seg, enc)(read, x.size / 16000)
    out = D.SegmentationResemblyzer(plain_seg, plain_enc)(read, x.size / 16000)
    assert len({t.speaker for t in ref}) >= 2
    assert [(t.speaker, round(t.start_s, 2), round(t.end_s, 2)) for t in out] == [
        (t.speaker, round(t.start_s, 2), round(t.end_s, 2)) for t in ref
    ]


def test_cut_and_merge_port_matches_whisperx(both):
    """wx_transcribe's chunking without whisperx/pyannote.core: the same chunks on real speech scores, with
    chunks short enough that long regions are min-cut."""
    from curate.models.vad import pyannote_speech
    from curate.stages.wx_transcribe import cut_and_merge, merge_chunks

    x, _, _, plain, _ = both
    scores = pyannote_speech(plain, x, 0.5)
    for chunk_s in (4.0, 10.0, 30.0):
        ref = merge_chunks(scores, chunk_s, 0.5, 0.363)
        out = cut_and_merge(scores, chunk_s, 0.5, 0.363)
        assert len(ref) >= 1 and len(out) == len(ref)
        assert np.allclose(np.array(out), np.array(ref), atol=1e-6)
    assert len(merge_chunks(scores, 4.0)) > 2
