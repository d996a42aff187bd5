"""Dense prediction on our backbones: UperNet semantic segmentation (``create_segmenter``), the decoder the
ConvNeXt, ConvNeXt V2 and UniRepLKNet papers report on ADE20K, and detectors / instance segmenters over an FPN
(``create_detector``: torchvision's Mask R-CNN, Faster R-CNN, RetinaNet and FCOS), as they report on COCO."""
from .detectors import DETECTORS, Detector, create_detector
from .segmenter import Segmenter, create_segmenter
from .upernet import FCNHead, UperNetHead

__all__ = ["DETECTORS", "Detector", "FCNHead", "Segmenter", "UperNetHead", "create_detector", "create_segmenter"]
