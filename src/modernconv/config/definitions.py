"""The run configurations: typed records whose fields are the recipe keys and ``--key`` options.

A run's options are one flat set of keys: those every run shares (``RunConfig``: model, data, optimisation,
execution, run folder) and those of its task beside them (``ClassificationOptions``, ``FCMAEOptions``).
``TrainConfig`` and ``PretrainConfig`` join the two. Each field carries its help line and its allowed range or
choices; validation, the command line's options and its ``--help`` all come from these definitions.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib.util
import os
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import yaml

from ..errors import ConfigError
from ..files import atomic_write_text
from ..optim import DECAY_TYPES, OPTIMIZERS, SCHEDULES
from ..runtime import PRECISIONS

FCMAE_MODES = ("sparse", "masked")  # the fast path and the dense reference (same results)
MODALITY_NAMES = ("image", "audio", "video", "pointcloud", "timeseries")  # modernconv.modalities has the others
SUPERVISED_TASKS = ("classification", "forecasting", "segmentation", "detection")  # modernconv.tasks (and FCMAE, PretrainConfig's)
# what classification alone reads (refused in a segmentation run unless left at the default)
CLASSIFICATION_ONLY = ("randaugment_magnitude", "auto_augment", "random_erasing", "mixup", "cutmix", "crop_pct",
                       "head_init_scale", "val_split", "balance")
# what the dense tasks learn from and how they augment it (their refusal of classification's options says so)
DENSE_AUGMENTATION = {"segmentation": "images with masks; augmentation: hflip, ratio_range, base_size",
                      "detection": "images with boxes and masks; augmentation: hflip, min_size (multi-scale), scale_jitter"}
# a task's recipe defaults, beneath the recipe file and the command line: `train --task segmentation` alone runs
# the small CPU recipe on the built-in scenes (configs/segmentation_scenes.yaml spells the same values out)
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "segmentation": dict(data="scenes", img_size=64, epochs=10, batch_size=8, lr=2e-3, weight_decay=0.05,
                         sched="poly", warmup_epochs=0.5, min_lr=0.0, hflip=0.5, label_smoothing=0.0,
                         decode_channels=128, aux_channels=64),
    "detection": dict(data="scenes", model="convnext_atto", epochs=8, batch_size=4, lr=1e-3, weight_decay=0.05,
                      sched="step", milestones=(6, 7), warmup_epochs=0.25, min_lr=0.0, hflip=0.5,
                      label_smoothing=0.0, min_size=(160,), max_size=160, fpn_channels=128,
                      detector_options={"box_batch_size_per_image": 64, "rpn_post_nms_top_n_train": 300,
                                        "rpn_post_nms_top_n_test": 300})}
# a modality's CPU recipe, beneath the recipe file and the command line: `train --modality audio` alone trains on
# its built-in set with a batch and schedule that fit it (MODALITY_RECIPES spell the same values out)
MODALITY_DEFAULTS: dict[str, dict[str, Any]] = {
    "audio": dict(model="unireplknet_a", data="spoken-digits", epochs=10, batch_size=32, lr=2e-3, warmup_epochs=1,
                  weight_decay=0.05, label_smoothing=0.1,
                  modality_options={"n_mels": 64, "frames": 64, "hop_ms": 16.0, "freq_mask": 12, "time_mask": 12}),
    "video": dict(model="unireplknet_a", data="moving-digits", epochs=10, batch_size=32, lr=2e-3, warmup_epochs=1,
                  weight_decay=0.05, label_smoothing=0.1,
                  modality_options={"frames": 4, "frame_size": 32, "sampling": "segment"}),
    "pointcloud": dict(model="unireplknet_a", data="shapes", epochs=10, batch_size=32, lr=2e-3, warmup_epochs=1,
                       weight_decay=0.05, label_smoothing=0.1,
                       modality_options={"points": 1024, "view_size": 64, "splat": 3}),
    "timeseries": dict(model="unireplknet_a", data="aeon:BasicMotions", epochs=30, batch_size=8, lr=1e-3,
                       warmup_epochs=2, weight_decay=0.05, label_smoothing=0.1,
                       modality_options={"side": 64, "embed": "learned", "znorm": True}),
}
MODALITY_RECIPES = {"audio": "configs/audio_spoken_digits.yaml", "video": "configs/video_moving_digits.yaml",
                    "pointcloud": "configs/pointcloud_shapes.yaml", "timeseries": "configs/timeseries_aeon.yaml"}
DETECTOR_KINDS = ("mask_rcnn", "cascade_mask_rcnn", "faster_rcnn", "retinanet", "fcos")  # modernconv.dense.DETECTORS
IMAGE_ONLY = ("hflip", "randaugment_magnitude", "auto_augment", "color_jitter", "random_erasing", "mixup", "cutmix",
              "layer_decay")  # options that act on images (or, for layer decay, on the image network's layers)
TRACKERS = ("mlflow", "wandb")  # experiment trackers a run can report to (modernconv.engine.trackers)
MAX_WORKERS = 256
RESUME_MODES = ("false", "true", "auto")  # start a run; continue one; continue one when there is one, else start

# range name -> (test, how to say it)
RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    ">=1": (lambda v: v >= 1, "at least 1"),
    ">=0": (lambda v: v >= 0, "at least 0"),
    ">0": (lambda v: v > 0, "positive"),
    "[0,1]": (lambda v: 0 <= v <= 1, "between 0 and 1"),
    "[0,1)": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "(0,1)": (lambda v: 0 < v < 1, "between 0 and 1 (exclusive)"),
    "(0,1]": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "workers": (lambda v: 0 <= v <= MAX_WORKERS, f"between 0 and {MAX_WORKERS}"),
    "magnitude": (lambda v: 0 <= v <= 10, "between 0 and 10 (timm's scale)"),
}


def option(default: Any, help: str, *, check: str | None = None, choices: typing.Iterable[str] | None = None,
           factory: Callable[[], Any] | None = None) -> Any:
    """A config field: its default, one line of help, and an allowed range (a key of ``RANGES``, applied to
    each item of a tuple) or a set of choices."""
    metadata = {"help": help, "check": check, "choices": tuple(choices) if choices is not None else None}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class RunConfig:
    """What every run has. Field names are the YAML keys and the ``--key`` options."""

    TASK: ClassVar[str] = "a run"

    # model
    model: str = option("convnext_atto", "registered model name (`modernconv models` lists them)")
    model_kwargs: dict = option(None, "family options as a YAML mapping, e.g. {kernel_size: 5}", factory=dict)
    drop_path_rate: float = option(0.0, "stochastic depth rate of the last block (rising linearly from 0)",
                                   check="[0,1]")
    layer_scale_init_value: float | None = option(None, "layer scale initial value (none = the model's default)",
                                                  check=">=0")
    in_chans: int = option(3, "input channels (the stem adapts; images are converted)", check=">=1")
    init: str | None = option(None, "checkpoint to start from (any format load_checkpoint reads), or a released "
                                    "weights name from the local cache (e.g. convnext_atto.d2_in1k)")
    sync_bn: bool = option(True, "BatchNorm -> SyncBatchNorm when training on several CUDA processes")
    # data
    data: str = option("digits", "digits, synthetic or PATH (train/ and val/ class folders); other modalities: "
                                 "their built-in set (spoken-digits, moving-digits, shapes), aeon:NAME or a folder; "
                                 "segmentation: scenes or an ADE20K, VOC or images + masks folder")
    img_size: int | None = option(32, "training and evaluation image side (none = the model's data config)",
                                  check=">=1")
    synthetic_samples: int = option(512, "images in the synthetic data set", check=">=1")
    synthetic_classes: int = option(10, "classes in the synthetic data set", check=">=1")
    skip_bad_images: bool = option(False, "skip unreadable images (counted) instead of stopping")
    workers: int = option(0, "data-loading processes per training process", check="workers")
    scale: tuple[float, float] = option((0.6, 1.0), "RandomResizedCrop area range: min max", check="(0,1]")
    hflip: float = option(0.0, "horizontal flip probability", check="[0,1]")
    # optimisation
    epochs: int = option(20, "training epochs", check=">=1")
    iters: int | None = option(None, "a budget of optimizer steps instead of epochs, as the dense papers count "
                                     "them (160k): the epochs follow, the last one stops at the budget",
                               check=">=1")
    batch_size: int = option(64, "batch size per process", check=">=1")
    accum_steps: int = option(1, "batches accumulated into one optimizer step", check=">=1")
    lr: float = option(2e-3, "peak learning rate (scaled by the global batch when lr_base_batch is set)",
                       check=">=0")
    lr_base_batch: int | None = option(None, "scale lr by global batch / this (none = no scaling)", check=">=1")
    min_lr: float = option(1e-6, "learning rate at the end of the cosine schedule", check=">=0")
    warmup_epochs: float = option(1.0, "linear warm-up epochs (onecycle: epochs to the peak)", check=">=0")
    sched: str = option("cosine", "learning-rate schedule, stepped per optimizer step (step: x0.1 after each "
                                  "third, ResNet's; poly: the dense tasks' linear decay)", choices=SCHEDULES)
    milestones: tuple[float, ...] | None = option(None, "step schedule: epochs after which lr drops x0.1 (none = "
                                                        "each third; mmdetection's 3x: 27 33)", check=">0")
    opt: str = option("adamw", "optimizer: AdamW (the papers') or SGD with momentum (ResNet's)", choices=OPTIMIZERS)
    momentum: float = option(0.9, "SGD momentum", check="[0,1)")
    weight_decay: float = option(0.05, "weight decay (none on biases, norms, layer scale, GRN)", check=">=0")
    betas: tuple[float, float] = option((0.9, 0.999), "AdamW betas: beta1 beta2", check="[0,1)")
    eps: float = option(1e-8, "AdamW epsilon", check=">0")
    clip_grad: float | None = option(None, "clip the gradient norm to this (none = no clipping)", check=">0")
    # execution
    precision: str = option("fp32", "fp32, bf16 autocast, or fp16 autocast with a gradient scaler",
                            choices=PRECISIONS)
    channels_last: bool = option(False, "channels-last memory format")
    grad_checkpointing: bool = option(False, "recompute activations block by block in backward (less memory)")
    compile: bool = option(False, "torch.compile the network")
    device: str | None = option(None, "cpu, cuda or cuda:N (none = cuda when available)")
    deterministic: bool = option(False, "torch.use_deterministic_algorithms")
    # run
    seed: int = option(0, "random seed (data order, augmentation, initialisation)", check=">=0")
    output: str | None = option(None, "run folder (none = a new folder under runs/)")
    resume: str = option("false", "true (--resume alone): continue the run in --output; auto: continue it when the "
                                  "folder holds one, else start it there (one command for requeued jobs and "
                                  "elastic restarts)", choices=RESUME_MODES)
    best_metric: str | None = option(None, "the held-out metric that decides the best weights and --patience (none "
                                           "= the task's: top1, mse, miou, bbox_ap; e.g. segm_ap, loss)")
    patience: int | None = option(None, "stop when the best metric has not improved for N epochs (none = never)",
                                  check=">=1")
    checkpoint_hist: int = option(0, "also keep the weights of the N best epochs as checkpoint-EPOCH.safetensors "
                                     "(timm's --checkpoint-hist; 0 = best.safetensors alone)", check=">=0")
    save_every_steps: int = option(0, "also checkpoint every N optimizer steps (0 = at epoch ends only)", check=">=0")
    save_every_minutes: float = option(0.0, "also checkpoint when N minutes have passed since the last one (long "
                                            "epochs under wall-clock limits; 0 = off)", check=">=0")
    log_every_steps: int = option(10, "log loss, lr, images/s (and grad norm) every N optimizer steps",
                                  check=">=1")
    progress: bool = option(True, "progress: a bar on a terminal, else a plain line every log_every_steps steps")
    log_to: str | None = option(None, "also report to experiment trackers through their libraries: mlflow, wandb "
                                      "or mlflow,wandb (their own settings: MLFLOW_TRACKING_URI, wandb login or "
                                      "WANDB_MODE=offline)")

    def init_file(self) -> str | None:
        """``init`` as a file to load: a released weights name (``convnext_atto.d2_in1k``) is resolved through the
        local weights cache, as ``create_model(name, pretrained=True)`` does (one line when it is not there);
        anything else is returned as given."""
        if self.init is None or os.path.exists(self.init) or os.sep in self.init:
            return self.init
        from ..models.released import find_released, locate, split_tag

        name, tag = split_tag(self.init)
        try:
            release = find_released(name, tag) if tag is not None else None
        except ConfigError:  # no release of that name: a missing file, which loading says
            return self.init
        return self.init if release is None else str(locate(release))

    def trackers(self) -> tuple[str, ...]:
        """``log_to`` (``"mlflow,wandb"``) as tracker names, each known and installed (else one line)."""
        names = tuple(dict.fromkeys(n.strip() for n in (self.log_to or "").split(",") if n.strip()))
        for name in names:
            if name not in TRACKERS:
                raise ConfigError(f"log_to: unknown tracker {name!r} (one or more of {', '.join(TRACKERS)}, "
                                  "comma-separated)")
            if importlib.util.find_spec(name) is None:
                raise ConfigError(f"log_to {name} needs the {name} package: pip install {name}")
        return names

    def validate(self) -> "RunConfig":
        """Raise ConfigError with a clear message for impossible values or combinations."""
        for f in dataclasses.fields(self):
            _check_field(f, getattr(self, f.name))
        self.trackers()
        if self.scale[0] > self.scale[1]:
            raise ConfigError(f"scale must be two numbers 0 < min <= max <= 1, got {list(self.scale)}")
        if self.warmup_epochs > self.epochs:
            raise ConfigError(f"warmup_epochs ({self.warmup_epochs}) exceeds epochs ({self.epochs})")
        if "." in self.model:
            name = self.model.partition(".")[0]
            raise ConfigError(f"model {self.model} names released weights: give --model {name} --init {self.model} "
                              "(a run builds the network from its name and starts from the weights)")
        if self.milestones is not None and (self.sched != "step" or list(self.milestones) != sorted(self.milestones)
                                            or self.milestones[-1] >= self.epochs):
            raise ConfigError(f"milestones {list(self.milestones)} need sched step and increasing epochs below "
                              f"epochs ({self.epochs}); give --milestones for this length, or none")
        if 0 < self.lr < self.min_lr:  # (lr 0 freezes the weights: the schedule then does not matter)
            raise ConfigError(f"min_lr ({self.min_lr}) is above lr ({self.lr})")
        self.check_task()
        return self

    def check_task(self) -> None:
        """Checks across the task's own options (none by default)."""

    def task_name(self) -> str:
        """The task this config runs (a key of ``modernconv.tasks.TASKS``)."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def save(self, path: str | os.PathLike) -> None:
        """Write the resolved configuration as YAML (readable back with ``load_config``), atomically."""
        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))


@dataclass
class ClassificationOptions:
    """What a supervised run adds: its task, augmentation, mixing, label smoothing, the head, layer decay, EMA."""

    task: str | None = option(None, "what is learned (none = forecasting when modality_options has a horizon, "
                                    "else classification)", choices=SUPERVISED_TASKS)
    head_init_scale: float = option(1.0, "scale of the new classifier's initial weights (fine-tuning: 0.001)",
                                    check=">0")
    randaugment_magnitude: int | None = option(None, "RandAugment magnitude 0..10 (none = off)",
                                               check="magnitude")
    randaugment_ops: int = option(2, "RandAugment operations per image", check=">=1")
    auto_augment: str | None = option(None, "timm's RandAugment policy instead, e.g. rand-m9-mstd0.5-inc1 (the "
                                            "papers' exact recipe; needs timm installed)")
    color_jitter: float = option(0.0, "colour jitter strength (0 = off)", check=">=0")
    random_erasing: float = option(0.0, "random erasing probability", check="[0,1]")
    mixup: float = option(0.0, "MixUp alpha (0 = off)", check=">=0")
    cutmix: float = option(0.0, "CutMix alpha (0 = off)", check=">=0")
    mix_prob: float = option(1.0, "probability of mixing a batch", check="[0,1]")
    mix_switch_prob: float = option(0.5, "probability of CutMix when both are on", check="[0,1]")
    label_smoothing: float = option(0.1, "label smoothing", check="[0,1)")
    crop_pct: float | None = option(None, "evaluation centre-crop fraction (none = the model's)", check="(0,1]")
    balance: bool = option(False, "weight each class's loss by samples / (classes x its samples), sklearn's "
                                  "\"balanced\" weights, for imbalanced data")
    val_split: float | None = option(None, "hold out this fraction of each class of one image folder of class "
                                           "folders (no train/ and val/), chosen by --seed and recorded in the "
                                           "checkpoints for eval (none = the data's own split)", check="(0,1)")
    layer_decay: float | None = option(None, "layer-wise lr decay (none = off)", check="(0,1]")
    ema_decay: float | None = option(None, "EMA of the weights, evaluated alongside (e.g. 0.9999)", check="(0,1)")
    modality: str = option("image", "what the samples are; the others go through their adapter to C' x H x W "
                                    "(UniRepLKNet's universal perception)", choices=MODALITY_NAMES)
    modality_options: dict = option(None, "the modality's options as a YAML mapping, e.g. {frames: 8, "
                                          "frame_size: 64} (see README)", factory=dict)


@dataclass
class FCMAEOptions:
    """What FCMAE pre-training adds: the mask, the decoder, the loss and the execution mode."""

    mask_ratio: float = option(0.6, "fraction of patches masked", check="(0,1)")
    patch_size: int = option(32, "mask patch side: the encoder's total stride", check=">=1")
    decoder_dim: int = option(256, "decoder width (the paper: 512)", check=">=1")
    decoder_depth: int = option(1, "decoder ConvNeXt V2 blocks", check=">=0")
    norm_pix_loss: bool = option(True, "regress per-patch normalised pixels")
    mode: str = option("sparse", "sparse (fast) or masked (dense reference; same results)", choices=FCMAE_MODES)
    preview_images: int = option(8, "images in the per-epoch reconstruction grid (0 = none)", check=">=0")


@dataclass
class DenseOptions:
    """What the dense tasks (segmentation, detection) share: the authors' lr decay over the backbone."""

    decay_type: str = option("stage_wise", "the authors' dense lr decay, with layer_decay as its rate",
                             choices=DECAY_TYPES)
    num_layers: int | None = option(None, "their num_layers (none = 3 + ceil(depth of stage 2 / 3): 6 for T, 12 "
                                          "for the deeper ones)", check=">=1")


