"""What needs both checkpoints and model families: rebuilding a model from a checkpoint file alone, and
converting any supported checkpoint into ours (inferring the model from its tensors)."""
from .build import CheckpointInfo, checkpoint_info, load_model, model_from_checkpoint
from .convert import convert_checkpoint, fit_to_model

__all__ = ["CheckpointInfo", "checkpoint_info", "convert_checkpoint", "fit_to_model", "load_model",
           "model_from_checkpoint"]
