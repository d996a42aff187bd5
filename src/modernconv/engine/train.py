"""The training loop every task shares: one process or many, mixed precision, accumulation, exact resume,
checkpoints and logs. What is trained, on what and how it is judged comes from a ``Task`` (``task.py``)."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import random
import signal
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from ..checkpoint import read_metadata, save_checkpoint
from ..config import MODALITY_RECIPES, RunConfig
from ..data import batches_per_epoch, build_loader
from ..errors import ConfigError, RunStopped, StorageError, TrainingDivergedError, WorkerLostError
from ..files import atomic_write_text
from ..modalities import IMAGE, get_modality
from ..models import model_data_config
from ..optim import build_optimizer, build_scheduler
from ..runtime import autocast, resolve_device
from .distributed import (all_reduce_max, barrier, broadcast_buffers, broadcast_object, gather_objects,
                          init_distributed, shutdown)
from .ema import build_ema
from .logbook import Logbook
from .run_folder import check_run_dir, create_run_dir
from .signals import StopRequest, stop_requests
from .state import (BEST_FILE, CONFIG_FILE, LAST_FILE, SUMMARY_FILE, Progress, load_run_state, rng_state,
                    save_run_state, set_rng_state)
from .task import RunContext, Task
from .trackers import Trackers


@dataclass
class TrainResult:
    """Where the run lives and how it ended."""

    run_dir: Path
    metric: str | None  # the task's held-out metric that decided the best weights (None: the task keeps none)
    best_score: float | None  # its best value (None: no evaluation yet)
    best_epoch: int
    last: dict
    is_main: bool = True  # False on the other processes of a distributed run
    summary: str = ""  # the task's one line on how the run did


def seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """The RNG seed of one process for one epoch: every process draws its own masks, drop-path and MixUp.
    (torch keeps the low 32 bits of a seed, so the rank's offset must live there too.)"""
    return seed * 100_003 + epoch + rank * 1_000_003


@contextlib.contextmanager
def _batchnorm_needs_more_values():
    """BatchNorm's "more than 1 value per channel" (a batch of one on a 1x1 map) as one line saying what to do."""
    try:
        yield
    except ValueError as e:
        if "more than 1 value per channel" not in str(e):
            raise
        raise ConfigError("BatchNorm needs more than one value per channel in training: use a batch size above 1 "
                          "(or larger images)") from None


LOWER_IS_BETTER = ("loss", "mse", "mae")  # metric names (suffixes) whose smaller values are better
HISTORY_PREFIX = "checkpoint-"  # checkpoint-EPOCH.safetensors: the checkpoint_hist best epochs


def _clock(seconds: float) -> str:
    """``seconds`` as h:mm:ss (m:ss under an hour)."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


class Trainer:
    """Builds a run from its config and its ``task`` (``modernconv.tasks.build_task(cfg)``) and runs the epochs."""

    def __init__(self, cfg: RunConfig, task: Task, label: str = "") -> None:
        self.cfg = cfg
        self.task = task
        self.label = label  # what the epoch lines start with when one process runs several runs (the roadmap)
        self.device = resolve_device(cfg.device)
        self.dist = init_distributed(self.device.type)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        seed_all(cfg.seed)
        torch.use_deterministic_algorithms(cfg.deterministic, warn_only=True)
        preprocessing = model_data_config(cfg.model, **self.task.model_options())
        # one decision for every process (rank 0's: on a shared file system another node may see it late)
        self.run_dir, self.resuming = broadcast_object(check_run_dir(cfg), self.dist)
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        # the metric that decides the best weights and patience: the task's, or the one the run names
        self.metric = cfg.best_metric or task.metric
        self.higher_is_better = (task.higher_is_better if self.metric == task.metric
                                 else not self.metric.endswith(LOWER_IS_BETTER))
        self.ctx = RunContext(self.device, self.dist, self.run_dir, cfg.precision, self.memory_format,
                              preprocessing.replace(img_size=cfg.img_size or preprocessing.img_size))
        if self.dist.is_main:  # reading a large folder (or decoding each image, to skip bad ones) takes a while
            checked = ", decoding every file to skip unreadable ones" if cfg.skip_bad_images else ""
            tqdm.write(f"{self.label + ': ' if self.label else ''}preparing the data ({cfg.data}{checked}) ...")
        self.data = self.task.build_data(self.ctx)
        self.steps_per_epoch = self._count_steps()
        # an iteration budget (the dense papers' 160k) sets the epochs; the last one stops at the budget
        self.total_steps = cfg.iters or cfg.epochs * self.steps_per_epoch
        self.epochs = -(-self.total_steps // self.steps_per_epoch)
        self._build_model()
        self._build_optimisation()
        self._create_run_dir()

    def _create_run_dir(self) -> None:
        """Create and lock the run folder (rank 0), now that the model and the data are known to be good."""
        self.lock = None
        if self.dist.is_main:
            self.run_dir, self.lock = create_run_dir(self.cfg, self.run_dir)
        self.run_dir = broadcast_object(self.run_dir, self.dist)
        self.ctx = dataclasses.replace(self.ctx, run_dir=self.run_dir)
        barrier(self.dist)

    # ----- construction -----
    def _count_steps(self) -> int:
        """Optimizer steps per epoch; the training set must give at least ``accum_steps`` batches."""
        cfg = self.cfg
        batches = batches_per_epoch(len(self.data.train), cfg.batch_size, self.dist.world_size)
        if batches < cfg.accum_steps:
            most = len(self.data.train) // (self.dist.world_size * cfg.accum_steps)
            recipe = MODALITY_RECIPES.get(getattr(cfg, "modality", IMAGE))
            raise ConfigError(f"the training set gives {batches} batches of {cfg.batch_size} per process "
                              f"({len(self.data.train)} samples), fewer than accum_steps={cfg.accum_steps}; "
                              + (f"use --batch-size {most} or less" if most else "it needs more samples")
                              + (f" (the small-set recipe: -c {recipe})" if recipe else ""))
        return batches // cfg.accum_steps

    def _train_loader(self, epoch: int, start_batch: int = 0):
        return build_loader(self.data.train, self.cfg.batch_size, train=True, seed=self.cfg.seed, epoch=epoch,
                            num_workers=self.cfg.workers, distributed=self.dist.enabled, start_batch=start_batch,
                            collate_fn=self.task.collate_fn())

    def _build_model(self) -> None:
        cfg = self.cfg
        model = self.task.build_model(self.data)
        if cfg.grad_checkpointing:
            model.set_grad_checkpointing(True)
        model.to(self.device, memory_format=self.memory_format)
        if self.dist.enabled and cfg.sync_bn and _has_batchnorm(model) and self.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model  # the plain module: saved, evaluated, averaged
        runner: nn.Module = model
        if self.dist.enabled:
            runner = nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                gradient_as_bucket_view=True)
        self.runner = torch.compile(runner) if cfg.compile else runner  # what trains: DDP- and compile-wrapped
        self.ema = build_ema(model, self.task.ema_decay) if self.task.ema_decay else None

    def _build_optimisation(self) -> None:
        cfg = self.cfg
        self.lr = cfg.lr
        if cfg.lr_base_batch:
            self.lr = cfg.lr * cfg.batch_size * cfg.accum_steps * self.dist.world_size / cfg.lr_base_batch
        self.optimizer = build_optimizer(self.model, self.lr, cfg.weight_decay, cfg.betas, cfg.eps,
                                         self.task.layer_decay, cfg.opt, cfg.momentum,
                                         self.task.lr_scales(self.model))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.precision == "fp16")
        self.scheduler = build_scheduler(self.optimizer, self.total_steps,
                                         round(cfg.warmup_epochs * self.steps_per_epoch),
                                         self.lr, cfg.min_lr, cfg.sched,
                                         milestones=None if cfg.milestones is None else
                                         [round(e * self.steps_per_epoch) for e in cfg.milestones])

    # ----- checkpoints -----
    def _save(self, progress: Progress) -> None:
        """Write a resumable checkpoint; weights that are no longer finite are never written."""
        self._check_finite(progress)
        rngs = gather_objects(rng_state(), self.dist)
        if self.dist.is_main:
            with self._storage_errors():
                save_run_state(self.run_dir, self.model, self.optimizer, self.scheduler, self.scaler, self.ema,
                               progress, self.task.metadata(self.data), rngs)
        barrier(self.dist)
        self.saved_at = time.monotonic()

    def _last_good(self) -> str:
        last = self.run_dir / LAST_FILE
        return f"The last good checkpoint is {last}" if last.exists() else "No checkpoint was saved yet"

    def _check_finite(self, progress: Progress) -> None:
        """Stop (without saving) when a weight of the model or its EMA is NaN or infinite."""
        modules = [self.model] + ([self.ema.module] if self.ema is not None else [])
        if torch.stack([p.detach().isfinite().all() for m in modules for p in m.parameters()]).all():
            return
        raise TrainingDivergedError(f"the weights became non-finite by epoch {progress.epoch + 1}, step "
                                    f"{progress.global_step}; stopped without saving them. {self._last_good()} "
                                    "(lower the lr or enable clip_grad)")

    @contextlib.contextmanager
    def _storage_errors(self):
        """A failed write (full disk, read-only folder) ends the run with one line; what was saved is kept."""
        try:
            yield
        except OSError as e:
            last = self.run_dir / LAST_FILE
            kept = (f"the last good checkpoint {last} is kept: free space or fix the folder, then continue with "
                    f"--output {self.run_dir} --resume" if last.exists() else "nothing was saved yet: start again")
            raise StorageError(f"could not write to {self.run_dir} ({e.strerror or e}); {kept}") from None

    @contextlib.contextmanager
    def _worker_deaths(self):
        """A data-loading worker that died (killed by the kernel, most often for memory) ends the run with one
        line; the checkpoints saved before are kept."""
        try:
            yield
        except RuntimeError as e:
            if "DataLoader worker" not in str(e):
                raise
            cause = str(e).strip().splitlines()[0].rstrip(". ")
            raise WorkerLostError(f"{cause} (out of memory?). {self._last_good()}; lower --workers or --batch-size, "
                                  f"then run again with --output {self.run_dir} --resume auto") from None

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
    def _train_epoch(self, epoch: int, progress: Progress, stop: StopRequest) -> dict:
        cfg = self.cfg
        loader = self._train_loader(epoch, progress.batches_done)
        self.runner.train()
        accum = cfg.accum_steps
        steps = min(self.steps_per_epoch, self.total_steps - epoch * self.steps_per_epoch)
        last_batch = steps * accum  # batches past this do not complete an optimizer step (or pass the budget)
        loss_sum, seen, start = 0.0, 0, time.perf_counter()
        window = [0.0, 0, start]  # loss sum, images and start time since the last logged step
        bar = tqdm(total=last_batch, initial=progress.batches_done, desc=f"epoch {epoch + 1}/{self.epochs}",
                   disable=not (cfg.progress and self.dist.is_main and sys.stderr.isatty()), leave=False,
                   dynamic_ncols=True)
        for batch, samples in enumerate(loader, start=progress.batches_done):
            if batch >= last_batch:
                break
            samples = self.task.to_device(samples, self.ctx)
            count = self.task.batch_size(samples)
            boundary = (batch + 1) % accum == 0
            sync = contextlib.nullcontext() if boundary or not self.dist.enabled else self._ddp().no_sync()
            with sync:
                with autocast(self.device, cfg.precision), _batchnorm_needs_more_values():
                    loss = self.task.loss(self.runner, samples)
                value = loss.item()  # the step's one host sync
                if not math.isfinite(value):
                    raise TrainingDivergedError(
                        f"loss became {value} at epoch {epoch + 1}, batch {batch + 1}; stopped. {self._last_good()} "
                        "(lower the lr or enable clip_grad)")
                self.scaler.scale(loss / accum).backward()
            loss_sum += value * count
            seen += count
            window[0] += value * count
            window[1] += count
            bar.update(1)
            if boundary:
                grad_norm = self._optimizer_step()
                progress.global_step += 1
                progress.batches_done = batch + 1
                if progress.global_step % cfg.log_every_steps == 0:
                    self._log_step(epoch, batch + 1, last_batch, progress, window, grad_norm, bar)
                    window = [0.0, 0, time.perf_counter()]
                self._after_step(stop, progress)
        bar.close()
        elapsed = time.perf_counter() - start
        return {"train_loss": loss_sum / max(1, seen), "lr": self.optimizer.param_groups[-1]["lr"],
                "epoch_time_s": round(elapsed, 3),
                "train_images_per_s": round(seen * self.dist.world_size / elapsed, 2)}

    def _ddp(self) -> nn.parallel.DistributedDataParallel:
        """The DDP module inside the runner (for ``no_sync`` while accumulating)."""
        return getattr(self.runner, "_orig_mod", self.runner)

    def _after_step(self, stop: StopRequest, progress: Progress) -> None:
        """After an optimizer step, agreed by every process: the checkpoint due by step count or by the clock
        (any process's), and a stop a signal asked for (on any process) saved and ended with a clear line."""
        cfg = self.cfg
        signum = stop.signum or 0
        by_clock = int(cfg.save_every_minutes > 0 and time.monotonic() - self.saved_at >= 60 * cfg.save_every_minutes)
        if self.dist.enabled:  # (one process: no tensor, so no device round trip on every step)
            signum, by_clock = (int(v) for v in all_reduce_max(
                torch.tensor([signum, by_clock], device=self.device), self.dist).tolist())
        if signum or by_clock or (cfg.save_every_steps and progress.global_step % cfg.save_every_steps == 0):
            self._save(progress)
        if signum:
            raise RunStopped(signum, f"{signal.Signals(signum).name} after step {progress.global_step} (epoch "
                                     f"{progress.epoch + 1})", f"continue with --output {self.run_dir} --resume")

    def _log_step(self, epoch: int, batch: int, batches: int, progress: Progress, window: list,
                  grad_norm: float | None, bar: tqdm) -> None:
        """Per-step scalars (main process): to metrics_steps.jsonl, and to the progress bar on a terminal or one
        plain line elsewhere (a job log)."""
        if not self.dist.is_main:
            return
        row = {"step": progress.global_step, "epoch": epoch + 1, "loss": window[0] / max(1, window[1]),
               "lr": self.optimizer.param_groups[-1]["lr"],
               "images_per_s": window[1] * self.dist.world_size / max(1e-9, time.perf_counter() - window[2])}
        if grad_norm is not None:
            row["grad_norm"] = grad_norm
        with self._storage_errors():
            self.logbook.log_step(row)
        if not bar.disable:
            bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{row['lr']:.2e}", img_s=f"{row['images_per_s']:.1f}")
        elif self.cfg.progress:
            print(f"epoch {epoch + 1}/{self.epochs} batch {batch}/{batches}: loss {row['loss']:.4f}  "
                  f"lr {row['lr']:.2e}  {row['images_per_s']:.1f} images/s", flush=True)

    def _optimizer_step(self) -> float | None:
        """Clip, step (skipped by the fp16 scaler when gradients overflowed), schedule, average. Returns the
        gradient norm when clipping measured it."""
        grad_norm = None
        if self.cfg.clip_grad:
            self.scaler.unscale_(self.optimizer)
            grad_norm = float(nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip_grad))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return grad_norm

    def summary(self) -> dict:
        """What this run is, before its first step (timm prints as much): written to summary.json and said."""
        pre, world = self.data.preprocessing, self.dist.world_size
        return {"run_dir": str(self.run_dir), "task": self.task.name, "model": self.cfg.model,
                "parameters": sum(p.numel() for p in self.model.parameters()), "classes": len(self.data.class_names),
                "train_samples": len(self.data.train), "val_samples": len(self.data.val or []),
                "input_size": list(pre.input_size), "mean": list(pre.mean), "std": list(pre.std),
                "crop_pct": pre.crop_pct, "interpolation": pre.interpolation, "device": str(self.device),
                "precision": self.cfg.precision, "processes": world, "epochs": self.epochs,
                "steps_per_epoch": self.steps_per_epoch, "total_steps": self.total_steps,
                "samples_per_step": self.cfg.batch_size * self.cfg.accum_steps * world}

    @staticmethod
    def _summary_lines(s: dict) -> str:
        """``summary()`` and how the run began (``start``) as the four lines a run starts with."""
        size = "x".join(map(str, s["input_size"]))
        classes = f", {s['classes']} classes" if s["classes"] else ""
        return (f"run {s['run_dir']}: {s['task']}, {s['model']} ({s['parameters'] / 1e6:.2f} M parameters)"
                f"{classes}\n"
                f"data: {s['train_samples']} training / {s['val_samples']} held-out samples; input {size} "
                f"(mean {tuple(round(v, 3) for v in s['mean'])}, std {tuple(round(v, 3) for v in s['std'])}, "
                f"crop {s['crop_pct']:g}, {s['interpolation']})\n"
                f"{s['device']}, {s['precision']}, {s['processes']} process{'es' if s['processes'] > 1 else ''}: "
                f"{s['epochs']} epoch{'s' if s['epochs'] > 1 else ''} of {s['steps_per_epoch']} steps "
                f"({s['total_steps']} in all), "
                f"{s['samples_per_step']} samples a step\n{s['start']}")

    def _start_line(self, progress: Progress) -> str:
        """How this process began: a new run, or the saved one continued (and whether ``resume: auto`` chose)."""
        auto = "resume auto: " if self.cfg.resume == "auto" else ""
        if not self.resuming:
            return f"{auto}started a new run" + (" (the folder held none)" if auto else "")
        return (f"{auto}continued the saved run from epoch {progress.epoch + 1}"
                + (f", batch {progress.batches_done}" if progress.batches_done else "")
                + f" (step {progress.global_step})")

    def _epoch_line(self, row: dict, started: float, first_epoch: int) -> str:
        """The one-line summary printed after each epoch: losses and the task's metrics, the epoch's time, the
        run's elapsed time (since this process started it or resumed it) and the time left at that pace."""
        elapsed = time.perf_counter() - started
        left = elapsed / (row["epoch"] - first_epoch) * (self.epochs - row["epoch"])
        return (f"{self.label + ': ' if self.label else ''}epoch {row['epoch']}/{self.epochs}: "
                f"loss {row['train_loss']:.4f}{self.task.summary(row)}"
                f"  ({row['epoch_time_s']:.1f}s; elapsed {_clock(elapsed)}, ETA {_clock(left)})")

    def fit(self) -> TrainResult:
        """Train for the configured epochs (continuing the saved run when ``resume`` found one). SIGTERM or SIGINT stop it
        after the current step with a resumable checkpoint (``RunStopped``)."""
        cfg = self.cfg
        self.logbook = logbook = Logbook(self.run_dir) if self.dist.is_main else None
        if self.resuming:
            progress, rngs = load_run_state(self.run_dir, self.model, self.optimizer, self.scheduler, self.scaler,
                                            self.ema, self.higher_is_better)
            self._restore_rng(rngs, progress)
            if progress.epoch >= self.epochs and logbook:
                tqdm.write(f"{self.run_dir} has finished its {self.epochs} epochs; nothing to do (--epochs N with a "
                           "larger N trains it further)")
        else:
            progress = Progress()
        progress.metric = self.metric
        if logbook:
            with self._storage_errors():
                logbook.truncate(progress.epoch, progress.global_step)  # a new run drops a killed one's rows
                cfg.save(self.run_dir / CONFIG_FILE)
                summary = {**self.summary(), "start": self._start_line(progress)}
                atomic_write_text(self.run_dir / SUMMARY_FILE, json.dumps(summary, indent=1))
            tqdm.write(self._summary_lines(summary))
            trackers = cfg.trackers()
            if trackers:
                logbook.trackers = Trackers(trackers, self.run_dir, {**cfg.to_dict(), "run": summary},
                                            {"model": cfg.model, "task": self.task.name,
                                             "run_dir": str(self.run_dir)}, self.resuming)
            skipped = self.data.skipped
            if skipped:
                samples = get_modality(getattr(cfg, "modality", IMAGE)).samples
                tqdm.write(f"skipped {len(skipped)} unreadable {samples} (first: {skipped[0]})")
        row: dict = {}
        started, first_epoch = time.perf_counter(), progress.epoch
        self.saved_at = time.monotonic()  # the clock of save_every_minutes
        try:
            with stop_requests() as stop, self._worker_deaths():
                for epoch in range(progress.epoch, self.epochs):
                    if progress.batches_done == 0:  # a fresh epoch; a mid-epoch resume restored the RNG instead
                        seed_all(_epoch_seed(cfg.seed, epoch, self.dist.rank))
                    row = {"epoch": epoch + 1, **self._train_epoch(epoch, progress, stop),  # numbered from 1
                           **self.task.train_metrics(self.ctx)}
                    progress.epoch, progress.batches_done = epoch + 1, 0
                    for module in (self.model, *([self.ema.module] if self.ema is not None else [])):
                        broadcast_buffers(module, self.dist)  # one model on every process to evaluate, save
                    self._check_finite(progress)
                    with self._storage_errors():
                        self._evaluate(row, progress)
                        self.task.end_epoch(self.ctx, self.model, row)
                        if logbook:
                            logbook.log(row)  # before the checkpoint: a resume re-runs, re-logs an unsaved epoch
                    self._save(progress)
                    if logbook:
                        tqdm.write(self._epoch_line(row, started, first_epoch))
                    if cfg.patience and progress.best_epoch and epoch + 1 - progress.best_epoch >= cfg.patience:
                        if logbook:
                            tqdm.write(f"no better val {self.metric} in {cfg.patience} epochs (best "
                                       f"{progress.best_score:.4g} at epoch {progress.best_epoch}): stopped early")
                        break
        except BaseException:
            if logbook:
                logbook.close(ok=False)
            raise
        if logbook:
            best = ({f"best_val_{self.metric}": progress.best_score, "best_epoch": progress.best_epoch}
                    if progress.best_score is not None else {})
            logbook.close(ok=True, files=(self.run_dir / CONFIG_FILE, self.run_dir / SUMMARY_FILE), best=best)
        line = (self.task.result_line(progress.best_score, progress.best_epoch, row, self.run_dir)
                if self.metric == self.task.metric or progress.best_score is None else
                f"best val {self.metric} {progress.best_score:.4g} at epoch {progress.best_epoch}")
        return TrainResult(self.run_dir, progress.metric, progress.best_score, progress.best_epoch, row,
                           self.dist.is_main, line)

    def _evaluate(self, row: dict, progress: Progress) -> None:
        """The task's held-out metrics of the model (``val_*``) and its EMA (``ema_val_*``) into ``row``; the
        better of the two by the task's metric becomes the run's best weights (best.safetensors) when it beats
        the best so far."""
        candidates = {"model": self.model, **({"ema": self.ema.module} if self.ema is not None else {})}
        scores = {}
        for label, model in candidates.items():
            metrics = self.task.evaluate(self.ctx, model)
            row.update({f"{'val_' if label == 'model' else 'ema_val_'}{k}": v for k, v in metrics.items()})
            if self.metric is not None and metrics:
                if self.metric not in metrics:
                    raise ConfigError(f"best_metric {self.metric} is not one of this task's metrics: "
                                      f"{', '.join(metrics)}")
                scores[label] = metrics[self.metric]
        if not scores:
            return
        sign = 1 if self.higher_is_better else -1
        label = max(scores, key=lambda k: sign * scores[k])  # the model on a tie
        metadata = {**self.task.metadata(self.data), "epoch": row["epoch"], self.metric: scores[label],
                    "weights": label}
        if progress.best_score is None or sign * scores[label] > sign * progress.best_score:
            progress.best_score, progress.best_epoch = scores[label], row["epoch"]
            if self.dist.is_main:
                save_checkpoint(candidates[label], self.run_dir / BEST_FILE, metadata=metadata)
        if self.cfg.checkpoint_hist and self.dist.is_main:
            self._keep_history(candidates[label], metadata, sign * scores[label])

    def _keep_history(self, model: nn.Module, metadata: dict, score: float) -> None:
        """``checkpoint-EPOCH.safetensors`` for this epoch when it is among the ``checkpoint_hist`` best so far
        (timm's --checkpoint-hist), the others deleted; ranked by the score their files record (``score``: the
        metric signed so that higher is better), so a resumed run ranks the files it finds."""
        def signed(path: Path) -> float:
            return float(read_metadata(path)[self.metric]) * (1 if self.higher_is_better else -1)

        kept = [p for p in self.run_dir.glob(f"{HISTORY_PREFIX}*.safetensors")
                if p.name != f"{HISTORY_PREFIX}{metadata['epoch']}.safetensors"]  # a re-run epoch replaces its own
        ranked = sorted(kept, key=signed, reverse=True)
        if len(ranked) >= self.cfg.checkpoint_hist and score <= signed(ranked[self.cfg.checkpoint_hist - 1]):
            return  # (an equal score keeps the earlier epoch)
        with self._storage_errors():
            save_checkpoint(model, self.run_dir / f"{HISTORY_PREFIX}{metadata['epoch']}.safetensors",
                            metadata=metadata)
            for path in ranked[self.cfg.checkpoint_hist - 1:]:
                path.unlink()

    def close(self) -> None:
        """Release the run folder and leave the process group."""
        if self.lock is not None:
            self.lock.release()
        shutdown(self.dist)

