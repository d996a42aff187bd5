"""Detectors over our backbones: torchvision's own Mask R-CNN (ResNet-50 FPN) as the oracle of the plumbing
(its weights load into our Mask R-CNN over the roadmap's ResNet-50 step and give its outputs), every detector on
every hierarchical family, and the refusals."""
from __future__ import annotations

import re

import pytest
import torch
from torchvision.models.detection import maskrcnn_resnet50_fpn

import modernconv
from modernconv.dense import DETECTORS, create_detector
from modernconv.dense.detectors import MASKED
from modernconv.errors import CheckpointError, ConfigError

from helpers import randomize_
from test_checkpoint import authors_convnext_layout

RESNET = "resnet50_to_convnext_t"


def toy_targets(n: int = 2, size: int = 96, classes: int = 3) -> list[dict[str, torch.Tensor]]:
    """Two boxes with their masks in each of ``n`` images."""
    out = []
    for i in range(n):
        boxes = torch.tensor([[8.0, 10.0, 50.0, 60.0], [40.0, 30.0, 90.0, 88.0]]) + i
        masks = torch.zeros(2, size, size, dtype=torch.uint8)
        for m, (x1, y1, x2, y2) in zip(masks, boxes.int().tolist()):
            m[y1:y2, x1:x2] = 1
        out.append({"boxes": boxes, "labels": torch.tensor([1, classes]), "masks": masks})
    return out


@pytest.mark.isa_sensitive
def test_torchvision_mask_rcnn_weights_give_its_outputs(tmp_path):
    torch.manual_seed(0)
    tv = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=4, min_size=128, max_size=160,
                               box_score_thresh=0.0).eval()
    randomize_(tv)
    path = tmp_path / "tv.pth"
    torch.save(tv.state_dict(), path)
    ours = create_detector("mask_rcnn", RESNET, 3, step="resnet50", min_size=128, max_size=160,
                           detector_options={"box_score_thresh": 0.0}).eval()
    report = modernconv.load_checkpoint(ours, path)
    assert report.source_format.startswith("torchvision")
    images = [torch.rand(3, 120, 150), torch.rand(3, 100, 90)]
    with torch.no_grad():
        expected, got = tv(images), ours(images)
    for e, g in zip(expected, got):
        assert len(e["boxes"]) > 0 and e.keys() == g.keys()
        for key in e:
            torch.testing.assert_close(g[key], e[key], rtol=0, atol=1e-4 * max(1.0, e[key].abs().max().item()))


@pytest.mark.parametrize("kind, backbone", [(kind, "convnext_atto") for kind in DETECTORS] +
                         [("mask_rcnn", "convnextv2_atto"), ("faster_rcnn", "unireplknet_a")])
def test_every_detector_trains_and_detects_on_every_family(kind, backbone):
    torch.manual_seed(0)
    model = create_detector(kind, backbone, 3, min_size=96, max_size=96)
    losses = model.train()(torch.rand(2, 3, 96, 96).unbind(), toy_targets())
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.backbone.body.model.stem[0].weight.grad.abs().sum() > 0
    with torch.no_grad():
        found = model.eval()([torch.rand(3, 80, 100)])
    assert found[0]["boxes"].shape[-1] == 4 and ("masks" in found[0]) == (kind in MASKED)
    if "masks" in found[0]:
        assert found[0]["masks"].shape[-2:] == (80, 100)


def test_layer_norm_backbones_get_per_output_norms():
    assert hasattr(create_detector("faster_rcnn", "convnext_atto", 2).backbone.body, "norm3")
    assert not hasattr(create_detector("faster_rcnn", RESNET, 2, step="resnet50").backbone.body, "norm3")


def test_refusals(tmp_path):
    with pytest.raises(ConfigError, match="unknown detector"):
        create_detector("yolo", "convnext_atto", 2)
    with pytest.raises(ConfigError, match="pyramid"):
        create_detector("mask_rcnn", "convnext_isotropic_small", 2)
    classifier = tmp_path / "c.pth"
    torch.save(modernconv.create_model("convnext_atto").state_dict(), classifier)
    with pytest.raises(CheckpointError, match="not a detection checkpoint"):
        modernconv.load_checkpoint(create_detector("mask_rcnn", "convnext_atto", 2), classifier)
    other = tmp_path / "other.pth"
    torch.save(create_detector("mask_rcnn", "convnext_atto", 5).state_dict(), other)
    with pytest.raises(CheckpointError, match="does not fit"):
        modernconv.load_checkpoint(create_detector("mask_rcnn", "convnext_atto", 2), other)


def test_own_checkpoint_round_trip(tmp_path):
    model = create_detector("mask_rcnn", "convnext_atto", 2).eval()
    randomize_(model)
    path = tmp_path / "det.safetensors"
    modernconv.save_checkpoint(model, path)
    again = create_detector("mask_rcnn", "convnext_atto", 2).eval()
    assert modernconv.load_checkpoint(again, path).source_format.startswith("modernconv")
    x = [torch.rand(3, 64, 64)]
    with torch.no_grad():
        torch.testing.assert_close(again.backbone(x[0][None])["0"], model.backbone(x[0][None])["0"])


