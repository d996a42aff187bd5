"""Tasks are plug-ins: the loop trains a task it has never heard of whose batches are lists of differently sized
images with target dicts and whose model returns its losses as a dict (the shape of detection), keeps the best
weights by the task's own metric and direction, and resumes exactly; checkpoints and run states record the task
and metric, and older files are read by their one rule."""
from __future__ import annotations

import json
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import Dataset

import modernconv
from modernconv.config import TrainConfig, load_config
from modernconv.conversion import checkpoint_info
from modernconv.engine import RunContext, Task, TaskData, Trainer
from modernconv.engine.state import Progress
from modernconv.tasks import TASKS, build_task, train

from helpers import Interrupt, die_after_steps


class Boxes(Dataset):
    """Images of varying size, each with 1-3 boxes (x0, y0, x1, y1) and labels; the first box is a bright square."""

    def __init__(self, count: int, seed: int) -> None:
        self.count, self.seed = count, seed

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        g = torch.Generator().manual_seed(self.seed * 1000 + i)
        h, w = (int(v) for v in torch.randint(24, 41, (2,), generator=g))
        image = 0.1 * torch.randn(3, h, w, generator=g)
        n = int(torch.randint(1, 4, (1,), generator=g))
        x0, y0 = int(torch.randint(0, w - 12, (1,), generator=g)), int(torch.randint(0, h - 12, (1,), generator=g))
        image[:, y0:y0 + 12, x0:x0 + 12] += 1.0
        boxes = torch.tensor([[x0 / w, y0 / h, (x0 + 12) / w, (y0 + 12) / h]] * n)
        return image, {"boxes": boxes, "labels": torch.full((n,), i % 2)}


def image_lists(items: list) -> tuple[list, list]:
    """Detection's collate: a list of images and a list of target dicts, nothing stacked."""
    images, targets = zip(*items)
    return list(images), list(targets)


