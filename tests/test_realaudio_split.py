"""The real-audio benchmark's dev/test split (benchmarks/realaudio.py): no source in both halves, and a clip added to
one half only (``bench_half``) goes there without moving any other clip."""

from __future__ import annotations

import csv
import shutil
from collections import defaultdict
from pathlib import Path

from benchmarks import realaudio


def _rows(roots: list[Path]) -> list[dict[str, str]]:
    out = []
    for root in roots:
        with open(root / "INVENTORY.csv", encoding="utf-8") as f:
            out += [r for r in csv.DictReader(f) if (root / "flac" / f"{r['id']}.flac").is_file()]
    return out


def test_no_speaker_is_in_both_halves() -> None:
    """Speech clips by speaker, conversations by every speaker in them (AMI meetings share speakers)."""
    halves = realaudio.split()
    seen: dict[str, set[str]] = defaultdict(set)
    for r in _rows(realaudio.roots()):
        if r["content_type"] == "conversation":
            for spk in r["speaker_id"].split(","):
                if spk.strip().startswith(("M", "F")) and spk.strip()[1:3] in ("EE", "EO"):  # AMI speaker ids
                    seen[spk.strip()].add(halves[r["id"]])
        elif r["content_type"] == "speech" and r["speaker_id"] not in ("", "unknown"):
            seen[r["speaker_id"]].add(halves[r["id"]])
    assert seen and all(len(h) == 1 for h in seen.values()), {s: h for s, h in seen.items() if len(h) > 1}


def test_a_clip_added_to_one_half_moves_no_other(tmp_path: Path) -> None:
    root = tmp_path / "extra"
    shutil.copytree(realaudio.EXTRA, root)
    before = realaudio.split([root])
    forced = [r["id"] for r in _rows([root]) if r.get("bench_half")]
    assert forced and all(before[c] == "dev" for c in forced)  # the AMI excerpts added to dev only
    text = (root / "INVENTORY.csv").read_text(encoding="utf-8").splitlines()
    kept = [ln for ln in text if not ln.startswith(tuple(f"{c}," for c in forced))]
    (root / "INVENTORY.csv").write_text("\n".join(kept) + "\n", encoding="utf-8")
    after = realaudio.split([root])
    assert after == {c: h for c, h in before.items() if c not in forced}
