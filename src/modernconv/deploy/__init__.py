"""Deployment: the fast inference path, and export to other runtimes checked against the PyTorch model."""
from .export import FORMATS, ExportCheck, ExportError, ExportReport, export_model, format_from_name
from .fast import AGREEMENT, TOLERANCE, FastInference, choose_precision, native_dtype, optimize_for_inference

__all__ = ["AGREEMENT", "FORMATS", "TOLERANCE", "ExportCheck", "ExportError", "ExportReport", "FastInference",
           "choose_precision", "export_model", "format_from_name", "native_dtype", "optimize_for_inference"]
