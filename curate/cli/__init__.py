"""The ``curate`` command line (:mod:`curate.cli.app`); one module per command group, console helpers in
:mod:`curate.cli.console`. ``python -m curate.cli`` runs it."""
