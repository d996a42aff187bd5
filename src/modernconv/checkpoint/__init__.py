"""Checkpoints: safe reading, format detection and key conversion, loading into models, atomic saving."""
from .io import read_checkpoint, save_checkpoint
from .load import LoadReport, fit_state_dict, load_checkpoint

__all__ = ["LoadReport", "fit_state_dict", "load_checkpoint", "read_checkpoint", "save_checkpoint"]
