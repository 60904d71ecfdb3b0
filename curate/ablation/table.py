"""The results table in the layout of the thesis tables (13, 15): one row per condition with the mean ± 95 %
interval over its seeds (SSL validation loss on the shared held-out set, WER per test set), the hours seen and
the crop waste; diverged cells show DIV. Below it, for each pair of variants, the paired difference with its
bootstrap interval over the shared held-out utterances (and over test utterances for WER); a variant is called
better only when that interval excludes 0 (``curate.ablation.stats``). Written as Parquet (explicit schema
below) and Markdown after every finished cell.

Parquet columns (``RESULTS_VERSION`` 2; test-set columns are named after the spec's ``eval`` keys):
cell, condition, variant, corruption, status (ok | DIV | crash | pending), seeds, seeds_ok, lr, hours_budget,
audio_h (seen), read_h, crop_waste, val_rule, val_utterances, ssl_val_loss, ssl_val_loss_ci, ssl_val_step,
wer_<test>…, wer_<test>_ci…, cer_…, probe_wer_…, probe_cer_…, seconds, error.
"""

from __future__ import annotations

import io
import itertools
import json
import math
from pathlib import Path
from typing import Any

import pyarrow as pa

from curate.ablation.config import AblationSpec

RESULTS_VERSION = 2
FIXED = [
    ("cell", pa.string()),
    ("condition", pa.string()),
    ("variant", pa.string()),
    ("corruption", pa.string()),
    ("status", pa.string()),
    ("seeds", pa.int64()),
    ("seeds_ok", pa.int64()),
    ("lr", pa.float64()),
    ("hours_budget", pa.float64()),
    ("audio_h", pa.float64()),
    ("read_h", pa.float64()),
    ("crop_waste", pa.float64()),
    ("val_rule", pa.string()),
    ("val_utterances", pa.int64()),
    ("ssl_val_loss", pa.float64()),
    ("ssl_val_loss_ci", pa.float64()),
    ("ssl_val_step", pa.int64()),
]
METRICS = ("wer", "cer", "probe_wer", "probe_cer")


def results_schema(tests: list[str]) -> pa.Schema:
    cols = [pa.field(n, t) for n, t in FIXED]
    for m in METRICS:
        for t in tests:
            cols += [pa.field(f"{m}_{t}", pa.float64()), pa.field(f"{m}_{t}_ci", pa.float64())]
    cols += [pa.field("seconds", pa.float64()), pa.field("error", pa.string())]
    return pa.schema(cols, metadata={b"curate.results_version": str(RESULTS_VERSION).encode()})


