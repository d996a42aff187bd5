"""What `predict` does with files: which inputs a checkpoint takes, the input paths that files, folders and glob
patterns name, and the predictions written as CSV or JSON, or (segmentation) as index PNGs and overlays."""
from __future__ import annotations

import csv
import glob
import io
import json
from pathlib import Path

import numpy as np
from torchvision.datasets.folder import IMG_EXTENSIONS

from ..conversion import CheckpointInfo
from ..errors import UserError
from ..files import atomic_write, atomic_write_text
from ..modalities import get_modality


def input_kinds(info: CheckpointInfo) -> tuple[tuple[str, ...], bool]:
    """The file suffixes the checkpoint's modality reads, and whether a folder of frames is one input."""
    spec = get_modality(info.modality)
    return spec.extensions, spec.sample_is_folder


def expand_inputs(inputs: list[str], extensions: tuple[str, ...] = IMG_EXTENSIONS,
                  frame_folders: bool = False) -> list[str]:
    """Files as given, every file with one of ``extensions`` below a folder (sorted; with ``frame_folders`` a
    folder holding images is itself one input), and the matches of glob patterns (``**`` too)."""
    paths: list[str] = []
    for item in inputs:
        if frame_folders and Path(item).is_dir() and any(p.suffix.lower() in IMG_EXTENSIONS
                                                          for p in Path(item).iterdir()):
            paths.append(item)
        elif Path(item).is_dir():
            paths += sorted(str(p) for p in Path(item).rglob("*") if p.suffix.lower() in extensions)
        elif glob.has_magic(item):
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                raise UserError(f"no file matches {item!r}")
            paths += matches
        else:
            paths.append(item)
    if not paths:  # folders without a single such file: nothing to predict is a mistake, not an empty result
        raise UserError(f"no input files in {', '.join(inputs)} (looked for {', '.join(sorted(extensions))})")
    return paths


def write_predictions(predictions: list[dict], path: Path) -> None:
    """``predict_images``' results as JSON, or as CSV: image, rank, class, probability (and error) rows."""
    if path.suffix == ".json":
        atomic_write_text(path, json.dumps(predictions, indent=1))
        return
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["image", "rank", "class", "probability", "error"])
    for item in predictions:
        if "error" in item:
            writer.writerow([item["image"], "", "", "", item["error"]])
        for rank, top in enumerate(item.get("top", []), start=1):
            writer.writerow([item["image"], rank, top["class"], top["probability"], ""])
    atomic_write_text(path, text.getvalue())


def class_palette() -> list[int]:
    """Pascal VOC's colour map for 256 indices (flat RGB list): index bits spread over the colours' high bits, so
    neighbouring classes look different; 0 is black."""
    palette = []
    for index in range(256):
        rgb, value = [0, 0, 0], index
        for shift in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((value >> channel) & 1) << shift
            value >>= 3
        palette += rgb
    return palette


def write_segmentation(item: dict, folder: Path, class_names: list[str]) -> dict:
    """``item``'s mask as an index PNG (palette mode: the pixel values are the classes, the palette shows them) and
    an overlay a person can look at (the image half-blended with the class colours), in ``folder``; returns the
    JSON record (files, share of each class present)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    stem = Path(item["image"]).stem
    mask = item["mask"].numpy().astype("uint8")
    index = Image.fromarray(mask, mode="L").convert("P")
    index.putpalette(class_palette())
    colours = index.convert("RGB")
    overlay = Image.blend(Image.fromarray(item["pixels"].permute(1, 2, 0).numpy()), colours, 0.5)
    paths = {"mask": folder / f"{stem}.png", "overlay": folder / f"{stem}_overlay.png"}
    for key, img in (("mask", index), ("overlay", overlay)):
        atomic_write(paths[key], lambda tmp, img=img: img.save(tmp, format="PNG"))
    counts = item["mask"].flatten().bincount(minlength=len(class_names))
    shares = {class_names[c]: round(float(n) / mask.size, 4) for c, n in enumerate(counts.tolist()) if n}
    return {"image": item["image"], "mask": str(paths["mask"]), "overlay": str(paths["overlay"]), "classes": shares}


def write_detections(item: dict, folder: Path, class_names: list[str]) -> dict:
    """``item``'s detections drawn on the image (masks half-blended in their class colour, boxes, class names and
    scores) as ``folder/STEM.png``; returns the JSON record (the file and the detections: class, score, box
    x1 y1 x2 y2)."""
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    found = item["found"]
    boxes, labels, scores = found["boxes"], found["labels"], found["scores"]
    palette = class_palette()
    picture = Image.fromarray(item["pixels"].permute(1, 2, 0).numpy())
    if "masks" in found:
        tint = np.asarray(picture, dtype=np.float32)
        for mask, label in zip(found["masks"][:, 0].numpy() >= 0.5, labels.tolist()):
            tint[mask] = 0.5 * tint[mask] + 0.5 * np.array(palette[3 * label:3 * label + 3], np.float32)
        picture = Image.fromarray(tint.round().astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    records = []
    for box, label, score in zip(boxes.tolist(), labels.tolist(), scores.tolist()):
        colour = tuple(palette[3 * label:3 * label + 3])
        name = class_names[label - 1] if 0 < label <= len(class_names) else str(label)
        x1, y1, x2, y2 = box
        draw.rectangle((x1, y1, max(x2, x1 + 4), max(y2, y1 + 4)), outline=colour, width=2)  # tiny ones drawn 4 px
        draw.text((box[0] + 2, box[1] + 1), f"{name} {score:.2f}", fill=colour)
        records.append({"class": name, "score": round(score, 4), "box": [round(v, 1) for v in box]})
    path = folder / f"{Path(item['image']).stem}.png"
    atomic_write(path, lambda tmp: picture.save(tmp, format="PNG"))
    return {"image": item["image"], "drawn": str(path), "detections": records}
