"""`modernconv eval --report PAGE.html`: one self-contained page about a classification checkpoint on a held-out
split (the scores, the run's curves when its folder holds them, the confusion matrix, a per-class table and the
worst-classified samples), every picture embedded, for a browser with no network."""
from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure
from PIL import Image
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS

from ..data import read_image
from ..files import atomic_write_text, read_jsonl_rows
from ..plots import confusion_figure, curves_figure

THUMBNAIL = 112  # pixels, the longer side of a worst-classified sample's picture
WORST = 24  # samples shown


def _png(source: Figure | Image.Image) -> str:
    """A figure or picture as an <img> with its PNG inline."""
    buffer = io.BytesIO()
    if isinstance(source, Figure):
        source.savefig(buffer, format="png", dpi=80)
    else:
        source.save(buffer, format="PNG")
    return f'<img src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}" alt="">'


def sample_picture(dataset: Dataset, index: int) -> Image.Image | None:
    """The untransformed picture of sample ``index`` (an image file, or a built-in set's tensor), or None for a
    sample that is not an image (audio, series...)."""
    samples = getattr(dataset, "samples", None)
    if samples is not None and str(samples[index][0]).lower().endswith(IMG_EXTENSIONS):
        picture = read_image(str(samples[index][0]), 3)
    elif isinstance(getattr(dataset, "images", None), torch.Tensor):
        tensor = dataset.images[index]
        picture = Image.fromarray(tensor.permute(1, 2, 0).squeeze(-1).numpy())
    else:
        return None
    picture = picture.convert("RGB")
    scale = THUMBNAIL / max(picture.size)
    return picture.resize((max(1, round(picture.width * scale)), max(1, round(picture.height * scale))),
                          Image.Resampling.NEAREST if scale > 1 else Image.Resampling.BICUBIC)


def _sample_name(dataset: Dataset, index: int) -> str:
    samples = getattr(dataset, "samples", None)
    return Path(str(samples[index][0])).name if samples is not None else f"sample {index}"


def _run_rows(checkpoint: str | os.PathLike) -> list[dict[str, Any]]:
    """The epoch rows of the run the checkpoint sits in (none when it sits elsewhere)."""
    return read_jsonl_rows(Path(checkpoint).parent / "metrics.jsonl", "epoch")


def write_report(path: str | os.PathLike, result: Any, class_names: list[str], dataset: Dataset,
                 checkpoint: str | os.PathLike, data: str) -> Path:
    """The page for ``result`` (an ``engine.EvalResult``, its ``worst`` indexing ``dataset``) of ``checkpoint`` on
    ``data``."""
    rows, macro = result.classification_report()
    e = html.escape
    table = "".join(
        f"<tr><td>{e(name)}</td><td>{_cell(acc)}</td><td>{r['precision']:.2f}</td><td>{r['recall']:.2f}</td>"
        f"<td>{r['f1']:.2f}</td><td>{r['support']}</td></tr>"
        for name, acc, r in zip(class_names, result.per_class, rows))
    worst = "".join(
        f'<figure>{_png(picture) if (picture := sample_picture(dataset, i)) else ""}<figcaption>'
        f"{e(_sample_name(dataset, i))}<br>true {e(class_names[t])}, predicted {e(class_names[p])}"
        f"<br>p(true) {q:.3f}</figcaption></figure>" for i, t, p, q in result.worst)
    run = _run_rows(checkpoint)
    curves = f"<h2>Training curves</h2>{_png(curves_figure(run))}" if run else ""
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(Path(checkpoint).name)} on {e(data)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;
padding:2px 8px;text-align:right}}td:first-child{{text-align:left}}figure{{display:inline-block;margin:6px;
width:{THUMBNAIL + 20}px;font-size:11px;vertical-align:top}}img{{max-width:100%}}</style></head><body>
<h1>{e(str(checkpoint))}</h1>
<p id="scores">on {e(data)}: top-1 {result.top1:.2f}%, top-{result.k} {result.top5:.2f}%, loss {result.loss:.4f},
{result.count} samples; macro precision {macro['precision']:.2f}%, recall {macro['recall']:.2f}%,
F1 {macro['f1']:.2f}%</p>
{curves}
<h2>Confusion matrix</h2>{_png(confusion_figure(result.confusion, class_names))}
<h2>Per class</h2><table id="per-class"><tr><th>class</th><th>accuracy %</th><th>precision %</th>
<th>recall %</th><th>F1 %</th><th>support</th></tr>{table}</table>
<h2>Worst classified</h2><p>the {len(result.worst)} samples given the least probability of their true class</p>
<div id="worst">{worst}</div>
</body></html>
"""
    atomic_write_text(path, page)
    return Path(path)


def _cell(accuracy: float | None) -> str:
    return "n/a" if accuracy is None else f"{accuracy:.2f}"
