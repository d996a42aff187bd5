"""The training loop every task shares: one process or many, mixed precision, accumulation, exact resume,
checkpoints and logs. What is trained, on what and how it is judged comes from a ``Task`` (``task.py``)."""
from __future__ import annotations

import contextlib
import math
import random
import time
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from ..config import RunConfig, TrainConfig
from ..data import batches_per_epoch, build_loader
from ..errors import ConfigError, TrainingDivergedError
from ..models import model_data_config
from ..optim import build_optimizer, build_scheduler
from ..runtime import autocast, resolve_device
from .classification import ClassificationTask
from .distributed import DistInfo, barrier, gather_objects, init_distributed, shutdown
from .ema import build_ema
from .logbook import Logbook
from .state import LAST_FILE, STATE_FILE, Progress, load_run_state, rng_state, save_run_state, set_rng_state
from .task import RunContext, Task


@dataclass
class TrainResult:
    """Where the run lives and how it ended."""

    run_dir: Path
    best_top1: float
    best_epoch: int
    last: dict
    is_main: bool = True  # False on the other processes of a distributed run


def seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """The RNG seed of one process for one epoch: every process draws its own masks, drop-path and MixUp.
    (torch keeps the low 32 bits of a seed, so the rank's offset must live there too.)"""
    return seed * 100_003 + epoch + rank * 1_000_003


def run_dir_for(cfg: RunConfig) -> Path:
    """The run folder: new (never over an existing run) or, with ``resume``, the one to continue. Checked here,
    created by ``create_run_dir`` once the model and the data are known to be good."""
    if cfg.output is None:
        if cfg.resume:
            raise ConfigError("--resume needs --output DIR naming the run to continue")
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = Path("runs") / f"{cfg.model}-{stamp}"
    else:
        run_dir = Path(cfg.output)
    has_run = (run_dir / STATE_FILE).exists() or (run_dir / LAST_FILE).exists()
    if cfg.resume and not has_run:
        raise ConfigError(f"{run_dir} holds no run to resume")
    if not cfg.resume and has_run:
        raise ConfigError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --output")
    return run_dir


def create_run_dir(run_dir: Path, dist: DistInfo) -> None:
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    barrier(dist)


def _has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


