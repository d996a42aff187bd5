"""Checkpoints: safe reading, format detection and key conversion, loading into models, atomic saving."""
from .convert import convert_checkpoint, fit_to_model
from .io import read_checkpoint, save_checkpoint
from .load import LoadReport, fit_state_dict, load_checkpoint

__all__ = ["LoadReport", "convert_checkpoint", "fit_to_model", "fit_state_dict", "load_checkpoint", "read_checkpoint", "save_checkpoint"]
