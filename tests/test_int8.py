"""int8 and "auto" on the fast path: each precision keeps its stated tolerance on a real evaluation (a model
trained on the digits), the layers the rule keeps in float stay float, bad calibration sets are one clear line,
and "auto" keeps whichever path it measured faster."""
import json

import pytest
import torch

import modernconv
from modernconv.cli import main
from modernconv.config import load_config
from modernconv.conversion import model_from_checkpoint
from modernconv.data import build_split
from modernconv.deploy import AGREEMENT, TOLERANCE, FastInference, optimize_for_inference
from modernconv.deploy import fast as fast_module
from modernconv.deploy.quantize import KEEP_FLOAT, export_graph, layer_roles, quantize_int8
from modernconv.reparam import reparameterize
from modernconv.tasks import train

from helpers import has_cxx_compiler

pytestmark = pytest.mark.isa_sensitive  # int8 and bf16 kernels differ by CPU: CI reruns these on AVX2
needs_compiler = pytest.mark.skipif(not has_cxx_compiler(), reason="int8 kernels come from torch.compile (Inductor), "
                                                                   "which needs a C++ compiler")


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    """ConvNeXt-atto trained on the digits for 4 epochs (about 97% held out), its held-out images and labels, and
    256 training images to calibrate on."""
    folder = tmp_path_factory.mktemp("digits_run")
    train(load_config(None, {"epochs": 4, "output": str(folder), "progress": False}))
    model, info = model_from_checkpoint(folder / "best.safetensors")
    transform = info.preprocessing.eval_transform()
    val = build_split("digits", "val", 3, transform)[0]
    calibration = build_split("digits", "train", 3, transform)[0]
    images = torch.stack([val[i][0] for i in range(len(val))])
    labels = torch.tensor([val[i][1] for i in range(len(val))])
    return model, images, labels, torch.stack([calibration[i][0] for i in range(256)])


def agreement_and_error(fast: torch.nn.Module, model: torch.nn.Module, images: torch.Tensor) -> tuple[float, float]:
    with torch.no_grad():
        expected = model(images)
    got = torch.cat([fast(chunk) for chunk in images.split(64)])
    agree = (got.argmax(1) == expected.argmax(1)).float().mean().item()
    return agree, ((got - expected).abs().max() / expected.abs().max()).item()


@pytest.mark.parametrize("precision", ["bf16", "fp16", "int8"])
def test_every_precision_keeps_its_stated_tolerance_on_a_real_evaluation(precision, digits_model, monkeypatch):
    model, images, labels, calibration = digits_model
    monkeypatch.setattr(fast_module, "native_dtype", lambda device, dtype: True)  # emulated where not native
    compiled = precision == "int8" and has_cxx_compiler()  # the int8 kernels themselves, not the reference
    fast = optimize_for_inference(model, precision, compile=compiled, calibration=calibration)
    assert fast.precision == precision
    agree, error = agreement_and_error(fast, model, images)
    assert agree >= AGREEMENT[precision] and error <= TOLERANCE[precision], (agree, error)
    with torch.no_grad():
        fp32_top1 = (model(images).argmax(1) == labels).float().mean().item()
    assert fp32_top1 > 0.9  # a real model: the agreement above is about confident predictions too


def test_layer_roles_name_what_feeds_each_layer():
    def roles(name: str, **kwargs) -> set[str]:
        model = reparameterize(modernconv.create_model(name, num_classes=10, **kwargs)).eval()
        return set(layer_roles(export_graph(model, torch.randn(2, 3, 32, 32))).values())

    assert roles("convnext_atto") == {"stem", "depthwise", "after LayerNorm", "after activation", "head"}
    assert roles("convnextv2_atto") == {"stem", "depthwise", "after LayerNorm", "after GRN", "head"}
    # its norms feed only the depthwise convs; the residual sum feeds the downsampling convs
    assert roles("unireplknet_a") == {"stem", "depthwise", "after activation", "after SE", "after GRN", "other",
                                      "head"}
    assert roles("resnet50_to_convnext_t", step="resnet50") == {"stem", "after activation", "other", "head"}


def weight_is_quantized(gm: torch.fx.GraphModule) -> dict[str, bool]:
    """Module path -> whether the conv/linear layer's weight reaches it through a dequantize node."""
    found = {}
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target in (torch.ops.aten.conv2d.default, torch.ops.aten.linear.default):
            path = list(node.meta["nn_module_stack"].values())[-1][0]
            found[path] = "dequantize" in str(node.args[1].target)
    return found


