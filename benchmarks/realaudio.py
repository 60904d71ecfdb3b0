"""The real-audio development benchmark: the clips of ../shared/data/realaudio plus the ones committed under
benchmarks/data/realaudio, split into a dev and a test half by SOURCE (a speaker's clips, a song, a
conversation, a noise recording: never in both halves), and programmes with a ground-truth timeline built from
each half (:func:`curate.demo.real.build_real_archive`).

Tune on dev only; report test. The split is a pure function of the inventories (a hash of each source's key,
balanced by duration per content type), so it does not move when a threshold changes.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXTRA = REPO / "benchmarks" / "data" / "realaudio"
SHARED = Path(os.environ.get("CURATE_REALAUDIO", REPO.parent / "shared" / "data" / "realaudio"))
if not (SHARED / "INVENTORY.csv").is_file() and Path("/work/shared/data/realaudio/INVENTORY.csv").is_file():
    SHARED = Path("/work/shared/data/realaudio")  # a git worktree's parent is not the checkout's


def roots() -> list[Path]:
    """The real-audio folders present here (the shared one is absent on a fresh clone)."""
    return [r for r in (SHARED, EXTRA) if (r / "INVENTORY.csv").is_file()]


def source_key(row: dict) -> str:
    """What must not straddle the split: a speaker for speech clips, else the recording itself."""
    if row["content_type"] == "speech" and row["speaker_id"] and row["speaker_id"] != "unknown":
        return f"speaker:{row['speaker_id']}"
    return f"clip:{row['id']}"


def split(folders: list[Path] | None = None) -> dict[str, str]:
    """clip id → "dev" | "test". Per content type, sources in hash order go to the half with less audio so far;
    a clip whose ``bench_half`` column names a half goes there (clips added to the dev half only, so that the test
    half, already reported, stays the same programmes)."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    out: dict[str, str] = {}
    for root in folders or roots():
        with open(root / "INVENTORY.csv", encoding="utf-8") as f:
            for r in csv.DictReader(f):
                if not (root / "flac" / f"{r['id']}.flac").is_file():
                    continue
                if r.get("bench_half") in ("dev", "test"):  # a clip added to one half only (the other stays as it was)
                    out[r["id"]] = r["bench_half"]
                else:
                    groups[(r["content_type"], source_key(r))].append(r)
    for kind in sorted({k for k, _ in groups}):
        keys = sorted((s for k, s in groups if k == kind), key=lambda s: hashlib.sha1(s.encode()).hexdigest())
        seconds = {"dev": 0.0, "test": 0.0}
        for i, key in enumerate(keys):
            rows = groups[(kind, key)]
            half = min(seconds, key=lambda h: (seconds[h], h)) if i > 1 else ("dev", "test")[i]
            seconds[half] += sum(float(r["flac_duration_s"]) for r in rows)
            out.update({r["id"]: half for r in rows})
    return out


def build(out_dir: Path, half: str, n_programmes: int = 3, duration_s: float = 120.0, seed: int = 21) -> Path:
    """The programmes of one half (catalog.csv, audio/, ground_truth.json, rttm/) under ``out_dir``."""
    from curate.demo.real import build_real_archive

    ids = {cid for cid, h in split().items() if h == half}
    return build_real_archive(
        out_dir, roots(), n_programmes=n_programmes, seed=seed, duration_s=duration_s, only=ids, prefix=half
    )


def describe() -> str:
    """Per half: sources and seconds by content type."""
    halves = split()
    secs: dict[tuple[str, str], float] = defaultdict(float)
    n: dict[tuple[str, str], int] = defaultdict(int)
    for root in roots():
        with open(root / "INVENTORY.csv", encoding="utf-8") as f:
            for r in csv.DictReader(f):
                if r["id"] in halves:
                    secs[(halves[r["id"]], r["content_type"])] += float(r["flac_duration_s"])
                    n[(halves[r["id"]], r["content_type"])] += 1
    kinds = sorted({k for _, k in secs})
    lines = ["| half | " + " | ".join(kinds) + " |", "|---|" + "---:|" * len(kinds)]
    for h in ("dev", "test"):
        lines.append(f"| {h} | " + " | ".join(f"{n[(h, k)]} clips, {secs[(h, k)]:.0f} s" for k in kinds) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(describe())