def mmdet_layout(model) -> dict[str, torch.Tensor]:
    """Our Mask R-CNN's weights as the authors' mmdetection 2.x files name and order them (written out here from
    mmdetection's module names, independently of the loader's table)."""
    renames = [(r"^backbone\.fpn\.inner_blocks\.(\d)\.0\.", r"neck.lateral_convs.\1.conv."),
               (r"^backbone\.fpn\.layer_blocks\.(\d)\.0\.", r"neck.fpn_convs.\1.conv."),
               (r"^rpn\.head\.conv\.0\.0\.", "rpn_head.rpn_conv."), (r"^rpn\.head\.cls_logits\.", "rpn_head.rpn_cls."),
               (r"^rpn\.head\.bbox_pred\.", "rpn_head.rpn_reg."),
               (r"^roi_heads\.box_head\.fc6\.", "roi_head.bbox_head.shared_fcs.0."),
               (r"^roi_heads\.box_head\.fc7\.", "roi_head.bbox_head.shared_fcs.1."),
               (r"^roi_heads\.box_predictor\.cls_score\.", "roi_head.bbox_head.fc_cls."),
               (r"^roi_heads\.box_predictor\.bbox_pred\.", "roi_head.bbox_head.fc_reg."),
               (r"^roi_heads\.mask_head\.(\d)\.0\.", r"roi_head.mask_head.convs.\1.conv."),
               (r"^roi_heads\.mask_predictor\.conv5_mask\.", "roi_head.mask_head.upsample."),
               (r"^roi_heads\.mask_predictor\.mask_fcn_logits\.", "roi_head.mask_head.conv_logits."),
               (r"^backbone\.body\.(norm\d)\.", r"backbone.\1.")]
    state = model.state_dict()
    out = {f"backbone.{k}": v for k, v in authors_convnext_layout(
        {k[len("backbone.body.model."):]: v for k, v in state.items() if k.startswith("backbone.body.model.")}).items()}
    for key, value in state.items():
        if key.startswith("backbone.body.model."):
            continue
        new = key
        for pattern, target in renames:
            new = re.sub(pattern, target, new)
        if "fc_cls" in new:
            value = torch.cat([value[1:], value[:1]])  # background last
        elif "fc_reg" in new:
            value = value[4:]  # no background rows
        elif "conv_logits" in new:
            value = value[1:]  # no background channel
        out[new] = value
    return out


def test_the_authors_mmdetection_layout_loads_and_lists_what_does_not_fit(tmp_path):
    torch.manual_seed(0)
    model = create_detector("mask_rcnn", "convnext_atto", 3)
    randomize_(model)
    path = tmp_path / "mmdet.pth"
    torch.save({"state_dict": mmdet_layout(model), "meta": {}}, path)
    again = create_detector("mask_rcnn", "convnext_atto", 3)
    report = modernconv.load_checkpoint(again, path)
    assert "mmdetection" in report.source_format and "convnext-official" in report.source_format
    expected, got = model.state_dict(), again.state_dict()
    for key in expected:
        e, g = expected[key], got[key]
        if key.startswith("roi_heads.box_predictor.bbox_pred"):
            e, g, zero = e[4:], g[4:], g[:4]  # the background's regression rows: zeros (mmdetection has none)
        elif key.startswith("roi_heads.mask_predictor.mask_fcn_logits"):
            e, g, zero = e[1:], g[1:], g[:1]
        else:
            zero = torch.zeros(0)
        assert torch.equal(e, g) and not zero.any(), key
    cascade = {**mmdet_layout(model), "roi_head.bbox_head.1.fc_cls.weight": torch.zeros(4, 1024)}
    torch.save({"state_dict": cascade}, path)
    with pytest.raises(CheckpointError, match="roi_head.bbox_head.1.fc_cls.weight"):
        modernconv.load_checkpoint(again, path)
    with pytest.warns(UserWarning, match=r"not loaded \(1: .*roi_head.bbox_head.1.fc_cls.weight"):
        modernconv.load_checkpoint(again, path, strict=False)


def test_layer_wise_decay_on_a_detector_is_the_authors_table():
    """ConvNeXt-T's ids under the authors' mmdetection rule (num_layers 6, Cascade-T's rate 0.7)."""
    from modernconv.optim import dense_lr_scales

    model = create_detector("cascade_mask_rcnn", "convnext_tiny", 2)
    scales = dense_lr_scales([n for n, _ in model.named_parameters()], 0.7, "layer_wise", 6)
    body = "backbone.body.model."
    expected = {f"{body}stem.0.weight": 0.7 ** 7, f"{body}stages.0.blocks.2.conv_dw.weight": 0.7 ** 6,
                f"{body}stages.1.downsample.1.weight": 0.7 ** 5, f"{body}stages.2.downsample.1.weight": 0.7 ** 4,
                f"{body}stages.2.blocks.4.mlp.fc1.weight": 0.7 ** 3, f"{body}stages.2.blocks.8.gamma": 0.7 ** 2,
                f"{body}stages.3.blocks.0.conv_dw.weight": 0.7, "backbone.body.norm2.weight": 1.0,
                "backbone.fpn.inner_blocks.0.0.weight": 1.0, "roi_heads.stages.2.box_head.5.weight": 1.0}
    assert {k: scales[k] for k in expected} == pytest.approx(expected)
