"""DHD speed benchmark: forward latency, peak memory, FLOPs and each part's share of the forward pass; with
``--onnx`` also onnxruntime's latency of the exported graph (``visionzoo.export``) on the same inputs.

    python benchmarks/dhd_bench.py --models dhd_s dhd_m dhd_l dhd_dla34 dhd_r50 --onnx dhd_s dhd_m \
        --out benchmarks/DHD_BENCH.md                                                                       # CPU
    python benchmarks/dhd_bench.py --models dhd_s dhd_m --device cuda --dtypes fp32 bf16 --out benchmarks/DHD_BENCH_GPU.md

Input: one sample of the six nuScenes-like cameras at each model's input size (its card's: 256x704, DHD-L
512x1408; ``--size`` sets one for all), the frames its card asks for (DHD-M/L: 3); the grid is the model's
(Occ3D's 200 x 200 x 16). Parts (time measured around each, the device synchronised, and FLOPs counted per part):
image encoder; depth and height nets; the stereo cost volume (DHD-M/L: the sampling grid and the matching, the
strided convs after it counted in the depth net); the view transform (the frustum's voxel indices, computed once
and cached while the camera geometry stays the same, as in evaluation, plus the lift-splat pooling of the
depth-based feature and of the three MGHS height bands); DHD-M/L's per-frame pre-process nets; the BEV encoder;
the height-band encoders (UNets); SFA and head. Each row runs in a fresh process so its peak memory is its own
(CPU: growth of the peak resident set over the forwards, from after the model and inputs were built; GPU:
``torch.cuda.max_memory_allocated``, weights included). FLOPs from ``torch.utils.flop_counter`` (FLOP = 2 x MAC;
papers' "GFLOPs" are often multiply-accumulates: DHD-S's 445 are 890 here).
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

import torch
from run import matmul_peak  # benchmarks/run.py (this folder is on sys.path when the script runs)
from torch.utils.flop_counter import FlopCounterMode

#: The DHD network's parts: submodule names (those a network has), and functions timed as parts: (module or
#: submodule, attribute) -> part.
PARTS = {
    "image encoder": ["img_backbone", "img_neck"],
    "depth + height nets": ["img_view_transformer.depth_net", "img_view_transformer.height_net"],
    "stereo cost volume": [],
    "view transform": [],
    "pre-process nets": ["pre_process_net", "pre_process_net_3d"],
    "BEV encoder": ["img_bev_encoder_backbone", "img_bev_encoder_neck"],
    "band encoders": ["img_voxel_encoder0", "img_voxel_encoder1", "img_voxel_encoder2"],
    "SFA + head": ["mix", "occ_head"],
}
FUNCTIONS = {("visionzoo.models.dhd.view", "pool_to_bev"): "view transform",
             ("img_view_transformer", "voxel_indices"): "view transform",
             ("visionzoo.models.dhd.network", "cost_volume_grid"): "stereo cost volume",
             ("visionzoo.models.dhd.network", "stereo_cost_volume"): "stereo cost volume"}


def _inputs(device: str, size: tuple[int, int], frames: int) -> tuple[torch.Tensor, ...]:
    from visionzoo.data.synthetic_occ3d import rig_example

    return tuple(t.to(device) for t in rig_example(size, frames))


class _Timer:
    """Accumulates wall time per part (synchronising the device around each timed call)."""

    def __init__(self, device: str) -> None:
        self.device, self.seconds = device, {}

    def _sync(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()

    def wrap(self, part: str, fn):
        def timed(*args, **kwargs):
            self._sync()
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            self._sync()
            self.seconds[part] = self.seconds.get(part, 0.0) + time.perf_counter() - start
            return out
        return timed


def _called_modules(model: torch.nn.Module, names: list[str]) -> list[str]:
    """The names, with a ModuleList (never called itself) replaced by its children."""
    called = []
    for name in names:
        module = model.get_submodule(name)
        if isinstance(module, torch.nn.ModuleList):
            called += [f"{name}.{child}" for child, _ in module.named_children()]
        else:
            called.append(name)
    return called


def _instrument(model: torch.nn.Module, timer: _Timer) -> dict[str, list[str]]:
    """Wrap every part's modules (and the view transform's functions) with the timer; returns the parts."""
    import importlib

    present = {part: [name for name in names if hasattr(model, name.split(".")[0])] for part, names in PARTS.items()}
    parts = {part: _called_modules(model, names) for part, names in present.items()}
    for part, names in parts.items():
        for name in names:
            module = model.get_submodule(name)
            module.forward = timer.wrap(part, module.forward)
    for (owner, attribute), part in FUNCTIONS.items():
        target = importlib.import_module(owner) if owner.startswith("visionzoo.") else model.get_submodule(owner)
        setattr(target, attribute, timer.wrap(part, getattr(target, attribute)))
    return parts


def _row(job: dict, queue: mp.Queue) -> None:
    import visionzoo

    torch.set_num_threads(job["threads"])
    device, size = job["device"], tuple(job["size"])
    model = visionzoo.create_model(job["model"], input_size=size).to(device).eval()
    if job["layout"] == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    inputs = _inputs(device, size, job["frames"])
    autocast = torch.autocast(device, dtype=torch.bfloat16) if job["dtype"] == "bf16" else nullcontext()
    timer = _Timer(device)
    parts = _instrument(model, timer)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with torch.inference_mode(), autocast:
        timer.seconds = {}
        cold_start = time.perf_counter()
        model(*inputs)  # warm-up; computes the voxel indices
        cold = time.perf_counter() - cold_start
        cold_view = timer.seconds.get("view transform", 0.0)
        times, shares = [], []
        for _ in range(job["repeats"]):
            timer.seconds = {}
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(*inputs)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
            shares.append({part: timer.seconds.get(part, 0.0) / times[-1] for part in parts})
        peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else \
            (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
        with FlopCounterMode(display=False) as counter:  # per module (the timing wrappers keep the modules' hooks)
            model(*inputs)
    flops, root = counter.get_flop_counts(), type(model).__name__
    part_flops = {part: sum(sum(flops.get(f"{root}.{name}", {}).values()) for name in names)
                  for part, names in parts.items()}
    median = statistics.median(times)
    share = {part: statistics.median(s[part] for s in shares) for part in parts}
    onnx = _onnxruntime_latency(job, [t.cpu() for t in inputs]) if job["onnx"] else None
    queue.put({**job, "params": sum(p.numel() for p in model.parameters()) / 1e6,
               "grid": " x ".join(map(str, model.grid.shape)), "latency": median, "share": share,
               "cold": cold, "cold_share": cold_view / cold, "peak": peak, "onnx_latency": onnx,
               "gflop": counter.get_total_flops() / 1e9, "part_gflop": {k: v / 1e9 for k, v in part_flops.items()}})


def _onnxruntime_latency(job: dict, inputs: list[torch.Tensor]) -> float:
    """Median seconds of onnxruntime (CPU, the job's threads) on the model exported by ``visionzoo.export``."""
    import tempfile

    import onnxruntime

    import visionzoo
    from visionzoo.export import OCCUPANCY_INPUTS, export_occupancy_onnx

    model = visionzoo.create_model(job["model"], input_size=tuple(job["size"]))
    with tempfile.TemporaryDirectory() as folder:
        path = export_occupancy_onnx(model, Path(folder) / "model.onnx", tuple(job["size"]), job["frames"])
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = job["threads"]
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {name: t.numpy() for name, t in zip(OCCUPANCY_INPUTS, inputs)}
    session.run(None, feed)
    times = []
    for _ in range(job["repeats"]):
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_row(job: dict) -> dict:
    queue = mp.get_context("spawn").Queue()
    process = mp.get_context("spawn").Process(target=_row, args=(job, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["dhd_s", "dhd_dla34", "dhd_r50"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtypes", nargs="+", default=["fp32"])
    parser.add_argument("--layouts", nargs="+", default=["nchw"])
    parser.add_argument("--size", type=int, nargs=2, default=None, help="input height and width (default: each "
                                                                         "model card's)")
    parser.add_argument("--onnx", nargs="*", default=[], help="models also timed in onnxruntime (CPU, fp32)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", default=str(Path(__file__).with_name("DHD_BENCH.md")))
    args = parser.parse_args()
    import visionzoo

    rows = []
    for model in args.models:
        card = visionzoo.model_card(model).preprocessing
        size = args.size or list(card.input_size[-2:])
        for dtype in args.dtypes:
            for layout in args.layouts:
                job = dict(model=model, device=args.device, dtype=dtype, layout=layout, size=size,
                           frames=card.frames, repeats=args.repeats, threads=args.threads,
                           onnx=model in args.onnx and dtype == "fp32" and layout == "nchw")
                row = run_row(job)
                print(f"{model} {dtype} {layout}: {row['latency'] * 1e3:.0f} ms, view transform "
                      f"{100 * row['share']['view transform']:.1f}% (first call {100 * row['cold_share']:.1f}%), "
                      f"{row['gflop']:.0f} GFLOP, peak {row['peak']:.0f} MiB"
                      + (f", onnxruntime {row['onnx_latency'] * 1e3:.0f} ms" if row["onnx_latency"] else ""),
                      flush=True)
                rows.append(row)
    parts = list(rows[0]["share"])
    torch.set_num_threads(args.threads)
    peak = matmul_peak(args.device, "fp32") / 1e9
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# DHD benchmark",
        "",
        f"Command: `python benchmarks/dhd_bench.py --models {' '.join(args.models)} --device {args.device} "
        f"--dtypes {' '.join(args.dtypes)} --layouts {' '.join(args.layouts)}"
        + (f" --onnx {' '.join(args.onnx)}" if args.onnx else "") + "`",
        "",
        f"Measured {stamp} on {platform.machine()}, {args.threads} threads, torch {torch.__version__}; one sample of "
        f"6 cameras at each model's input size (frames as its card says); median of {args.repeats} after a "
        "warm-up forward (which computes and caches the voxel indices: 'first call'). "
        f"fp32 matmul peak (2048x2048) in the same run: {peak:.0f} GFLOP/s. onnxruntime: the graph of "
        "`python -m visionzoo.export` on the same inputs and threads (CPU, fp32; '-': not run).",
        "",
        "| model | input | frames | grid | params (M) | device | dtype | layout | latency (ms) | onnxruntime (ms) "
        "| first call (ms) | peak mem (MiB) | GFLOP | GFLOP/s | " + " | ".join(f"{p} (time / GFLOP)" for p in parts)
        + " |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(parts),
    ]
    for r in rows:
        cells = " | ".join(f"{100 * r['share'][p]:.1f}% / {r['part_gflop'][p]:.0f}" for p in parts)
        onnx = f"{r['onnx_latency'] * 1e3:.0f}" if r["onnx_latency"] else "-"
        lines.append(f"| {r['model']} | {r['size'][0]}x{r['size'][1]} | {r['frames']} | {r['grid']} | "
                     f"{r['params']:.2f} | {r['device']} | {r['dtype']} | {r['layout']} | {r['latency'] * 1e3:.0f} | "
                     f"{onnx} | {r['cold'] * 1e3:.0f} | {r['peak']:.0f} | {r['gflop']:.1f} | "
                     f"{r['gflop'] / r['latency']:.0f} | {cells} |")
    lines += ["", "The view transform's first-call share (voxel indices computed): " + ", ".join(
        f"{r['model']} {r['dtype']} {100 * r['cold_share']:.1f}%" for r in rows) + "."]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
