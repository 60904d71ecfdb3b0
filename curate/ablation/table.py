"""The results table in the layout of the thesis tables (13, 15): one row per condition, the SSL validation loss
and its step, then WER per test set; diverged cells show DIV. Written as Parquet (explicit schema below) and
Markdown after every finished cell.

Parquet columns (``RESULTS_VERSION`` 1; test-set columns are named after the spec's ``eval`` keys):
cell, condition, variant, corruption, status (ok | DIV | crash | pending), lr, hours_budget, audio_h,
ssl_val_loss, ssl_val_step, wer_<test>…, cer_<test>…, probe_wer_<test>…, probe_cer_<test>…, seconds, error.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import pyarrow as pa

from curate.ablation.config import AblationSpec

RESULTS_VERSION = 1
FIXED = [
    ("cell", pa.string()),
    ("condition", pa.string()),
    ("variant", pa.string()),
    ("corruption", pa.string()),
    ("status", pa.string()),
    ("lr", pa.float64()),
    ("hours_budget", pa.float64()),
    ("audio_h", pa.float64()),
    ("ssl_val_loss", pa.float64()),
    ("ssl_val_step", pa.int64()),
]
METRICS = ("wer", "cer", "probe_wer", "probe_cer")


def results_schema(tests: list[str]) -> pa.Schema:
    cols = [pa.field(n, t) for n, t in FIXED]
    cols += [pa.field(f"{m}_{t}", pa.float64()) for m in METRICS for t in tests]
    cols += [pa.field("seconds", pa.float64()), pa.field("error", pa.string())]
    return pa.schema(cols, metadata={b"curate.results_version": str(RESULTS_VERSION).encode()})


def _num(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def collect_rows(spec: AblationSpec, out_dir: Path) -> list[dict[str, Any]]:
    """One flat row per cell of the spec, in spec order; cells without a result are ``pending``."""
    tests = list(spec.eval)
    rows = []
    for cell in spec.cells:
        res = _read(Path(out_dir) / "cells" / cell.name / "result.json") or {}
        row: dict[str, Any] = {
            "cell": cell.name,
            "condition": cell.label,
            "variant": res.get("variant"),
            "corruption": res.get("corruption"),
            "status": res.get("status", "pending"),
            "lr": _num(res.get("lr")),
            "hours_budget": _num(res.get("hours_budget")),
            "audio_h": _num(res.get("audio_h")),
            "ssl_val_loss": _num(res.get("ssl_val_loss")),
            "ssl_val_step": res.get("ssl_val_step"),
            "seconds": _num(res.get("seconds")),
            "error": res.get("error"),
        }
        for m in METRICS:
            for t in tests:
                row[f"{m}_{t}"] = _num((res.get(m) or {}).get(t))
        rows.append(row)
    return rows


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def to_markdown(rows: list[dict[str, Any]], tests: list[str]) -> str:
    """Thesis layout: | condition | val. loss | step | WER test… | (probe WER test…) | with DIV for diverged."""
    probe = any(r.get(f"probe_wer_{t}") is not None for r in rows for t in tests)
    head = ["condition", "SSL val. loss", "step"] + [f"WER {t}" for t in tests]
    if probe:
        head += [f"probe WER {t}" for t in tests]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for r in rows:
        if r["status"] == "DIV":
            cells = ["DIV", "DIV"] + ["DIV"] * (len(head) - 3)
        elif r["status"] in ("crash", "pending"):
            cells = [r["status"]] + [""] * (len(head) - 2)
        else:
            loss = r["ssl_val_loss"]
            cells = ["" if loss is None else f"{loss:.3f}", "" if r["ssl_val_step"] is None else str(r["ssl_val_step"])]
            cells += [_pct(r.get(f"wer_{t}")) for t in tests]
            if probe:
                cells += [_pct(r.get(f"probe_wer_{t}")) for t in tests]
        lines.append("| " + " | ".join([r["condition"], *cells]) + " |")
    return "\n".join(lines) + "\n"


def _pct(x: float | None) -> str:
    return "" if x is None else f"{x:.1f}"


def write_results(spec: AblationSpec, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``results.parquet`` and ``results.md`` atomically from the cells' result.json files."""
    import pyarrow.parquet as pq

    from curate.manifest import atomic_write_bytes, atomic_write_text

    out_dir = Path(out_dir)
    tests = list(spec.eval)
    rows = collect_rows(spec, out_dir)
    table = pa.Table.from_pylist(rows, schema=results_schema(tests))
    buf = io.BytesIO()
    pq.write_table(table, buf)
    atomic_write_bytes(out_dir / "results.parquet", buf.getvalue())
    md = f"# {spec.name}\n\n{spec.description}\n\n" + to_markdown(rows, tests)
    atomic_write_text(out_dir / "results.md", md)
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
    """{cell (lr): [(step, validation loss)]} of every pre-training run, for plotting."""
    curves = {}
    for res in sorted(Path(out_dir).glob("cells/*/result.json")):
        r = json.loads(res.read_text())
        for lr, curve in (r.get("val_curves") or {}).items():
            if curve:
                curves[f"{r['cell']} (lr {lr})"] = [tuple(x) for x in curve]
    return curves