@dataclass
class SegmentationOptions(DenseOptions):
    """What a segmentation run adds: UperNet's widths, the auxiliary loss and the training pipeline's random
    resize and crop (img_size is the crop's side)."""

    decode_channels: int = option(512, "UperNet decode-head width (the papers: 512)", check=">=1")
    aux_channels: int = option(256, "auxiliary FCN head width (the papers: 256; 0 = no auxiliary head)", check=">=0")
    aux_weight: float = option(0.4, "auxiliary loss weight", check=">=0")
    base_size: tuple[int, int] | None = option(None, "resize images to fit long x short before the random ratio "
                                                     "(ADE20K: 2048 512; none = their own size)", check=">=1")
    ratio_range: tuple[float, float] = option((0.5, 2.0), "random resize ratio: min max", check=">0")
    cat_max_ratio: float = option(0.75, "crop again (up to 10 times) while one class covers more than this",
                                  check="(0,1]")


@dataclass
class DetectionOptions:
    """What a detection run adds: the detector, the sizes its images are resized to (several: multi-scale
    training), images without objects, and torchvision's own options of the detector."""

    detector: str = option("mask_rcnn", "the detector over the backbone and its FPN", choices=DETECTOR_KINDS)
    min_size: tuple[int, ...] = option((800,), "short side of the resized images; several: one at random per "
                                               "training image (multi-scale, e.g. 480 512 ... 800)", check=">=1")
    max_size: int = option(1333, "longest side of the resized images", check=">=1")
    fpn_channels: int = option(256, "the FPN's width, also the mask head's (the papers: 256)", check=">=1")
    scale_jitter: tuple[float, float] | None = option(None, "large-scale jitter: resize to the largest min_size "
                                                             "square times a random factor in min max (e.g. 0.1 "
                                                             "2.0), crop or pad to it (none = off)", check=">0")
    keep_empty: bool = option(False, "also train on images without objects (mmdetection drops them)")
    detector_options: dict = option(None, "torchvision's options of the detector as a YAML mapping, e.g. "
                                          "{box_batch_size_per_image: 128}", factory=dict)


