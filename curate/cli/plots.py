"""Pictures of a run for ``curate quality --plot`` and ``curate demo``: per-variant composition (what the
segments contain against a reference timeline) and segment-length histograms, as PNG (matplotlib, Agg).

Legends sit below the axes, never over the bars.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# composition parts, in stacking order: (label, colour)
PARTS = (
    ("clean speech", "#2b8a3e"),
    ("speech over music", "#94d82d"),
    ("music", "#1971c2"),
    ("sung music", "#9c36b5"),
    ("noise", "#e8590c"),
    ("silence", "#adb5bd"),
)


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display (servers, CI)
    import matplotlib.pyplot as plt

    return plt


def composition_shares(q: Any) -> dict[str, float]:
    """A :class:`curate.quality.VariantQuality` → the stacked shares (% of segment time) of :data:`PARTS`."""
    over_music = max(q.speech_pct - q.clean_speech_pct, 0.0)
    sung = getattr(q, "sung_pct", 0.0)
    return {
        "clean speech": q.clean_speech_pct,
        "speech over music": over_music,
        "music": max(q.music_pct - over_music - sung, 0.0),
        "sung music": sung,
        "noise": q.noise_pct,
        "silence": q.silence_pct,
    }


def plot_composition(results: dict[str, Any], path: str | Path) -> Path:
    """Stacked bars of segment time per variant (left) and the share of multi-speaker segments (right)."""
    from curate.stats import ordered

    plt = _plt()
    names = ordered(list(results))
    fig, (ax, ax2) = plt.subplots(
        1, 2, figsize=(11, 0.45 * len(names) + 2.2), sharey=True, gridspec_kw={"width_ratios": [3, 1]}
    )
    left = [0.0] * len(names)
    for label, colour in PARTS:
        vals = [composition_shares(results[v])[label] for v in names]
        ax.barh(names, vals, left=left, color=colour, label=label)
        left = [a + b for a, b in zip(left, vals, strict=True)]
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of segment time")
    ax.invert_yaxis()
    ax.set_title("what the segments contain")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, frameon=False)
    ax2.barh(names, [results[v].multi_speaker_pct for v in names], color="#c92a2a")
    ax2.set_xlim(0, 100)
    ax2.set_xlabel("% of segments")
    ax2.set_title("multi-speaker")
    return _save(fig, path)


def plot_lengths(durations: dict[str, list[float]], path: str | Path, max_s: float = 30.0) -> Path:
    """One histogram of segment durations (1 s bins) per variant, in a grid."""
    import math

    from curate.stats import ordered

    plt = _plt()
    names = ordered(list(durations))
    cols = min(3, max(1, len(names)))
    rows = math.ceil(len(names) / cols) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.6 * rows), squeeze=False, sharex=True)
    top = max([max(d) for d in durations.values() if len(d)] + [max_s])
    bins = [float(b) for b in range(int(math.ceil(top)) + 1)]
    for ax, v in zip(axes.flat, names, strict=False):
        d = durations[v]
        ax.hist(d, bins=bins, color="#1971c2")
        ax.set_title(f"{v} ({len(d)} segments)", fontsize=10)
        ax.set_xlabel("segment length, s")
        ax.tick_params(labelbottom=True)  # sharex hides the labels of every panel but the bottom row's
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    return _save(fig, path)


def plot_operating_curves(
    curves: dict[str, list[Any]], path: str | Path, clean_pct: float = 95.0, recall_pct: float = 75.0
) -> Path:
    """Each clean variant's operating curve (:func:`curate.export.operating.curve`, measured against a reference):
    clean single-speaker % of the kept time against the share of the reference's clean speech kept (left) and
    against the share of the variant's hours kept (right); the targets as dotted lines."""
    plt = _plt()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for v, points in sorted(curves.items()):
        pts = [p for p in points if p.clean_single_pct is not None]
        if not pts:
            continue
        (line,) = ax.plot([p.clean_recall_pct for p in pts], [p.clean_single_pct for p in pts], ".-", label=v)
        ax2.plot([p.kept_pct for p in pts], [p.clean_single_pct for p in pts], ".-", color=line.get_color())
    for a in (ax, ax2):
        a.axhline(clean_pct, color="k", ls=":", lw=1)
        a.set_xlim(0, 101)
    ax.axvline(recall_pct, color="k", ls=":", lw=1)
    ax.set(xlabel="clean speech kept, % of the reference's", ylabel="clean single-speaker, % of kept time",
           title=f"target: ≥ {clean_pct:g} % clean at ≥ {recall_pct:g} % kept")  # fmt: skip
    ax2.set(xlabel="kept, % of the variant's hours", title="segments kept by their clean score")
    for a in (ax, ax2):
        a.set_ylim(top=101)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def run_durations(run_dir: str | Path) -> dict[str, list[float]]:
    from curate import manifest
    from curate.rundir import RunDir

    run = RunDir(run_dir)
    return {
        v: manifest.read_table(run.variant_dir(v), "segments", columns=["duration_s"]).column(0).to_pylist()
        for v in run.variants()
    }


def save_run_plots(
    run_dir: str | Path, quality: dict[str, Any] | None = None, curves: dict[str, list[Any]] | None = None
) -> list[Path]:
    """``RUN/plots/lengths.png``; with quality results, ``RUN/plots/composition.png``; with the clean variants'
    measured operating curves, ``RUN/plots/operating_curves.png``. Returns the paths."""
    out = Path(run_dir) / "plots"
    paths = [plot_lengths(run_durations(run_dir), out / "lengths.png")]
    if quality:
        paths.insert(0, plot_composition(quality, out / "composition.png"))
    if curves:
        paths.append(plot_operating_curves(curves, out / "operating_curves.png"))
    return paths


__all__ = [
    "PARTS",
    "composition_shares",
    "plot_composition",
    "plot_lengths",
    "plot_operating_curves",
    "run_durations",
    "save_run_plots",
]
