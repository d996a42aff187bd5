"""Structural re-parameterisation: deploy forms give the train form's eval outputs in every dtype."""
import copy

import pytest
import torch

import modernconv
from helpers import randomize_, reference
from modernconv.layers import DILATED_BRANCHES, DilatedReparamBlock
from modernconv.models.unireplknet import UniRepLKNetBlock

pytestmark = pytest.mark.isa_sensitive  # numeric comparisons between kernels: CI reruns them on AVX2

ODD = (45, 61)


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    """Largest deviation relative to the largest reference magnitude, in float64."""
    out, ref = out.double(), ref.double()
    return ((out - ref).abs().max() / ref.abs().max()).item()


def randomized(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Eval-mode ``module`` with random weights, BN statistics and affine parameters, GRN parameters and
    layer scale (0.5..1)."""
    randomize_(module, seed)
    return module.eval()


def outputs(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return module(x)


def check_all_dtypes(train: torch.nn.Module, x: torch.Tensor) -> None:
    """fp32 to 1e-5 relative; fp64 far tighter; bf16 no worse than running the train form in bf16."""
    ref = outputs(train, x)
    assert rel_err(outputs(modernconv.reparameterize(train), x), ref) < 1e-5
    train64 = copy.deepcopy(train).double()
    assert rel_err(outputs(modernconv.reparameterize(train64), x.double()), outputs(train64, x.double())) < 1e-12
    train16 = copy.deepcopy(train).bfloat16()
    deploy16 = modernconv.reparameterize(train16)
    assert all(p.dtype == torch.bfloat16 for p in deploy16.parameters())
    train_err = rel_err(outputs(train16, x.bfloat16()), ref)
    assert rel_err(outputs(deploy16, x.bfloat16()), ref) < max(2 * train_err, 1e-2)


@pytest.mark.parametrize("kernel", sorted(DILATED_BRANCHES))
def test_dilated_reparam_block_merges_exactly(kernel):
    block = randomized(DilatedReparamBlock(6, kernel, DILATED_BRANCHES[kernel]))
    x = torch.randn(2, 6, *ODD)
    deployed = modernconv.reparameterize(block)
    assert not len(deployed.branches) and deployed.conv.bias is not None and deployed.deploy
    check_all_dtypes(block, x)


@pytest.mark.parametrize("kernel", [3, *sorted(DILATED_BRANCHES)])
def test_unireplknet_block_reparameterizes_exactly(kernel):
    block = randomized(UniRepLKNetBlock(8, kernel), seed=kernel)
    check_all_dtypes(block, torch.randn(3, 8, *ODD))
    deployed = modernconv.reparameterize(block)
    again = UniRepLKNetBlock(8, kernel, deploy=True)
    again.load_state_dict(deployed.state_dict(), strict=True)


@pytest.mark.parametrize("name", ["unireplknet_a", "unireplknet_t"])
def test_unireplknet_end_to_end(name):
    model = randomized(modernconv.create_model(name, num_classes=11))
    check_all_dtypes(model, torch.randn(2, 3, *ODD))


@pytest.mark.parametrize("name", ["convnext_atto", "convnextv2_atto"])
def test_convnext_folds_layer_scale_and_grn_bias(name):
    model = randomized(modernconv.create_model(name, num_classes=11))
    deployed = modernconv.reparameterize(model)
    names = set(deployed.state_dict())
    assert not any(n.endswith(".gamma") or n.endswith("grn.bias") for n in names)
    assert len(names) < len(model.state_dict())
    check_all_dtypes(model, torch.randn(2, 3, 64, 96))


def test_isotropic_convnext_with_layer_scale():
    model = randomized(modernconv.create_model("convnext_isotropic_small", num_classes=5, depth=2,
                                               layer_scale_init_value=1e-6))
    check_all_dtypes(model, torch.randn(2, 3, 48, 80))


def test_convmixer_has_nothing_to_fold():
    model = randomized(modernconv.create_model("convmixer_256_8"))
    deployed = modernconv.reparameterize(model)
    assert "deploy" not in deployed.model_kwargs and not hasattr(deployed, "deploy")
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(outputs(deployed, x), outputs(model, x))


@pytest.mark.parametrize("name", ["unireplknet_a", "convnextv2_atto", "convnext_atto"])
def test_deploy_model_loads_the_reparameterized_state_strictly(name, tmp_path):
    model = randomized(modernconv.create_model(name, num_classes=7))
    deployed = modernconv.reparameterize(model)
    assert deployed.deploy and deployed.model_kwargs == {"num_classes": 7, "deploy": True}
    assert not model.deploy and "deploy" not in model.model_kwargs
    built = modernconv.create_model(name, num_classes=7, deploy=True).eval()
    built.load_state_dict(deployed.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 96)
    assert torch.equal(outputs(built, x), outputs(deployed, x))
    path = modernconv.save_checkpoint(deployed, tmp_path / "deploy.safetensors")
    loaded = modernconv.create_model(name, pretrained=path, **deployed.model_kwargs).eval()
    assert torch.equal(outputs(loaded, x), outputs(deployed, x))


def test_reparameterize_is_idempotent_and_copies_unless_inplace():
    model = randomized(modernconv.create_model("unireplknet_a", num_classes=4))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    once = modernconv.reparameterize(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    twice = modernconv.reparameterize(once)
    assert once.state_dict().keys() == twice.state_dict().keys()
    assert all(torch.equal(v, twice.state_dict()[k]) for k, v in once.state_dict().items())
    assert modernconv.reparameterize(model, inplace=True) is model and model.deploy
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in once.state_dict().items())


def test_deploy_form_is_smaller_and_has_no_batchnorm():
    model = modernconv.create_model("unireplknet_a")
    deployed = modernconv.reparameterize(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in deployed.modules())
    assert sum(p.numel() for p in deployed.parameters()) == int(reference("unireplknet_a", "deploy")["params"])