@dataclass
class TrainConfig(DetectionOptions, SegmentationOptions, ClassificationOptions, RunConfig):
    """A classification run. The defaults are the small CPU recipe for the built-in digits set
    (configs/digits_convnext.yaml); the papers' recipes in configs/ set every value they depend on."""

    TASK: ClassVar[str] = "training"

    def task_name(self) -> str:
        """The ``task`` given; unset (as in runs saved before it existed), forecasting when the time-series
        options name a horizon, else classification."""
        if self.task is not None:
            return self.task
        return "forecasting" if self._has_horizon() else "classification"

    def _has_horizon(self) -> bool:
        return self.modality == "timeseries" and bool(self.modality_options.get("horizon"))

    def check_task(self) -> None:
        if self.task == "forecasting" and not self._has_horizon():
            raise ConfigError("task forecasting needs modality timeseries and a horizon in modality_options, e.g. "
                              "--modality timeseries --modality-options '{horizon: 24}'")
        from ..modalities import get_modality

        modality = get_modality(self.modality)
        modality.make_options(self.modality_options)
        defaults = TrainConfig()
        changed = [k for k in IMAGE_ONLY if getattr(self, k) != getattr(defaults, k)]
        if changed and not modality.takes_transforms:
            raise ConfigError(f"{', '.join(changed)} act on images; a {self.modality} run augments in its "
                              "adapter (see modality_options)")
        if self.val_split is not None and "val_split" not in {f.name for f in dataclasses.fields(modality.options)}:
            raise ConfigError(f"val_split divides image folders; a {self.modality} folder without val/ holds out a "
                              "fixed 20% of each class")
        if self.task in DENSE_AUGMENTATION:
            changed = [k for k in CLASSIFICATION_ONLY if getattr(self, k) != getattr(defaults, k)]
            if changed or not modality.takes_transforms:
                raise ConfigError(f"{', '.join(changed) or 'modality ' + self.modality} does not apply to "
                                  f"{self.task} ({DENSE_AUGMENTATION[self.task]})")
            if self.ratio_range[0] > self.ratio_range[1]:
                raise ConfigError(f"ratio_range must be min max with min <= max, got {list(self.ratio_range)}")
            if self.scale_jitter is not None and self.scale_jitter[0] > self.scale_jitter[1]:
                raise ConfigError(f"scale_jitter must be min max with min <= max, got {list(self.scale_jitter)}")
        if self.auto_augment is not None:
            if self.randaugment_magnitude is not None:
                raise ConfigError("give auto_augment (timm's policy) or randaugment_magnitude, not both")
            if not self.auto_augment.startswith("rand-"):
                raise ConfigError(f"auto_augment {self.auto_augment!r}: give a timm RandAugment policy such as "
                                  "rand-m9-mstd0.5-inc1")


