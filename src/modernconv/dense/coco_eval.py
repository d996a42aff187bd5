"""COCO's average precision of detections, with pycocotools (the reference implementation): box AP and, for
detectors that segment, mask AP, over a whole split, in percent.

``to_coco_results`` turns a detector's outputs into COCO's results format (the file anyone can re-score), and
``coco_scores`` scores such results against a split's ``ground_truth()``."""
from __future__ import annotations

import contextlib
import copy
import io
from typing import Callable

import torch

from ..data.coco import encode_mask, pycocotools_mask

SCORES = ("ap", "ap50", "ap75", "ap_s", "ap_m", "ap_l")  # COCOeval.stats[0:6], in this order
MASK_THRESHOLD = 0.5  # a pixel belongs to an instance where its mask probability reaches this


def to_coco_results(outputs: list[dict[str, torch.Tensor]], image_ids: list[int],
                    category_of: Callable[[int], int]) -> list[dict]:
    """COCO's results format (``image_id``, ``category_id``, ``bbox`` as x, y, width, height, ``score``, and
    ``segmentation`` as RLE where the outputs have masks) of one batch of a detector's outputs."""
    results = []
    for found, image_id in zip(outputs, image_ids):
        boxes = found["boxes"].float().cpu()
        boxes[:, 2:] -= boxes[:, :2]
        masks = found.get("masks")
        binary = (masks[:, 0] >= MASK_THRESHOLD).cpu().numpy() if masks is not None else None
        for i, (box, label, score) in enumerate(zip(boxes.tolist(), found["labels"].tolist(),
                                                    found["scores"].tolist())):
            entry = {"image_id": int(image_id), "category_id": category_of(int(label)),
                     "bbox": [round(v, 2) for v in box], "score": round(float(score), 5)}
            if binary is not None:
                entry["segmentation"] = encode_mask(binary[i])
            results.append(entry)
    return results


def coco_scores(ground_truth: dict, results: list[dict], masks: bool) -> dict[str, float]:
    """``bbox_ap``, ``bbox_ap50``, ... (and ``segm_*`` with ``masks``), in percent, of ``results`` against
    ``ground_truth`` (a COCO-format dict); no detections at all score 0, a size range without ground truth
    NaN."""
    pycocotools_mask()  # one line when pycocotools is missing
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    kinds = ("bbox", "segm") if masks else ("bbox",)
    if not results:
        return {f"{kind}_{name}": 0.0 for kind in kinds for name in SCORES}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress and tables
        truth = COCO()
        truth.dataset = copy.deepcopy(ground_truth)
        truth.createIndex()
        found = truth.loadRes(copy.deepcopy(results))
        scores = {}
        for kind in kinds:
            evaluation = COCOeval(truth, found, kind)
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
            # COCOeval's -1 means "no ground truth of this size": NaN here, not a score of 0
            scores.update({f"{kind}_{name}": float(v) * 100 if v >= 0 else float("nan")
                           for name, v in zip(SCORES, evaluation.stats)})
    return scores
