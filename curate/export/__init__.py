"""Exports of a variant (after a selection) to the formats trainers read: one module per format."""

from curate.export.common import FORMATS, ExportContext, ExportError, export, export_demo

__all__ = ["FORMATS", "ExportContext", "ExportError", "export", "export_demo"]
