"""Deployment: export to other runtimes, checked against the PyTorch model."""
from .export import FORMATS, ExportCheck, ExportError, ExportReport, export_model, format_from_name

__all__ = ["FORMATS", "ExportCheck", "ExportError", "ExportReport", "export_model", "format_from_name"]
