"""Run configuration: the definitions (``RunConfig`` and the task options), reading them from recipes and
overrides, and the command-line options generated from them."""
from .definitions import (CONFIG_KINDS, FCMAE_MODES, MODALITY_RECIPES, RESUME_MAY_CHANGE, ClassificationOptions, FCMAEOptions,
                          PretrainConfig, RunConfig, TrainConfig, resume_changes)
from .loading import TIMM_ALIASES, TIMM_HINTS, check_key, coerce, load_config
from .options import add_config_options, option_rows, overrides_from

__all__ = ["CONFIG_KINDS", "ClassificationOptions", "FCMAEOptions", "FCMAE_MODES", "MODALITY_RECIPES", "PretrainConfig",
           "RESUME_MAY_CHANGE", "RunConfig", "TIMM_ALIASES", "TIMM_HINTS", "TrainConfig", "add_config_options",
           "check_key", "coerce", "load_config", "option_rows", "overrides_from", "resume_changes"]
