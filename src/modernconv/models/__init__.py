"""Model families and the registry; importing this registers every variant."""
from . import convmixer, convnext, unireplknet  # noqa: F401  (registration side effects)
from .base import DataConfig, ModernConvNet
from .registry import create_model, get_model_spec, list_models, register_model

__all__ = ["DataConfig", "ModernConvNet", "create_model", "get_model_spec", "list_models", "register_model"]
