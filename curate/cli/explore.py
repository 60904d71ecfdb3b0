"""``curate explore RUN``: a local web page to see, hear and filter a run's segments and cuts;
``--static DIR --sample N`` writes a self-contained report instead."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from curate.cli.console import RunDirArgument


def register(app: typer.Typer) -> None:
    app.command()(explore)


def explore(
    run_dir: RunDirArgument,
    host: Annotated[str, typer.Option(help="interface to serve on; another than 127.0.0.1 requires a token")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="port (0: a free one)")] = 0,
    token: Annotated[
        str | None, typer.Option(help="access token (default: none on 127.0.0.1, a random one elsewhere)")
    ] = None,
    static: Annotated[
        Path | None, typer.Option("--static", help="write a self-contained report (HTML + audio clips) to DIR")
    ] = None,
    sample: Annotated[int, typer.Option(help="--static: segments per variant and cuts per reason (with clips)")] = 20,
    seed: Annotated[int, typer.Option(help="--static: which segments the sample takes")] = 0,
) -> None:
    """Serve a page over a run: overview, a filterable segments table per variant with audio, a recording's
    timeline (lanes, cuts, score tracks, waveform), two variants compared, and a selection YAML for
    `curate select`. Prints the URL; Ctrl-C stops it."""
    from curate.cli.console import console, fail, local_out, out, run_dir_here
    from curate.explore.explorer import Explorer, NotFound

    try:
        explorer = Explorer(run_dir_here(run_dir), shown=run_dir)
    except NotFound as e:
        fail(str(e))
    if static is not None:
        from curate.explore.report import write_report

        index = write_report(explorer, local_out(str(static), "--static"), sample, seed=seed, progress=console.print)
        out.print(f"report: {index}  (open it in a browser; it needs no server)", soft_wrap=True)
        return
    from curate.explore.server import Server

    server = Server(explorer, host, port, token)
    out.print(f"curate explore {run_dir}: {server.url}", soft_wrap=True)
    console.print("Ctrl-C stops the server", highlight=False)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


__all__ = ["explore", "register"]
