"""Mask R-CNN: ours against torchvision's own maskrcnn_resnet50_fpn, in one process, interleaved rounds of a
training step (forward with the losses, backward, AdamW step; random weights, batch of generated scenes with
their instances). Two pairs: the same network (our Mask R-CNN over the roadmap's ResNet-50 step, torchvision's
weights loaded: the plumbing's overhead) and equal backbone cost (ours over ConvNeXt-T, 4.5 GMACs, against
torchvision's ResNet-50, 4.1 GMACs, as the papers compare them); then the peak memory of one training step of
each, in a fresh process each.

python benchmarks/bench_detection.py [--size 512] [--batch-size 2] [--rounds 5]
"""
from __future__ import annotations

import argparse
import subprocess
import sys

import torch
from torchvision.models.detection import maskrcnn_resnet50_fpn

import modernconv
from modernconv.data.detection import SceneInstances, detection_transform
from modernconv.dense import create_detector
from common import interleaved, machine_line, ratio_row

BUILD = {  # name -> the model at a given image side (five object classes and the background)
    "torchvision": lambda s: maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=6, min_size=s,
                                                   max_size=s),
    "ours_resnet50": lambda s: create_detector("mask_rcnn", "resnet50_to_convnext_t", 5, step="resnet50",
                                               min_size=s, max_size=s),
    "ours_convnext_tiny": lambda s: create_detector("mask_rcnn", "convnext_tiny", 5, min_size=s, max_size=s),
}


def batch(size: int, count: int) -> tuple[list[torch.Tensor], list[dict]]:
    """``count`` generated scenes with their instances, upscaled to ``size`` by the detectors themselves."""
    data = SceneInstances("train", detection_transform(False))
    pairs = [data[i] for i in range(count)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def train_step(model: torch.nn.Module, images: list, targets: list):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step() -> None:
        sum(model(images, targets).values()).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def step_memory(name: str, size: int, count: int) -> float:
    """How far (MB) one training step lifts the peak RSS of a fresh process above the built model's."""
    code = f"""
import resource, sys, torch
sys.path.insert(0, {str(sys.path[0])!r})
from bench_detection import BUILD, batch
torch.manual_seed(0)
model = BUILD[{name!r}]({size}).train()
images, targets = batch({size}, {count})
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
sum(model(images, targets).values()).backward()
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=512, help="the images' side after the detector's resize")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    print(machine_line(), flush=True)
    memory = {name: step_memory(name, args.size, args.batch_size) for name in BUILD}  # while this process is small
    torch.manual_seed(0)
    models = {name: build(args.size) for name, build in BUILD.items()}
    path = "/tmp/bench_maskrcnn_tv.pth"
    torch.save(models["torchvision"].state_dict(), path)
    modernconv.load_checkpoint(models["ours_resnet50"], path)
    images, targets = batch(args.size, args.batch_size)
    print(f"Mask R-CNN, batch {args.batch_size} at {args.size}x{args.size}, fp32, {torch.get_num_threads()} threads; "
          "training step (losses, backward, AdamW)")
    print("| pair | ours img/s | torchvision img/s | ours/torchvision (median) | range |\n|---|---|---|---|---|")
    for ours, label in (("ours_resnet50", "same network (ResNet-50, torchvision's weights)"),
                        ("ours_convnext_tiny", "equal cost (ours ConvNeXt-T vs torchvision ResNet-50)")):
        steps = {name: train_step(models[name], images, targets) for name in (ours, "torchvision")}
        times = interleaved(steps, args.rounds, args.steps, warmup=1)
        print(ratio_row(label, args.batch_size, times[ours], times["torchvision"]), flush=True)
    print("\npeak RSS of one training forward + backward (fresh process each): " +
          ", ".join(f"{name} +{mb:.0f} MB" for name, mb in memory.items()))


if __name__ == "__main__":
    main()
