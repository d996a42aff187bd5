"""Every figure modernconv writes, drawn on Figure objects (no pyplot): importing modernconv never switches
matplotlib's backend, so notebooks keep their inline plots."""
from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, Sequence

import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .files import atomic_write

# curves of a run's metrics: (panel title, y label, ((metric key, legend label), ...)); {k} stands for any k but 1
# (the top-k a run measures: 5, or its class count when smaller)
CURVE_PANELS = (("loss", "loss", (("train_loss", "train (with label smoothing / mixing)"), ("val_loss", "val (plain)"),
                                   ("ema_val_loss", "val, EMA weights (plain)"))),
                ("accuracy", "accuracy (%)", (("train_top1", "train top-1 (augmented)"), ("val_top1", "val top-1"),
                                              ("ema_val_top1", "val top-1 (EMA)"),
                                              ("val_top{k}", "val top-{k}"))),
                ("forecast error", "MAE (standardised)", (("val_mae", "val MAE"), ("ema_val_mae", "val MAE (EMA)"))),
                ("learning rate", "lr", (("lr", "lr at the epoch's end"),)))
RECONSTRUCTION_ROWS = ("original", "masked input", "reconstruction")


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Write ``fig`` as a PNG atomically."""
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight"))


def plot_curves(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> None:
    """``curves_figure(rows)`` as a PNG (nothing for no rows)."""
    if rows:
        save_figure(curves_figure(rows), path)


def curves_figure(rows: Sequence[dict[str, Any]]) -> Figure:
    """Loss (train and val), accuracy (train, val, EMA if present), forecast error and the learning rate against
    epoch (``CURVE_PANELS``); a panel with no metric in the rows (accuracy in a pre-training run) is left out."""
    epochs = [r["epoch"] for r in rows]
    panels = [(title, ylabel, [pair for key, label in curves for pair in _present(key, label, rows[0])])
              for title, ylabel, curves in CURVE_PANELS]
    panels = [panel for panel in panels if panel[2]]
    fig = Figure(figsize=(5 * len(panels), 4))
    for ax, (title, ylabel, curves) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        for key, label in curves:
            # (a row may lack a curve: an epoch resumed after its last step has no training batches to count)
            ax.plot(epochs, [r.get(key, math.nan) for r in rows], marker="o", markersize=3, label=label)
        ax.set(xlabel="epoch", ylabel=ylabel, title=title)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def _present(key: str, label: str, row: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, label) of the curves ``row`` holds for a CURVE_PANELS entry, its {k} filled in."""
    if "{k}" not in key:
        return [(key, label)] if key in row else []
    pattern = re.compile(re.escape(key).replace(re.escape("{k}"), r"(\d+)"))
    found = [(k, m[1]) for k in row if (m := pattern.fullmatch(k)) and m[1] != "1"]
    return [(k, label.replace("{k}", n)) for k, n in found]


def plot_confusion(confusion: torch.Tensor, class_names: Sequence[str], path: str | os.PathLike) -> None:
    """``confusion_figure`` as a PNG."""
    save_figure(confusion_figure(confusion, class_names), path)


def confusion_figure(confusion: torch.Tensor, class_names: Sequence[str]) -> Figure:
    """The confusion matrix: counts, and each true class's row normalised to fractions, with colour bars (rows:
    true class, columns: predicted; values written in the cells up to 30 classes)."""
    from sklearn.metrics import ConfusionMatrixDisplay  # here: it takes seconds to import, and only eval plots it

    n = len(class_names)
    counts = confusion.numpy()
    rows = counts / counts.sum(axis=1, keepdims=True).clip(min=1)
    side = max(4.0, 0.45 * n + 2)
    fig = Figure(figsize=(2 * side + 1, side))
    labels = list(class_names) if n <= 50 else None
    for ax, values, title, fmt in zip(fig.subplots(1, 2), (counts, rows), ("counts", "normalised over each true class"),
                                     ("d", ".2f")):
        display = ConfusionMatrixDisplay(values, display_labels=labels)
        display.plot(ax=ax, include_values=n <= 30, values_format=fmt, cmap="Blues", colorbar=True,
                     xticks_rotation="vertical")
        ax.set(title=title, xlabel="predicted", ylabel="true")
    fig.tight_layout()
    return fig


