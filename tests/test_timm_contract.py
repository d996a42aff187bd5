"""timm 1.0's model contract with timm as the oracle where it has the model: create_model arguments,
forward_intermediates, prune_intermediate_layers, odd input sizes, features_only backbones (into torchvision's FPN
and a detection model). The contract on every registered model is in test_models.py."""
from collections import OrderedDict

import pytest
import timm
import torch
import torchvision
from safetensors.torch import save_file

import modernconv
from helpers import calibrate_batchnorm_, randomize_

pytestmark = pytest.mark.isa_sensitive  # numeric comparisons between kernels: CI reruns them on AVX2

@pytest.mark.parametrize("name", ["convnext_atto", "convnextv2_atto", "convmixer_768_32"])
def test_intermediates_pruning_and_odd_sizes_match_timm(name, tmp_path):
    reference = timm.create_model(name).eval()
    randomize_(reference)
    x = torch.randn(2, 3, 100, 84)  # not multiples of the stride: stride-p convs drop the remainder
    calibrate_batchnorm_(reference, x)
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, tmp_path / "w.safetensors")
    torch.save(reference.state_dict(), tmp_path / "ref.pt")
    ours = modernconv.create_model(name, pretrained=tmp_path / "w.safetensors").eval()
    with torch.no_grad():
        assert (reference(x) - ours(x)).abs().max() <= 1e-4
        for kwargs in ({}, {"indices": 2}, {"indices": [0, 2], "stop_early": True}):
            expected, got = reference.forward_intermediates(x, **kwargs), ours.forward_intermediates(x, **kwargs)
            assert (expected[0] - got[0]).abs().max() <= 1e-4
            assert all((a - b).abs().max() <= 1e-4 for a, b in zip(expected[1], got[1]))
    # pruned, the models return what timm's do: to the last kept stage's map when the end is cut (the README's
    # example indices=(0, 1)), after a new classifier too
    for indices in (2, (0, 1), (0, 3), (1,)):
        reference = timm.create_model(name).eval()
        reference.load_state_dict(torch.load(tmp_path / "ref.pt", weights_only=True))
        ours = modernconv.create_model(name, pretrained=tmp_path / "w.safetensors").eval()
        ours.reset_classifier(5)
        assert reference.prune_intermediate_layers(indices) == ours.prune_intermediate_layers(indices)
        with torch.no_grad():
            expected, got = reference(x), ours(x)
            assert expected.shape == got.shape and (expected - got).abs().max() <= 1e-4, indices
            assert (reference.forward_features(x) - ours.forward_features(x)).abs().max() <= 1e-4
        assert ours.num_features == reference.num_features


def test_create_model_takes_timms_arguments(monkeypatch, tmp_path):
    # what timm's train script passes: None for "the default", False for features it does not ask for
    model = modernconv.create_model("convnext_atto", pretrained=False, num_classes=None, drop_rate=None,
                                    drop_path_rate=None, drop_block_rate=None, global_pool=None, bn_momentum=None,
                                    bn_eps=None, scriptable=False, checkpoint_path=None, in_chans=3)
    assert model.num_classes == 1000 and model.head.pool_type == "avg"
    x = torch.randn(2, 3, 64, 64)
    model.reset_classifier(3, global_pool="max")
    assert model(x).shape == (2, 3) and model.head.pool_type == "max"
    model.reset_classifier(0, global_pool="")
    assert model(x).shape == (2, 320, 2, 2)
    with pytest.raises(modernconv.ConfigError, match=r"does not take 'drop_rat' \(did you mean drop_rate\?\)"):
        modernconv.create_model("convnext_atto", drop_rat=0.1)
    with pytest.raises(modernconv.ConfigError, match="global_pool must be one of"):
        modernconv.create_model("convnext_atto", global_pool="fast")
    with pytest.raises(modernconv.ConfigError, match="pass features_only=True"):
        modernconv.create_model("convnext_atto", out_indices=(1, 2))
    monkeypatch.setenv("MODERNCONV_CACHE", str(tmp_path))  # an empty weights cache (see test_released.py)
    with pytest.raises(modernconv.CheckpointError, match="not in the weights cache and nothing is downloaded"):
        modernconv.create_model("convnext_atto", pretrained=True, cache_dir=None)


def test_features_only_matches_timms_feature_info():
    ours = modernconv.create_model("convnext_atto", features_only=True, out_indices=(1, 2, 3))
    reference = timm.create_model("convnext_atto", features_only=True, out_indices=(1, 2, 3))
    assert ours.feature_info.channels() == reference.feature_info.channels()
    assert ours.feature_info.reduction() == reference.feature_info.reduction()
    for query in (lambda f: f.channels(0), lambda f: f.reduction([0, 2]), len, lambda f: f[1]["num_chs"],
                  lambda f: f.get_dicts(keys=["num_chs"]), lambda f: f.out_indices):
        assert query(ours.feature_info) == query(reference.feature_info)  # timm's semantics, call by call
    assert [m.shape for m in ours(torch.randn(1, 3, 96, 96))] == [m.shape for m in reference(torch.randn(1, 3, 96, 96))]


class WithFPN(torch.nn.Module):
    """What a detection user writes: our backbone's maps, named, through torchvision's FPN."""

    def __init__(self, backbone, out_channels: int = 32) -> None:
        super().__init__()
        self.body = backbone
        self.fpn = torchvision.ops.FeaturePyramidNetwork(backbone.feature_info.channels(), out_channels)
        self.out_channels = out_channels

    def forward(self, x):
        return self.fpn(OrderedDict((str(i), m) for i, m in enumerate(self.body(x))))


