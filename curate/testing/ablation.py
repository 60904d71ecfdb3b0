"""An example ablation results directory, as ``curate ablate`` leaves it (spec, per-cell ``result.json`` with one
diverged cell, ``results.parquet``/``results.md``), for the results notebook and its tests: it shows the
notebook's layout in a second, without the ≈ 15 minutes of ``make demo && make demo-ablate``."""

from __future__ import annotations

import json
from pathlib import Path

EXAMPLE_SPEC = {
    "name": "example",
    "data": {"run_dir": "/nonexistent"},
    "pretrain": {"config": "tiny-cpu"},
    "eval": {"test": {"kind": "librispeech", "root": "/x", "split": "test-clean"}},
    "finetune": {"config": {"max_steps": 5}, "train": {"kind": "librispeech", "root": "/x"}},
    "cells": [{"name": "clean"}, {"name": "mix-vocal-10", "corruption": "mix-vocal-10"}],
}
EXAMPLE_RESULTS = {
    "clean": {
        "status": "ok",
        "ssl_val_loss": 2.41,
        "ssl_val_step": 4000,
        "audio_h": 10.0,
        "crop_waste": 0.18,
        "wer": {"test": 17.5},
        "seeds": [{"seed": 0, "status": "ok"}],
        "val_curves": {"seed 0 lr None": [[2000, 2.9], [4000, 2.41]]},
    },
    "mix-vocal-10": {
        "status": "DIV",
        "error": "diverged",
        "seeds": [{"seed": 0, "status": "DIV", "error": "diverged"}],
        "val_curves": {},
    },
}


def make_example_ablation(root: str | Path) -> Path:
    """``root/out``: the example results directory (see the module docstring); returns it."""
    import yaml

    from curate.ablation.config import load_ablation
    from curate.ablation.table import write_results

    root = Path(root)
    out = root / "out"
    for name, res in EXAMPLE_RESULTS.items():
        (out / "cells" / name).mkdir(parents=True, exist_ok=True)
        (out / "cells" / name / "result.json").write_text(json.dumps({"cell": name, **res}))
    spec = root / "spec.yaml"
    spec.write_text(yaml.safe_dump(EXAMPLE_SPEC))
    write_results(load_ablation(spec), out)
    return out


def make_librispeech_tree(root: str | Path, speakers: int = 4, chapters: int = 2, per_chapter: int = 3) -> Path:
    """A LibriSpeech-shaped corpus ``root/train-clean-100/<spk>/<chapter>/<spk>-<chapter>-<n>.flac`` + trans.txt:
    pitch-varied tones of 1.2–2 s (every utterance its own recording, as in a LibriSpeech run directory)."""
    from curate.testing import tone, write_audio

    root, k = Path(root), 0
    for s in range(speakers):
        spk = str(100 + s)
        for c in range(chapters):
            chap = str(1000 + 10 * s + c)
            d = root / "train-clean-100" / spk / chap
            lines = []
            for u in range(per_chapter):
                uid = f"{spk}-{chap}-{u:04d}"
                x = tone(1.2 + 0.1 * (k % 9), freq=110 + 23 * s + 7 * c, seed=k)
                write_audio(d / f"{uid}.flac", x, subtype="PCM_16")
                lines.append(f"{uid} HELLO WORLD")
                k += 1
            (d / f"{spk}-{chap}.trans.txt").write_text("\n".join(lines) + "\n")
    return root


def make_corruption_sources(root: str | Path) -> dict[str, str]:
    """Tiny stand-ins for MUSAN noise, FMA music and Demucs stems (the layouts ``curate.corrupt`` reads):
    ``{noise, music, stems}`` folder paths for a condition's ``sources``."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from curate.corrupt.stems import STEMS_MANIFEST, stems_schema
    from curate.testing import tone, write_audio

    root = Path(root)
    rng = np.random.default_rng(0)
    for i in range(2):
        write_audio(
            root / "musan" / "noise" / "free-sound" / f"noise-{i}.wav", rng.normal(0, 0.1, 48000).astype("float32")
        )
        write_audio(root / "fma" / "000" / f"00000{i}.mp3", tone(3.0, freq=440 + 110 * i, seed=i))
    rows = []
    for i in range(2):
        voc = write_audio(root / "stems" / f"t{i}-vocals.wav", tone(3.0, freq=220 + 30 * i, seed=10 + i))
        acc = write_audio(root / "stems" / f"t{i}-accompaniment.wav", tone(3.0, freq=330 + 30 * i, seed=20 + i))
        rows.append(
            {
                "track_id": f"t{i}",
                "source_path": str(voc),
                "vocals_path": str(Path(voc).resolve()),
                "accompaniment_path": str(Path(acc).resolve()),
                "duration_s": 3.0,
                "speech_ratio": 0.5,
                "has_vocals": True,
                "genre_top": None,
                "model": "test",
            }
        )
    pq.write_table(pa.Table.from_pylist(rows, schema=stems_schema()), root / "stems" / STEMS_MANIFEST)
    return {"noise": str(root / "musan"), "music": str(root / "fma"), "stems": str(root / "stems")}


__all__ = [
    "EXAMPLE_RESULTS",
    "EXAMPLE_SPEC",
    "make_corruption_sources",
    "make_example_ablation",
    "make_librispeech_tree",
]
