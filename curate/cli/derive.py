"""``curate derive RUN --from VARIANT --pipeline FILE``: new post-processing variants without any model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from curate.cli.console import RunDirArgument


def register(app: typer.Typer) -> None:
    @app.command()
    def derive(
        run_dir: RunDirArgument,
        pipeline: Annotated[
            Path, typer.Option(help="post-processing YAML with derive: entries, e.g. pipelines/post/w-pp-5s.yaml")
        ],
        from_: Annotated[str | None, typer.Option("--from", help="source variant (overrides the file's from:)")] = None,
        force: Annotated[bool, typer.Option(help="replace variants that already exist")] = False,
        set_: Annotated[list[str] | None, typer.Option("--set", help="override STAGE.PARAM=VALUE (repeatable)")] = None,
    ) -> None:
        """Derive variants from a run's saved segments (merge, filter, split); never runs a model."""
        from curate.cli.console import fail, out, progress_bar, run_dir_edited
        from curate.errors import ConfigError
        from curate.runners.derive import DeriveError, load_derivation
        from curate.runners.derive import derive as run_derive
        from curate.stats import format_table, load_stats

        with run_dir_edited(run_dir) as local:  # a URL run: its staging copy, the new variants pushed back
            try:
                pipe = load_derivation(local, pipeline, from_, set_, force)
                with progress_bar() as bar:
                    task = bar.add_task("parts", total=None, extra="")
                    entry = run_derive(local, pipe, on_part=lambda i, n: bar.update(task, completed=i, total=n))
            except (ConfigError, DeriveError) as e:
                fail(str(e))
            out.print(format_table(load_stats(local)))
        out.print(f"derived {', '.join(entry['variants'])} from {', '.join(entry['from'])} in {entry['seconds']:.1f} s")
