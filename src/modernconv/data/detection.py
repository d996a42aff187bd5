"""Detection data: images with boxes, labels and instance masks, in COCO's layout, Pascal VOC's (boxes), and the
built-in ``scenes`` (the segmentation scenes' objects as instances).

- COCO: ``annotations/instances_<split>*.json`` (``instances_train2017.json``...) with the images in the folder
  the file's suffix names (``train2017/``), else ``images/<split>/`` or ``<split>/`` (``data.coco``).
- Pascal VOC: ``Annotations/*.xml``, ``JPEGImages/``, the split's names in ``ImageSets/Main/<split>.txt``; VOC's
  20 classes (or, for other XML sets, the names found, in order); ``difficult`` objects are not trained on and
  the evaluation ignores them (COCO's ``iscrowd``).
- ``scenes``: the five shapes, each object's visible part its mask and box (objects hidden to under
  ``MIN_VISIBLE`` pixels are left out).

A sample is ``(image, target)``: a float [3, H, W] image in [0, 1] and ``{"boxes": tv_tensors.BoundingBoxes
(x1, y1, x2, y2), "labels": int64 1..N, "masks": tv_tensors.Mask (N, H, W) uint8, "image_id": int}``, through a
``transforms.v2`` transform that moves boxes and masks with the image. Every split also gives ``ground_truth()``,
the COCO-format dict its evaluation reads."""
from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from ..errors import DataError, UnreadableFileError
from .coco import CocoFile, decode_mask, encode_mask, read_coco
from .images import read_image
from .scenes import SCENE_CLASSES, SCENE_SIZE, SCENES, make_instances

MIN_VISIBLE = 16  # pixels of an object that must show for the built-in scenes to call it an instance
VOC_OBJECTS = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
               "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]


def detection_transform(train: bool, hflip: float = 0.5, scale_jitter: tuple[float, float] | None = None,
                        size: int = 1024) -> Callable:
    """The joint transform (boxes and masks follow the image): in training a horizontal flip (probability
    ``hflip``) and, with ``scale_jitter`` (low, high), large-scale jitter (resized to ``size`` x ``size`` times a
    random factor in that range, keeping the aspect, then a random ``size`` x ``size`` crop, padded where
    smaller; boxes cut to nothing are dropped); then the image to float in [0, 1]. The detector resizes
    (multi-scale in training) and normalises itself."""
    steps: list = [v2.RandomHorizontalFlip(hflip)] if train and hflip else []
    if train and scale_jitter is not None:
        steps += [v2.ScaleJitter((size, size), scale_jitter, antialias=True),
                  v2.RandomCrop(size, pad_if_needed=True)]
    return v2.Compose([*steps, v2.ToDtype(torch.float32, scale=True), v2.SanitizeBoundingBoxes()])


def make_target(boxes: np.ndarray, labels: list[int], masks: np.ndarray | None, image_id: int,
                size: tuple[int, int]) -> dict:
    """A target dict of tv_tensors (see the module docstring)."""
    target = {"boxes": tv_tensors.BoundingBoxes(torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                                                format="XYXY", canvas_size=size),
              "labels": torch.as_tensor(labels, dtype=torch.int64), "image_id": image_id}
    if masks is not None:
        target["masks"] = tv_tensors.Mask(torch.from_numpy(masks).reshape(-1, *size))
    return target


class DetectionSet(Dataset):
    """Base of the detection splits: ``read(index)`` gives a uint8 image and its target, ``__getitem__`` the
    transformed pair; ``bad_images`` lists unreadable images left out, ``skipped`` counts annotations left out."""

    class_names: list[str]
    bad_images: list[str]
    skipped: int = 0

    def __init__(self, transform: Callable, with_masks: bool) -> None:
        self.transform, self.with_masks = transform, with_masks
        self.bad_images = []

    def read(self, index: int) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def readable(self, entries: list, path_of: Callable[[Any], str]) -> list:
        """``entries`` (the list ``read`` indexes, in its order) without those ``read`` cannot read, whose paths
        go to ``bad_images`` (``skip_bad_images``)."""
        kept = []
        for index, entry in enumerate(entries):
            try:
                self.read(index)
                kept.append(entry)
            except DataError:
                self.bad_images.append(path_of(entry))
        return kept

    def ground_truth(self) -> dict:
        """This split in COCO's format (images, annotations, categories), as COCO's evaluation reads it."""
        raise NotImplementedError

    def category_id(self, label: int) -> int:
        """The ground truth's category id of label ``label`` (1..N)."""
        return label

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        image, target = self.read(index)
        return self.transform(tv_tensors.Image(image), target)


