"""Regenerate src/modernconv/models/released_weights.csv: the released weights of our model names, as the installed
timm describes them (tag, source, licence, classes, input size, crop, normalisation) plus torchvision's ConvNeXt
files (whose names carry the first 8 hex digits of their sha256).

A maintainer's tool: the library and its tests read only the CSV, never timm.

python benchmarks/make_released_weights.py
"""
from __future__ import annotations

import csv
from pathlib import Path

import timm.models.convmixer
import timm.models.convnext
import torchvision.models as tvm

import modernconv

OUT = Path(__file__).resolve().parents[1] / "src" / "modernconv" / "models" / "released_weights.csv"
FIELDS = ("name", "tag", "file", "source", "license", "num_classes", "input_size", "test_input_size", "crop_pct",
          "interpolation", "mean", "std", "sha256")
TORCHVISION = {"convnext_tiny": tvm.ConvNeXt_Tiny_Weights, "convnext_small": tvm.ConvNeXt_Small_Weights,
               "convnext_base": tvm.ConvNeXt_Base_Weights, "convnext_large": tvm.ConvNeXt_Large_Weights}


def numbers(values) -> str:
    return " ".join(str(v) for v in values) if values else ""


def main() -> None:
    ours = set(modernconv.list_models())
    rows = []
    for module in (timm.models.convnext, timm.models.convmixer):
        for name, default in module.default_cfgs.items():
            if name not in ours:
                continue
            for tag, cfg in default.cfgs.items():
                authors = cfg.url.rsplit("/", 1)[-1] if cfg.url else ""
                rows.append({"name": name, "tag": tag, "file": authors or "model.safetensors",
                             "source": cfg.url or f"https://huggingface.co/{cfg.hf_hub_id}{name}.{tag}",
                             "license": cfg.license or "", "num_classes": cfg.num_classes,
                             "input_size": numbers(cfg.input_size), "test_input_size": numbers(cfg.test_input_size),
                             "crop_pct": cfg.crop_pct, "interpolation": cfg.interpolation,
                             "mean": numbers(cfg.mean), "std": numbers(cfg.std), "sha256": ""})
    for name, weights in TORCHVISION.items():
        entry = weights.IMAGENET1K_V1
        transform = entry.transforms()
        file = entry.url.rsplit("/", 1)[-1]
        rows.append({"name": name, "tag": "tv_in1k", "file": file, "source": entry.url, "license": "bsd-3-clause",
                     "num_classes": len(entry.meta["categories"]), "input_size": "3 224 224", "test_input_size": "",
                     "crop_pct": round(transform.crop_size[0] / transform.resize_size[0], 4),
                     "interpolation": "bilinear", "mean": numbers(transform.mean), "std": numbers(transform.std),
                     "sha256": file.rsplit("-", 1)[1].split(".")[0]})  # torchvision's hash prefix
    with OUT.open("w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} released weights -> {OUT}")


if __name__ == "__main__":
    main()
