"""modernconv: modern ConvNets (ConvNeXt V1/V2, UniRepLKNet, ConvMixer) built exactly, loaded from any
checkpoint, trained, re-parameterised and measured."""
from importlib.metadata import version

from .checkpoint import load_checkpoint, save_checkpoint
from .errors import CheckpointError, ConfigError, InputShapeError, ModelNotFoundError, UserError
from .models import DataConfig, ModernConvNet, create_model, list_models
from .pretrain import FCMAE
from .reparam import reparameterize

__version__ = version("modernconv")
__all__ = ["CheckpointError", "ConfigError", "DataConfig", "FCMAE", "InputShapeError", "ModelNotFoundError",
           "ModernConvNet", "UserError", "create_model", "list_models", "load_checkpoint", "reparameterize",
           "save_checkpoint"]
