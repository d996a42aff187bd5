"""Dense prediction on our backbones: UperNet semantic segmentation (``create_segmenter``), the decoder the
ConvNeXt, ConvNeXt V2 and UniRepLKNet papers report on ADE20K."""
from .segmenter import Segmenter, create_segmenter
from .upernet import FCNHead, UperNetHead

__all__ = ["FCNHead", "Segmenter", "UperNetHead", "create_segmenter"]
