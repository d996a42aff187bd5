"""The fast inference path: same tensors in and out, within its stated tolerance of eager fp32, one compilation.

Whether bf16 is native depends on the CPU; each branch is tested on every machine by forcing that check."""
import json
import warnings

import pytest
import torch

import modernconv
from modernconv.cli import main
from modernconv.deploy import TOLERANCE, optimize_for_inference
from modernconv.deploy import fast as fast_module

from helpers import has_cxx_compiler, scaled_error

pytestmark = pytest.mark.isa_sensitive  # numeric comparisons between kernels: CI reruns them on AVX2

SMALL = ["convnext_atto", "convnextv2_atto", "convmixer_256_8", "unireplknet_a"]


def has_native(monkeypatch, *dtypes: str) -> None:
    """Make the fast path see a device that computes exactly ``dtypes`` (and fp32) natively."""
    monkeypatch.setattr(fast_module, "native_dtype", lambda device, dtype: dtype in ("fp32", *dtypes))


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("name", SMALL)
def test_bf16_fast_path_is_within_its_tolerance_and_leaves_the_model_alone(name, monkeypatch):
    has_native(monkeypatch, "bf16")  # a CPU without it still computes bf16 correctly, only slowly
    model = modernconv.create_model(name, num_classes=10).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = optimize_for_inference(model, compile=False)
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
    out = fast(x)
    assert out.dtype == torch.float32 and out.shape == expected.shape and not out.requires_grad
    assert fast.precision == "bf16" and next(fast.model.parameters()).dtype == torch.bfloat16
    assert relative_error(out, expected) <= TOLERANCE["bf16"]
    assert fast.num_classes == 10 and fast.in_chans == 3 and fast.data_config == model.data_config
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # a copy was optimised


@pytest.mark.skipif(not has_cxx_compiler(), reason="torch.compile (Inductor) needs a C++ compiler; none found")
def test_compiled_graph_serves_every_batch_size_with_one_compilation(monkeypatch):
    has_native(monkeypatch, "bf16")
    model = modernconv.create_model("convnext_atto", num_classes=10).eval()
    eager = optimize_for_inference(model, compile=False)
    fast = optimize_for_inference(model)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    for n in (6, 4, 13):  # the first size, a smaller one (padded), a larger one (split)
        x = torch.randn(n, 3, 32, 32)
        out = fast(x)
        assert out.shape == (n, 10) and relative_error(out, eager(x)) <= TOLERANCE["bf16"]
    assert fast.compiled is not None and fast.batch_size == 6
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1


def test_a_device_without_native_bf16_falls_back_to_fp32(monkeypatch):
    has_native(monkeypatch)
    model = modernconv.create_model("unireplknet_a", num_classes=10).eval()
    with pytest.warns(UserWarning, match="no native bf16; the fast path runs in fp32"):
        fast = optimize_for_inference(model, "bf16", compile=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "auto" chooses fp32 there without a warning, and says why
        chosen = optimize_for_inference(model, compile=False)
    assert chosen.precision == "fp32" and chosen.reason == "cpu: no native bf16"
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert fast.precision == "fp32" and relative_error(fast(x), model(x)) <= TOLERANCE["fp32"]


def test_a_failing_compiler_falls_back_to_eager(monkeypatch):
    def broken(*args, **kwargs):
        def run(x):
            raise RuntimeError("no C++ compiler")
        return run
    monkeypatch.setattr(torch, "compile", broken)
    model = modernconv.create_model("convnext_atto", num_classes=10).eval()
    fast = optimize_for_inference(model)
    x = torch.randn(2, 3, 32, 32)
    with pytest.warns(UserWarning, match="torch.compile failed .RuntimeError: no C\\+\\+ compiler.; running eager"):
        out = fast(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once
        assert torch.equal(fast(x), out) and fast.compiled is None


def test_unknown_precision_is_a_config_error():
    with pytest.raises(modernconv.ConfigError, match="dtype must be one of fp32, bf16, fp16, int8, auto, got 'int4'"):
        optimize_for_inference(modernconv.create_model("convnext_atto"), dtype="int4")


@pytest.mark.parametrize("native, said, why", [(("bf16",), "fast path bf16 batch 2", "fast path: bf16 (native bf16"),
                                               ((), "fast path fp32 batch 2", "fast path: fp32 (cpu: no native bf16)")])
def test_cli_bench_says_which_precision_the_fast_path_runs(native, said, why, monkeypatch, capsys):
    has_native(monkeypatch, *native)
    code = main(["bench", "convnext_atto", "--input-size", "3", "32", "32", "--batch-size", "2", "--steps", "1",
                 "--warmup", "0", "--fast", "--no-compile"])
    out, err = capsys.readouterr()
    assert code == 0 and said in out and why in err


def test_cli_fast_flag_on_eval(tmp_path, capsys):
    model = modernconv.create_model("convnext_atto", num_classes=10).eval()
    modernconv.save_checkpoint(model, tmp_path / "w.safetensors")
    results = []
    for fast in ([], ["--fast", "--no-compile"]):
        code = main(["eval", "--checkpoint", str(tmp_path / "w.safetensors"), "--json", *fast])
        assert code == 0
        results.append(json.loads(capsys.readouterr().out))
    assert results[0]["count"] == results[1]["count"] > 300
    code = main(["bench", "convnext_atto", "--fast", "--mode", "train"])
    assert code == 2 and "--fast sets the precision" in capsys.readouterr().err


def test_a_features_only_backbone_takes_the_fast_path_too():
    backbone = modernconv.create_model("convnext_atto", features_only=True, out_norms=True).eval()
    fast = modernconv.optimize_for_inference(backbone, "fp32", compile=False)
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        got, expected = fast(x), backbone(x)
    assert len(got) == len(expected) == 4
    for g, e in zip(got, expected):
        assert g.shape == e.shape and scaled_error(g, e) <= 1e-5