def test_the_roles_kept_in_float_stay_float_and_the_rest_is_int8():
    model = reparameterize(modernconv.create_model("convnextv2_atto", num_classes=10)).eval()
    calibration = torch.randn(16, 3, 32, 32)
    roles = layer_roles(export_graph(model, calibration[:2]))
    assert KEEP_FLOAT == ("depthwise",)
    default = weight_is_quantized(quantize_int8(model, calibration))
    assert default == {path: role not in KEEP_FLOAT for path, role in roles.items()}
    assert all(weight_is_quantized(quantize_int8(model, calibration, keep_float=())).values())
    kept = weight_is_quantized(quantize_int8(model, calibration, keep_float=["after GRN", "head"]))
    assert kept == {path: role not in ("after GRN", "head") for path, role in roles.items()}
    with pytest.raises(modernconv.ConfigError, match="keep_float takes roles among stem, depthwise"):
        quantize_int8(model, calibration, keep_float=["layernorm"])


@pytest.mark.parametrize("step", ["resnet50", "depthwise", "gelu", "fewer_activations", "separate_downsampling"])
def test_every_kind_of_roadmap_block_quantizes(step):
    """ResNet's block applies its activation three times; one module called at three places once made the
    quantizer's pattern matching fail on the roadmap's ResNet steps."""
    model = reparameterize(modernconv.create_model("resnet50_to_convnext_t", step=step, num_classes=10)).eval()
    calibration = torch.randn(8, 3, 32, 32)
    graph = quantize_int8(model, calibration)
    roles = layer_roles(export_graph(model, calibration[:2]))
    assert weight_is_quantized(graph) == {path: role not in KEEP_FLOAT for path, role in roles.items()}
    with torch.no_grad():
        assert graph(calibration).shape == (8, 10)


@pytest.mark.parametrize("calibration, message", [
    ([], "at least 8 calibration images"),
    (torch.randn(4, 3, 32, 32), "at least 8 calibration images to measure activation ranges; got 4"),
    (torch.randn(16, 1, 32, 32), "calibration images have 1 channels; the model takes 3"),
    (torch.full((16, 3, 32, 32), float("nan")), "NaN or infinite"),
    (torch.zeros(16, 3, 32, 32), "all one value"),
    ([torch.randn(8, 3, 32, 32), torch.randn(8, 3, 48, 48)], "share one size, got 32x32, 48x48"),
    (torch.randn(16, 3, 32), "float image batches N,C,H,W"),
])
def test_a_bad_calibration_set_is_one_clear_error(calibration, message):
    model = modernconv.create_model("convnext_atto", num_classes=10).eval()
    with pytest.raises(modernconv.ConfigError, match=message):
        optimize_for_inference(model, "int8", calibration=calibration)


def test_int8_falls_back_where_it_cannot_run(monkeypatch):
    model = modernconv.create_model("convnext_atto", num_classes=10).eval()
    monkeypatch.setattr(fast_module, "_x86", lambda: False)  # an ARM CPU
    with pytest.warns(UserWarning, match="int8 runs on x86 CPUs; on this cpu the fast path runs"):
        fast = optimize_for_inference(model, "int8", compile=False, calibration=torch.randn(8, 3, 32, 32))
    assert fast.precision in ("bf16", "fp32") and fast.reason.startswith("int8 needs an x86 CPU")
    with pytest.raises(modernconv.ConfigError, match="int8 needs calibration images"):
        monkeypatch.setattr(fast_module, "_x86", lambda: True)
        optimize_for_inference(model, "int8")


def test_the_int8_graph_says_which_image_size_it_takes():
    model = modernconv.create_model("convnext_atto", num_classes=10).eval()
    fast = optimize_for_inference(model, "int8", compile=False, calibration=torch.randn(8, 3, 32, 32))
    assert fast(torch.randn(5, 3, 32, 32)).shape == (5, 10)  # any batch size
    with pytest.raises(modernconv.ConfigError, match="takes 3x32x32 inputs .its calibration images' size.; got "):
        fast(torch.randn(2, 3, 48, 48))


@pytest.mark.parametrize("int8_faster", [True, False])
def test_auto_keeps_the_path_it_measured_faster(int8_faster, monkeypatch):
    monkeypatch.setattr(fast_module, "native_dtype", lambda device, dtype: dtype in ("fp32", "bf16"))
    monkeypatch.setattr(fast_module, "_x86", lambda: True)
    int8_seconds = 1.0 if int8_faster else 2.0
    monkeypatch.setattr(FastInference, "seconds_per_batch",
                        lambda self, x: int8_seconds if self.precision == "int8" else 1.5)
    monkeypatch.setattr(torch, "compile", lambda graph, **kwargs: graph)  # compiled or not, the choice is the same
    model = modernconv.create_model("convnext_atto", num_classes=10).eval()
    fast = optimize_for_inference(model, calibration=torch.randn(8, 3, 32, 32), batch_size=4)
    expected = "int8" if int8_faster else "bf16"
    assert fast.precision == expected
    ratio = "1.50x" if int8_faster else "0.75x"
    assert fast.reason.startswith(f"measured here on batches of 4: int8 {ratio} as fast as bf16 (native bf16")
    assert optimize_for_inference(model, compile=False).precision == "bf16"  # no calibration: no int8


