"""onnxruntime (CPU) against PyTorch eager fp32 on the exported deploy form, in one process: images/s ratio.

Each model is exported with ``modernconv.export_model`` (checked within 1e-4) to a temporary folder, loaded in an
onnxruntime session with as many intra-op threads as torch uses, and timed against the same deploy-form model
in PyTorch (channels-last), steps interleaved.

python benchmarks/bench_export.py [--models ...] [--batch-size 16] [--size 224] [--rounds 5] [--steps 2]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import onnxruntime
import torch

import modernconv
from modernconv.analysis.benchmark import make_step
from common import interleaved, machine_line, ratio_row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["convnext_tiny", "convnextv2_atto", "unireplknet_a",
                                                        "convmixer_768_32"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    print(machine_line(), flush=True)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, {torch.get_num_threads()} threads, "
          f"batch {args.batch_size}, {args.size}x{args.size}, fp32")
    print("| model | onnxruntime img/s | PyTorch img/s | onnxruntime/PyTorch (median) | range |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            model = modernconv.reparameterize(modernconv.create_model(name).eval())
            path = Path(folder) / f"{name}.onnx"
            modernconv.export_model(model, path, "onnx", (3, args.size, args.size))
            session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            x = torch.randn(args.batch_size, 3, args.size, args.size)
            feed = {session.get_inputs()[0].name: x.numpy()}
            steps = {"onnxruntime": lambda: session.run(None, feed),
                     "torch": make_step(model.to(memory_format=torch.channels_last),
                                        x.contiguous(memory_format=torch.channels_last), "infer", "fp32")}
            times = interleaved(steps, args.rounds, args.steps)
            print(ratio_row(name, args.batch_size, times["onnxruntime"], times["torch"]), flush=True)


if __name__ == "__main__":
    main()
