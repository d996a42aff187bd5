"""modernconv: modern ConvNets (ConvNeXt V1/V2, UniRepLKNet, ConvMixer) built exactly, loaded from any
checkpoint, trained, re-parameterised and measured.

The public names below are imported on first use, so `import modernconv` (and the command line's help and
model list) start without loading torch."""
from __future__ import annotations

from importlib import import_module
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

from .errors import CheckpointError, ConfigError, InputShapeError, ModelNotFoundError, UserError

if TYPE_CHECKING:  # what the lazy names are, for type checkers and IDEs
    from .checkpoint import load_checkpoint, save_checkpoint
    from .conversion import load_model
    from .deploy import export_model, optimize_for_inference
    from .models import DataConfig, ModernConvNet, create_model, list_models, list_pretrained, roadmap_steps
    from .pretrain import FCMAE
    from .reparam import reparameterize

_LAZY = {"load_checkpoint": "checkpoint", "save_checkpoint": "checkpoint", "load_model": "conversion",
         "DataConfig": "models",
         "ModernConvNet": "models", "create_model": "models", "list_models": "models",
         "list_pretrained": "models", "roadmap_steps": "models",
         "FCMAE": "pretrain", "export_model": "deploy", "optimize_for_inference": "deploy",
         "reparameterize": "reparam"}

__version__ = version("modernconv")
__all__ = ["CheckpointError", "ConfigError", "DataConfig", "FCMAE", "InputShapeError", "ModelNotFoundError",
           "ModernConvNet", "UserError", "create_model", "export_model", "list_models", "list_pretrained",
           "load_checkpoint", "load_model",
           "optimize_for_inference", "reparameterize", "roadmap_steps", "save_checkpoint"]


def __getattr__(name: str) -> Any:
    """A public name (imported from its module on first use) or a sub-module (``modernconv.conversion``)."""
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
    else:
        try:
            value = import_module(f".{name}", __name__)
        except ModuleNotFoundError:
            raise AttributeError(f"module 'modernconv' has no attribute {name!r}") from None
    globals()[name] = value
    return value
