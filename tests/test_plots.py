"""`curate quality --plot`: a composition chart per variant and segment-length histograms as PNG."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from curate.cli.app import app
from curate.cli.plots import composition_shares, plot_composition
from curate.quality import VariantQuality


def _png(path: Path) -> tuple[int, int]:
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    h, w = matplotlib.image.imread(path).shape[:2]
    return w, h


def test_composition_shares_add_up():
    q = VariantQuality(10, 1.0, 80, 60, 30, 5, 5, 12, 90, sung_pct=8)
    shares = composition_shares(q)
    assert shares == {
        "clean speech": 60,
        "speech over music": 20,
        "music": 2,
        "sung music": 8,
        "noise": 5,
        "silence": 5,
    }
    assert sum(shares.values()) == 100


def test_composition_chart(tmp_path):
    results = {
        v: VariantQuality(10, 1.0, 70, 50, 30, 0, 0, i * 10, 90, sung_pct=10)
        for i, v in enumerate(["seq", "wx-diar-3s", "w-raw"])
    }
    w, h = _png(plot_composition(results, tmp_path / "c.png"))
    assert w > 800 and h > 200


def test_cli_quality_plot_saves_lengths(tmp_path):
    from curate.testing.export import make_labelled_run

    run_dir = make_labelled_run(tmp_path)
    res = CliRunner().invoke(app, ["quality", str(run_dir), "--plot"])
    assert res.exit_code == 0, res.output
    assert "lengths.png" in res.output and _png(run_dir / "plots" / "lengths.png")[0] > 400


@pytest.mark.slow
def test_ablation_notebook_runs_without_an_ablation(tmp_path, monkeypatch):
    """Before `make demo-ablate` the notebook shows an example results directory and says so."""
    import nbformat
    from nbclient import NotebookClient

    notebook = Path(__file__).resolve().parent.parent / "notebooks" / "ablation-results.ipynb"
    monkeypatch.setenv("CURATE_ABLATION_DIR", str(tmp_path / "nothing-here"))
    monkeypatch.delenv("MPLBACKEND", raising=False)
    nb = nbformat.read(notebook, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "".join(str(o.get("text", "")) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "showing an EXAMPLE results directory" in text and "make demo-ablate" in text
    assert sum(bool(o.get("data", {}).get("image/png")) for c in nb.cells for o in c.get("outputs", [])) == 2
