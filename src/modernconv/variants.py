"""Every registered model: its name, family and architecture, as plain data (no torch), so the names can be
listed instantly (`modernconv models`). The family files build and register these; the data configs and the
builders live there. Also the precision names, for the command line's options (which start without torch)."""
from __future__ import annotations

import fnmatch

PRECISION_NAMES = ("fp32", "bf16", "fp16")  # runtime.PRECISIONS maps them to torch dtypes
FAST_PRECISION_NAMES = (*PRECISION_NAMES, "int8", "auto")  # the fast path's (modernconv.deploy.fast)

# name -> architecture arguments of the family's builder
CONVNEXT_V1 = {
    "convnext_atto": dict(depths=(2, 2, 6, 2), dims=(40, 80, 160, 320)),
    "convnext_femto": dict(depths=(2, 2, 6, 2), dims=(48, 96, 192, 384)),
    "convnext_pico": dict(depths=(2, 2, 6, 2), dims=(64, 128, 256, 512)),
    "convnext_nano": dict(depths=(2, 2, 8, 2), dims=(80, 160, 320, 640)),
    "convnext_tiny": dict(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768)),
    "convnext_small": dict(depths=(3, 3, 27, 3), dims=(96, 192, 384, 768)),
    "convnext_base": dict(depths=(3, 3, 27, 3), dims=(128, 256, 512, 1024)),
    "convnext_large": dict(depths=(3, 3, 27, 3), dims=(192, 384, 768, 1536)),
    "convnext_xlarge": dict(depths=(3, 3, 27, 3), dims=(256, 512, 1024, 2048)),
}
CONVNEXT_V2 = {  # GRN, no layer scale
    "convnextv2_atto": dict(depths=(2, 2, 6, 2), dims=(40, 80, 160, 320)),
    "convnextv2_femto": dict(depths=(2, 2, 6, 2), dims=(48, 96, 192, 384)),
    "convnextv2_pico": dict(depths=(2, 2, 6, 2), dims=(64, 128, 256, 512)),
    "convnextv2_nano": dict(depths=(2, 2, 8, 2), dims=(80, 160, 320, 640)),
    "convnextv2_tiny": dict(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768)),
    "convnextv2_base": dict(depths=(3, 3, 27, 3), dims=(128, 256, 512, 1024)),
    "convnextv2_large": dict(depths=(3, 3, 27, 3), dims=(192, 384, 768, 1536)),
    "convnextv2_huge": dict(depths=(3, 3, 27, 3), dims=(352, 704, 1408, 2816)),
}
CONVNEXT_ISOTROPIC = {
    "convnext_isotropic_small": dict(depth=18, dim=384),
    "convnext_isotropic_base": dict(depth=18, dim=768),
    "convnext_isotropic_large": dict(depth=36, dim=1024),
}
UNIREPLKNET = {
    "unireplknet_a": dict(depths=(2, 2, 6, 2), dims=(40, 80, 160, 320)),
    "unireplknet_f": dict(depths=(2, 2, 6, 2), dims=(48, 96, 192, 384)),
    "unireplknet_p": dict(depths=(2, 2, 6, 2), dims=(64, 128, 256, 512)),
    "unireplknet_n": dict(depths=(2, 2, 8, 2), dims=(80, 160, 320, 640)),
    "unireplknet_t": dict(depths=(3, 3, 18, 3), dims=(80, 160, 320, 640)),
    "unireplknet_s": dict(depths=(3, 3, 27, 3), dims=(96, 192, 384, 768)),
    "unireplknet_b": dict(depths=(3, 3, 27, 3), dims=(128, 256, 512, 1024)),
    "unireplknet_l": dict(depths=(3, 3, 27, 3), dims=(192, 384, 768, 1536)),
    "unireplknet_xl": dict(depths=(3, 3, 27, 3), dims=(256, 512, 1024, 2048)),
}
CONVMIXER = {  # ConvMixer-h/d: dim h, depth d, kernel, patch, activation
    "convmixer_1536_20": dict(dim=1536, depth=20, kernel_size=9, patch_size=7, act="gelu"),
    "convmixer_768_32": dict(dim=768, depth=32, kernel_size=7, patch_size=7, act="relu"),
    "convmixer_1024_20_ks9_p14": dict(dim=1024, depth=20, kernel_size=9, patch_size=14, act="gelu"),
    "convmixer_256_8": dict(dim=256, depth=8, kernel_size=5, patch_size=2, act="gelu", num_classes=10),  # CIFAR
}
ROADMAP = {  # the ConvNeXt paper's design roadmap: the ResNet it starts from, the ConvNeXt it ends at
    "resnet50_to_convnext_t": dict(resnet_depths=(3, 4, 6, 3), depths=(3, 3, 9, 3), width=96),
    "resnet200_to_convnext_b": dict(resnet_depths=(3, 24, 36, 3), depths=(3, 3, 27, 3), width=128),
}

FAMILIES = {"convnext": CONVNEXT_V1, "convnextv2": CONVNEXT_V2, "convnext_isotropic": CONVNEXT_ISOTROPIC,
            "unireplknet": UNIREPLKNET, "convmixer": CONVMIXER,
            "roadmap": ROADMAP}


def list_variants(pattern: str = "*") -> list[tuple[str, str]]:
    """Sorted (name, family) of the models whose name matches the fnmatch ``pattern``."""
    return sorted((name, family) for family, table in FAMILIES.items() for name in table
                  if fnmatch.fnmatchcase(name, pattern))