def test_backbone_trains_in_a_torchvision_detector():
    torch.manual_seed(0)
    backbone = WithFPN(modernconv.create_model("convnextv2_atto", features_only=True, out_indices=(1, 2, 3)))
    maps = backbone(torch.randn(1, 3, 128, 128))
    assert [m.shape[-1] for m in maps.values()] == [16, 8, 4]
    anchors = torchvision.models.detection.anchor_utils.AnchorGenerator(((32,), (64,), (128,)), ((0.5, 1.0, 2.0),) * 3)
    pool = torchvision.ops.MultiScaleRoIAlign(["0", "1", "2"], output_size=7, sampling_ratio=2)
    detector = torchvision.models.detection.FasterRCNN(backbone, num_classes=3, rpn_anchor_generator=anchors,
                                                       box_roi_pool=pool, min_size=128, max_size=128)
    detector.train()
    images = [torch.rand(3, 128, 128), torch.rand(3, 128, 128)]
    targets = [{"boxes": torch.tensor([[10.0, 10, 60, 70]]), "labels": torch.tensor([1])},
               {"boxes": torch.tensor([[30.0, 20, 100, 90]]), "labels": torch.tensor([2])}]
    losses = detector(images, targets)
    loss = sum(losses.values())
    loss.backward()
    assert torch.isfinite(loss) and set(losses) >= {"loss_classifier", "loss_box_reg", "loss_objectness"}
    assert all(p.grad is not None for p in backbone.body.parameters())


@pytest.mark.parametrize("name", ["convnext_atto", "convnextv2_atto", "unireplknet_a", "convmixer_768_32",
                                  "convnext_isotropic_small", "resnet50_to_convnext_t"])
def test_timms_default_cfg_test_passes(name):
    """timm's test_model_default_cfgs, its checks made on ours (at a small input size), and its builder's
    assignment of the cfg."""
    model = modernconv.create_model(name).eval()
    assert model.num_classes >= 0 and model.num_features > 0 and model.head_hidden_size > 0
    cfg, keys = model.default_cfg, model.state_dict().keys()
    assert {"input_size", "pool_size", "crop_pct", "interpolation", "mean", "std", "first_conv", "classifier",
            "num_classes", "license", "architecture"} <= set(cfg)
    small = dict(cfg, input_size=(3, 64, 64))
    model.pretrained_cfg = small  # as timm's builder does: model.pretrained_cfg = model.default_cfg = cfg
    assert model.data_config.input_size == (3, 64, 64)
    with torch.no_grad():
        x = torch.randn(1, *model.default_cfg["input_size"])
        assert model.forward_features(x).shape[-2:] == model.default_cfg["pool_size"]
        model.reset_classifier(0)
        assert model(x).shape == (1, model.num_features)
        model.reset_classifier(0, "")
        assert model(x).shape[1:] == (model.num_features, *model.default_cfg["pool_size"])
    assert any(k.startswith(cfg["classifier"]) for k in keys) and any(k.startswith(cfg["first_conv"]) for k in keys)
    assert timm.data.resolve_model_data_config(model)["input_size"] == (3, 64, 64)


# one small member of each family, UniRepLKNet in both forms and two roadmap steps
TRACEABLE = [("convnext_atto", {}), ("convnextv2_atto", {}), ("unireplknet_a", {}), ("unireplknet_a", "deploy"),
             ("convmixer_256_8", {}), ("convnext_isotropic_small", {"depth": 2}),
             ("resnet50_to_convnext_t", {"step": "resnet50", "depths": (1, 1, 1, 1)}),
             ("resnet50_to_convnext_t", {"depths": (1, 1, 1, 1)})]


@pytest.mark.parametrize("name, kwargs", TRACEABLE, ids=[f"{n}-{k or 'default'}" for n, k in TRACEABLE])
def test_torchscript_fx_and_torchvisions_feature_extractor_give_eagers_outputs(name, kwargs):
    """timm's test_model_forward_torchscript / _fx / backward_fx on ours: the scripted and the fx-traced model
    give eager's outputs and gradients (the tap-cutting depthwise conv runs in full in a traced graph, and as
    code in a scripted one), and torchvision's create_feature_extractor taps the stages."""
    from torchvision.models.feature_extraction import create_feature_extractor

    model = modernconv.create_model(name, num_classes=5, **(kwargs if isinstance(kwargs, dict) else {}))
    randomize_(model)
    if kwargs == "deploy":
        model = modernconv.reparameterize(model)
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    scripted, traced = torch.jit.script(model), torch.fx.symbolic_trace(model)
    with torch.no_grad():
        expected = model(x)
        assert (scripted(x) - expected).abs().max() <= 1e-5 and (traced(x) - expected).abs().max() <= 1e-5
        small = torch.randn(1, 3, 32, 32)  # a map smaller than the kernels' reach: the cut taps
        assert (scripted(small) - model(small)).abs().max() <= 1e-5
        assert (torch.jit.script(traced)(x) - expected).abs().max() <= 1e-5  # timm's forward_fx_torchscript
    model.train()
    traced.train()
    model(x).sum().backward()
    eager = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    traced(x).sum().backward()  # the graph shares the model's parameters
    assert all((p.grad - eager[n]).abs().max() <= 1e-4 * max(1.0, eager[n].abs().max().item())
               for n, p in model.named_parameters())
    stages = [f"{model.stages_attr}.{i}" for i in range(len(model.feature_info))
              ] if model.stages_attr == "stages" else [model.stages_attr]
    extractor = create_feature_extractor(model.eval(), return_nodes=stages)
    with torch.no_grad():
        taps = list(extractor(x).values())
        assert (taps[-1] - model.forward_features(x)).abs().max() <= 1e-5
    with pytest.raises(modernconv.InputShapeError, match="expects 3 input channels"):
        traced(torch.randn(1, 1, 64, 64))  # the traced graph still checks its input
