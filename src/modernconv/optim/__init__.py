"""Optimisation: AdamW (or SGD) with the papers' parameter groups and layer-wise lr decay, and the lr schedules."""
from .dense_decay import DECAY_TYPES, default_num_layers, dense_layer_id, dense_lr_scales
from .layer_decay import layer_ids
from .optimizer import OPTIMIZERS, build_optimizer, can_fuse, param_groups
from .schedule import (SCHEDULES, build_scheduler, one_cycle_factor, step_decay_factor, warmup_cosine_factor,
                       warmup_poly_factor)

__all__ = ["DECAY_TYPES", "OPTIMIZERS", "SCHEDULES", "build_optimizer", "build_scheduler", "can_fuse",
           "default_num_layers", "dense_layer_id", "dense_lr_scales", "layer_ids", "one_cycle_factor",
           "param_groups", "step_decay_factor", "warmup_cosine_factor", "warmup_poly_factor"]
