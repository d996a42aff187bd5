"""Evaluating and applying a trained checkpoint (what `modernconv eval` and `predict` do)."""
from __future__ import annotations

import torch
from torch import nn

from ..checkpoint import CheckpointInfo
from ..data import build_datasets, build_loader, eval_transform, read_image
from ..errors import CheckpointError, UserError
from .evaluate import EvalResult, evaluate


def _eval_spec(model: nn.Module, info: CheckpointInfo) -> dict:
    """The checkpoint's own evaluation preprocessing, else the model's data config."""
    dc = model.data_config
    spec = dict(img_size=dc.input_size[1], mean=list(dc.mean), std=list(dc.std), crop_pct=dc.crop_pct,
                interpolation=dc.interpolation)
    spec.update(info.eval)
    return spec


def _transform(model: nn.Module, info: CheckpointInfo):
    spec = _eval_spec(model, info)
    return eval_transform(spec["img_size"], spec["mean"], spec["std"], crop_pct=spec["crop_pct"],
                          interpolation=spec["interpolation"])


def evaluate_checkpoint(model: nn.Module, info: CheckpointInfo, data: str, batch_size: int = 64,
                        workers: int = 0) -> EvalResult:
    """Accuracy of ``model`` on the held-out split of ``data``, whose classes must be the checkpoint's."""
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    tf = _transform(model, info)
    split = build_datasets(data, _eval_spec(model, info)["img_size"], model.in_chans, train_transform=tf,
                           eval_transform=tf)
    if info.class_names and split.class_names != info.class_names:
        raise CheckpointError(f"the checkpoint knows classes {info.class_names[:5]}..., the data set has "
                              f"{split.class_names[:5]}...; evaluate on data with the same classes")
    loader = build_loader(split.val, batch_size, train=False, seed=0, num_workers=workers)
    device = next(model.parameters()).device
    return evaluate(model, loader, len(split.class_names), device)


@torch.no_grad()
def predict_images(model: nn.Module, info: CheckpointInfo, paths: list[str], topk: int = 5) -> list[dict]:
    """Top-k (class name, probability) for each image file."""
    if topk < 1:
        raise UserError(f"--topk must be at least 1, got {topk}")
    tf = _transform(model, info)
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
