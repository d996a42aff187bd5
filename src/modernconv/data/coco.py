"""COCO's instance annotations read and checked: one JSON file (``images``, ``annotations``, ``categories``) ->
per image the boxes (x1, y1, x2, y2, clipped to the image), labels 1..N (the category ids in increasing order,
whatever they are) and masks (polygons or RLE, decoded with pycocotools), and the ground truth COCO's evaluation
reads.

``iscrowd`` regions are not trained on (COCO's evaluation ignores detections that fall in them); a box that is
empty once clipped to its image, or a polygon of fewer than three points, is skipped and counted; a category the
file does not declare, an annotation of an image it does not list, or a malformed box is one line naming the
file and the annotation."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError

MIN_SIDE = 1.0  # a box narrower or lower than this (pixels, after clipping) is skipped, as mmdetection does


def pycocotools_mask() -> Any:
    """pycocotools' mask module (masks and COCO AP need it), or one line saying how to install it."""
    try:
        from pycocotools import mask
    except ImportError:
        raise ConfigError("detection needs pycocotools for masks and COCO AP: pip install pycocotools "
                          "(or the package's 'detection' extra)") from None
    return mask


@dataclass
class CocoImage:
    """One image's entry and its trainable annotations (crowd regions and skipped boxes left out)."""

    image_id: int
    file_name: str
    height: int
    width: int
    annotations: list[dict] = field(default_factory=list)


@dataclass
class CocoFile:
    """A COCO instances file, read and checked."""

    path: Path
    images: list[CocoImage]
    category_ids: list[int]  # label k (1..N) is category_ids[k - 1]
    class_names: list[str]
    ground_truth: dict  # the file's content as COCO's evaluation reads it (area / iscrowd filled in)
    skipped: int  # annotations left out: empty boxes, degenerate polygons

    def label_of(self, category_id: int) -> int:
        return self.category_ids.index(category_id) + 1


def read_coco(path: Path) -> CocoFile:
    """Read and check ``path`` (see the module docstring)."""
    try:
        content = json.loads(path.read_text())
        images = {int(i["id"]): CocoImage(int(i["id"]), str(i["file_name"]), int(i["height"]), int(i["width"]))
                  for i in content["images"]}
        categories = sorted((int(c["id"]), str(c["name"])) for c in content["categories"])
        annotations = content.get("annotations", [])
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"cannot read COCO annotations {path} ({e})") from None
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"{path} is not a COCO instances file (images need id, file_name, height, width; "
                        f"categories id and name): {e}") from None
    known = {c for c, _ in categories}
    skipped = 0
    for ann in annotations:
        where = f"{path}: annotation {ann.get('id', '?')}"
        if ann.get("category_id") not in known:
            raise DataError(f"{where} has category {ann.get('category_id')!r}, which the file's categories do not "
                            "declare")
        image = images.get(ann.get("image_id"))
        if image is None:
            raise DataError(f"{where} belongs to image {ann.get('image_id')!r}, which the file does not list")
        box = ann.get("bbox")
        if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)):
            raise DataError(f"{where} has bbox {box!r}, not [x, y, width, height]")
        ann.setdefault("iscrowd", 0)
        ann.setdefault("area", float(box[2] * box[3]))
        if ann["iscrowd"]:
            continue
        x1, y1 = max(box[0], 0.0), max(box[1], 0.0)
        x2, y2 = min(box[0] + box[2], image.width), min(box[1] + box[3], image.height)
        polygons = ann.get("segmentation")
        degenerate = isinstance(polygons, list) and not any(len(p) >= 6 for p in polygons)
        if x2 - x1 < MIN_SIDE or y2 - y1 < MIN_SIDE or degenerate:
            skipped += 1
            continue
        image.annotations.append({**ann, "box": [x1, y1, x2, y2]})
    return CocoFile(path, list(images.values()), [c for c, _ in categories], [n for _, n in categories],
                    content, skipped)


def decode_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """An annotation's ``segmentation`` (polygons, uncompressed or compressed RLE) as a uint8 H x W mask."""
    mask = pycocotools_mask()
    if isinstance(segmentation, list):
        rle = mask.merge(mask.frPyObjects([p for p in segmentation if len(p) >= 6], height, width))
    elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
        rle = mask.frPyObjects(segmentation, height, width)
    elif isinstance(segmentation, dict):
        rle = segmentation
    else:
        raise DataError(f"segmentation {str(segmentation)[:40]!r} is neither polygons nor RLE")
    return mask.decode(rle)


def encode_mask(binary: np.ndarray) -> dict:
    """A uint8 H x W mask as compressed RLE, JSON-ready (COCO's results format)."""
    rle = pycocotools_mask().encode(np.asfortranarray(binary.astype(np.uint8)))
    return {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}
