"""Deployment: the fast inference path, and export to other runtimes checked against the PyTorch model."""
from .export import FORMATS, ExportCheck, ExportError, ExportReport, export_model, format_from_name
from .fast import TOLERANCE, FastInference, native_dtype, optimize_for_inference

__all__ = ["FORMATS", "TOLERANCE", "ExportCheck", "ExportError", "ExportReport", "FastInference", "export_model",
           "format_from_name", "native_dtype", "optimize_for_inference"]
