"""Model speed benchmark: latency, throughput, peak memory, FLOPs and share of the matmul peak.

    python benchmarks/run.py --models dla34 dla34_up --sizes 1024 --out benchmarks/RESULTS.md

A model may carry forward keyword arguments after ``@``: ``ben_dla34@refine=false`` times the BEN Base alone.
Models from outside the zoo are timed in the same run with ``--external NAME=FILE:CLASS`` (the class is built with
no arguments and called on the image tensor), e.g. the published BEN2 beside ``ben2_base``::

    PYTHONPATH=/tmp/ben2deps python benchmarks/run.py --external published_ben2=/tmp/BEN2/BEN2.py:BEN_Base \
        --models published_ben2 ben2_base --out benchmarks/BEN2_BENCH.md

Each (model, size, layout, dtype, device) row runs in a fresh process so that its peak memory is its own:
CPU rows report the process's peak resident memory growth during the timed forwards (``ru_maxrss``), GPU rows
``torch.cuda.max_memory_allocated``. FLOPs come from ``torch.utils.flop_counter`` (FLOP = 2 x MAC). The matmul peak
is the best of 20 2048x2048 fp32 (or bf16) matmuls measured in the same run on the same device; "% peak" is the model's achieved
FLOP/s over it.
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
from torch.utils.flop_counter import FlopCounterMode

DEFAULT_MODELS = ["dla34", "dla34_up", "ben_dla34@refine=false", "ben_dla34"]


def parse_model(spec: str) -> tuple[str, dict]:
    """``"ben_dla34@refine=false"`` -> ``("ben_dla34", {"refine": False})``."""
    name, _, args = spec.partition("@")
    kwargs = {}
    for item in filter(None, args.split(",")):
        key, _, value = item.partition("=")
        kwargs[key] = {"true": True, "false": False}.get(value.lower(), value)
    return name, kwargs


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _autocast(device: str, dtype: str):
    return torch.autocast(device, dtype=torch.bfloat16) if dtype == "bf16" else nullcontext()


def matmul_peak(device: str, dtype: str, n: int = 2048, repeats: int = 20) -> float:
    """Best achieved FLOP/s of an n x n matmul over ``repeats`` (the ceiling a convnet can hope to approach)."""
    torch_dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
    a = torch.randn(n, n, device=device, dtype=torch_dtype)
    b = torch.randn(n, n, device=device, dtype=torch_dtype)
    for _ in range(3):
        a @ b
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        _sync(device)
        times.append(time.perf_counter() - start)
    return 2 * n**3 / min(times)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def build_external(source: str) -> torch.nn.Module:
    """``FILE:CLASS`` -> ``CLASS()`` from that Python file (its folder goes on ``sys.path`` for its own imports)."""
    import importlib.util
    import sys

    file, _, class_name = source.rpartition(":")
    sys.path.insert(0, str(Path(file).resolve().parent))
    module_spec = importlib.util.spec_from_file_location(Path(file).stem, file)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return getattr(module, class_name)()


def _measure(spec: dict, queue: mp.Queue) -> None:
    """Child process: build the model and time it; put a result dict on ``queue``."""
    import visionzoo

    torch.set_num_threads(spec["threads"])
    device, dtype, layout = spec["device"], spec["dtype"], spec["layout"]
    name, forward_kwargs = parse_model(spec["model"])
    if name in spec["external"]:
        model, channels = build_external(spec["external"][name]).eval().to(device), 3
    else:
        model = visionzoo.create_model(name).eval().to(device)
        channels = visionzoo.model_card(name).preprocessing.input_size[0]
    x = torch.randn(spec["batch"], channels, spec["size"], spec["size"], device=device)
    if layout == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), _autocast(device, dtype):
        counter = FlopCounterMode(display=False)
        with counter:
            model(x, **forward_kwargs)
        flops = counter.get_total_flops()
        for _ in range(spec["warmup"]):
            model(x, **forward_kwargs)
        _sync(device)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        rss_before = _rss_bytes()
        times = []
        for _ in range(spec["repeats"]):
            start = time.perf_counter()
            model(x, **forward_kwargs)
            _sync(device)
            times.append(time.perf_counter() - start)
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before)
    queue.put({"latency": statistics.median(times), "flops": flops, "peak": peak,
               "params": sum(p.numel() for p in model.parameters())})


def run_row(spec: dict) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=_measure, args=(spec, queue))
    process.start()
    result = queue.get()
    process.join()
    return {**spec, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--sizes", nargs="+", type=int, default=[1024])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--layouts", nargs="+", default=["nchw", "channels_last"], choices=["nchw", "channels_last"])
    parser.add_argument("--dtypes", nargs="+", default=["fp32"], choices=["fp32", "bf16"])
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, plus cuda where it exists")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", type=Path, default=None, help="markdown file to write (printed as well)")
    parser.add_argument("--external", nargs="*", default=[], metavar="NAME=FILE:CLASS",
                        help="models from outside the zoo, usable as NAME in --models")
    args = parser.parse_args()
    external = dict(item.split("=", 1) for item in args.external)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    torch.set_num_threads(args.threads)

    peaks = {(d, t): matmul_peak(d, t) for d in devices for t in args.dtypes}
    lines = [
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.processor() or platform.machine()}, "
        f"{args.threads} threads, torch {torch.__version__}"
        + (f", {torch.cuda.get_device_name()}" if "cuda" in devices else "")
        + f"; batch {args.batch}, median of {args.repeats} after {args.warmup} warm-up runs.",
        "",
        "Matmul peak (2048x2048): " + ", ".join(f"{d} {t} {p / 1e9:.0f} GFLOP/s" for (d, t), p in peaks.items()),
        "",
        "| model | params (M) | input | device | dtype | layout | latency (ms) | img/s | peak mem (MiB) "
        "| GFLOP | GFLOP/s | % of matmul peak |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for model in args.models:
        for size in args.sizes:
            for device in devices:
                for dtype in args.dtypes:
                    for layout in args.layouts:
                        r = run_row(dict(model=model, size=size, batch=args.batch, device=device, dtype=dtype,
                                         layout=layout, warmup=args.warmup, repeats=args.repeats,
                                         threads=args.threads, external=external))
                        achieved = r["flops"] / r["latency"]
                        line = (
                            f"| {model} | {r['params'] / 1e6:.2f} | {size}x{size} | {device} | {dtype} | {layout} "
                            f"| {r['latency'] * 1e3:.1f} | {args.batch / r['latency']:.2f} | {r['peak'] / 2**20:.0f} "
                            f"| {r['flops'] / 1e9:.1f} | {achieved / 1e9:.0f} "
                            f"| {100 * achieved / peaks[(device, dtype)]:.0f}% |"
                        )
                        print(line, flush=True)
                        lines.append(line)
    if args.out:
        args.out.write_text("# Benchmark results\n\nCommand: `python benchmarks/run.py "
                            + " ".join(_argv_summary(args)) + "`\n\n" + "\n".join(lines) + "\n")


def _argv_summary(args: argparse.Namespace) -> list[str]:
    external = [f"--external {' '.join(args.external)}"] if args.external else []
    return [*external, f"--models {' '.join(args.models)}", f"--sizes {' '.join(map(str, args.sizes))}",
            f"--dtypes {' '.join(args.dtypes)}", f"--layouts {' '.join(args.layouts)}", f"--batch {args.batch}",
            f"--warmup {args.warmup}", f"--repeats {args.repeats}"]


if __name__ == "__main__":
    main()
