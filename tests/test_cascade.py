"""Cascade Mask R-CNN's RoI heads stage by stage: the authors' stage settings, sampling at each stage's IoU, the
refinement between stages, the weighted losses, and test-time averaging of scores and masks."""
from __future__ import annotations

import re

import pytest
import torch
from torchvision.ops import box_iou

import modernconv
from modernconv.dense import cascade, create_detector
from modernconv.dense.cascade import STAGE_IOUS, CascadeRoIHeads, refine, sample

from helpers import randomize_
from test_detectors import mmdet_layout, toy_targets


def heads(num_classes: int = 4, **kwargs) -> CascadeRoIHeads:
    torch.manual_seed(0)
    return CascadeRoIHeads(32, num_classes, **kwargs)


def features(size: int = 64) -> dict[str, torch.Tensor]:
    return {str(i): torch.randn(2, 32, size // 4 >> i, size // 4 >> i) for i in range(4)}


def test_the_stages_are_the_authors():
    stages = heads().stages
    assert [s.proposal_matcher.high_threshold for s in stages] == list(STAGE_IOUS)
    assert all(s.proposal_matcher.low_threshold == s.proposal_matcher.high_threshold for s in stages)
    assert not any(s.proposal_matcher.allow_low_quality_matches for s in stages)
    weights = [s.box_coder.weights for s in stages]
    assert weights[0] == pytest.approx((10, 10, 5, 5)) and weights[1] == pytest.approx((20, 20, 10, 10))
    assert weights[2] == pytest.approx((1 / 0.033, 1 / 0.033, 1 / 0.067, 1 / 0.067))
    head = stages[0].box_head  # four 3x3 conv-BN-ReLU, then one fc of 1024
    convs = [m for m in head.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4 and all(c.kernel_size == (3, 3) for c in convs)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in head.modules()) == 4
    assert [m.out_features for m in head.modules() if isinstance(m, torch.nn.Linear)] == [1024]
    assert stages[0].box_predictor.bbox_pred.out_features == 4 * 4  # class-wise regression
    assert stages[0].mask_head is not stages[1].mask_head  # a mask head per stage


def test_each_stage_samples_at_its_own_iou():
    gt = torch.tensor([[10.0, 10.0, 50.0, 50.0]])
    shifted = torch.tensor([[10.0 + d, 10.0, 50.0 + d, 50.0] for d in (5, 8, 12, 20)])  # IoU 0.78 0.67 0.54 0.33
    ious = box_iou(shifted, gt)[:, 0]
    for stage, threshold in zip(heads(batch_size_per_image=64, positive_fraction=1.0).stages, STAGE_IOUS):
        rois, matched, labels, is_gt = sample(stage, [shifted], [gt], [torch.tensor([3])])
        order = rois[0][:, 0].argsort()
        expected = torch.cat([torch.tensor([True]), ious >= threshold])  # the added ground truth first (x1 = 10)
        assert torch.equal(labels[0][order] == 3, expected) and set(labels[0].tolist()) <= {0, 3}
        assert is_gt[0].sum() == 1 and torch.equal(rois[0][is_gt[0]], gt)


def test_refinement_moves_each_box_by_its_class_and_drops_the_ground_truth():
    stage = heads().stages[1]
    rois = torch.tensor([[10.0, 10.0, 30.0, 30.0], [0.0, 0.0, 20.0, 20.0], [5.0, 5.0, 40.0, 40.0]])
    target = torch.tensor([[12.0, 11.0, 33.0, 29.0], [1.0, 2.0, 21.0, 19.0], [0.0, 0.0, 1.0, 1.0]])
    deltas = torch.zeros(3, 4, 4)
    deltas[0, 2] = stage.box_coder.encode_single(target[:1], rois[:1])[0]  # RoI 0: class 2 (its label)
    deltas[1, 3] = stage.box_coder.encode_single(target[1:2], rois[1:2])[0]  # RoI 1: background, predicts 3
    logits = torch.tensor([[0.0, 9.0, 0.0, 0.0], [9.0, 0.0, 0.0, 5.0], [0.0, 0.0, 0.0, 0.0]])
    out = refine(stage, [rois], deltas, [torch.tensor([2, 0, 1])], logits, [torch.tensor([False, False, True])],
                 [(64, 64)])
    torch.testing.assert_close(out[0], target[:2])


def test_stage_losses_weigh_one_half_and_a_quarter(monkeypatch):
    model = create_detector("cascade_mask_rcnn", "convnext_atto", 3, min_size=96, max_size=96).train()
    images = torch.rand(2, 3, 96, 96).unbind()

    def losses() -> dict[str, torch.Tensor]:
        torch.manual_seed(1)
        return model(images, toy_targets())
    weighted = losses()
    assert {f"s{i}.{k}" for i in range(3) for k in ("loss_classifier", "loss_box_giou", "loss_mask")} <= set(weighted)
    monkeypatch.setattr(cascade, "STAGE_WEIGHTS", (1.0, 1.0, 1.0))
    plain = losses()
    for i, w in enumerate((1.0, 0.5, 0.25)):
        for k in ("loss_classifier", "loss_box_giou", "loss_mask"):
            torch.testing.assert_close(weighted[f"s{i}.{k}"], w * plain[f"s{i}.{k}"])
    sum(weighted.values()).backward()
    assert all(p.grad is not None for s in model.roi_heads.stages for p in s.box_head.parameters())


def test_at_test_time_scores_and_masks_are_the_stages_means():
    roi_heads = heads(num_classes=4, score_thresh=0.0).eval()  # three object classes and the background
    for i, stage in enumerate(roi_heads.stages):  # constant outputs per stage: known logits, no box movement
        predictor = stage.box_predictor
        for p in (*predictor.parameters(), *stage.mask_predictor.mask_fcn_logits.parameters()):
            torch.nn.init.zeros_(p)
        predictor.cls_score.bias.data = torch.tensor([0.0, 1.0 + i, -1.0, 2.0 * i])
        stage.mask_predictor.mask_fcn_logits.bias.data = torch.tensor([0.0, 1.0 - i, 2.0, 3.0])
    proposals = [torch.tensor([[4.0, 4.0, 30.0, 30.0], [20.0, 10.0, 60.0, 50.0]])] * 2
    found = roi_heads(features(), proposals, [(64, 64)] * 2)[0]
    scores = torch.softmax(torch.tensor([0.0, 2.0, -1.0, 2.0]), 0)  # the three stages' logits averaged
    masks = torch.tensor([0.0, 0.0, 2.0, 3.0]).sigmoid()
    masks[1] = (torch.tensor([1.0, 0.0, -1.0]).sigmoid()).mean()  # class 1's mask: the stages' probabilities
    for image in found:
        for box, label, score, mask in zip(image["boxes"], image["labels"], image["scores"], image["masks"]):
            assert score == pytest.approx(scores[label].item(), abs=1e-6)
            assert box.tolist() in [p.tolist() for p in proposals[0]]  # zero regression: boxes unmoved
            torch.testing.assert_close(mask, torch.full_like(mask, masks[label].item()))
        assert set(image["labels"].tolist()) == {1, 2, 3}


def test_cascade_detector_detects():
    model = create_detector("cascade_mask_rcnn", "unireplknet_a", 3, min_size=96, max_size=96,
                            detector_options={"box_score_thresh": 0.0}).eval()
    with torch.no_grad():
        found = model([torch.rand(3, 80, 100)])[0]
    assert found["boxes"].shape[-1] == 4 and found["masks"].shape[-2:] == (80, 100) and len(found["boxes"]) > 0


def test_the_authors_cascade_layout_loads(tmp_path):
    model = create_detector("cascade_mask_rcnn", "convnext_atto", 3)
    randomize_(model)
    rules = [(r"box_head\.(\d)\.0\.", r"roi_head.bbox_head.{i}.shared_convs.\1.conv."),
             (r"box_head\.(\d)\.1\.", r"roi_head.bbox_head.{i}.shared_convs.\1.bn."),
             (r"box_head\.5\.", "roi_head.bbox_head.{i}.shared_fcs.0."),
             (r"box_predictor\.cls_score\.", "roi_head.bbox_head.{i}.fc_cls."),
             (r"box_predictor\.bbox_pred\.", "roi_head.bbox_head.{i}.fc_reg."),
             (r"mask_head\.(\d)\.0\.", r"roi_head.mask_head.{i}.convs.\1.conv."),
             (r"mask_predictor\.conv5_mask\.", "roi_head.mask_head.{i}.upsample."),
             (r"mask_predictor\.mask_fcn_logits\.", "roi_head.mask_head.{i}.conv_logits.")]
    authors = {}
    for key, value in mmdet_layout(model).items():  # the backbone, neck and RPN; then each stage's heads
        stage = re.match(r"^roi_heads\.stages\.(\d)\.(.*)$", key)
        if stage is None:
            authors[key] = value
            continue
        name = stage[2]
        for pattern, target in rules:
            name = re.sub("^" + pattern, target.replace("{i}", stage[1]), name)
        if ".fc_cls." in name:
            value = torch.cat([value[1:], value[:1]])
        elif ".fc_reg." in name:
            value = value[4:]
        elif ".conv_logits." in name:
            value = value[1:]
        authors[name] = value
    assert "roi_head.bbox_head.2.shared_convs.3.bn.running_var" in authors
    torch.save({"state_dict": authors}, tmp_path / "cascade.pth")
    again = create_detector("cascade_mask_rcnn", "convnext_atto", 3)
    assert "mmdetection" in modernconv.load_checkpoint(again, tmp_path / "cascade.pth").source_format
    expected, got = model.state_dict(), again.state_dict()
    for key in expected:
        rows = 4 if "box_predictor.bbox_pred" in key else 1 if "mask_fcn_logits" in key else 0
        if expected[key].dim() == 0:  # BatchNorm's counters
            assert torch.equal(expected[key], got[key]), key
            continue
        assert torch.equal(expected[key][rows:], got[key][rows:]) and not got[key][:rows].any(), key