class TinyDetector(nn.Module):
    """A box regressor and classifier over a pooled conv map; in training it returns its losses as a dict, as
    torchvision's detectors do, and in evaluation its predictions."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))
        self.box = nn.Linear(16, 4)
        self.cls = nn.Linear(16, 2)

    def features(self, images: list[torch.Tensor]) -> torch.Tensor:
        maps = [self.body(x[None]) for x in images]
        return torch.cat([torch.cat([m.mean((2, 3)), m.amax((2, 3))], 1) for m in maps])

    def forward(self, images: list[torch.Tensor], targets: list[dict] | None = None) -> Any:
        f = self.features(images)
        boxes, logits = self.box(f).sigmoid(), self.cls(f)
        if self.training:
            return {"loss_box": F.l1_loss(boxes, torch.stack([t["boxes"][0] for t in targets])),
                    "loss_cls": F.cross_entropy(logits, torch.stack([t["labels"][0] for t in targets]))}
        return [{"boxes": b[None], "labels": lg.argmax()[None]} for b, lg in zip(boxes, logits)]


class ToyDetection(Task):
    """A task the loop does not know, written as a new task file would be."""

    name = "toy_detection"
    metric = "box_score"

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg

    def model_options(self) -> dict[str, Any]:
        return {}

    def build_data(self, ctx: RunContext) -> TaskData:
        return TaskData(Boxes(32, 0), Boxes(12, 1), ["a", "b"], ctx.preprocessing)

    def build_model(self, data: TaskData) -> nn.Module:
        self.val = data.val
        return TinyDetector()

    def collate_fn(self):
        return image_lists

    def to_device(self, batch: Any, ctx: RunContext) -> Any:
        images, targets = batch
        return ([x.to(ctx.device) for x in images],
                [{k: v.to(ctx.device) for k, v in t.items()} for t in targets])

    def batch_size(self, batch: Any) -> int:
        return len(batch[0])

    def loss(self, net: nn.Module, batch: Any) -> torch.Tensor:
        return sum(net(*batch).values())

    @torch.no_grad()
    def evaluate(self, ctx: RunContext, model: nn.Module) -> dict[str, float]:
        model.eval()
        images, targets = image_lists([self.val[i] for i in range(len(self.val))])
        predictions = model(images)
        model.train()
        error = torch.stack([(p["boxes"][0] - t["boxes"][0]).abs().mean() for p, t in zip(predictions, targets)])
        return {"box_score": 100 * (1 - error.mean().item()), "count": len(images)}

    def metadata(self, data: TaskData) -> dict[str, Any]:
        return {**super().metadata(data), "class_names": data.class_names}


def config(tmp_path, name: str = "run", **overrides) -> TrainConfig:
    return load_config(None, {"model": "convnext_atto", "epochs": 3, "batch_size": 4, "lr": 3e-3, "warmup_epochs": 0,
                              "progress": False, "output": str(tmp_path / name), "save_every_steps": 3,
                              **overrides})


def test_a_task_with_detection_shaped_batches_trains_and_keeps_its_best(tmp_path):
    trainer = Trainer(config(tmp_path), ToyDetection(config(tmp_path)))
    try:
        result = trainer.fit()
    finally:
        trainer.close()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    scores = [r["val_box_score"] for r in rows]
    assert result.metric == "box_score" and result.best_score == max(scores)
    assert result.best_epoch == scores.index(max(scores)) + 1 and rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert all(r["val_count"] == 12 for r in rows)
    with safe_open(str(tmp_path / "run" / "best.safetensors"), "pt") as f:
        meta = f.metadata()
    assert meta["task"] == "toy_detection" and float(meta["box_score"]) == result.best_score
    assert result.summary == f"best val box_score {result.best_score:.4g} at epoch {result.best_epoch}"
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=True)["progress"]
    assert state["metric"] == "box_score" and state["best_score"] == result.best_score


def test_a_detection_shaped_run_resumes_exactly(tmp_path, monkeypatch):
    full = Trainer(config(tmp_path, "full"), ToyDetection(config(tmp_path, "full")))
    full.fit()
    full.close()
    cut = Trainer(config(tmp_path, "cut"), ToyDetection(config(tmp_path, "cut")))
    die_after_steps(cut, monkeypatch, 11)  # after the step-9 checkpoint, in the second epoch (8 steps each)
    with pytest.raises(Interrupt):
        cut.fit()
    cut.close()
    cfg = config(tmp_path, "cut", resume=True)
    resumed = Trainer(cfg, ToyDetection(cfg))
    resumed.fit()
    resumed.close()
    a, b = (load_file(str(tmp_path / n / "last.safetensors")) for n in ("full", "cut"))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("cfg, task", [
    ({}, "classification"),
    ({"modality": "timeseries", "modality_options": {"horizon": 4}}, "forecasting"),
    ({"task": "classification", "modality": "timeseries", "modality_options": {"horizon": 4}}, "classification"),
])
def test_the_config_names_the_task(cfg, task):
    assert type(build_task(load_config(None, cfg))) is TASKS[task]


def test_forecasting_without_a_horizon_is_one_line():
    with pytest.raises(modernconv.ConfigError, match="task forecasting needs modality timeseries and a horizon"):
        load_config(None, {"task": "forecasting"})


@pytest.mark.parametrize("saved, higher, score", [
    ({"best_top1": 97.5, "best_epoch": 3, "extra": {}}, True, 97.5),  # classification before metrics were named
    ({"best_top1": -0.25, "best_epoch": 2, "extra": {}}, False, 0.25),  # forecasting stored minus the MSE
    ({"best_top1": -1.0, "best_epoch": 0, "extra": {}}, True, None),  # nothing evaluated yet
    ({"metric": "mse", "best_score": 0.25, "best_epoch": 2}, False, 0.25),
])
def test_run_states_from_before_tasks_named_their_metric_are_read(saved, higher, score):
    progress = Progress.from_saved({"epoch": 3, "batches_done": 0, "global_step": 30, **saved}, higher)
    assert progress.best_score == score and progress.epoch == 3


@pytest.mark.parametrize("meta, task", [
    ({}, "classification"),
    ({"modality": "timeseries", "modality_options": {"horizon": 4}}, "forecasting"),
    ({"fcmae": {"mask_ratio": 0.6}}, "fcmae"),
    ({"task": "forecasting", "modality": "timeseries", "modality_options": {"horizon": 4}}, "forecasting"),
])
def test_checkpoints_from_before_tasks_were_recorded_are_read(tmp_path, meta, task):
    modernconv.save_checkpoint(modernconv.create_model("convnext_atto", num_classes=3), tmp_path / "w.safetensors",
                               metadata=meta)
    assert checkpoint_info(tmp_path / "w.safetensors").task == task


def test_a_run_saved_before_tasks_named_their_metric_resumes(tmp_path):
    """A forecasting run folder as the previous version wrote it (best_top1 = minus the MSE, an unused extra, no
    task key in config.yaml, no task in the checkpoints) resumes, reading its best MSE the right way round."""
    cfg = dict(model="convnext_atto", modality="timeseries", data="aeon:Airline", batch_size=16, warmup_epochs=0,
               modality_options={"side": 32, "length": 24, "horizon": 6}, progress=False, output=str(tmp_path / "r"))
    first = train(load_config(None, {**cfg, "epochs": 1}))
    state_path = tmp_path / "r" / "state.pt"
    state = torch.load(state_path, weights_only=True)
    progress = state["progress"]
    state["progress"] = {"epoch": progress["epoch"], "batches_done": 0, "global_step": progress["global_step"],
                         "best_top1": -first.best_score, "best_epoch": 1, "extra": {}}
    torch.save(state, state_path)
    (tmp_path / "r" / "config.yaml").write_text("\n".join(
        line for line in (tmp_path / "r" / "config.yaml").read_text().splitlines() if not line.startswith("task:")))
    resumed = train(load_config(None, {**cfg, "epochs": 2, "resume": True}))
    rows = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert resumed.metric == "mse" and resumed.best_score == min(r["val_mse"] for r in rows)
    assert resumed.best_epoch == min(rows, key=lambda r: r["val_mse"])["epoch"]


def test_an_iteration_budget_sets_the_epochs_and_ends_the_last_one_early(tmp_path):
    """iters: 11 with 8 steps an epoch: two epochs, the second stopped after 3 steps, the schedule spread over
    the 11 steps (cosine down to min_lr at the last)."""
    cfg = config(tmp_path, iters=11, save_every_steps=0)
    trainer = Trainer(cfg, ToyDetection(cfg))
    try:
        result = trainer.fit()
    finally:
        trainer.close()
    assert trainer.epochs == 2 and trainer.total_steps == 11
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=True)
    assert state["progress"]["global_step"] == 11 and state["progress"]["epoch"] == 2
    assert result.last["lr"] == pytest.approx(cfg.min_lr) and result.last["epoch"] == 2
