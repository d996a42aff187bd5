"""`import modernconv.timm_plugin`: the models timm lacks, in timm's registry, taken by what is built on timm —
timm's own create_model / features_only / optimizer, transformers' TimmBackbone and segmentation_models_pytorch's
`tu-` encoders, each library the oracle of its own contract."""
import pytest
import timm
import timm.optim
import torch

import modernconv
import modernconv.timm_plugin as plugin


def test_every_model_timm_lacks_is_registered_and_timms_own_stay_timms():
    ours = set(modernconv.list_models())
    assert set(plugin.REGISTERED) == {n for n in ours if n in plugin.default_cfgs}
    assert {"unireplknet_a", "convnext_isotropic_small", "resnet50_to_convnext_t"} <= set(plugin.REGISTERED)
    assert "convnext_tiny" not in plugin.REGISTERED and type(timm.create_model("convnext_tiny")).__module__.startswith("timm")
    assert timm.list_models("unireplknet_*") == sorted(n for n in ours if n.startswith("unireplknet_"))


def test_timm_builds_trains_and_cuts_our_models():
    model = timm.create_model("unireplknet_a", num_classes=3, drop_path_rate=0.1)  # as timm's train.py asks
    assert isinstance(model, modernconv.ModernConvNet) and model.pretrained_cfg["architecture"] == "unireplknet_a"
    assert timm.data.resolve_model_data_config(model)["input_size"] == (3, 224, 224)
    optimizer = timm.optim.create_optimizer_v2(model, "adamw", lr=1e-3, weight_decay=0.05)
    x, y = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 2, 0])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and any(not torch.equal(p, before[n]) for n, p in model.named_parameters())
    backbone = timm.create_model("unireplknet_a", features_only=True, out_indices=(1, 2, 3))
    maps = backbone(torch.randn(1, 3, 64, 64))
    assert backbone.feature_info.channels() == [m.shape[1] for m in maps] == [80, 160, 320]
    assert backbone.feature_info.reduction() == [8, 16, 32]


def test_transformers_timm_backbone_wraps_our_model():
    from transformers import TimmBackbone, TimmBackboneConfig

    wrapped = TimmBackbone(TimmBackboneConfig(backbone="unireplknet_a", use_pretrained_backbone=False,
                                              out_indices=(1, 2, 3)))
    maps = wrapped(torch.randn(1, 3, 64, 64)).feature_maps
    assert [m.shape[1:] for m in maps] == [(80, 8, 8), (160, 4, 4), (320, 2, 2)] and wrapped.channels == [80, 160, 320]


def test_segmentation_models_pytorch_builds_a_unet_on_our_encoder():
    smp = pytest.importorskip("segmentation_models_pytorch")  # installed by the test extra
    unet = smp.Unet("tu-unireplknet_a", encoder_weights=None, classes=2)
    out = unet(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 2, 64, 64)
    out.mean().backward()
    assert all(p.grad is not None for p in unet.encoder.parameters() if p.requires_grad)