class SceneInstances(DetectionSet):
    """The built-in scenes' objects as instances (see the module docstring)."""

    class_names = SCENE_CLASSES[1:]

    def __init__(self, split: str, transform: Callable, with_masks: bool = True, count: int | None = None) -> None:
        super().__init__(transform, with_masks)
        self.first, full = SCENES["train" if split == "train" else "val"]
        self.count = full if count is None else min(count, full)

    def __len__(self) -> int:
        return self.count

    def objects(self, index: int) -> tuple[np.ndarray, list[tuple[np.ndarray, int]]]:
        """Scene ``index``'s image and its (visible mask, label) objects."""
        image, shown, kinds = make_instances(self.first + index)
        found = [(shown == k, kind) for k, kind in enumerate(kinds, 1)]
        return image, [(m, kind) for m, kind in found if m.sum() >= MIN_VISIBLE]

    def read(self, index: int) -> tuple[torch.Tensor, dict]:
        image, objects = self.objects(index)
        masks = np.stack([m for m, _ in objects]).astype(np.uint8) if objects else np.zeros((0, *image.shape[:2]),
                                                                                            np.uint8)
        boxes = np.array([mask_box(m) for m, _ in objects], np.float32)
        target = make_target(boxes, [k for _, k in objects], masks if self.with_masks else None, index,
                             image.shape[:2])
        return torch.from_numpy(image).permute(2, 0, 1), target

    def ground_truth(self) -> dict:
        annotations = []
        for index in range(len(self)):
            for mask, kind in self.objects(index)[1]:
                x1, y1, x2, y2 = mask_box(mask)
                annotations.append({"id": len(annotations) + 1, "image_id": index, "category_id": kind,
                                    "bbox": [x1, y1, x2 - x1, y2 - y1], "area": float(mask.sum()), "iscrowd": 0,
                                    "segmentation": encode_mask(mask)})
        return coco_dict([(i, f"scene_{i}", *(SCENE_SIZE,) * 2) for i in range(len(self))], annotations,
                         self.class_names)


class CocoInstances(DetectionSet):
    """One split of a COCO-layout folder (``data.coco``); images without annotations are dropped for training
    unless ``keep_empty`` (mmdetection's ``filter_empty_gt``) and kept for evaluation."""

    def __init__(self, images: Path, coco: CocoFile, transform: Callable, with_masks: bool, keep_empty: bool,
                 skip_bad: bool = False) -> None:
        super().__init__(transform, with_masks)
        self.folder, self.coco = images, coco
        self.class_names, self.skipped = coco.class_names, coco.skipped
        self.images = [i for i in coco.images if keep_empty or i.annotations]
        if skip_bad:
            self.images = self.readable(self.images, lambda entry: str(self.folder / entry.file_name))

    def __len__(self) -> int:
        return len(self.images)

    def read(self, index: int) -> tuple[torch.Tensor, dict]:
        entry = self.images[index]
        path = self.folder / entry.file_name
        image = torch.from_numpy(np.array(read_image(str(path), 3))).permute(2, 0, 1)
        if image.shape[1:] != (entry.height, entry.width):
            raise UnreadableFileError(f"image {path} is {image.shape[2]}x{image.shape[1]}, its annotations say "
                            f"{entry.width}x{entry.height}")
        anns = entry.annotations
        masks = None
        if self.with_masks:
            try:
                masks = np.stack([decode_mask(a["segmentation"], entry.height, entry.width) for a in anns]) \
                    if anns else np.zeros((0, entry.height, entry.width), np.uint8)
            except (KeyError, TypeError, ValueError, DataError) as e:
                raise DataError(f"{self.coco.path}: a mask of image {entry.file_name} cannot be decoded ({e}); "
                                "fix the annotation or train a box detector") from None
        target = make_target(np.array([a["box"] for a in anns], np.float32),
                             [self.coco.label_of(a["category_id"]) for a in anns], masks, entry.image_id,
                             (entry.height, entry.width))
        return image, target

    def ground_truth(self) -> dict:
        listed = {i.image_id for i in self.images}
        content = self.coco.ground_truth
        return {**content, "images": [i for i in content["images"] if i["id"] in listed],
                "annotations": [a for a in content.get("annotations", []) if a["image_id"] in listed]}

    def category_id(self, label: int) -> int:
        return self.coco.category_ids[label - 1]


