"""Which layers of each family lose accuracy in int8? Per-role sensitivity on real evaluations.

For each checkpoint (e.g. the best.safetensors of the digits recipes of each family), the layers are grouped by
role (``modernconv.deploy.quantize.layer_roles``: what feeds each conv/linear layer). The model is evaluated on
the held-out split of DATA in eager fp32 and in int8 with: every layer quantized; only one role quantized (the
damage that role does alone); every role but one quantized (what keeping that role in float saves). Calibration:
the first 256 training images. Int8 runs as the reference quantize-dequantize graph (the same rounding as the
int8 kernels, computed in fp32), so the sweep needs no compilation.
Columns: top-1 agreement with fp32, top-1 change (points), largest logit error / largest fp32 logit.

python benchmarks/int8_sensitivity.py --data digits runs/int8/digits_*/best.safetensors
"""
from __future__ import annotations

import argparse

import torch
from torch.utils.data import DataLoader

from modernconv.conversion import model_from_checkpoint
from modernconv.data import build_split
from modernconv.deploy.quantize import ROLES, export_graph, layer_roles, quantize_int8
from modernconv.reparam import reparameterize
from common import machine_line


def first_images(loader: DataLoader, limit: int) -> torch.Tensor:
    """The first ``limit`` images of a loader of (images, labels) batches, as one tensor."""
    return torch.cat([images for images, _ in loader])[:limit]


def logits(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(chunk) for chunk in images.split(128)])


def row(label: str, out: torch.Tensor, ref: torch.Tensor, labels: torch.Tensor, count: int) -> str:
    agree = (out.argmax(1) == ref.argmax(1)).float().mean().item() * 100
    change = ((out.argmax(1) == labels).float().mean() - (ref.argmax(1) == labels).float().mean()).item() * 100
    error = ((out - ref).abs().max() / ref.abs().max()).item()
    return f"| {label} | {count} | {agree:.2f}% | {change:+.2f} | {error:.4f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--data", required=True)
    args = parser.parse_args()
    print(machine_line(), flush=True)
    for path in args.checkpoints:
        model, info = model_from_checkpoint(path)
        model = reparameterize(model).eval()
        transform = info.preprocessing.eval_transform()
        names = info.class_names or None
        calib = first_images(DataLoader(build_split(args.data, "train", model.in_chans, transform, names)[0],
                                        batch_size=64), 256)
        val = list(DataLoader(build_split(args.data, "val", model.in_chans, transform, names)[0], batch_size=512))
        images, labels = torch.cat([b[0] for b in val]), torch.cat([b[1] for b in val])
        ref = logits(model, images)
        roles = layer_roles(export_graph(model, images[:2]))
        present = [r for r in ROLES if r in roles.values()]
        print(f"\n{path} ({info.model_name}; top-1 fp32 {(ref.argmax(1) == labels).float().mean() * 100:.2f}%)\n")
        print("| int8 layers | layers | top-1 agreement | top-1 change | logit error |\n|---|---|---|---|---|")
        print(row("all", logits(quantize_int8(model, calib, keep_float=()), images), ref, labels, len(roles)),
              flush=True)
        for role in present:
            count = sum(r == role for r in roles.values())
            only = quantize_int8(model, calib, keep_float=[r for r in ROLES if r != role])
            print(row(f"only {role}", logits(only, images), ref, labels, count), flush=True)
            if len(present) > 1:
                others = quantize_int8(model, calib, keep_float=[role])
                print(row(f"all but {role}", logits(others, images), ref, labels, len(roles) - count), flush=True)


if __name__ == "__main__":
    main()
