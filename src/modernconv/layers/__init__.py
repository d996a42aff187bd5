"""Building blocks shared by the model families; one concept per file."""
from .classifier import ClassifierHead
from .drop_path import DropPath, drop_path_rates
from .grn import GlobalResponseNorm
from .init import init_trunc_normal
from .mlp import Mlp
from .norm import LayerNorm2d
from .sequence import CheckpointSequential

__all__ = ["CheckpointSequential", "ClassifierHead", "DropPath", "drop_path_rates", "GlobalResponseNorm", "init_trunc_normal", "LayerNorm2d", "Mlp"]