class Trainer:
    """Builds a run from its config and ``task`` (classification when none is given) and runs the epochs."""

    def __init__(self, cfg: RunConfig, task: Task | None = None) -> None:
        self.cfg = cfg
        self.task = task if task is not None else ClassificationTask(cfg)
        self.device = resolve_device(cfg.device)
        self.dist = init_distributed(self.device.type)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        seed_all(cfg.seed)
        torch.use_deterministic_algorithms(cfg.deterministic, warn_only=True)
        preprocessing = model_data_config(cfg.model, **self.task.model_options())
        self.run_dir = run_dir_for(cfg)
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.ctx = RunContext(self.device, self.dist, self.run_dir, cfg.precision, self.memory_format,
                              preprocessing.replace(img_size=cfg.img_size or preprocessing.img_size))
        self.split = self.task.build_data(self.ctx)
        self.steps_per_epoch = self._count_steps()
        self._build_model()
        self._build_optimisation()
        create_run_dir(self.run_dir, self.dist)

    # ----- construction -----
    def _count_steps(self) -> int:
        """Optimizer steps per epoch; the training set must give at least ``accum_steps`` batches."""
        cfg = self.cfg
        batches = batches_per_epoch(len(self.split.train), cfg.batch_size, self.dist.world_size)
        if batches < cfg.accum_steps:
            raise ConfigError(f"the training set gives {batches} batches of {cfg.batch_size} per process, fewer "
                              f"than accum_steps={cfg.accum_steps}; lower batch_size")
        return batches // cfg.accum_steps

    def _train_loader(self, epoch: int, start_batch: int = 0):
        return build_loader(self.split.train, self.cfg.batch_size, train=True, seed=self.cfg.seed, epoch=epoch,
                            num_workers=self.cfg.workers, distributed=self.dist.enabled, start_batch=start_batch)

    def _build_model(self) -> None:
        cfg = self.cfg
        model = self.task.build_model()
        if cfg.grad_checkpointing:
            model.set_grad_checkpointing(True)
        model.to(self.device, memory_format=self.memory_format)
        if self.dist.enabled and cfg.sync_bn and _has_batchnorm(model) and self.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model  # the plain module: saved, evaluated, averaged
        net: nn.Module = model
        if self.dist.enabled:
            net = nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                gradient_as_bucket_view=True)
        self.ddp = net
        self.net = torch.compile(net) if cfg.compile else net
        self.ema = build_ema(model, self.task.ema_decay) if self.task.ema_decay else None

    def _build_optimisation(self) -> None:
        cfg = self.cfg
        self.lr = cfg.lr
        if cfg.lr_base_batch:
            self.lr = cfg.lr * cfg.batch_size * cfg.accum_steps * self.dist.world_size / cfg.lr_base_batch
        self.optimizer = build_optimizer(self.model, self.lr, cfg.weight_decay, cfg.betas, cfg.eps,
                                         self.task.layer_decay)
        total = cfg.epochs * self.steps_per_epoch
        self.scheduler = build_scheduler(self.optimizer, total, round(cfg.warmup_epochs * self.steps_per_epoch),
                                         self.lr, cfg.min_lr, cfg.sched)

    # ----- checkpoints -----
    def _save(self, progress: Progress) -> None:
        rngs = gather_objects(rng_state(), self.dist)
        if self.dist.is_main:
            save_run_state(self.run_dir, self.model, self.optimizer, self.scheduler, self.ema, progress,
                           self.task.metadata(), rngs)
        barrier(self.dist)

    def _restore_rng(self, rngs: list[dict], progress: Progress) -> None:
        """Continue this process's own random stream; a run saved by another number of processes gets a fresh
        stream per process (such a mid-epoch resume cannot repeat the interrupted run exactly anyway)."""
        if len(rngs) == self.dist.world_size:
            set_rng_state(rngs[self.dist.rank])
            return
        seed_all(_epoch_seed(self.cfg.seed, progress.epoch, self.dist.rank) + progress.batches_done)
        if progress.batches_done and self.dist.is_main:
            warnings.warn(f"the run was saved mid-epoch by {len(rngs)} process(es) and resumes on "
                          f"{self.dist.world_size}: it continues, but not exactly as the interrupted run would have")

    # ----- the loop -----
    def _train_epoch(self, epoch: int, progress: Progress) -> dict:
        cfg = self.cfg
        loader = self._train_loader(epoch, progress.batches_done)
        self.net.train()
        accum = cfg.accum_steps
        last_batch = self.steps_per_epoch * accum  # batches past this do not complete an optimizer step
        loss_sum, seen, start = 0.0, 0, time.perf_counter()
        bar = tqdm(total=last_batch, initial=progress.batches_done, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   disable=not (cfg.progress and self.dist.is_main), leave=False, dynamic_ncols=True)
        for batch, (images, labels) in enumerate(loader, start=progress.batches_done):
            if batch >= last_batch:
                break
            images = images.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
            labels = labels.to(self.device, non_blocking=True)
            boundary = (batch + 1) % accum == 0
            sync = contextlib.nullcontext() if boundary or not self.dist.enabled else self.ddp.no_sync()
            with sync:
                with autocast(self.device, cfg.precision):
                    loss = self.task.loss(self.net, images, labels)
                value = loss.item()  # the step's one host sync
                if not math.isfinite(value):
                    raise TrainingDivergedError(
                        f"loss became {value} at epoch {epoch + 1}, batch {batch + 1}; stopped. The last good "
                        f"checkpoint is {self.run_dir / LAST_FILE} (lower the lr or enable clip_grad)")
                (loss / accum).backward()
            loss_sum += value * images.shape[0]
            seen += images.shape[0]
            if boundary:
                self._optimizer_step()
                progress.global_step += 1
                progress.batches_done = batch + 1
                if cfg.save_every_steps and progress.global_step % cfg.save_every_steps == 0:
                    self._save(progress)
            if bar.n % max(1, cfg.log_every_steps) == 0 or boundary:
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", lr=f"{self.optimizer.param_groups[-1]['lr']:.2e}",
                                img_s=f"{seen * self.dist.world_size / (time.perf_counter() - start):.1f}")
            bar.update(1)
        bar.close()
        elapsed = time.perf_counter() - start
        return {"train_loss": loss_sum / max(1, seen), "lr": self.optimizer.param_groups[-1]["lr"],
                "epoch_time_s": round(elapsed, 3),
                "train_images_per_s": round(seen * self.dist.world_size / elapsed, 2)}

    def _optimizer_step(self) -> None:
        if self.cfg.clip_grad:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip_grad)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    def _epoch_line(self, row: dict) -> str:
        """The one-line summary printed after each epoch."""
        return (f"epoch {row['epoch'] + 1}/{self.cfg.epochs}: loss {row['train_loss']:.4f}{self.task.summary(row)}"
                f"  ({row['epoch_time_s']:.1f}s)")

    def fit(self) -> TrainResult:
        """Train for the configured epochs (continuing a saved run when ``resume``)."""
        cfg = self.cfg
        logbook = Logbook(self.run_dir) if self.dist.is_main else None
        if cfg.resume:
            progress, rngs = load_run_state(self.run_dir, self.model, self.optimizer, self.scheduler, self.ema)
            self._restore_rng(rngs, progress)
            if logbook:
                logbook.truncate(progress.epoch)
        else:
            progress = Progress()
        if self.dist.is_main:
            cfg.save(self.run_dir / "config.yaml")
            bad = getattr(self.split.train, "bad_images", []) + getattr(self.split.val, "bad_images", [])
            if bad:
                tqdm.write(f"skipped {len(bad)} unreadable images (first: {bad[0]})")
        row: dict = {}
        for epoch in range(progress.epoch, cfg.epochs):
            if progress.batches_done == 0:  # a fresh epoch; a mid-epoch resume restored the RNG instead
                seed_all(_epoch_seed(cfg.seed, epoch, self.dist.rank))
            row = {"epoch": epoch, **self._train_epoch(epoch, progress)}
            progress.epoch, progress.batches_done = epoch + 1, 0
            self.task.end_epoch(self.ctx, self.model, self.ema.module if self.ema else None, epoch, row, progress)
            self._save(progress)
            if logbook:
                logbook.log(row)
                tqdm.write(self._epoch_line(row))
        return TrainResult(self.run_dir, progress.best_top1, progress.best_epoch, row, self.dist.is_main)

    def close(self) -> None:
        shutdown(self.dist)


def train(cfg: TrainConfig) -> TrainResult:
    """Run the classification job described by ``cfg`` (also under torchrun)."""
    trainer = Trainer(cfg)
    try:
        return trainer.fit()
    finally:
        trainer.close()
