"""notebooks/manifest-analysis.ipynb: stored without outputs, imports only curate, and executes headless."""

from __future__ import annotations

from pathlib import Path

import pytest

from curate.testing.export import LABELLED, make_labelled_run

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "manifest-analysis.ipynb"


def test_notebook_is_stored_without_outputs():
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    imports = [line.split()[1] for c in code for line in c.source.splitlines() if line.startswith(("import ", "from "))]
    local = [
        m
        for m in imports
        if m.split(".")[0] not in {"os", "tempfile", "pathlib", "matplotlib", "pandas", "IPython", "curate"}
    ]
    assert not local, f"the notebook must import analysis code from curate only, found {local}"


@pytest.mark.slow
def test_notebook_executes_on_a_tiny_run(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    pytest.importorskip("matplotlib")
    run = make_labelled_run(tmp_path, n=3)
    monkeypatch.setenv("CURATE_RUN_DIR", str(run))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend renders figures
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(
        str(o.get("text", ""))
        + str(o.get("data", {}).get("text/plain", ""))
        + str(o.get("data", {}).get("text/markdown", ""))
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
    )
    assert str(run) in text
    assert f"| {LABELLED} | 12 |" in text and "| seq | 12 |" in text  # the Table-14 rows
    assert "partial_window" in text  # discarded time by reason (the closed set of reasons)
    assert "news" in text and "2019" in text  # hours per genre and per year
    assert any(o.get("data", {}).get("image/png") for c in nb.cells for o in c.get("outputs", []))
