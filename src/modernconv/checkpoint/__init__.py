"""Checkpoints: safe reading, format detection and key conversion, fitting to a model, atomic saving.

A leaf of the package: it works on state dicts and any ``nn.Module`` and never imports the model families
(building a model from a checkpoint, and converting one, live a layer above in ``modernconv.conversion``)."""
from .io import read_checkpoint, read_metadata, save_checkpoint
from .load import LoadReport, fit_state_dict, load_checkpoint, load_tensors

__all__ = ["LoadReport", "fit_state_dict", "load_checkpoint", "load_tensors", "read_checkpoint", "read_metadata",
           "save_checkpoint"]
