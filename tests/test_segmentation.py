"""Semantic segmentation: UperNet over our backbones, with Hugging Face transformers' UperNetForSemanticSegmentation
(the authors' converted models) as the oracle, the authors' mmsegmentation checkpoint layout, and the backbones'
per-output norms."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from transformers import ConvNextConfig, ConvNextV2Config, UperNetConfig, UperNetForSemanticSegmentation

import modernconv
from modernconv.dense import create_segmenter
from modernconv.errors import CheckpointError, ConfigError

from helpers import randomize_, scaled_error
from test_checkpoint import authors_convnext_layout

pytestmark = pytest.mark.isa_sensitive

HF_BACKBONES = {"convnext_atto": ConvNextConfig, "convnextv2_atto": ConvNextV2Config}


def hf_upernet(name: str, num_classes: int, channels: int, aux_channels: int) -> UperNetForSemanticSegmentation:
    """transformers' UperNet over its ConvNext(V2) backbone with our model's sizes, random weights and statistics."""
    arch = modernconv.create_model(name, num_classes=0)
    backbone = HF_BACKBONES[name](depths=[len(s.blocks) for s in arch.stages],
                                  hidden_sizes=[f["num_chs"] for f in arch.feature_info],
                                  out_features=["stage1", "stage2", "stage3", "stage4"])
    config = UperNetConfig(backbone_config=backbone, num_labels=num_classes, hidden_size=channels,
                           auxiliary_in_channels=arch.feature_info[2]["num_chs"], auxiliary_channels=aux_channels)
    model = UperNetForSemanticSegmentation(config)
    randomize_(model)
    return model.eval()


@pytest.mark.parametrize("name", list(HF_BACKBONES))
def test_transformers_upernet_weights_give_its_logits(name, tmp_path):
    hf = hf_upernet(name, num_classes=7, channels=64, aux_channels=32)
    save_file({k: v.contiguous() for k, v in hf.state_dict().items()}, tmp_path / "hf.safetensors")
    ours = create_segmenter(name, 7, channels=64, aux_channels=32)
    modernconv.load_checkpoint(ours, tmp_path / "hf.safetensors")
    x = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        expected = hf(pixel_values=x).logits
        got = ours.eval()(x)
    assert got.shape == (2, 7, 96, 128) and 0.1 < expected.abs().mean() < 10
    assert scaled_error(got, expected) <= 1e-4
    hf.train()
    ours.train()
    torch.manual_seed(0)
    with torch.no_grad():  # training mode: batch statistics, the auxiliary head (HF has no dropout: compare off)
        ours.decode_head.dropout.p = ours.auxiliary_head.dropout.p = 0.0
        hf_out = hf(pixel_values=x, labels=torch.randint(0, 7, (2, 96, 128)))
        logits, aux = ours(x)
    assert scaled_error(logits, hf_out.logits) <= 1e-4 and aux.shape == logits.shape


def test_the_authors_mmsegmentation_layout_loads(tmp_path):
    ours = create_segmenter("convnext_atto", 5, channels=32, aux_channels=16)
    randomize_(ours)
    state = ours.state_dict()
    network = {k[len("backbone.model."):]: v for k, v in state.items() if k.startswith("backbone.model.")}
    authors = {f"backbone.{k}": v for k, v in authors_convnext_layout(network).items()}
    authors.update({k: v for k, v in state.items() if not k.startswith("backbone.model.")})
    torch.save({"meta": {"CLASSES": list("abcde")}, "state_dict": authors}, tmp_path / "iter_160000.pth")
    again = create_segmenter("convnext_atto", 5, channels=32, aux_channels=16)
    report = modernconv.load_checkpoint(again, tmp_path / "iter_160000.pth")
    assert "mmsegmentation" in report.source_format and "convnext-official" in report.source_format
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in state.items())


def test_a_segmenter_of_other_classes_is_refused_in_one_line(tmp_path):
    modernconv.save_checkpoint(create_segmenter("convnext_atto", 5, channels=32), tmp_path / "s.safetensors")
    with pytest.raises(CheckpointError, match="does not fit this segmenter .*decode_head.conv_seg.weight"):
        modernconv.load_checkpoint(create_segmenter("convnext_atto", 6, channels=32), tmp_path / "s.safetensors")
    classifier = tmp_path / "c.safetensors"
    modernconv.save_checkpoint(modernconv.create_model("convnext_atto"), classifier)
    with pytest.raises(CheckpointError, match="not a segmentation checkpoint"):
        modernconv.load_checkpoint(create_segmenter("convnext_atto", 6, channels=32), classifier)


@pytest.mark.parametrize("name, norms", [("convnext_atto", True), ("convnextv2_atto", True), ("unireplknet_a", True),
                                         ("resnet50_to_convnext_t", False)])
def test_every_hierarchical_family_segments_with_the_authors_output_norms(name, norms):
    kwargs = {"step": "resnet50", "depths": (1, 1, 1, 1)} if name.startswith("resnet50") else {}
    model = create_segmenter(name, 4, channels=32, aux_channels=16, **kwargs)
    assert model.backbone.out_norms == norms  # LayerNorm on each map for LN networks, none for the BN ResNet
    x = torch.randn(2, 3, 64, 96)
    logits, aux = model.train()(x)
    (logits.mean() + aux.mean()).backward()
    assert logits.shape == aux.shape == (2, 4, 64, 96)
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert model.eval()(x).shape == (2, 4, 64, 96)


def test_backbone_out_norms_are_channels_first_layer_norms():
    plain = modernconv.create_model("convnextv2_atto", features_only=True)
    normed = modernconv.create_model("convnextv2_atto", features_only=True, out_norms=True)
    normed.model.load_state_dict(plain.model.state_dict())
    x = torch.randn(1, 3, 64, 64)
    for i, (a, b) in enumerate(zip(plain(x), normed(x))):
        expected = torch.nn.functional.layer_norm(a.permute(0, 2, 3, 1), a.shape[1:2], eps=1e-6).permute(0, 3, 1, 2)
        assert torch.allclose(b, expected, atol=1e-5) and f"norm{i}.weight" in normed.state_dict()
    with pytest.raises(ConfigError, match="pass features_only=True"):
        modernconv.create_model("convnext_atto", out_norms=True)


@pytest.mark.parametrize("name", ["convmixer_256_8", "convnext_isotropic_small"])
def test_single_resolution_models_are_refused_for_upernet(name):
    with pytest.raises(ConfigError, match="keeps one resolution .* need a pyramid"):
        create_segmenter(name, 4)


def authors_layer_id(name: str, decay_type: str, num_layers: int) -> int:
    """The authors' rule (mmsegmentation's LearningRateDecayOptimizerConstructor for ConvNeXt), on their names."""
    parts = name.split(".")
    if decay_type == "stage_wise":
        if name.startswith("backbone.downsample_layers"):
            return 0
        return int(parts[2]) + 1 if name.startswith("backbone.stages") else num_layers + 2 - 1
    if name.startswith("backbone.downsample_layers"):
        return {0: 0, 1: 2, 2: 3, 3: num_layers}[int(parts[2])]
    if name.startswith("backbone.stages"):
        stage, block = int(parts[2]), int(parts[3])
        return {0: 1, 1: 2, 2: 3 + block // 3, 3: num_layers}[stage]
    return num_layers + 1


@pytest.mark.parametrize("name, num_layers", [("convnext_tiny", 6), ("convnext_base", 12), ("convnextv2_tiny", 6)])
@pytest.mark.parametrize("decay_type", ["stage_wise", "layer_wise"])
def test_dense_layer_decay_equals_the_authors_rule_for_every_parameter(name, num_layers, decay_type):
    from modernconv.optim import default_num_layers, dense_lr_scales

    with torch.device("meta"):
        model = create_segmenter(name, 150)
    assert default_num_layers(len(model.backbone.model.stages[2].blocks)) == num_layers
    names = [n for n, _ in model.named_parameters()]
    ours = dense_lr_scales(names, 0.9, decay_type, num_layers)
    network = {n[len("backbone.model."):]: torch.empty(0) for n in names if n.startswith("backbone.model.")}
    theirs_names = dict(zip([n for n in names if n.startswith("backbone.model.")],
                            (f"backbone.{k}" for k in authors_convnext_layout(network))))
    for n in names:
        expected = 0.9 ** (num_layers + 2 - authors_layer_id(theirs_names.get(n, n), decay_type, num_layers) - 1)
        assert ours[n] == pytest.approx(expected), n
    assert ours["decode_head.conv_seg.weight"] == 1.0 and ours["backbone.norm0.weight"] == 1.0


def test_miou_is_dataset_level_from_one_confusion_matrix_with_ignored_pixels():
    from modernconv.dense.metrics import SegmentationResult, confusion_matrix

    g = torch.Generator().manual_seed(0)
    big, small = (torch.randint(0, 4, (1, 40, 50), generator=g) for _ in range(2))
    big_pred, small_pred = big.clone(), torch.randint(0, 4, (1, 40, 50), generator=g)[:, :6, :7]
    small = small[:, :6, :7].clone()
    big_pred[:, :10] = 2  # some errors on the big image
    big[:, -3:] = 255  # ignored rows
    small[0, 0, 0] = 9  # a label outside the classes is left out too
    confusion = confusion_matrix(big_pred, big, 5) + confusion_matrix(small_pred, small, 5)
    result = SegmentationResult.from_confusion(confusion, count=2)
    target = torch.cat([big.flatten(), small.flatten()])
    pred = torch.cat([big_pred.flatten(), small_pred.flatten()])
    keep = target < 5
    target, pred = target[keep], pred[keep]
    for c in range(4):  # by definition, over every labelled pixel of the data set
        inter = ((pred == c) & (target == c)).sum().item()
        union = ((pred == c) | (target == c)).sum().item()
        assert result.per_class_iou[c] == pytest.approx(100 * inter / union)
        assert result.per_class_acc[c] == pytest.approx(100 * inter / (target == c).sum().item())
    assert result.per_class_iou[4] is None and result.per_class_acc[4] is None  # class 4 never occurs
    assert result.miou == pytest.approx(sum(result.per_class_iou[:4]) / 4)
    assert result.aacc == pytest.approx(100 * (pred == target).float().mean().item())
    per_image = [SegmentationResult.from_confusion(confusion_matrix(p, t, 5), 1).miou
                 for p, t in ((big_pred, big), (small_pred, small))]
    assert result.miou != pytest.approx(sum(per_image) / 2)  # not a mean of per-image scores


def test_sliding_windows_flip_and_scales_average_as_mmseg_does():
    from modernconv.dense.inference import SegmentMode, segment, slide_logits

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 1)  # a per-pixel model: every window gives the whole image's logits there
    x = torch.randn(1, 3, 50, 70)
    with torch.no_grad():
        whole = conv(x)
        assert torch.allclose(slide_logits(conv, x, crop=32, stride=21), whole, atol=1e-6)  # overlaps averaged
        assert torch.allclose(segment(conv, x, (50, 70), SegmentMode(crop=32, stride=21)), whole, atol=1e-6)
        flipped = segment(conv, x, (50, 70), SegmentMode(flip=True))
        assert torch.allclose(flipped, whole.softmax(1), atol=1e-6)  # a per-pixel model is flip-equivariant
        scaled = segment(conv, x, (25, 35), SegmentMode(scales=(0.5, 1.0)))
        expected = (torch.nn.functional.interpolate(conv(torch.nn.functional.interpolate(
            x, size=(25, 35), mode="bilinear", align_corners=False)), size=(25, 35)).softmax(1) +
            torch.nn.functional.interpolate(whole, size=(25, 35), mode="bilinear", align_corners=False).softmax(1)) / 2
        assert torch.allclose(scaled, expected, atol=1e-5)
    with pytest.raises(ConfigError, match="stride"):
        slide_logits(conv, x, crop=32, stride=40)
