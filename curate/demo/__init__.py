"""The demo: a synthetic broadcast archive with a ground truth (:mod:`curate.demo.archive`) and the run that
shows every variant on it (:mod:`curate.demo.run`). A client of the library; nothing in the library imports it."""
