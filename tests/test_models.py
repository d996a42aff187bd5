"""The model contract, parametrized over every registered model."""
import copy
import dataclasses

import pytest
import timm.data
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import modernconv
from helpers import is_large, side_for
from modernconv.errors import InputShapeError, ModelNotFoundError, UserError
from modernconv.models import registry
from modernconv.models.features import FeatureBackbone
from modernconv.optim import layer_ids

ALL = modernconv.list_models()
SMALL = [n for n in ALL if not is_large(n)]
LARGE = [n for n in ALL if n not in SMALL]
FORMS = [(n, False) for n in SMALL] + [(n, True) for n in SMALL if n.startswith("unireplknet")]

_cache: dict[str, torch.nn.Module] = {}


def built(name: str) -> torch.nn.Module:
    """One instance per small model for the whole module (building is the slow part)."""
    if name not in _cache:
        _cache[name] = modernconv.create_model(name, num_classes=7)
    return _cache[name]


def image(model, batch=2, side=64):
    s = side_for(model, side)
    return torch.randn(batch, model.in_chans, s, s)


def test_registry_lists_every_family():
    assert ALL == sorted(ALL)
    for pattern in ("convnext_*", "convnextv2_*", "convnext_isotropic_*", "convmixer_*"):
        assert modernconv.list_models(pattern)
    assert modernconv.list_models("convnextv2_*") == [n for n in ALL if n.startswith("convnextv2_")]
    assert modernconv.list_models("nothing*") == []


@pytest.mark.parametrize("name", SMALL)
def test_forward_backward(name):
    model = built(name).train()
    x = image(model)
    out = model(x)
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    out.logsumexp(1).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing
    model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("name", SMALL)
def test_features_head_and_intermediates(name):
    model = built(name).eval()
    x = image(model)
    with torch.no_grad():
        feats = model.forward_features(x)
        last = model.feature_info[-1]
        assert feats.shape == (2, last["num_chs"], x.shape[2] // last["reduction"], x.shape[3] // last["reduction"])
        assert torch.allclose(model.forward_head(feats), model(x), atol=1e-6)
        assert model.forward_head(feats, pre_logits=True).shape == (2, model.num_features)
        final, inter = model.forward_intermediates(x)
        assert len(inter) == len(model.feature_info)
        for t, info in zip(inter, model.feature_info):
            assert t.shape[1] == info["num_chs"] and t.shape[2] == x.shape[2] // info["reduction"]
        assert torch.equal(final, feats) and torch.equal(inter[-1], feats)
        only = model.forward_intermediates(x, indices=[0, -1], intermediates_only=True)
        assert len(only) == 2 and torch.equal(only[0], inter[0]) and torch.equal(only[1], feats)
        assert torch.equal(model.forward_intermediates(x, indices=1, intermediates_only=True)[0], feats)


@pytest.mark.isa_sensitive
@pytest.mark.parametrize("name, deploy", FORMS, ids=[f"{n}{'-deploy' if d else ''}" for n, d in FORMS])
def test_timm_contract(name, deploy):
    """timm 1.0's contract: intermediates, pooling choices, backbones, pretrained_cfg (deploy forms too)."""
    model = (built(name) if not deploy else modernconv.create_model(name, num_classes=7, deploy=True)).eval()
    x = image(model)
    with torch.no_grad():
        final, inter = model.forward_intermediates(x)
        # stop_early ends at the last selected stage; NHWC is NCHW permuted
        early, picked = model.forward_intermediates(x, indices=[0], stop_early=True, output_fmt="NHWC")
        assert torch.equal(early, inter[0]) and torch.equal(picked[0], inter[0].permute(0, 2, 3, 1))
        # the pooling choices of the head (a copy of it, on the model's features)
        head = copy.deepcopy(model.head)
        for pool, pooled in (("max", final.amax((2, 3))), ("avgmax", 0.5 * (final.mean((2, 3)) + final.amax((2, 3))))):
            head.reset(3, pool)
            assert torch.allclose(head(final), head.fc(head.norm(pooled)), atol=1e-5)
        head.reset(0, "")
        assert torch.allclose(head(final), head.norm(final.permute(0, 2, 3, 1)).permute(0, 3, 1, 2), atol=1e-5)
        # a backbone of the last two stages: the maps of forward_intermediates, every parameter used
        backbone = FeatureBackbone(copy.deepcopy(model), out_indices=(-2, -1))
        maps = backbone(x)
        assert [m.shape for m in maps] == [t.shape for t in inter[-2:]]
        assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(maps, inter[-2:]))
    n = len(model.feature_info)
    assert backbone.feature_info.channels() == [f["num_chs"] for f in model.feature_info[-2:]]
    assert backbone.feature_info.reduction() == [f["reduction"] for f in model.feature_info[-2:]]
    assert backbone.feature_info.module_name(n - 2) == model.feature_info[n - 2]["module"]  # idx: a stage (timm)
    assert backbone.feature_info.module_name() == [f["module"] for f in model.feature_info[-2:]]
    sum(m.sum() for m in backbone.train()(x)).backward()
    assert all(p.grad is not None for p in backbone.parameters())
    assert model.head_hidden_size == model.num_features
    cfg = timm.data.resolve_model_data_config(model)
    data = model.data_config
    assert (cfg["input_size"], cfg["mean"], cfg["std"], cfg["crop_pct"], cfg["interpolation"]) == (
        tuple(data.input_size), tuple(data.mean), tuple(data.std), data.crop_pct, data.interpolation)
    assert model.pretrained_cfg["num_classes"] == 7 and model.pretrained_cfg["classifier"] == "head.fc"
    assert dict(model.named_modules())[model.pretrained_cfg["first_conv"]] is not None