@dataclass
class PretrainConfig(FCMAEOptions, RunConfig):
    """FCMAE pre-training: AdamW (0.9, 0.95), lr scaled by batch / 256, warm-up + cosine, RandomResizedCrop and
    flips only. The defaults are a small CPU recipe for the digits (configs/fcmae_digits.yaml)."""

    TASK: ClassVar[str] = "pre-training"

    def task_name(self) -> str:
        return "fcmae"

    model: str = option("convnextv2_atto", "ConvNeXt encoder to pre-train (V2, or V1 for the collapse ablation)")
    img_size: int | None = option(128, "image side: a multiple of patch_size (128 = a 4x4 patch grid)",
                                  check=">=1")
    scale: tuple[float, float] = option((0.5, 1.0), "RandomResizedCrop area range: min max", check="(0,1]")
    warmup_epochs: float = option(2.0, "linear warm-up epochs", check=">=0")
    lr: float = option(1.5e-3, "peak learning rate, scaled by global batch / lr_base_batch", check=">=0")
    lr_base_batch: int | None = option(256, "scale lr by global batch / this (none = no scaling)", check=">=1")
    min_lr: float = option(0.0, "learning rate at the end of the cosine schedule", check=">=0")
    betas: tuple[float, float] = option((0.9, 0.95), "AdamW betas: beta1 beta2", check="[0,1)")

    def check_task(self) -> None:
        if self.img_size is not None and self.img_size % self.patch_size:
            raise ConfigError(f"img_size {self.img_size} must be a multiple of patch_size {self.patch_size}")


