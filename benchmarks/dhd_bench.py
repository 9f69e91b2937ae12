"""DHD speed benchmark: forward latency, peak memory, FLOPs and the view transform's share of the forward pass.

    python benchmarks/dhd_bench.py --out benchmarks/DHD_BENCH.md                       # CPU, Occ3D grid
    python benchmarks/dhd_bench.py --device cuda --dtypes fp32 bf16 --out benchmarks/DHD_BENCH_GPU.md

Input: one sample of the six nuScenes-like cameras at 256x704 (the DHD-S input); the grid is the model's (Occ3D's
200 x 200 x 16 for dhd_dla34 / dhd_r50).
"View transform" is everything between the image features and the BEV encoders: the frustum's voxel indices
(:meth:`DHD.geometry`; computed once and cached while the camera geometry stays the same, as in evaluation) and
the lift-splat voxel pooling of the depth-based feature and of the three MGHS subspaces (:func:`pool_voxels`).
Each row runs in a fresh process so its peak memory is its own (CPU: growth of the peak resident set over the
forwards, from after the model and inputs were built; GPU: ``torch.cuda.max_memory_allocated``, weights included). FLOPs from ``torch.utils.flop_counter`` (FLOP = 2 x MAC).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import resource
import statistics
import time
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode


def _inputs(device: str, size: tuple[int, int]) -> tuple[torch.Tensor, ...]:
    from visionzoo.data.synthetic_occ3d import camera_rig
    from visionzoo.geometry import image_affine

    rig = camera_rig(1.0)
    intrinsics = torch.tensor(np.stack([r[1] for r in rig.values()]), dtype=torch.float32)[None]
    cam2ego = torch.tensor(np.stack([r[0] for r in rig.values()]), dtype=torch.float32)[None]
    scale = size[1] / 1600
    post = torch.tensor(image_affine(scale, (0, 900 * scale - size[0]), False, 0.0, size), dtype=torch.float32)
    tensors = (torch.randn(1, 6, 3, *size), intrinsics, cam2ego, post.expand(1, 6, 3, 3), torch.eye(3)[None])
    return tuple(t.to(device) for t in tensors)


class _Timer:
    """Accumulates wall time of wrapped calls (synchronising the device around each)."""

    def __init__(self, device: str) -> None:
        self.device, self.seconds = device, 0.0

    def wrap(self, fn):
        def timed(*args, **kwargs):
            if self.device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            if self.device == "cuda":
                torch.cuda.synchronize()
            self.seconds += time.perf_counter() - start
            return out
        return timed


def _row(job: dict, queue: mp.Queue) -> None:
    import visionzoo
    import visionzoo.models.dhd as dhd

    torch.set_num_threads(job["threads"])
    device, size = job["device"], tuple(job["size"])
    model = visionzoo.create_model(job["model"]).to(device).eval()
    if job["layout"] == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    inputs = _inputs(device, size)
    autocast = torch.autocast(device, dtype=torch.bfloat16) if job["dtype"] == "bf16" else nullcontext()
    timer = _Timer(device)
    dhd.pool_voxels = timer.wrap(dhd.pool_voxels)
    geometry = model.geometry
    model.geometry = timer.wrap(geometry)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with torch.inference_mode(), autocast:
        cold_start = time.perf_counter()
        model(*inputs)  # warm-up; computes the voxel indices
        cold = time.perf_counter() - cold_start
        cold_view = timer.seconds
        times, shares = [], []
        for _ in range(job["repeats"]):
            timer.seconds = 0.0
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(*inputs)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
            shares.append(timer.seconds / times[-1])
        peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else \
            (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
        with FlopCounterMode(display=False) as counter:
            model(*inputs)
    queue.put({**job, "params": sum(p.numel() for p in model.parameters()) / 1e6,
               "grid": " x ".join(map(str, model.grid.shape)),
               "latency": statistics.median(times), "share": statistics.median(shares), "cold": cold,
               "cold_share": cold_view / cold, "peak": peak, "gflop": counter.get_total_flops() / 1e9})


def run_row(job: dict) -> dict:
    queue = mp.get_context("spawn").Queue()
    process = mp.get_context("spawn").Process(target=_row, args=(job, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["dhd_dla34", "dhd_r50"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtypes", nargs="+", default=["fp32"])
    parser.add_argument("--layouts", nargs="+", default=["nchw"])
    parser.add_argument("--size", type=int, nargs=2, default=[256, 704])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", default=str(Path(__file__).with_name("DHD_BENCH.md")))
    args = parser.parse_args()
    rows = []
    for model in args.models:
        for dtype in args.dtypes:
            for layout in args.layouts:
                job = dict(model=model, device=args.device, dtype=dtype, layout=layout, size=args.size,
                           repeats=args.repeats, threads=args.threads)
                row = run_row(job)
                print(f"{model} {dtype} {layout}: {row['latency'] * 1e3:.0f} ms, view transform "
                      f"{100 * row['share']:.1f}% (first call {100 * row['cold_share']:.1f}%), "
                      f"{row['gflop']:.0f} GFLOP, peak {row['peak']:.0f} MiB", flush=True)
                rows.append(row)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# DHD benchmark",
        "",
        f"Command: `python benchmarks/dhd_bench.py --models {' '.join(args.models)} --device {args.device} "
        f"--dtypes {' '.join(args.dtypes)} --layouts {' '.join(args.layouts)}`",
        "",
        f"Measured {stamp} on {platform.machine()}, {args.threads} threads, torch {torch.__version__}; one sample of "
        f"6 cameras at {args.size[0]}x{args.size[1]}; median of {args.repeats} after a "
        "warm-up forward (which computes and caches the voxel indices: 'first call').",
        "",
        "| model | grid | params (M) | device | dtype | layout | latency (ms) | view transform share | "
        "first call (ms) | first-call view share | peak mem (MiB) | GFLOP |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['grid']} | {r['params']:.2f} | {r['device']} | {r['dtype']} | {r['layout']} | "
                     f"{r['latency'] * 1e3:.0f} | {100 * r['share']:.1f}% | {r['cold'] * 1e3:.0f} | "
                     f"{100 * r['cold_share']:.1f}% | {r['peak']:.0f} | {r['gflop']:.1f} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
