"""Evaluating and applying a trained checkpoint (what `modernconv eval` and `predict` do)."""
from __future__ import annotations

import torch
from torch import nn

from ..conversion import CheckpointInfo
from ..data import build_loader, build_split, read_image
from ..errors import UserError
from .evaluate import EvalResult, evaluate


def evaluate_checkpoint(model: nn.Module, info: CheckpointInfo, data: str, batch_size: int = 64,
                        workers: int = 0) -> EvalResult:
    """Accuracy of ``model`` on the held-out split of ``data`` (loaded alone, labelled with the checkpoint's
    classes), in the checkpoint's own preprocessing."""
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    val, classes = build_split(data, "val", model.in_chans, info.preprocessing.eval_transform(),
                               class_names=info.class_names or None, classes_from="the checkpoint")
    if info.class_names and classes != info.class_names:
        raise UserError(f"the checkpoint knows classes {info.class_names[:5]}..., the data set has "
                        f"{classes[:5]}...; evaluate on data with the same classes")
    loader = build_loader(val, batch_size, train=False, seed=0, num_workers=workers)
    device = next(model.parameters()).device
    return evaluate(model, loader, len(classes), device)


@torch.no_grad()
def predict_images(model: nn.Module, info: CheckpointInfo, paths: list[str], topk: int = 5) -> list[dict]:
    """Top-k (class name, probability) for each image file."""
    if topk < 1:
        raise UserError(f"--topk must be at least 1, got {topk}")
    tf = info.preprocessing.eval_transform()
    device = next(model.parameters()).device
    names = info.class_names or [str(i) for i in range(model.num_classes)]
    out = []
    for path in paths:
        x = tf(read_image(path, model.in_chans)).unsqueeze(0).to(device)
        probs = model(x).float().softmax(-1)[0]
        top = probs.topk(min(topk, probs.numel()))
        out.append({"image": str(path), "top": [{"class": names[i], "probability": round(p, 6)}
                                                for p, i in zip(top.values.tolist(), top.indices.tolist())]})
    return out