@pytest.mark.parametrize("name", SMALL)
def test_reset_classifier(name):
    model = modernconv.create_model(name)
    x = image(model)
    model.reset_classifier(5)
    assert model.get_classifier().out_features == 5 and model(x).shape == (2, 5)
    model.reset_classifier(0)
    assert model(x).shape == (2, model.num_features) and model.num_classes == 0


@pytest.mark.parametrize("name", SMALL)
def test_checkpoint_round_trip(name, tmp_path):
    model = built(name).eval()
    path = modernconv.save_checkpoint(model, tmp_path / "m.safetensors")
    again = modernconv.create_model(name, num_classes=7, pretrained=path).eval()
    x = image(model)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))


@pytest.mark.parametrize("name", SMALL)
def test_layer_groups_cover_every_parameter_in_depth_order(name):
    model = built(name)
    ids = layer_ids(model)
    assert set(ids) == {n for n, _ in model.named_parameters()}
    assert all(ids[n] == 0 for n in ids if n.startswith("stem."))
    head = max(ids.values())
    assert all(ids[n] == head for n in ids if n.startswith("head."))
    assert sorted(set(ids.values())) == list(range(head + 1))
    order = [ids[n] for n in ids if not n.startswith("head.")]
    assert order == sorted(order)  # registration order runs from the stem to the head


@pytest.mark.parametrize("name", LARGE)
def test_large_models_forward_small_input(name):
    model = modernconv.create_model(name).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, side_for(model, 32), side_for(model, 32)))
    assert out.shape == (1, 1000) and torch.isfinite(out).all()


@pytest.mark.isa_sensitive
@pytest.mark.parametrize("name", ["convnext_atto", "convnextv2_atto", "convmixer_256_8", "convnext_isotropic_small"])
def test_gradient_checkpointing_gives_same_gradients(name):
    torch.manual_seed(1)
    model = modernconv.create_model(name, num_classes=3).train()
    x = image(model)
    grads = []
    for enable in (False, True):
        model.set_grad_checkpointing(enable)
        model.zero_grad()
        torch.manual_seed(2)
        model(x).square().mean().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)


def test_drop_path_is_random_in_training_and_off_in_eval():
    model = modernconv.create_model("convnext_atto", drop_path_rate=0.5, layer_scale_init_value=1.0)
    x = torch.randn(2, 3, 64, 64)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


def test_options_change_the_architecture():
    model = modernconv.create_model("convnext_atto", in_chans=1, num_classes=0, kernel_size=5,
                                    layer_scale_init_value=0, head_init_scale=0.0)
    assert model.stem[0].in_channels == 1 and model.stages[0].blocks[0].conv_dw.kernel_size == (5, 5)
    assert model.stages[0].blocks[0].gamma is None
    # None means "the default", as in timm.create_model
    assert modernconv.create_model("convnext_atto", layer_scale_init_value=None).stages[0].blocks[0].gamma is not None
    assert model(torch.randn(1, 1, 64, 64)).shape == (1, 320)
    assert model.data_config.input_size == (1, 224, 224) and len(model.data_config.mean) == 1
    head = modernconv.create_model("convnext_atto", head_init_scale=0.0).head.fc
    assert head.weight.abs().max() == 0 and head.bias.abs().max() == 0


def test_data_configs():
    assert modernconv.create_model("convnext_tiny").data_config.crop_pct == 0.875
    cifar = modernconv.create_model("convmixer_256_8").data_config
    assert cifar.input_size == (3, 32, 32)


def test_unknown_model_suggests_close_names():
    with pytest.raises(ModelNotFoundError, match="did you mean convnext_tiny"):
        modernconv.create_model("convnext_tinny")


def test_user_mistakes_are_user_errors_and_bugs_stay_bugs(monkeypatch):
    with pytest.raises(UserError, match=r"convnext_atto does not take 'depthz' \(did you mean depths\?\); it takes: "):
        modernconv.create_model("convnext_atto", depthz=3)
    with pytest.raises(UserError, match="kernel_size must be a positive odd number, got 4"):
        modernconv.create_model("convnext_atto", kernel_size=4)
    with pytest.raises(UserError, match="stage index 7 out of range"):
        built("convnext_atto").forward_intermediates(torch.randn(1, 3, 32, 32), indices=[7])

    def broken_builder(depths=(1,), dims=(8,)):
        return len(5)  # a bug inside a builder: a TypeError that is nobody's option mistake

    spec = registry.get_model_spec("convnext_atto")
    monkeypatch.setitem(registry._REGISTRY, "convnext_atto", dataclasses.replace(spec, builder=broken_builder))
    with pytest.raises(TypeError) as raised:
        modernconv.create_model("convnext_atto")
    assert not isinstance(raised.value, UserError)


def test_wrong_channels_is_a_clear_error():
    with pytest.raises(InputShapeError, match="expects 3 input channels, got 1"):
        modernconv.create_model("convnext_atto")(torch.randn(1, 1, 64, 64))


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 200), w=st.integers(1, 200))
def test_input_sizes_follow_the_stride(h, w):
    model = built("convnext_atto").eval()
    x = torch.randn(1, 3, h, w)
    if h < 32 or w < 32:
        with pytest.raises(InputShapeError, match="needs inputs of at least 32x32"):
            model.forward_features(x)
    else:
        with torch.no_grad():
            assert model.forward_features(x).shape == (1, 320, h // 32, w // 32)
