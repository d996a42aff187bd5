"""int8 against our best float fast path and against the runtimes a user would pick instead, in one process.

For each model and batch size (224x224, the model's own weights: speed does not depend on them), interleaved:
- ours int8: ``optimize_for_inference(model, "int8", calibration=...)`` (PT2E int8, depthwise convs float, compiled);
- ours float: ``optimize_for_inference(model, P)`` with P = ``choose_precision`` (bf16 where native, else fp32);
- onnxruntime fp32 and onnxruntime int8 (the QDQ file ``export --int8`` writes), CPU provider, same threads;
- OpenVINO with its default precision for this CPU, and OpenVINO int8 from NNCF's post-training quantization
  (``nncf.quantize``, the same calibration images).
Calibration: 32 random images (activation ranges change int8 speed only through values, not shapes).
Prints images/s per path and each path's time ratio against ours int8 (median of per-round ratios).
Also prints the share of ours int8's time spent outside its int8 kernels (``--profile``).

python benchmarks/bench_int8.py [--models convnext_tiny convnextv2_atto unireplknet_a] [--batch-sizes 1 16]
       [--rounds 5] [--steps 2] [--no-peers] [--profile]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

import modernconv
from modernconv.analysis.benchmark import make_step
from modernconv.deploy import choose_precision, export_model, optimize_for_inference
from modernconv.deploy.export import file_contract
from modernconv.deploy.onnx_int8 import write_int8_onnx
from modernconv.reparam import reparameterize
from common import interleaved, machine_line


def onnxruntime_step(path: Path, x: torch.Tensor):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x.numpy()}
    return lambda: session.run(None, feed)


def openvino_steps(model: torch.nn.Module, x: torch.Tensor, calibration: torch.Tensor, profile: bool) -> dict:
    """OpenVINO's default precision and NNCF int8, ready to time; ``profile`` also prints where NNCF int8's time
    goes (OpenVINO's per-layer counters)."""
    import nncf
    import openvino

    core = openvino.Core()
    config = {"INFERENCE_NUM_THREADS": torch.get_num_threads()}
    converted = openvino.convert_model(model, example_input=x[:1])
    quantized = nncf.quantize(converted, nncf.Dataset([c[None].numpy() for c in calibration]),
                              subset_size=len(calibration))
    steps = {}
    for label, graph in (("OpenVINO default", converted), ("OpenVINO int8 (NNCF)", quantized)):
        compiled = core.compile_model(graph, "CPU", config)
        request, feed = compiled.create_infer_request(), np.ascontiguousarray(x.numpy())
        steps[label] = (lambda r=request, f=feed: r.infer({0: f}))
        if label == "OpenVINO default":
            print(f"  OpenVINO's default precision here: {compiled.get_property('INFERENCE_PRECISION_HINT')}")
    if profile:
        profiled = core.compile_model(quantized, "CPU", {**config, "PERF_COUNT": True})
        print(f"  OpenVINO int8 (NNCF): {openvino_share(profiled, x)}")
    return steps


def openvino_share(compiled, x: torch.Tensor, calls: int = 10) -> str:
    """The largest kinds of layer in a compiled OpenVINO model's time: share and milliseconds per call."""
    request = compiled.create_infer_request()
    totals: dict[str, float] = {}
    for _ in range(calls):
        request.infer({0: np.ascontiguousarray(x.numpy())})
    for layer in request.profiling_info:  # the last call's counters
        kind = f"{layer.node_type} ({layer.exec_type})"
        totals[kind] = totals.get(kind, 0.0) + layer.real_time.total_seconds() * 1e3
    total = sum(totals.values())
    top = sorted(totals.items(), key=lambda kv: -kv[1])[:5]
    return f"{total:.2f} ms per call; " + ", ".join(f"{k} {v / total:.0%} ({v:.2f} ms)" for k, v in top)


def float_share(fast: torch.nn.Module, x: torch.Tensor, calls: int = 3) -> str:
    """The share of a compiled int8 forward's CPU time in kernels other than oneDNN's int8 conv/matmul, and the
    largest of those kernels (share, milliseconds per call). ``fast`` is compiled here, with a profiler record
    around each kernel its C++ wrapper calls (which the profiler does not see otherwise)."""
    with torch._inductor.config.patch({"cpp.enable_kernel_profile": True}):
        fast(x)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            fast(x)
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    is_int8 = lambda e: "qconv_pointwise" in e.key or "qlinear_pointwise" in e.key  # from C++ or Python
    int8 = sum(e.self_cpu_time_total for e in events if is_int8(e))
    top = sorted((e for e in events if not is_int8(e)), key=lambda e: -e.self_cpu_time_total)[:4]
    return (f"{total / calls / 1e3:.2f} ms per call; int8 kernels {int8 / total:.0%}, the rest {1 - int8 / total:.0%}"
            " (largest: " + ", ".join(f"{e.key} {e.self_cpu_time_total / total:.0%} "
                                     f"({e.self_cpu_time_total / calls / 1e3:.2f} ms)" for e in top) + ")")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["convnext_tiny", "convnextv2_atto", "unireplknet_a"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--no-peers", action="store_true", help="ours only (no onnxruntime, OpenVINO)")
    parser.add_argument("--profile", action="store_true", help="where ours int8 spends its time")
    args = parser.parse_args()
    print(machine_line(), flush=True)
    precision, why = choose_precision(torch.device("cpu"))
    print(f"ours float = {precision} ({why}); {torch.get_num_threads()} threads, 224x224")
    print("| model | batch | path | img/s | time / ours int8 (median) | range |\n|---|---|---|---|---|---|")
    for name in args.models:
        model = modernconv.create_model(name).eval()
        calibration = torch.randn(32, 3, 224, 224)
        folder = Path(tempfile.mkdtemp(prefix="bench_int8_"))
        if not args.no_peers:
            export_model(model, folder / "fp32.onnx", "onnx", (3, 224, 224))
            write_int8_onnx(reparameterize(model).eval(), folder / "int8.onnx", (3, 224, 224), [calibration],
                            file_contract(model))
        for batch in args.batch_sizes:
            x = torch.randn(batch, 3, 224, 224)
            int8 = optimize_for_inference(model, "int8", calibration=calibration, batch_size=batch)
            steps = {"ours int8": make_step(int8, x, "infer", "fp32"),
                     f"ours {precision}": make_step(optimize_for_inference(model, precision), x, "infer", "fp32")}
            if not args.no_peers:
                steps["onnxruntime fp32"] = onnxruntime_step(folder / "fp32.onnx", x)
                steps["onnxruntime int8 (QDQ)"] = onnxruntime_step(folder / "int8.onnx", x)
                steps.update(openvino_steps(reparameterize(model).eval(), x, calibration, args.profile))
            times = interleaved(steps, args.rounds, args.steps, warmup=3)
            for label, seconds in times.items():
                ratios = [s / i for s, i in zip(seconds, times["ours int8"])]
                print(f"| {name} | {batch} | {label} | {batch / statistics.median(seconds):.1f} | "
                      f"{statistics.median(ratios):.2f} | {min(ratios):.2f}-{max(ratios):.2f} |", flush=True)
            if args.profile:
                profiled = optimize_for_inference(model, "int8", calibration=calibration, batch_size=batch)
                print(f"  {name} batch {batch}, ours int8: {float_share(profiled, x)}", flush=True)


if __name__ == "__main__":
    main()