class VocBoxes(DetectionSet):
    """One split of a Pascal VOC folder (boxes only; see the module docstring)."""

    def __init__(self, root: Path, split: str, transform: Callable, skip_bad: bool = False) -> None:
        super().__init__(transform, with_masks=False)
        listing = root / "ImageSets" / "Main" / f"{'val' if split == 'validation' else split}.txt"
        if not listing.is_file():
            raise DataError(f"{root} has Annotations/ but no {listing.relative_to(root)}")
        stems = [line.split()[0] for line in listing.read_text().splitlines() if line.strip()]
        self.objects = {s: read_voc_xml(root / "Annotations" / f"{s}.xml") for s in stems}
        names = sorted({o[0] for objs, _ in self.objects.values() for o in objs})
        self.class_names = VOC_OBJECTS if set(names) <= set(VOC_OBJECTS) else names
        self.stems, self.folder = stems, root / "JPEGImages"
        if skip_bad:
            self.stems = self.readable(self.stems, lambda stem: str(self.folder / f"{stem}.jpg"))

    def __len__(self) -> int:
        return len(self.stems)

    def read(self, index: int) -> tuple[torch.Tensor, dict]:
        stem = self.stems[index]
        image = torch.from_numpy(np.array(read_image(str(self.folder / f"{stem}.jpg"), 3))).permute(2, 0, 1)
        kept = [o for o in self.objects[stem][0] if not o[2]]
        boxes = np.array([o[1] for o in kept], np.float32).reshape(-1, 4)
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, image.shape[2])
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, image.shape[1])
        return image, make_target(boxes, [self.class_names.index(o[0]) + 1 for o in kept], None, index,
                                  tuple(image.shape[1:]))

    def ground_truth(self) -> dict:
        annotations, images = [], []
        for index, stem in enumerate(self.stems):
            objects, (width, height) = self.objects[stem]
            images.append((index, f"{stem}.jpg", height, width))
            for name, (x1, y1, x2, y2), difficult in objects:
                annotations.append({"id": len(annotations) + 1, "image_id": index,
                                    "category_id": self.class_names.index(name) + 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
                                    "area": (x2 - x1) * (y2 - y1), "iscrowd": int(difficult)})
        return coco_dict(images, annotations, self.class_names)


def read_voc_xml(path: Path) -> tuple[list[tuple[str, list[float], bool]], tuple[int, int]]:
    """A VOC annotation file: its objects (name, x1 y1 x2 y2 in pixel edges, difficult) and the image's (width,
    height)."""
    try:
        root = ElementTree.parse(path).getroot()
        size = root.find("size")
        width, height = int(size.findtext("width")), int(size.findtext("height"))
        objects = []
        for obj in root.iter("object"):
            box = obj.find("bndbox")
            x1, y1, x2, y2 = (float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
            objects.append((obj.findtext("name").strip(), [x1 - 1, y1 - 1, x2, y2],
                            obj.findtext("difficult", "0").strip() == "1"))
    except (OSError, ElementTree.ParseError, AttributeError, TypeError, ValueError) as e:
        raise DataError(f"cannot read VOC annotation {path} ({e})") from None
    for name, (x1, y1, x2, y2), _ in objects:
        if x2 - x1 < 1 or y2 - y1 < 1:
            raise DataError(f"{path}: the box of {name!r} is empty ({x1 + 1:g}, {y1 + 1:g}, {x2:g}, {y2:g})")
    return objects, (width, height)


def mask_box(mask: np.ndarray) -> list[float]:
    """The tight box (x1, y1, x2, y2, pixel edges) of a non-empty mask."""
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def coco_dict(images: list[tuple[int, str, int, int]], annotations: list[dict], class_names: list[str]) -> dict:
    """A COCO-format ground truth from (id, file name, height, width) images, annotations and names 1..N."""
    return {"images": [{"id": i, "file_name": f, "height": h, "width": w} for i, f, h, w in images],
            "annotations": annotations,
            "categories": [{"id": k, "name": n} for k, n in enumerate(class_names, 1)]}


def detection_split(source: str, split: str, transform: Callable, with_masks: bool, keep_empty: bool = False,
                    skip_bad: bool = False) -> DetectionSet:
    """One split ("train", or "val" / "validation") of ``source``: "scenes" (built in), or a COCO or Pascal VOC
    folder (see the module docstring)."""
    if source == "scenes":
        return SceneInstances(split, transform, with_masks)
    root = Path(source)
    if not root.is_dir():
        raise DataError(f"data path {root} is not a folder (give a COCO or Pascal VOC folder, or 'scenes')")
    if (root / "Annotations").is_dir():
        if with_masks:
            raise DataError(f"{root} is a Pascal VOC detection set: boxes only; train a box detector "
                            "(faster_rcnn, retinanet, fcos)")
        return VocBoxes(root, split, transform, skip_bad)
    name = "val" if split == "validation" else split
    files = sorted((root / "annotations").glob(f"instances_{name}*.json"))
    if not files:
        raise DataError(f"{root} has no annotations/instances_{name}*.json (a COCO layout) nor Annotations/ "
                        "(Pascal VOC)")
    suffix = files[0].stem.removeprefix("instances_")
    images = next((d for d in (root / suffix, root / "images" / name, root / name) if d.is_dir()), None)
    if images is None:
        raise DataError(f"{root} has {files[0].name} but no image folder {suffix}/, images/{name}/ or {name}/")
    return CocoInstances(images, read_coco(files[0]), transform, with_masks, keep_empty or split != "train",
                         skip_bad)
