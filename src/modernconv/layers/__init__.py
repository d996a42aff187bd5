"""Building blocks shared by the model families; one concept per file."""
from .classifier import ClassifierHead
from .depthwise import DepthwiseConv2d
from .dilated_reparam import DILATED_BRANCHES, DilatedReparamBlock
from .drop_path import DropPath, drop_path_rates
from .fusion import bn_scale_shift, fold_bn, fold_output_affine
from .grn import GlobalResponseNorm
from .init import init_head, init_trunc_normal
from .layer_scale import layer_scale
from .mlp import Mlp
from .norm import LayerNorm2d
from .se import SqueezeExcite
from .sequence import CheckpointSequential

__all__ = ["CheckpointSequential", "ClassifierHead", "DILATED_BRANCHES", "DepthwiseConv2d", "DilatedReparamBlock",
           "DropPath", "GlobalResponseNorm", "LayerNorm2d", "Mlp", "SqueezeExcite", "bn_scale_shift",
           "drop_path_rates", "fold_bn", "fold_output_affine", "init_head", "init_trunc_normal", "layer_scale"]
