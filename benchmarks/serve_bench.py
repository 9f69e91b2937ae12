"""Throughput and latency of ``visionzoo serve`` against the same images through predict.py's predictor one by one.

For each model: a server subprocess (``serve.max_batch``, default auto: 8 on a GPU, 1 on a CPU), then for each concurrency level ``c`` the
client keeps ``c`` requests in flight (``POST /v1/cutout``, cut-out PNG back) until ``--requests`` (default
``max(2c, 8)``) are answered: requests/s and p50/p95 latency. The baseline is ``CutoutPredictor`` (what predict.py
runs) over the same images, one forward pass per image, the model loaded and warmed up beforehand, files written
as predict.py writes them. Images: scikit-image's photos resized to ``--size``, 8 files.

    python benchmarks/serve_bench.py --models ben_dla34 --size 1024 --concurrency 1 8 32 --out benchmarks/SERVE_BENCH.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import torch
from safetensors.torch import load_file, save_file
from skimage import data as skdata

import visionzoo
from visionzoo.models.registry import resolve_preprocessing
from visionzoo.predict.cutout import CutoutPredictor
from visionzoo.serve.launch import launch

SOURCES = ("astronaut", "coffee", "chelsea", "rocket")


def write_images(folder: Path, size: int, copies: int = 2) -> list[Path]:
    """``copies`` x the scikit-image photos at ``size`` x ``size`` as JPEG files (the baseline's folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for copy in range(copies):
        for name in SOURCES:
            rgb = cv2.resize(getattr(skdata, name)(), (size, size), interpolation=cv2.INTER_AREA)
            path = folder / f"{name}{copy}.jpg"
            cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
            paths.append(path)
    return paths


def one_by_one(model: str, weights: Path, images: list[Path], out: Path, size: int, device: str) -> float:
    """Seconds per image of predict.py's predictor with batch size 1 (the model loaded beforehand, one warm-up)."""
    net = visionzoo.create_model(model)
    net.load_state_dict(load_file(str(weights)))
    predictor = CutoutPredictor(net, str(images[0]), str(out / "warm"), input_size=size, device=device,
                                preprocessing=resolve_preprocessing(model))
    predictor.run()
    predictor.input, predictor.output = str(images[0].parent), out / "timed"
    started = time.perf_counter()
    predictor.run()
    return (time.perf_counter() - started) / len(images)


def load(server, images: list[bytes], concurrency: int, requests: int) -> dict[str, float]:
    """``requests`` cut-outs with ``concurrency`` in flight: requests/s, p50 and p95 latency (s)."""
    latencies: list[float] = []

    def one(index: int) -> None:
        started = time.perf_counter()
        answer = client.post("/v1/cutout", content=images[index % len(images)])
        answer.raise_for_status()
        latencies.append(time.perf_counter() - started)

    with server.client() as client:
        client.post("/v1/cutout", content=images[0]).raise_for_status()  # warm-up
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, range(requests)))
        wall = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else latencies * 19
    return {"rps": requests / wall, "p50": statistics.median(latencies), "p95": cuts[18]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["ben_dla34"])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=None, help="per level (default max(2c, 8))")
    parser.add_argument("--max-batch", default="auto", help="serve.max_batch (auto: 8 on a GPU, 1 on a CPU)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=None, help="append the table to this Markdown file")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        paths = write_images(folder / "images", args.size)
        images = [p.read_bytes() for p in paths]
        for model in args.models:
            torch.manual_seed(0)
            weights = folder / f"{model}.safetensors"
            save_file({k: v.contiguous() for k, v in visionzoo.create_model(model).state_dict().items()}, str(weights))
            server = launch([f"model={model}", f"ckpt_path={weights}", f"serve.input_size={args.size}",
                             f"serve.max_batch={args.max_batch}", f"serve.device={args.device}",
                             f"serve.max_queue={max(args.concurrency) * 2}", "serve.jobs_dir=jobs"], folder)
            try:
                for concurrency in args.concurrency:
                    result = load(server, images, concurrency, args.requests or max(2 * concurrency, 8))
                    rows.append((model, "serve", concurrency, result["rps"], result["p50"], result["p95"]))
                    print(rows[-1], flush=True)
            finally:
                server.stop()
            # after the server's runs, so that this process's own torch threads never compete with the server's
            baseline = one_by_one(model, weights, paths, folder / f"{model}_predict", args.size, args.device)
            rows.insert(len(rows) - len(args.concurrency), (model, "predict.py, one by one", 1, 1 / baseline,
                                                            baseline, baseline))
            print(rows[-len(args.concurrency) - 1], flush=True)
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    device = torch.cuda.get_device_name() if device.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)"
    table = [f"### {args.size} x {args.size}, {device}, serve.max_batch={args.max_batch}", "",
             f"`python benchmarks/serve_bench.py {' '.join(sys.argv[1:])}`", "",
             "| model | path | concurrency | images/s | p50 latency (s) | p95 latency (s) |", "|---|---|---|---|---|---|"]
    table += [f"| {m} | {path} | {c} | {rps:.2f} | {p50:.2f} | {p95:.2f} |" for m, path, c, rps, p50, p95 in rows]
    text = "\n".join(table) + "\n"
    print(text)
    if args.out:
        with open(args.out, "a") as sink:
            sink.write("\n" + text)


if __name__ == "__main__":
    main()
