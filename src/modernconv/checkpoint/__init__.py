"""Checkpoints: safe reading, format detection and key conversion, loading into models, atomic saving."""
from .build import CheckpointInfo, checkpoint_info, model_from_checkpoint
from .convert import convert_checkpoint, fit_to_model
from .io import read_checkpoint, save_checkpoint
from .load import LoadReport, fit_state_dict, load_checkpoint

__all__ = ["CheckpointInfo", "LoadReport", "checkpoint_info", "model_from_checkpoint", "convert_checkpoint",
           "fit_to_model", "fit_state_dict", "load_checkpoint", "read_checkpoint", "save_checkpoint"]