@needs_compiler
def test_cli_int8_and_auto_on_eval_and_bench(digits_model, tmp_path, capsys):
    model = digits_model[0]
    modernconv.save_checkpoint(model, tmp_path / "w.safetensors")
    ckpt = str(tmp_path / "w.safetensors")
    results = []
    for fast in ([], ["--fast", "int8", "--calibrate", "digits"]):
        assert main(["eval", "--checkpoint", ckpt, "--json", *fast]) == 0
        results.append(json.loads(capsys.readouterr().out))
    assert results[0]["count"] == results[1]["count"] == 359
    assert abs(results[0]["top1"] - results[1]["top1"]) <= 0.5
    assert main(["bench", "convnext_atto", "--input-size", "3", "32", "32", "--batch-size", "4", "--steps", "1",
                 "--fast", "--calibrate", "digits"]) == 0
    out, err = capsys.readouterr()
    assert "fast path: " in err and "measured here on batches of 4: int8" in err
    assert ("fast path int8 compiled" in out) == ("int8 0." not in err)


@pytest.mark.parametrize("args, message", [
    (["--fast", "int8"], "--fast int8 needs --calibrate DATA"),
    (["--calibrate", "digits"], "--calibrate goes with --fast int8"),
    (["--fast", "int8", "--calibrate", "no/such/folder"], "no/such/folder"),
])
def test_cli_int8_mistakes_are_one_line(args, message, tmp_path, capsys):
    modernconv.save_checkpoint(modernconv.create_model("convnext_atto", num_classes=10), tmp_path / "w.safetensors")
    assert main(["eval", "--checkpoint", str(tmp_path / "w.safetensors"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_export_int8_writes_a_qdq_onnx_file_that_predicts_as_the_float_model(digits_model, tmp_path, capsys):
    import onnx
    import onnxruntime

    model, images, _, _ = digits_model
    modernconv.save_checkpoint(model, tmp_path / "w.safetensors")
    out = tmp_path / "int8.onnx"
    assert main(["export", str(tmp_path / "w.safetensors"), str(out), "--int8", "--calibrate", "digits"]) == 0
    said = capsys.readouterr().out
    assert "int8 QDQ" in said and "top-1 agreement with the float model on 359 held-out images of digits" in said
    graph = onnx.load(str(out))
    meta = {p.key: p.value for p in graph.metadata_props}
    assert len(meta) == len(graph.metadata_props)  # each key once
    assert meta["quantization"].startswith("int8 QDQ") and meta["model"] == "convnext_atto"
    made_by = {o: n for n in graph.graph.node for o in n.output}
    convs = [n for n in graph.graph.node if n.op_type == "Conv"]
    depthwise = [n for n in convs if next(a.i for a in n.attribute if a.name == "group") > 1]
    assert depthwise and all(made_by.get(n.input[1]) is None or made_by[n.input[1]].op_type != "DequantizeLinear"
                             for n in depthwise)  # kept float, as on the PyTorch int8 path
    assert sum(made_by[n.input[1]].op_type == "DequantizeLinear" for n in convs if n not in depthwise) >= 4
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {"images": images.numpy()})[0])
    with torch.no_grad():
        expected = model(images)
    assert (got.argmax(1) == expected.argmax(1)).float().mean() >= AGREEMENT["int8"]


def test_export_int8_keeps_nothing_when_its_predictions_disagree(digits_model, tmp_path, monkeypatch, capsys):
    from modernconv.deploy import onnx_int8

    monkeypatch.setattr(onnx_int8, "AGREEMENT", {"int8": 1.01})  # no file can pass
    modernconv.save_checkpoint(digits_model[0], tmp_path / "w.safetensors")
    out = tmp_path / "int8.onnx"
    assert main(["export", str(tmp_path / "w.safetensors"), str(out), "--int8", "--calibrate", "digits"]) == 2
    assert "held-out images (at least 101% needed); nothing was written" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [tmp_path / "w.safetensors"]


@pytest.mark.parametrize("args, message", [
    (["x.onnx", "--int8"], "--int8 writes an image classifier's ONNX file"),
    (["x.pt2", "--int8", "--calibrate", "digits"], "--int8 writes an image classifier's ONNX file"),
    (["x.onnx", "--calibrate", "digits"], "--calibrate goes with --int8"),
])
def test_cli_export_int8_mistakes_are_one_line(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["export", "convnext_atto", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and not list(tmp_path.iterdir())
