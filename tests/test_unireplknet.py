"""UniRepLKNet: exact sizes, kernel and branch tables, options, odd inputs and the authors' checkpoint layouts."""
import re

import pytest
import torch
from torch import nn

import modernconv
from helpers import meta_model, randomize_
from modernconv.layers import DilatedReparamBlock
from modernconv.models.unireplknet import UniRepLKNetBlock

PAPER_BRANCHES = {  # FACTS.md: K -> (kernels, dilations)
    17: ((5, 9, 3, 3, 3), (1, 2, 4, 5, 7)), 15: ((5, 7, 3, 3, 3), (1, 2, 3, 5, 7)),
    13: ((5, 7, 3, 3, 3), (1, 2, 3, 4, 5)), 11: ((5, 5, 3, 3, 3), (1, 2, 3, 4, 5)),
    9: ((5, 5, 3, 3), (1, 2, 3, 4)), 7: ((5, 3, 3), (1, 2, 3)), 5: ((3, 3), (1, 2)),
}


def test_registry_has_every_variant():
    assert modernconv.list_models("unireplknet_*") == sorted(f"unireplknet_{s}" for s in "a f p n t s b l xl".split())


def _block_kernels(model) -> list[list[int]]:
    return [[b.conv_dw.kernel_size if isinstance(b.conv_dw, DilatedReparamBlock) else b.conv_dw.kernel_size[0]
             for b in stage.blocks] for stage in model.stages]


def test_kernel_tables_follow_the_paper():
    assert _block_kernels(meta_model("unireplknet_a")) == [[3, 3], [13, 13], [13] * 6, [13, 13]]
    assert _block_kernels(meta_model("unireplknet_n"))[2] == [13] * 8
    assert _block_kernels(meta_model("unireplknet_t"))[2] == [13, 3] * 9
    assert _block_kernels(meta_model("unireplknet_s")) == [[3] * 3, [13] * 3, [13, 3, 3] * 9, [13] * 3]


@pytest.mark.parametrize("kernel", sorted(PAPER_BRANCHES))
def test_dilated_branches_follow_the_paper(kernel):
    kernels, dilations = PAPER_BRANCHES[kernel]
    block = UniRepLKNetBlock(8, kernel)
    assert isinstance(block.conv_dw, DilatedReparamBlock) and block.conv_dw.conv.kernel_size == (kernel, kernel)
    convs = [branch.conv for branch in block.conv_dw.branches.values()]
    assert [(c.kernel_size[0], c.dilation[0]) for c in convs] == list(zip(kernels, dilations))
    assert all(c.padding[0] == (r * (k - 1) + 1) // 2 and c.bias is None for c, k, r in zip(convs, kernels, dilations))
    x = torch.randn(1, 8, 19, 23)
    assert block.eval()(x).shape == x.shape


def test_block_structure():
    block = UniRepLKNetBlock(16, 3)
    assert isinstance(block.conv_dw, nn.Conv2d) and block.conv_dw.bias is None and block.conv_dw.groups == 16
    assert isinstance(block.norm, nn.BatchNorm2d) and isinstance(block.norm_mlp, nn.BatchNorm2d)
    assert block.se.fc1.out_channels == 4 and block.mlp.fc1.out_features == 64 and block.mlp.fc2.bias is None
    assert torch.all(block.gamma == 1e-6)
    deploy = UniRepLKNetBlock(16, 13, deploy=True)
    assert deploy.conv_dw.conv.bias is not None and not len(deploy.conv_dw.branches)
    assert deploy.gamma is None and deploy.mlp.grn.bias is None and deploy.mlp.fc2.bias is not None


def test_stem_downsampling_head_and_drop_path():
    model = modernconv.create_model("unireplknet_a", drop_path_rate=0.3, head_init_scale=0.0)
    assert [type(m) for m in model.stem] == [nn.Conv2d, modernconv.layers.LayerNorm2d, nn.GELU, nn.Conv2d,
                                             modernconv.layers.LayerNorm2d]
    assert model.stem[0].out_channels == 20 and model.stem[0].stride == (2, 2) and model.stem[1].eps == 1e-6
    assert model.stages[1].downsample[0].kernel_size == (3, 3) and model.stages[1].downsample[0].stride == (2, 2)
    rates = [b.drop_path.p for s in model.stages for b in s.blocks]
    assert rates == pytest.approx(torch.linspace(0, 0.3, 12).tolist())
    assert model.head.fc.weight.abs().max() == 0 and model.head.norm.eps == 1e-6
    assert [f["reduction"] for f in model.feature_info] == [4, 8, 16, 32]


def test_tables_are_overridable_data():
    model = modernconv.create_model("unireplknet_a", num_classes=3, kernel_sizes=[[5, 3], [7, 9], [11] * 6, [17, 3]],
                                    dilated_branches={17: [(5, 1), (3, 8)]})
    assert _block_kernels(model) == [[5, 3], [7, 9], [11] * 6, [17, 3]]
    assert list(model.stages[3].blocks[0].conv_dw.branches) == ["k5_r1", "k3_r8"]
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 3)
    custom = modernconv.create_model("unireplknet_a", depths=(1, 1, 1, 1), kernel_sizes=[[3], [5], [7], [9]])
    assert _block_kernels(custom) == [[3], [5], [7], [9]]