def plot_collapse(curves: Sequence[Any], path: str | os.PathLike, title: str = "feature collapse") -> Path:
    """Collapse score against normalised depth, one line per ``CollapseCurve``, as a PNG."""
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for curve in curves:
        ax.plot(curve.depth, curve.score, marker="o", markersize=3, label=f"{curve.label} (mean {curve.mean:.3f})")
    ax.set(xlabel="normalised depth", ylabel="mean (1 - cos) / 2 over channel pairs", title=title, ylim=(0, None))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_erf(results: Sequence[Any], path: str | os.PathLike, title: str = "") -> Path:
    """Effective-receptive-field heat maps side by side, one per ``ERFResult``: log10(score + 1) rescaled to
    [0, 1] (RepLKNet's display), with a colour bar and the high-contribution area ratios under each title."""
    fig = Figure(figsize=(4.2 * len(results), 4.6), layout="constrained")
    for ax, result in zip(fig.subplots(1, len(results), squeeze=False)[0], results):
        image = ax.imshow(result.heat_map, cmap="RdYlGn", vmin=0, vmax=1)
        ratios = "  ".join(f"{t:.0%}: {r:.3f}" for t, r in result.ratios.items())
        h, w = result.input_size
        ax.set_title(f"{result.label}\n{h}x{w}, {result.images} images\narea ratio {ratios}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(image, ax=ax, shrink=0.8, label="log10(score + 1), rescaled")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_reconstructions(rows: Sequence[torch.Tensor], mean: Sequence[float], std: Sequence[float],
                         path: str | os.PathLike, title: str = "") -> Path:
    """FCMAE's original / masked input / reconstruction rows (each (N, C, H, W), normalised with ``mean`` /
    ``std``) as a PNG grid, one image per column."""
    mean_t = torch.tensor(mean, device=rows[0].device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=rows[0].device).view(1, -1, 1, 1)
    n = rows[0].shape[0]
    fig = Figure(figsize=(1.6 * n, 1.6 * len(rows)))
    axes = fig.subplots(len(rows), n, squeeze=False)
    for r, (label, row) in enumerate(zip(RECONSTRUCTION_ROWS, rows)):
        pictures = (row * std_t + mean_t).clamp(0, 1)[:, :3].permute(0, 2, 3, 1).cpu().numpy()
        for c in range(n):
            picture = pictures[c]
            axes[r][c].imshow(picture if picture.shape[-1] == 3 else picture[..., 0], cmap="gray", vmin=0, vmax=1)
            axes[r][c].set_xticks([])
            axes[r][c].set_yticks([])
        axes[r][0].set_ylabel(label)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path, dpi=80)


def plot_roadmap(table: Sequence[dict[str, Any]], path: str | os.PathLike) -> None:
    """``roadmap_figure(table)`` as a PNG."""
    save_figure(roadmap_figure(table), path)


def roadmap_figure(table: Sequence[dict[str, Any]]) -> Figure:
    """The design roadmap in the style of the ConvNeXt paper's Figure 2: one horizontal bar per step (top to
    bottom, from 0) of mean top-1 with its spread, the GMACs written beside it; side branches (kernel sizes not
    taken further) in grey, the paper's ImageNet top-1 as a second axis where the table has it."""
    steps = [r["step"] for r in table]
    y = list(range(len(steps)))[::-1]
    fig = Figure(figsize=(8, 0.42 * len(steps) + 2), layout="constrained")
    ax = fig.subplots()
    colours = ["#b0b0b0" if r.get("side_branch") else "#4878a8" for r in table]
    ax.barh(y, [r["top1"] for r in table], xerr=[r["top1_std"] for r in table], color=colours, capsize=3,
            height=0.7, label="this run (mean, bars: spread)")
    high = max(r["top1"] + r["top1_std"] for r in table)
    margin = max(1.0, high * 0.05)
    ax.set_xlim(0.0, min(100.0, high + 6 * margin))  # bars from 0: their lengths compare as the accuracies do
    for yi, r in zip(y, table):
        ax.text(r["top1"] + r["top1_std"] + margin * 0.2, yi, f"{r['top1']:.1f}%  {r['gmacs_224']:.2f} GMACs",
                va="center", fontsize=8)
    ax.set_yticks(y, steps)
    ax.set_xlabel("top-1 accuracy (%); GMACs at 224x224")
    ax.grid(axis="x", alpha=0.3)
    if any(r.get("paper_top1") is not None for r in table):
        paper = ax.twiny()
        points = [(r["paper_top1"], yi) for yi, r in zip(y, table) if r.get("paper_top1") is not None]
        paper.plot([p[0] for p in points], [p[1] for p in points], "D", color="#d0702c", markersize=5,
                   label="paper, ImageNet-1K")
        paper.set_xlabel("paper's ImageNet-1K top-1 (%)", color="#d0702c")
    fig.suptitle("ResNet -> ConvNeXt design roadmap")
    fig.legend(loc="outside lower center", ncol=2, fontsize=8)
    return fig
