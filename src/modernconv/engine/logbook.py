"""A run's written record: metrics as JSONL and CSV (TensorBoard when installed) and a PNG of the curves."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

try:
    from torch.utils.tensorboard import SummaryWriter
except ImportError:  # tensorboard is optional
    SummaryWriter = None


class Logbook:
    """Appends one row of metrics per epoch and redraws the curves."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.jsonl = run_dir / "metrics.jsonl"
        self.csv = run_dir / "metrics.csv"
        self.tensorboard = SummaryWriter(str(run_dir / "tensorboard")) if SummaryWriter else None

    def rows(self) -> list[dict[str, Any]]:
        if not self.jsonl.exists():
            return []
        return [json.loads(line) for line in self.jsonl.read_text().splitlines() if line.strip()]

    def truncate(self, epochs_done: int) -> None:
        """Drop rows past ``epochs_done`` (a resumed run re-logs the epochs it repeats)."""
        kept = [r for r in self.rows() if r["epoch"] < epochs_done]
        self.jsonl.write_text("".join(json.dumps(r) + "\n" for r in kept))
        self._write_csv(kept)

    def log(self, row: dict[str, Any]) -> None:
        with self.jsonl.open("a") as f:
            f.write(json.dumps(row) + "\n")
        rows = self.rows()
        self._write_csv(rows)
        if self.tensorboard is not None:
            for key, value in row.items():
                if isinstance(value, (int, float)) and key != "epoch":
                    self.tensorboard.add_scalar(key, value, row["epoch"])
            self.tensorboard.flush()
        plot_curves(rows, self.run_dir / "curves.png")

    def _write_csv(self, rows: list[dict[str, Any]]) -> None:
        keys = list(dict.fromkeys(k for r in rows for k in r))
        with self.csv.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)


PANELS = (("loss", "loss", (("train_loss", "train"), ("val_loss", "val"), ("ema_val_loss", "val (EMA)"))),
          ("accuracy", "accuracy (%)", (("val_top1", "val top-1"), ("ema_val_top1", "val top-1 (EMA)"),
                                        ("val_top5", "val top-5"))))


def plot_curves(rows: list[dict[str, Any]], path: Path) -> None:
    """Loss (train and val) and accuracy (val, EMA if present) against epoch; a panel with no metric in the
    rows (accuracy in a pre-training run) is left out."""
    if not rows:
        return
    epochs = [r["epoch"] + 1 for r in rows]
    panels = [(title, ylabel, [(k, label) for k, label in curves if k in rows[0]]) for title, ylabel, curves in PANELS]
    panels = [panel for panel in panels if panel[2]]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (title, ylabel, curves) in zip(axes[0], panels):
        for key, label in curves:
            ax.plot(epochs, [r[key] for r in rows], label=label)
        ax.set(xlabel="epoch", ylabel=ylabel, title=title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion(confusion, class_names: list[str], path: Path) -> None:
    """The confusion matrix as a PNG heat map (rows: true class, columns: predicted)."""
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(max(4, 0.5 * n + 2), max(4, 0.5 * n + 2)))
    ax.imshow(confusion.numpy(), cmap="Blues")
    if n <= 50:
        ax.set_xticks(range(n), class_names, rotation=90)
        ax.set_yticks(range(n), class_names)
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
