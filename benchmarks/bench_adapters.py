"""Are the modality adapters ever the bottleneck? Per modality, at the paper's sizes: the time to read one batch of
files (the loader workers' share: decode wav / video / mesh), the adapter's batched forward (log-mel, tiling,
projection, embedding) and one training step of the network on the adapter's output, all in one process.

Prints median seconds and the ratios adapter / step and reading / step (divide the latter by the number of
loader workers).

python benchmarks/bench_adapters.py [--model unireplknet_a] [--batch-size 16] [--rounds 5]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

from common import interleaved, machine_line
from modernconv.analysis.benchmark import make_step
from modernconv.modalities import create_modality_model, get_modality

SIZES = {"audio": {}, "video": {}, "pointcloud": {}, "timeseries": {"length": 48, "variables": 768}}  # paper's


def sample_file(modality: str, folder: Path) -> str | None:
    """One file of the field's kind to read (a 1 s wav, a 10 s 320x240 video, a 2,562-vertex mesh)."""
    if modality == "audio":
        import soundfile

        soundfile.write(folder / "a.wav", np.random.randn(16000).astype(np.float32) * 0.1, 16000)
        return str(folder / "a.wav")
    if modality == "video":
        import av

        with av.open(str(folder / "v.mp4"), "w") as out:
            stream = out.add_stream("mpeg4", rate=25)
            stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
            for t in range(250):
                frame = np.random.randint(0, 255, (240, 320, 3), dtype=np.uint8)
                out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            out.mux(stream.encode())
        return str(folder / "v.mp4")
    if modality == "pointcloud":
        import trimesh

        trimesh.creation.icosphere(subdivisions=4).export(folder / "m.off")
        return str(folder / "m.off")
    return None  # time series windows are held in memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="unireplknet_a")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--modalities", nargs="+", default=list(SIZES))
    args = parser.parse_args()
    print(machine_line(), flush=True)
    b = args.batch_size
    print(f"{args.model}, batch {b}, {torch.get_num_threads()} threads; median seconds per batch\n")
    print("| modality | input | read batch (1 worker) | adapter | train step | adapter / step | read / step |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for modality in args.modalities:
            spec = get_modality(modality)
            model = create_modality_model(args.model, modality, SIZES[modality], num_classes=10).train()
            opts = model.options
            path = sample_file(modality, Path(tmp))
            raw = (torch.stack([spec.read(path, opts, True) for _ in range(b)]) if path else
                   torch.randn(b, opts.length, opts.variables))
            with torch.no_grad():
                mapped = model.adapter(raw)
            network = model.model
            steps = {"adapter": lambda: model.adapter(raw),
                     "step": make_step(network, mapped, "train", "fp32")}
            if path:
                steps["read"] = lambda: [spec.read(path, opts, True) for _ in range(b)]
            times = interleaved(steps, args.rounds, 1, warmup=1)
            med = {k: statistics.median(v) for k, v in times.items()}
            read = med.get("read", 0.0)
            print(f"| {modality} | {' x '.join(map(str, mapped.shape[1:]))} | {read:.3f} | {med['adapter']:.4f} | "
                  f"{med['step']:.3f} | {med['adapter'] / med['step']:.3f} | {read / med['step']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
