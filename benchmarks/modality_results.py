"""One ConvNet for every modality: UniRepLKNet-A against ConvNeXt V2-atto (similar size: 4.4M vs 3.4M
parameters), UniRepLKNet-A with its 13x13 kernels replaced by 11x11 and 7x7 (the paper's kernel-size comparison),
and a simple non-ConvNet baseline a practitioner would try first, on each modality's built-in offline set:

- audio, spoken-digits (held-out speakers): baseline a small 4-layer CNN on the same log-mels;
- video, moving-digits: baseline logistic regression on the frames' pixels;
- pointcloud, shapes: baseline logistic regression on the D2 shape distribution (histogram of point distances);
- timeseries, aeon:BasicMotions and aeon:JapaneseVowels: baseline ROCKET (aeon);
- forecast, the seasonal series (48 steps -> 12): baselines persistence and a linear model on the window.

Each ConvNet trains with configs/<modality recipe> for --epochs, seeds 0, 1, 2 (finished runs in --out are
reused); prints one markdown table per task, mean +- std over the seeds (accuracy in %, forecasting MSE).

python benchmarks/modality_results.py [--out runs/modalities] [--epochs 10] [--tasks audio video ...]
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from erf_compare import unireplknet_kernels
from modernconv.config import load_config
from modernconv.tasks import train
from modernconv.engine.state import LAST_FILE
from modernconv.modalities import get_modality
from modernconv.modalities.forecast import forecast_splits

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SEEDS = (0, 1, 2)
# task -> (recipe, overrides, fraction of --epochs: the forecasting set has ten times as many windows; one epoch)
TASKS: dict[str, tuple[str, dict, float]] = {
    "audio": ("audio_spoken_digits.yaml", {}, 1.0),
    "video": ("video_moving_digits.yaml", {}, 1.0),
    "pointcloud": ("pointcloud_shapes.yaml", {}, 1.0),
    "timeseries-BasicMotions": ("timeseries_aeon.yaml", {}, 3.0),
    "timeseries-JapaneseVowels": ("timeseries_aeon.yaml", {"data": "aeon:JapaneseVowels"}, 1.0),
    "forecast": ("timeseries_aeon.yaml", {"data": "seasonal", "batch_size": 32, "warmup_epochs": 0.1,
                                          "modality_options": {"side": 64, "length": 48, "horizon": 12}}, 0.17),
}
# label -> (run folder, model, model_kwargs)
MODELS = {"UniRepLKNet-A (13x13)": ("unireplknet_a_k13", "unireplknet_a", {}),
          "UniRepLKNet-A (11x11)": ("unireplknet_a_k11", "unireplknet_a", {"kernel_sizes": unireplknet_kernels(11)}),
          "UniRepLKNet-A (7x7)": ("unireplknet_a_k7", "unireplknet_a", {"kernel_sizes": unireplknet_kernels(7)}),
          "ConvNeXt V2-atto": ("convnextv2_atto", "convnextv2_atto", {})}


def run_convnet(task: str, model: str, model_kwargs: dict, seed: int, epochs: int, folder: Path) -> float:
    """Held-out top-1 (%) or, for forecasting, MSE of one training run (resumed if unfinished)."""
    recipe, overrides, scale = TASKS[task]
    cfg = load_config(CONFIGS / recipe, {**overrides, "model": model, "model_kwargs": model_kwargs, "seed": seed,
                                         "epochs": max(1, round(epochs * scale)), "progress": False,
                                         "output": str(folder), "resume": (folder / LAST_FILE).exists()})
    result = train(cfg)
    return result.best_score


def arrays(task: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A built-in set's raw samples (flattened per sample) and labels, for the scikit-learn baselines."""
    recipe, overrides, _ = TASKS[task]
    cfg = load_config(CONFIGS / recipe, overrides)
    spec = get_modality(cfg.modality)
    opts = spec.make_options(cfg.modality_options)
    data, _, _ = get_modality(cfg.modality).split(cfg.data, "train", opts)
    if split != "train":
        data, _, _ = get_modality(cfg.modality).split(cfg.data, "val", opts)
    xs, ys = zip(*(data[i] for i in range(len(data))))
    return torch.stack(xs).numpy(), np.array(ys)


def logistic(features: Callable[[np.ndarray], np.ndarray], task: str) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    (x, y), (xv, yv) = arrays(task, "train"), arrays(task, "val")
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(features(x), y)
    return 100 * clf.score(features(xv), yv)


def d2_histogram(points: np.ndarray, bins: int = 64) -> np.ndarray:
    """Osada et al.'s D2 shape distribution: the histogram of distances between random point pairs."""
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, points.shape[1], (2, 2000))
    dist = np.linalg.norm(points[:, i] - points[:, j], axis=-1)
    return np.stack([np.histogram(d, bins=bins, range=(0, 2), density=True)[0] for d in dist])