def _num(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _results(spec: AblationSpec, out_dir: Path) -> dict[str, dict[str, Any]]:
    return {c.name: _read(Path(out_dir) / "cells" / c.name / "result.json") or {} for c in spec.cells}


def collect_rows(spec: AblationSpec, out_dir: Path) -> list[dict[str, Any]]:
    """One flat row per cell of the spec, in spec order; cells without a result are ``pending``."""
    tests = list(spec.eval)
    rows = []
    for cell, res in zip(spec.cells, _results(spec, out_dir).values(), strict=True):
        seeds = res.get("seeds") or []
        val = res.get("validation") or {}
        row: dict[str, Any] = {
            "cell": cell.name,
            "condition": cell.label,
            "variant": res.get("variant"),
            "corruption": res.get("corruption"),
            "status": res.get("status", "pending"),
            "seeds": len(seeds) or None,
            "seeds_ok": sum(s.get("status") == "ok" for s in seeds) if seeds else None,
            "val_rule": val.get("rule"),
            "val_utterances": val.get("utterances"),
            "ssl_val_step": res.get("ssl_val_step"),
            "seconds": _num(res.get("seconds")),
            "error": res.get("error"),
        }
        for k in ("lr", "hours_budget", "audio_h", "read_h", "crop_waste", "ssl_val_loss", "ssl_val_loss_ci"):
            row[k] = _num(res.get(k))
        for m in METRICS:
            for t in tests:
                row[f"{m}_{t}"] = _num((res.get(m) or {}).get(t))
                row[f"{m}_{t}_ci"] = _num((res.get(f"{m}_ci") or {}).get(t))
        rows.append(row)
    return rows


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _utterance_scores(out_dir: Path, cell: str, seeds: list[dict]) -> list[list[float]] | None:
    """Per shared held-out utterance [contrastive sum, masked steps], averaged over the cell's ok seeds."""
    per_seed = []
    for s in seeds:
        if s.get("status") == "ok":
            d = _read(Path(out_dir) / "cells" / cell / f"seed-{s['seed']}" / "heldout.json")
            if d:
                per_seed.append(d["utterances"])
    if not per_seed:
        return None
    k = len(per_seed)
    return [[sum(p[i][0] for p in per_seed) / k, per_seed[0][i][1]] for i in range(len(per_seed[0]))]


def _word_errors(seeds: list[dict], test: str) -> list[list[float]] | None:
    per_seed = [
        s["word_errors"][test] for s in seeds if s.get("status") == "ok" and test in (s.get("word_errors") or {})
    ]
    if not per_seed:
        return None
    k = len(per_seed)
    return [[sum(p[i][0] for p in per_seed) / k, per_seed[0][i][1]] for i in range(len(per_seed[0]))]


def paired_rows(spec: AblationSpec, out_dir: str | Path, n_boot: int = 2000) -> list[dict[str, Any]]:
    """For each pair (A, B) of finished cells: B − A of the held-out contrastive loss (per shared held-out
    utterance, seeds averaged) and of WER per test set (per test utterance), with bootstrap intervals."""
    from curate.ablation.stats import paired_bootstrap

    results = _results(spec, Path(out_dir))
    done = [c for c in spec.cells if results[c.name].get("status") == "ok"]
    out = []
    for a, b in itertools.combinations(done, 2):
        ra, rb = results[a.name], results[b.name]
        sa = _utterance_scores(Path(out_dir), a.name, ra["seeds"])
        sb = _utterance_scores(Path(out_dir), b.name, rb["seeds"])
        metrics = [("SSL val. loss", sa, sb, 1.0)]
        for t in spec.eval:
            metrics.append((f"WER {t}", _word_errors(ra["seeds"], t), _word_errors(rb["seeds"], t), 100.0))
        for name, xa, xb, scale in metrics:
            if not xa or not xb or len(xa) != len(xb) or [x[1] for x in xa] != [x[1] for x in xb]:
                continue  # not scored on the same utterances: no paired comparison
            r = paired_bootstrap([x[0] for x in xa], [x[0] for x in xb], [x[1] for x in xa], n_boot, scale=scale)
            out.append({"a": a.label, "b": b.label, "metric": name, **r})
    return out


def to_markdown(rows: list[dict[str, Any]], tests: list[str], pairs: list[dict[str, Any]] | None = None) -> str:
    """| condition | seeds | SSL val. loss | step | h seen | crop waste | WER test… | (probe WER test…) |, every
    value ``mean ± 95 % interval`` over seeds, DIV for diverged; then the paired differences."""
    from curate.ablation.stats import fmt_ci

    probe = any(r.get(f"probe_wer_{t}") is not None for r in rows for t in tests)
    head = ["condition", "seeds", "SSL val. loss", "step", "h seen", "crop waste"] + [f"WER {t}" for t in tests]
    if probe:
        head += [f"probe WER {t}" for t in tests]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for r in rows:
        seeds = "" if r.get("seeds") is None else f"{r.get('seeds_ok', 0)}/{r['seeds']}"
        if r["status"] == "DIV":
            cells = [seeds] + ["DIV"] * (len(head) - 2)
        elif r["status"] in ("crash", "pending"):
            cells = [seeds, r["status"]] + [""] * (len(head) - 3)
        else:
            cells = [seeds, fmt_ci(r["ssl_val_loss"], r.get("ssl_val_loss_ci"))]
            cells += ["" if r["ssl_val_step"] is None else str(r["ssl_val_step"])]
            cells += ["" if r.get("audio_h") is None else f"{r['audio_h']:.3g}"]
            cells += ["" if r.get("crop_waste") is None else f"{r['crop_waste']:.1%}"]
            cells += [fmt_ci(r.get(f"wer_{t}"), r.get(f"wer_{t}_ci"), 1) for t in tests]
            if probe:
                cells += [fmt_ci(r.get(f"probe_wer_{t}"), r.get(f"probe_wer_{t}_ci"), 1) for t in tests]
        lines.append("| " + " | ".join([r["condition"], *cells]) + " |")
    text = "\n".join(lines) + "\n"
    if pairs:
        text += "\nPaired differences B − A (95 % bootstrap interval over the shared utterances; lower is better):\n\n"
        text += "| A | B | metric | B − A | 95 % interval | utterances | verdict |\n|---|---|---|---:|---:|---:|---|\n"
        for p in pairs:
            text += (
                f"| {p['a']} | {p['b']} | {p['metric']} | {p['diff']:+.4f} | [{p['lo']:+.4f}, {p['hi']:+.4f}] | "
                f"{p['utterances']} | {p['verdict']} |\n"
            )
    return text


def write_results(spec: AblationSpec, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``results.parquet``, ``results.md`` and ``pairs.json`` atomically from the cells' result.json."""
    import pyarrow.parquet as pq

    from curate.manifest import atomic_write_bytes, atomic_write_text, write_json

    out_dir = Path(out_dir)
    tests = list(spec.eval)
    rows = collect_rows(spec, out_dir)
    pairs = paired_rows(spec, out_dir)
    table = pa.Table.from_pylist(rows, schema=results_schema(tests))
    buf = io.BytesIO()
    pq.write_table(table, buf)
    atomic_write_bytes(out_dir / "results.parquet", buf.getvalue())
    write_json(out_dir / "pairs.json", pairs)
    finished = sum(r["status"] == "ok" for r in rows)
    md = f"# {spec.name}\n\n{spec.description}\n\ncells finished {finished}/{len(rows)}\n\n"
    atomic_write_text(out_dir / "results.md", md + to_markdown(rows, tests, pairs))
    return out_dir / "results.parquet", out_dir / "results.md"


def read_results(out_dir: str | Path):
    """``results.parquet`` → pandas DataFrame (for notebooks)."""
    import pyarrow.parquet as pq

    p = Path(out_dir)
    p = p / "results.parquet" if p.is_dir() else p
    if not p.exists():
        raise FileNotFoundError(f"{p}: no results table (run `curate ablate SPEC --out DIR` first)")
    return pq.read_table(p).to_pandas()


def val_curves(out_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """{cell (seed, lr): [(step, validation loss)]} of every pre-training run, for plotting."""
    curves = {}
    for res in sorted(Path(out_dir).glob("cells/*/result.json")):
        r = json.loads(res.read_text())
        for lr, curve in (r.get("val_curves") or {}).items():
            if curve:
                curves[f"{r['cell']} ({lr})"] = [tuple(x) for x in curve]
    return curves
