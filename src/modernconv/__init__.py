"""modernconv: modern ConvNets (ConvNeXt V1/V2, UniRepLKNet, ConvMixer) built exactly, loaded from any
checkpoint, trained, re-parameterised and measured."""
from .checkpoint import load_checkpoint, save_checkpoint
from .errors import CheckpointError, InputShapeError, ModelNotFoundError, UserError
from .models import DataConfig, ModernConvNet, create_model, list_models

__version__ = "0.1.0"
__all__ = ["CheckpointError", "DataConfig", "InputShapeError", "ModelNotFoundError", "ModernConvNet", "UserError",
           "create_model", "list_models", "load_checkpoint", "save_checkpoint"]
