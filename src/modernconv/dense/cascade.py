"""Cascade Mask R-CNN's RoI heads (Cai & Vasconcelos), as the ConvNeXt and UniRepLKNet papers configure them in
mmdetection, built from torchvision's pieces: each of the three stages is a torchvision ``RoIHeads`` (its matcher,
sampler, box coder and mask head) with

- its IoU threshold for positives (0.5, 0.6, 0.7; no ignored band, no low-quality matches) and its box coder's
  weights (the reciprocals of mmdetection's target stds: 10/10/5/5, 20/20/10/10, 30.3/30.3/14.9/14.9);
- the 4-conv + 1-fc box head (256-channel 3x3 convs with BatchNorm, SyncBN under DDP, then fc 1024) and a
  class-wise regression, trained on the decoded boxes with GIoU loss (weight 10, over the sampled RoIs);
- its own mask head (four 3x3 convs, a 2x up-convolution, one mask per class), trained on its positives.

Stage losses weigh 1, 0.5 and 0.25. In training each stage refines the boxes the next one samples from (the
ground-truth boxes added as proposals are dropped first; each box moves by the regression of its matched class,
or of the predicted one for background). At test time the boxes pass through the three stages, the class scores
are the mean of the three stages' logits (then softmax), the boxes the last stage's, and each detection's mask
the mean of the three mask heads' probabilities."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, FastRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.roi_heads import RoIHeads, maskrcnn_inference, maskrcnn_loss
from torchvision.ops import MultiScaleRoIAlign, boxes as box_ops, generalized_box_iou_loss

STAGE_IOUS = (0.5, 0.6, 0.7)
STAGE_STDS = ((0.1, 0.1, 0.2, 0.2), (0.05, 0.05, 0.1, 0.1), (0.033, 0.033, 0.067, 0.067))  # mmdetection's
STAGE_WEIGHTS = (1.0, 0.5, 0.25)
GIOU_WEIGHT = 10.0


class CascadeRoIHeads(nn.Module):
    """Three torchvision ``RoIHeads`` run as a cascade (see the module docstring); the interface is
    ``RoIHeads``'s: ``forward(features, proposals, image_shapes, targets)`` -> (detections, losses)."""

    def __init__(self, channels: int, num_classes: int, batch_size_per_image: int = 512,
                 positive_fraction: float = 0.25, score_thresh: float = 0.05, nms_thresh: float = 0.5,
                 detections_per_img: int = 100, norm_layer: type[nn.Module] = nn.BatchNorm2d) -> None:
        super().__init__()
        box_pool = MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)
        mask_pool = MultiScaleRoIAlign(["0", "1", "2", "3"], 14, 2)
        self.stages = nn.ModuleList(
            RoIHeads(box_pool, FastRCNNConvFCHead((channels, 7, 7), [channels] * 4, [1024], norm_layer=norm_layer),
                     FastRCNNPredictor(1024, num_classes), iou, iou, batch_size_per_image, positive_fraction,
                     tuple(1 / s for s in stds), score_thresh, nms_thresh, detections_per_img, mask_pool,
                     MaskRCNNHeads(channels, [channels] * 4, 1), MaskRCNNPredictor(channels, channels, num_classes))
            for iou, stds in zip(STAGE_IOUS, STAGE_STDS))

    def forward(self, features: dict[str, torch.Tensor], proposals: list[torch.Tensor],
                image_shapes: list[tuple[int, int]], targets: list[dict[str, torch.Tensor]] | None = None
                ) -> tuple[list[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
        if self.training:
            return [], self.losses(features, proposals, image_shapes, targets)
        return self.detect(features, proposals, image_shapes), {}

    def losses(self, features: dict[str, torch.Tensor], proposals: list[torch.Tensor],
               image_shapes: list[tuple[int, int]], targets: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Every stage's classification, GIoU and mask losses (``s{i}.loss_*``), weighted by ``STAGE_WEIGHTS``."""
        losses = {}
        gt_boxes = [t["boxes"].to(proposals[0].dtype) for t in targets]
        gt_labels = [t["labels"] for t in targets]
        for i, (stage, weight) in enumerate(zip(self.stages, STAGE_WEIGHTS)):
            rois, matched, labels, is_gt = sample(stage, proposals, gt_boxes, gt_labels)
            logits, deltas = stage.box_predictor(stage.box_head(stage.box_roi_pool(features, rois, image_shapes)))
            labels_all = torch.cat(labels)
            deltas = deltas.reshape(len(labels_all), -1, 4)
            positive = labels_all > 0
            decoded = stage.box_coder.decode_single(deltas[positive, labels_all[positive]], torch.cat(rois)[positive])
            targets_all = torch.cat([g[m] if len(g) else g.new_zeros(len(m), 4) for g, m in zip(gt_boxes, matched)])
            giou = generalized_box_iou_loss(decoded, targets_all[positive], reduction="sum") / max(1, len(labels_all))
            losses[f"s{i}.loss_classifier"] = weight * F.cross_entropy(logits, labels_all)
            losses[f"s{i}.loss_box_giou"] = weight * GIOU_WEIGHT * giou
            losses[f"s{i}.loss_mask"] = weight * self.mask_loss(stage, features, rois, matched, labels, targets,
                                                                  image_shapes)
            if i + 1 < len(self.stages):
                proposals = refine(stage, rois, deltas.detach(), labels, logits.detach(), is_gt, image_shapes)
        return losses

    @staticmethod
    def mask_loss(stage: RoIHeads, features: dict[str, torch.Tensor], rois: list[torch.Tensor],
                  matched: list[torch.Tensor], labels: list[torch.Tensor], targets: list[dict[str, torch.Tensor]],
                  image_shapes: list[tuple[int, int]]) -> torch.Tensor:
        """torchvision's mask loss of one stage, on its positive RoIs."""
        positive = [lab > 0 for lab in labels]
        boxes = [r[p] for r, p in zip(rois, positive)]
        logits = stage.mask_predictor(stage.mask_head(stage.mask_roi_pool(features, boxes, image_shapes)))
        return maskrcnn_loss(logits, boxes, [t["masks"] for t in targets], [t["labels"] for t in targets],
                             [m[p] for m, p in zip(matched, positive)])

    @torch.no_grad()
    def detect(self, features: dict[str, torch.Tensor], proposals: list[torch.Tensor],
               image_shapes: list[tuple[int, int]]) -> list[dict[str, torch.Tensor]]:
        """The cascade at test time (see the module docstring): boxes, labels, scores and 28 x 28 mask
        probabilities per image (torchvision's transform pastes them into the image)."""
        rois, summed = proposals, None
        for i, stage in enumerate(self.stages):
            logits, deltas = stage.box_predictor(stage.box_head(stage.box_roi_pool(features, rois, image_shapes)))
            summed = logits if summed is None else summed + logits
            if i + 1 < len(self.stages):
                counts = [len(r) for r in rois]
                predicted = [lg[:, 1:].argmax(1) + 1 for lg in logits.split(counts)]
                rois = refine(stage, rois, deltas.reshape(sum(counts), -1, 4), predicted, logits,
                              [torch.zeros(n, dtype=torch.bool, device=logits.device) for n in counts], image_shapes)
        boxes, scores, labels = self.stages[-1].postprocess_detections(summed / len(self.stages), deltas, rois,
                                                                       image_shapes)
        masks = None
        for stage in self.stages:
            logits = stage.mask_predictor(stage.mask_head(stage.mask_roi_pool(features, boxes, image_shapes)))
            found = maskrcnn_inference(logits, labels)
            masks = found if masks is None else [a + b for a, b in zip(masks, found)]
        return [{"boxes": b, "labels": lab, "scores": s, "masks": m / len(self.stages)}
                for b, lab, s, m in zip(boxes, labels, scores, masks)]


def sample(stage: RoIHeads, proposals: list[torch.Tensor], gt_boxes: list[torch.Tensor],
           gt_labels: list[torch.Tensor]) -> tuple[list[torch.Tensor], ...]:
    """One stage's training RoIs per image: the proposals plus the ground-truth boxes, matched at the stage's IoU
    and sampled by its sampler. Returns (RoIs, matched ground-truth index, label (0: background), whether the RoI
    is an added ground-truth box)."""
    with_gt = [torch.cat([p, g]) for p, g in zip(proposals, gt_boxes)]
    matched, labels = stage.assign_targets_to_proposals(with_gt, gt_boxes, gt_labels)
    kept = stage.subsample(labels)
    return ([b[k] for b, k in zip(with_gt, kept)], [m[k] for m, k in zip(matched, kept)],
            [lab[k] for lab, k in zip(labels, kept)], [k >= len(p) for k, p in zip(kept, proposals)])


def refine(stage: RoIHeads, rois: list[torch.Tensor], deltas: torch.Tensor, labels: list[torch.Tensor],
           logits: torch.Tensor, is_gt: list[torch.Tensor], image_shapes: list[tuple[int, int]]
           ) -> list[torch.Tensor]:
    """The next stage's proposals: each RoI moved by the regression of its class (``labels``; for background
    RoIs the predicted class), clipped to its image; added ground-truth boxes dropped."""
    counts = [len(r) for r in rois]
    out = []
    for r, d, lab, lg, gt, shape in zip(rois, deltas.split(counts), labels, logits.split(counts), is_gt,
                                        image_shapes):
        cls = torch.where(lab > 0, lab, lg[:, 1:].argmax(1) + 1)
        moved = stage.box_coder.decode_single(d[torch.arange(len(r), device=r.device), cls], r)
        out.append(box_ops.clip_boxes_to_image(moved, shape)[~gt].detach())
    return out
