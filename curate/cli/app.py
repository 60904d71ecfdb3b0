"""The ``curate`` command line: thin over the library. Logging is configured here and only here.

Each command group lives in its own module of :mod:`curate.cli` and adds its commands with ``register(app)``;
shared console helpers are in :mod:`curate.cli.console`.
"""

from __future__ import annotations

import errno
import sys
from typing import Annotated

import typer
import typer.core

from curate.cli import ablate, corrupt, demo, derive, export, inspect_run, models, pretrain, quality, run
from curate.cli.console import console, fail, setup_logging


def _flag_type_rich(self, ctx) -> str | None:
    """Typer 0.29 labels every flag ``<bool>`` in ``--help`` (``--help <bool>``, ``--stage-pools <bool>``): a flag
    takes no value, so show none; options that take a value keep their label."""
    return None if self.is_flag or self.count else _option_type_rich(self, ctx)


_option_type_rich = typer.core.TyperOption.display_type_rich
typer.core.TyperOption.display_type_rich = _flag_type_rich


class _Commands(typer.core.TyperGroup):
    """Every command's :class:`~curate.errors.CurateError` is caught here, once: one ``error: …`` line and exit
    status 2 (the message says what to fix); any other exception is a bug and keeps its traceback."""

    def invoke(self, ctx):
        from curate.errors import CurateError

        try:
            return super().invoke(ctx)
        except CurateError as e:
            fail(str(e))


def _error_msg(exc) -> str:
    """Typer 0.29 reports a bad choice through pydantic, prefixed ``Value error, ``: keep the message only."""
    return _pydantic_error_msg(exc).removeprefix("Value error, ")


_pydantic_error_msg = typer._coercion.get_error_msg
typer._coercion.get_error_msg = typer._param_types.get_error_msg = _error_msg

app = typer.Typer(
    cls=_Commands,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Turn a broadcast archive into clean single-speaker speech segments for pre-training.",
)


def _version(value: bool) -> None:
    if value:
        from curate import __version__

        typer.echo(f"curate {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[
        int, typer.Option("-v", "--verbose", count=True, metavar="", help="more messages: -v info, -vv debug")
    ] = 0,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, metavar="", help="print the version and exit"),
    ] = False,
) -> None:
    setup_logging(verbose)


# Order = order in `curate --help`.
for _group in (run, demo, ablate, corrupt, derive, export, inspect_run, models, pretrain, quality):
    _group.register(app)


OUTPUT_ERRNOS = {
    errno.EROFS,
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EACCES,
    errno.EPERM,
    errno.ELOOP,
    errno.EEXIST,
    errno.ENOTDIR,
}


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        console.print("interrupted; rerun the same command to resume")
        sys.exit(130)
    except OSError as e:  # a read-only, full or forbidden output disk: one line naming the file, no traceback
        if e.errno not in OUTPUT_ERRNOS:
            raise
        console.print(f"[bold red]error:[/] {e.filename or 'output'}: {e.strerror or e}", soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
