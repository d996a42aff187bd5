"""Model families and the registry; importing this registers every variant."""
from . import convmixer, convnext, roadmap, unireplknet  # noqa: F401  (registration side effects)
from ..data.preprocessing import DataConfig
from .base import ModernConvNet
from .roadmap import roadmap_steps
from .registry import create_model, get_model_spec, list_models, model_data_config, register_model
from .released import list_pretrained

__all__ = ["DataConfig", "ModernConvNet", "create_model", "get_model_spec", "list_models", "list_pretrained",
           "model_data_config", "register_model", "roadmap_steps"]
