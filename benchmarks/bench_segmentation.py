"""UperNet + ConvNeXt: ours against transformers' UperNetForSemanticSegmentation with the same weights, in one
process, interleaved rounds: an inference pass (eval, fp32) and a training step (forward with the auxiliary head,
both losses, backward, AdamW step); and the peak memory of a training step with and without gradient
checkpointing, each in a fresh process (peak RSS only grows, so one process cannot measure two).

python benchmarks/bench_segmentation.py [--backbone convnext_tiny] [--size 256] [--batch-size 2] [--rounds 3]
"""
from __future__ import annotations

import argparse
import subprocess
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import modernconv
from modernconv.dense import create_segmenter
from common import interleaved, machine_line, ratio_row

HF_BACKBONES = {"convnext": "ConvNextConfig", "convnextv2": "ConvNextV2Config"}


def hf_upernet(name: str, num_classes: int):
    """transformers' UperNet over its ConvNext(V2) backbone with ``name``'s sizes (the papers' head widths)."""
    import transformers

    arch = modernconv.create_model(name, num_classes=0)
    config_type = getattr(transformers, HF_BACKBONES[name.split("_")[0]])
    backbone = config_type(depths=[len(s.blocks) for s in arch.stages],
                           hidden_sizes=[f["num_chs"] for f in arch.feature_info],
                           out_features=["stage1", "stage2", "stage3", "stage4"])
    config = transformers.UperNetConfig(backbone_config=backbone, num_labels=num_classes,
                                        auxiliary_in_channels=arch.feature_info[2]["num_chs"])
    return transformers.UperNetForSemanticSegmentation(config)


def train_step(model, x, y, hf: bool):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        if hf:
            loss = model(pixel_values=x, labels=y).loss
        else:
            logits, aux = model(x)
            loss = F.cross_entropy(logits, y, ignore_index=255) + 0.4 * F.cross_entropy(aux, y, ignore_index=255)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def infer_step(model, x, hf: bool):
    @torch.no_grad()
    def step() -> None:
        model(pixel_values=x).logits if hf else model(x)
    return step


def step_memory(backbone: str, size: int, batch: int, checkpointing: bool) -> float:
    """How far (MB) one training forward + backward lifts the peak RSS of a fresh process above what the built
    segmenter already holds (peak RSS only grows, so each setting gets its own process)."""
    code = f"""
import resource, torch, torch.nn.functional as F
from modernconv.dense import create_segmenter
torch.manual_seed(0)
model = create_segmenter({backbone!r}, 150).train()
model.set_grad_checkpointing({checkpointing})
x, y = torch.randn({batch}, 3, {size}, {size}), torch.randint(0, 150, ({batch}, {size}, {size}))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
logits, aux = model(x)
(F.cross_entropy(logits, y) + 0.4 * F.cross_entropy(aux, y)).backward()
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backbone", default="convnext_tiny")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--memory-size", type=int, default=384, help="input side of the memory measurement")
    args = parser.parse_args()
    print(machine_line(), flush=True)
    # first, while this process is small: Linux carries a parent's peak RSS into the processes it starts
    memory = {c: step_memory(args.backbone, args.memory_size, args.batch_size, c) for c in (False, True)}
    print(f"training forward + backward at {args.memory_size}x{args.memory_size}, batch {args.batch_size}: peak RSS "
          f"+{memory[False]:.0f} MB, with gradient checkpointing +{memory[True]:.0f} MB "
          f"({memory[True] / memory[False]:.2f}x)")
    torch.manual_seed(0)
    hf = hf_upernet(args.backbone, 150)
    save_file({k: v.contiguous() for k, v in hf.state_dict().items()}, "/tmp/bench_upernet.safetensors")
    ours = create_segmenter(args.backbone, 150)
    modernconv.load_checkpoint(ours, "/tmp/bench_upernet.safetensors")
    x = torch.randn(args.batch_size, 3, args.size, args.size)
    y = torch.randint(0, 150, (args.batch_size, args.size, args.size))
    print(f"UperNet + {args.backbone}, 150 classes, batch {args.batch_size}, {args.size}x{args.size}, fp32, "
          f"{torch.get_num_threads()} threads; ours / transformers' UperNetForSemanticSegmentation, same weights")
    print("| step | ours img/s | transformers img/s | ours/transformers (median) | range |\n|---|---|---|---|---|")
    for mode, make in (("inference (eval)", infer_step), ("training step", train_step)):
        for model in (ours, hf):
            model.train(mode == "training step")
        steps = {"ours": make(ours, x, y, False) if make is train_step else make(ours, x, False),
                 "hf": make(hf, x, y, True) if make is train_step else make(hf, x, True)}
        times = interleaved(steps, args.rounds, args.steps, warmup=1)
        print(ratio_row(mode, args.batch_size, times["ours"], times["hf"]), flush=True)


if __name__ == "__main__":
    main()