def rocket(task: str) -> float:
    """ROCKET on the windows the ConvNets see (standardised per variable, padded to the longest series)."""
    from aeon.classification.convolution_based import RocketClassifier

    from modernconv.modalities.timeseries import TimeSeriesOptions, series_splits

    train_set, val_set, _, _ = series_splits("aeon:" + task.split("-")[1], TimeSeriesOptions())
    (x, y), (xv, yv) = ((np.stack([w.T.numpy() for w in s.windows]), np.array(s.labels)) for s in (train_set, val_set))
    return 100 * RocketClassifier(n_kernels=10000, random_state=0).fit(x, y).score(xv, yv)


def small_cnn_on_log_mels(seed: int, epochs: int) -> float:
    """A 4-layer CNN (conv-BN-ReLU-pool; 32-64-128-128) on the recipe's log-mels with SpecAugment, AdamW, cosine."""
    from modernconv.modalities import create_modality_model

    recipe, _, _ = TASKS["audio"]
    cfg = load_config(CONFIGS / recipe, {"seed": seed})
    torch.manual_seed(seed)
    adapter = create_modality_model("convnext_atto", "audio", cfg.modality_options, num_classes=10).adapter
    layers, prev = [], 1
    for width in (32, 64, 128, 128):
        layers += [torch.nn.Conv2d(prev, width, 3, padding=1), torch.nn.BatchNorm2d(width), torch.nn.ReLU(),
                   torch.nn.MaxPool2d(2)]
        prev = width
    net = torch.nn.Sequential(adapter, *layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(prev, 10))
    opts = get_modality("audio").make_options(cfg.modality_options)
    train_set, _, _ = get_modality("audio").split(cfg.data, "train", opts)
    val_set, _, _ = get_modality("audio").split(cfg.data, "val", opts)
    loader = torch.utils.data.DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                                         generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, cfg.lr, total_steps=epochs * len(loader))
    for _ in range(epochs):
        net.train()
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(net(x), y, label_smoothing=cfg.label_smoothing)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    net.eval()
    with torch.no_grad():
        val = torch.utils.data.DataLoader(val_set, batch_size=64)
        return 100 * float(np.mean(np.concatenate([(net(x).argmax(1) == y).numpy() for x, y in val])))


def forecast_baselines() -> dict[str, float]:
    """Held-out MSE of persistence (the last value repeated) and of ridge regression on the flattened window."""
    from sklearn.linear_model import Ridge

    from modernconv.modalities.timeseries import TimeSeriesOptions

    train_set, val_set, _, _, _ = forecast_splits("seasonal", TimeSeriesOptions(length=48, horizon=12))
    (x, y), (xv, yv) = ([torch.stack(t).numpy() for t in zip(*(s[i] for i in range(len(s))))]
                        for s in (train_set, val_set))
    persistence = float(((xv[:, -1:, :] - yv) ** 2).mean())
    ridge = Ridge(alpha=1.0).fit(x.reshape(len(x), -1), y.reshape(len(y), -1))
    linear = float(((ridge.predict(xv.reshape(len(xv), -1)) - yv.reshape(len(yv), -1)) ** 2).mean())
    return {"persistence (last value)": persistence, "linear model on the window (ridge)": linear}


def baselines(task: str, epochs: int) -> dict[str, list[float]]:
    if task == "audio":
        return {"small CNN on the log-mels": [small_cnn_on_log_mels(s, epochs) for s in SEEDS]}
    if task == "video":
        return {"logistic regression on pixels": [logistic(lambda v: v.reshape(len(v), -1), task)]}
    if task == "pointcloud":
        return {"logistic regression on D2 histograms": [logistic(d2_histogram, task)]}
    if task == "forecast":
        return {name: [value] for name, value in forecast_baselines().items()}
    return {"ROCKET (aeon, 10k kernels)": [rocket(task)]}


def show(task: str, rows: dict[str, list[float]]) -> None:
    unit = "held-out MSE (standardised)" if task == "forecast" else "held-out top-1 (%)"
    print(f"\n{task}\n\n| model | {unit} | runs |\n|---|---|---|")
    for name, values in rows.items():
        spread = f" +- {statistics.stdev(values):.{4 if task == 'forecast' else 2}f}" if len(values) > 1 else ""
        print(f"| {name} | {statistics.mean(values):.{4 if task == 'forecast' else 2}f}{spread} | {len(values)} |",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/modalities")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.epochs} epochs", flush=True)
    for task in args.tasks:
        rows = {}
        for label in args.models:
            folder, model, kwargs = MODELS[label]
            rows[label] = [run_convnet(task, model, kwargs, s, args.epochs, Path(args.out) / task / folder / f"seed{s}")
                           for s in SEEDS]
            print(f"{task} {label}: {rows[label]}", flush=True)
        rows.update(baselines(task, args.epochs))
        show(task, rows)


if __name__ == "__main__":
    main()