@pytest.mark.parametrize("kwargs, message", [
    (dict(kernel_sizes=[[3, 3], [13, 13], [13] * 5, [13, 13]]), "one kernel size per block"),
    (dict(kernel_sizes=[[3, 3], [13, 19], [13] * 6, [13, 13]]), "kernel size 19 is not supported"),
    (dict(kernel_sizes=[[3, 4], [13, 13], [13] * 6, [13, 13]]), "kernel size 4 is not supported"),
    (dict(dilated_branches={13: [(5, 1), (7, 3)]}), r"\(k=7, r=3\) does not fit a 13x13 kernel"),
    (dict(dilated_branches={13: [(4, 1)]}), "k must be odd"),
    (dict(dilated_branches={13: [(3, 2), (3, 2)]}), "repeat a"),
    (dict(depths=(2, 2, 2, 2)), "no default kernel table for depths"),
    (dict(depths=(2, 2, 2)), "must have the same length"),
])
def test_unsupported_tables_are_clear_errors(kwargs, message):
    with pytest.raises(modernconv.ConfigError, match=message):
        meta_model("unireplknet_a", **kwargs)
    assert issubclass(modernconv.ConfigError, modernconv.UserError)


def test_sync_bn_option():
    model = modernconv.create_model("unireplknet_a", use_sync_bn=True, num_classes=4).eval()
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert bns and all(isinstance(m, nn.SyncBatchNorm) for m in bns)
    assert len(bns) == 2 * 12 + 6 * 10  # block BN + FFN BN; lk_origin BN + 5 branch BNs in the 10 LarK blocks
    with torch.no_grad():
        assert torch.isfinite(model(torch.randn(2, 3, 64, 64))).all()
    deployed = modernconv.reparameterize(model)
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in deployed.modules())