CONFIG_KINDS: tuple[type[RunConfig], ...] = (TrainConfig, PretrainConfig)
# what a resumed run may set differently from its saved config.yaml: where and how it runs, not what it learns
RESUME_MAY_CHANGE = frozenset({"resume", "output", "epochs", "iters", "device", "workers", "compile", "progress",
                               "log_every_steps", "save_every_steps", "save_every_minutes", "log_to"})


def resume_changes(saved: RunConfig, given: RunConfig) -> list[str]:
    """The settings ``given`` changes from a run's ``saved`` config that a resumed run cannot change, as
    "name (saved X, now Y)"."""
    return [f"{f.name} (saved {getattr(saved, f.name)!r}, now {getattr(given, f.name)!r})"
            for f in dataclasses.fields(given)
            if f.name not in RESUME_MAY_CHANGE and getattr(saved, f.name) != getattr(given, f.name)]


def _check_field(f: dataclasses.Field, value: Any) -> None:
    if value is None:
        return
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"{f.name} must be one of {', '.join(choices)}, got {value!r}")
    check = f.metadata.get("check")
    if check:
        test, wording = RANGES[check]
        if not all(test(v) for v in (value if isinstance(value, tuple) else (value,))):
            shown = list(value) if isinstance(value, tuple) else value
            raise ConfigError(f"{f.name} must be {wording}, got {shown}")


@functools.cache
def field_types(kind: type) -> dict[str, tuple[dataclasses.Field, Any]]:
    """Field name -> (field, resolved type) of config class ``kind``."""
    hints = typing.get_type_hints(kind)
    return {f.name: (f, hints[f.name]) for f in dataclasses.fields(kind)}
