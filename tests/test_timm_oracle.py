"""Same random weights in timm and in modernconv give the same logits and features.

timm's state dict goes through ``load_checkpoint`` as a file, so its layout (incl. the 1x1-conv MLP
weights of atto..nano and ConvMixer's names) is converted exactly as a user's would be.
"""
import pytest
import timm
import torch
from safetensors.torch import save_file

import modernconv
from helpers import calibrate_batchnorm_, is_large, randomize_, side_for
from modernconv.checkpoint import load_tensors

pytestmark = pytest.mark.isa_sensitive  # numeric comparisons between kernels: CI reruns them on AVX2

SHARED = [n for n in modernconv.list_models() if n in timm.list_models()]


def test_every_family_with_a_timm_twin_is_compared():
    assert {n.split("_")[0] for n in SHARED} == {"convnext", "convnextv2", "convmixer"}
    assert len(SHARED) == 20


@pytest.mark.parametrize("name", SHARED)
def test_same_weights_same_outputs(name, tmp_path):
    with torch.device("meta"):
        reference = timm.create_model(name)
        ours = modernconv.create_model(name)
    reference = reference.to_empty(device="cpu").eval()
    randomize_(reference)
    side = side_for(ours, 32 if is_large(name) else 64)
    x = torch.randn(2, 3, side, side)
    calibrate_batchnorm_(reference, x)
    ours = ours.to_empty(device="cpu").eval()
    state = {k: v.contiguous() for k, v in reference.state_dict().items()}
    if is_large(name):  # the same conversion as its family's small models, without writing gigabytes
        report = load_tensors(ours, state, {}, "timm state dict")
    else:
        save_file(state, tmp_path / "timm.safetensors")
        report = modernconv.load_checkpoint(ours, tmp_path / "timm.safetensors")
    assert report.clean and not report.notes
    with torch.no_grad():
        expected, got = reference(x), ours(x)
        assert 0.1 < expected.abs().mean() < 10  # logits of magnitude ~1, so 1e-4 is a strict test
        assert (expected[0] - expected[1]).abs().max() > 0.05  # and they depend on the image
        assert (expected - got).abs().max() <= 1e-4
        assert (reference.forward_features(x) - ours.forward_features(x)).abs().max() <= 1e-4
