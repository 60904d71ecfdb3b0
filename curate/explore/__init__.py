"""``curate explore``: a local web page to see, hear and filter a run's segments and cuts.

A client of the library like :mod:`curate.cli`: :mod:`.explorer` answers what the page asks a run (overview,
a page of a variant's segments, one recording's timeline, a clip), :mod:`.table` filters, sorts and pages a
variant on the server, :mod:`.clips` decodes only the span a request names, :mod:`.server` is the Flask app with
its access rules, :mod:`.report` writes the self-contained static report, and ``assets/`` is the page (plain
HTML, JS and CSS; no build step, nothing fetched from elsewhere). See docs/explore.md.
"""