@pytest.mark.parametrize("size", [(97, 131), (384, 128)])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_odd_and_non_square_inputs(size, training):
    model = modernconv.create_model("unireplknet_a", num_classes=5).train(training)
    randomize_(model)
    with torch.set_grad_enabled(training):
        out = model(torch.randn(2, 3, *size))
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    feats = model.forward_features(torch.randn(1, 3, *size))
    assert feats.shape[2:] == (-(-size[0] // 32), -(-size[1] // 32))


# ---- the authors' checkpoint layouts ----

_BLOCK_TO_AUTHORS = (  # our block parameter -> the authors' (FACTS.md); the first match applies
    (r"conv_dw\.conv\.", "dwconv.lk_origin."),
    (r"conv_dw\.bn\.", "dwconv.origin_bn."),
    (r"conv_dw\.branches\.k(\d+)_r(\d+)\.conv\.", r"dwconv.dil_conv_k\1_\2."),
    (r"conv_dw\.branches\.k(\d+)_r(\d+)\.bn\.", r"dwconv.dil_bn_k\1_\2."),
    (r"conv_dw\.", "dwconv."),
    (r"se\.fc1\.", "se.down."),
    (r"se\.fc2\.", "se.up."),
    (r"mlp\.fc1\.", "pwconv1.1."),
    (r"mlp\.grn\.weight", "act.1.gamma"),
    (r"mlp\.grn\.bias", "act.1.beta"),
    (r"mlp\.fc2\.", "pwconv2.0."),
    (r"norm_mlp\.", "pwconv2.2."),
    (r"(norm\.|gamma)", r"\1"),
)


def to_authors_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our state dict renamed and reshaped into the authors' UniRepLKNet release layout."""
    out = {}
    for key, value in state.items():
        block = re.match(r"stages\.(\d+)\.blocks\.(\d+)\.(.*)", key)
        if block:
            i, j, rest = block.groups()
            new = next(f"stages.{i}.{j}." + re.sub("^" + p, r, rest) for p, r in _BLOCK_TO_AUTHORS
                       if re.match(p, rest))
        else:
            new = re.sub(r"^stem\.", "downsample_layers.0.", key)
            new = re.sub(r"^stages\.(\d+)\.downsample\.", r"downsample_layers.\1.", new)
            new = re.sub(r"^head\.norm\.", "norm.", new)
            new = re.sub(r"^head\.fc\.", "head.", new)
        out[new] = value.reshape(1, 1, 1, -1) if ".act.1." in new else value
    return out


@pytest.mark.parametrize("deploy", [False, True], ids=["train", "deploy"])
def test_authors_release_layout_loads(deploy, tmp_path):
    train = modernconv.create_model("unireplknet_a", num_classes=10).eval()
    randomize_(train)
    ours = modernconv.reparameterize(train) if deploy else train
    authors = to_authors_layout(ours.state_dict())
    expected = {"downsample_layers.0.3.weight", "downsample_layers.1.0.weight", "stages.0.0.dwconv.weight",
                "stages.2.5.se.down.weight", "stages.2.5.pwconv1.1.weight", "stages.2.5.act.1.gamma",
                "stages.2.5.pwconv2.0.weight", "stages.2.5.dwconv.lk_origin.weight", "norm.weight", "head.bias"}
    expected |= ({"stages.0.0.dwconv.bias", "stages.1.1.dwconv.lk_origin.bias", "stages.3.1.pwconv2.0.bias"}
                 if deploy else {"stages.1.1.dwconv.dil_conv_k7_2.weight", "stages.1.1.dwconv.dil_bn_k3_5.running_var",
                                 "stages.1.1.dwconv.origin_bn.bias", "stages.3.1.pwconv2.2.running_mean",
                                 "stages.3.1.gamma", "stages.3.1.norm.weight", "stages.3.1.act.1.beta"})
    assert expected <= set(authors) and authors["stages.2.5.act.1.gamma"].shape == (1, 1, 1, 640)
    path = tmp_path / "unireplknet_a.pth"
    torch.save({"model": authors}, path)
    fresh = modernconv.create_model("unireplknet_a", num_classes=10, deploy=deploy).eval()
    report = modernconv.load_checkpoint(fresh, path)
    assert report.source_format == "unireplknet-official" and report.clean
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), ours.state_dict().values()))
    x = torch.randn(2, 3, 45, 61)
    with torch.no_grad():
        assert torch.equal(fresh(x), ours(x))


def test_authors_deploy_release_does_not_fit_the_train_form(tmp_path):
    deployed = modernconv.create_model("unireplknet_a", deploy=True)
    path = tmp_path / "deploy.pth"
    torch.save(to_authors_layout(deployed.state_dict()), path)
    with pytest.raises(modernconv.CheckpointError, match="missing"):
        modernconv.load_checkpoint(modernconv.create_model("unireplknet_a"), path)
