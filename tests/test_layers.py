"""Layers with a speed trick, against the plain computation: DepthwiseConv2d cutting the taps that only meet
padding, GRN's norm as the square root of a sum of squares."""
import pytest
import torch
import torch.nn.functional as F
from timm.layers.grn import GlobalResponseNorm as TimmGRN

from modernconv.layers import DepthwiseConv2d, GlobalResponseNorm

pytestmark = pytest.mark.isa_sensitive  # numeric comparisons between kernels: CI reruns them on AVX2


@pytest.mark.parametrize("kernel, dilation, height, width", [
    (7, 1, 1, 1), (7, 1, 2, 3), (7, 1, 4, 4), (7, 1, 7, 7), (13, 1, 7, 5), (3, 5, 2, 2), (3, 4, 5, 9),
    (5, 2, 3, 1), (9, 2, 14, 14)])
def test_cut_kernel_gives_the_full_convolution_and_its_gradients(kernel, dilation, height, width):
    torch.manual_seed(0)
    conv = DepthwiseConv2d(6, kernel, dilation).double()
    x = torch.randn(3, 6, height, width, dtype=torch.double, requires_grad=True)
    out = conv(x)
    full = F.conv2d(x, conv.weight, conv.bias, padding=dilation * (kernel - 1) // 2, dilation=dilation, groups=6)
    assert out.shape == x.shape
    torch.testing.assert_close(out, full, rtol=1e-12, atol=1e-12)

    g = torch.randn_like(out)
    grads = torch.autograd.grad(out, (x, conv.weight, conv.bias), g)
    full_grads = torch.autograd.grad(full, (x, conv.weight, conv.bias), g)
    for ours, reference in zip(grads, full_grads):
        torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-12)

    rows, cols = conv.reach(height, width)
    half = (kernel - 1) // 2
    cut = rows < half or cols < half
    assert cut == ((height - 1) < half * dilation or (width - 1) < half * dilation)
    if cut:  # the taps beyond the reach get exactly zero gradient, the others do not
        inner = torch.zeros(kernel, kernel, dtype=torch.bool)
        inner[half - rows:half + rows + 1, half - cols:half + cols + 1] = True
        assert grads[1][:, :, ~inner].abs().max() == 0 and grads[1][:, :, inner].abs().min() > 0


def test_only_odd_kernels():
    with pytest.raises(ValueError, match="odd kernel size"):
        DepthwiseConv2d(4, 8)


@pytest.mark.parametrize("shape", [(3, 5, 4, 8), (4, 1, 1, 8)])
def test_grn_matches_timm_with_finite_gradients_on_all_zero_channels(shape):
    torch.manual_seed(0)
    ours, timm = GlobalResponseNorm(8).double(), TimmGRN(8).double()
    for module in (ours, timm):
        torch.manual_seed(1)
        torch.nn.init.normal_(module.weight)
        torch.nn.init.normal_(module.bias)
    x = torch.randn(*shape, dtype=torch.double)
    x[0, ..., 2] = 0  # a channel that is zero everywhere in one sample (GELU underflow on a 1x1 map)
    x[1, ..., 5] = 0
    upstream = torch.randn(shape, dtype=torch.double)
    grads = []
    for module in (ours, timm):
        xi = x.clone().requires_grad_()
        out = module(xi)
        grads.append((out, torch.autograd.grad(out, [xi, *module.parameters()], upstream)))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-12, atol=1e-12)
    for a, b in zip(grads[0][1], grads[1][1]):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
