"""DIP on a GPU (issue 15): the batched fitter's speed, bf16's PSNR cost, and a 12-megapixel photo's tiles.

    python research/dip/dip_gpu.py --out DIR            # on a CUDA machine; writes DIR/dip_gpu.json and DIR/DIP_GPU.md

1. **Speed**: ``fit_dip`` (batch 1) and ``fit_dip_batch`` (8, 32) on 256x256 RGB astronaut crops with their own
   noise draws (sigma 50), the generator the recipe estimates for them, fp32 and bf16 (``precision``); ms per
   iteration over ``--timed`` iterations after ``--warmup``, images per second at the size class's budget, peak
   GPU memory. The same at 512x512 (the tiles of big photos) for batch 1, 8, 16.
2. **bf16's PSNR cost**: the evaluation's ten scikit-image images at 256x256, sigma 50 (``eval.py
   experiment=dip_denoise data.size=256 data.sigma=50``'s noise), the default recipe's DIP output alone
   (``task.fit`` of configs/task/dip_denoise.yaml with ``blend=null``), fp32 against bf16: PSNR per image, seconds.
3. **A 12-megapixel photo**: astronaut resized to 4000x3000 (cubic), Gaussian sigma 25 (seed 0), through
   :class:`~visionzoo.predict.denoise.DenoisePredictor` (512x512 tiles, overlap 32, ``--tile-batch`` tiles per
   fit, the faster precision unless bf16 costs more than 0.1 dB, the DIP output alone) for at most
   ``--photo-seconds``; finished tiles are in the resume cache, so the whole photo's time is extrapolated from them
   when the deadline stops it. CBM3D (the default's blend) of one 512x512 tile is timed on the CPU beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import torch
import yaml

import visionzoo
from visionzoo.data.denoise import DenoiseDataModule, add_noise, skimage_image
from visionzoo.data.images import read_image, write_image
from visionzoo.dip.classical import bm3d_denoise
from visionzoo.dip.estimate import estimate_architecture, iteration_budget
from visionzoo.dip.fit import psnr, fit_dip, fit_dip_batch
from visionzoo.dip.recipe import DIPFitSettings, fit_images
from visionzoo.predict.denoise import DenoisePredictor

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FIT = ROOT / "configs" / "task" / "dip_denoise.yaml"
PHOTO_SIZE = (3000, 4000)  # rows, columns: 12 megapixels


class Deadline(Exception):
    """The photo's time is up (its finished tiles stay in the resume cache)."""


def default_fit(**changes) -> dict:
    """``task.fit`` of configs/task/dip_denoise.yaml with ``changes`` (plain YAML: GPU images may lack omegaconf)."""
    return {**yaml.safe_load(DEFAULT_FIT.read_text())["task"]["fit"], **changes}


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def speed(size: int, batch: int, precision: str, warmup: int, timed: int, device: torch.device) -> dict:
    """ms per iteration of ``batch`` generators fitted together at ``size`` x ``size`` RGB."""
    clean = skimage_image("astronaut", size).astype(np.float32) / 255
    noisy = torch.stack([torch.from_numpy(add_noise(clean, sigma=50.0, seed=k)).permute(2, 0, 1).float()
                         for k in range(batch)]).to(device)
    kwargs = estimate_architecture(noisy[0].permute(1, 2, 0).cpu().numpy()).model_kwargs()
    torch.manual_seed(0)
    nets = [visionzoo.create_model("dip_scaled", **kwargs, out_channels=3) for _ in range(batch)]

    def run(iterations: int) -> float:  # the first image's first loss (fp32's and bf16's differ under autocast)
        if batch == 1:
            return fit_dip(nets[0], noisy, iterations=iterations, precision=precision).loss[0]
        return fit_dip_batch(nets, noisy, iterations=iterations, precision=precision)[0].loss[0]

    first_loss = run(warmup)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    synchronize()
    start = time.perf_counter()
    run(timed)
    synchronize()
    seconds = (time.perf_counter() - start) / timed
    budget = iteration_budget(size, size)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return {"size": size, "batch": batch, "precision": precision, "generator": kwargs, "ms_per_iteration":
            1000 * seconds, "budget": budget, "images_per_second": batch / (budget * seconds), "peak_gib": peak,
            "first_loss": first_loss}


def quality(sigma: float, precision: str, size: int, iterations: int | str, device: torch.device) -> dict:
    """The default recipe's DIP output (no blend) on the evaluation's ten images: PSNR per image and seconds."""
    data = DenoiseDataModule(size=size, sigma=sigma)
    data.setup("test")
    items = [data.test_set[i] for i in range(len(data.test_set))]
    settings = DIPFitSettings(**default_fit(blend=None, precision=precision, iterations=iterations))
    synchronize()
    start = time.perf_counter()
    fitted = fit_images(partial(visionzoo.create_model, name="dip_scaled"), "auto",
                        [item["noisy"][None].to(device) for item in items], settings)
    synchronize()
    seconds = time.perf_counter() - start
    scores = {item["name"]: psnr(f.result.image.cpu(), item["clean"][None]) for item, f in zip(items, fitted)}
    return {"sigma": sigma, "precision": precision, "size": size, "psnr": scores,
            "mean_psnr": statistics.mean(scores.values()), "seconds": seconds,
            "iterations": {item["name"]: f.result.iterations for item, f in zip(items, fitted)},
            "generators": sorted({f.description for f in fitted})}


def make_photo(folder: Path) -> tuple[Path, np.ndarray]:
    """The 12-megapixel test photo (noisy PNG in ``folder``) and its clean ``(H, W, 3)`` float32 in [0, 1]."""
    rows, columns = PHOTO_SIZE
    clean = cv2.resize(skimage_image("astronaut"), (columns, rows), interpolation=cv2.INTER_CUBIC)
    clean = clean.astype(np.float32) / 255
    noisy = add_noise(clean, sigma=25.0, seed=0)
    path = folder / "input" / "photo.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, np.round(noisy * 255).astype(np.uint8))
    return path, clean


def photo(folder: Path, precision: str, batch: int, seconds: float, device: torch.device) -> dict:
    path, clean = make_photo(folder)
    predictor = DenoisePredictor(partial(visionzoo.create_model, name="dip_scaled"), str(path.parent),
                                 str(folder / "output"), fit=default_fit(blend=None, precision=precision),
                                 tile={"size": 512, "overlap": 32, "batch": batch}, device=str(device))
    image = read_image(path)
    tiles = predictor.tiles(*clean.shape[:2])
    start = time.perf_counter()

    def check(done: int, total: int) -> None:
        if time.perf_counter() - start > seconds:
            raise Deadline

    try:
        pixels = predictor.denoise(image, on_step=check)
        finished = True
    except Deadline:
        finished = False
    elapsed = time.perf_counter() - start
    cached = len(list(predictor.tile_cache(path).folder.glob("*.npy")))
    result = {"tiles": len(tiles), "tiles_done": cached if not finished else len(tiles), "seconds": elapsed,
              "precision": precision, "tile_batch": batch, "finished": finished}
    result["photo_seconds_estimate"] = elapsed / max(result["tiles_done"], 1) * len(tiles) if not finished else elapsed
    if finished:
        denoised = pixels.astype(np.float32) / 255
        noisy = image.pixels.astype(np.float32) / 255
        result["psnr"] = float(10 * np.log10(1 / np.mean((denoised - clean) ** 2)))
        result["psnr_noisy"] = float(10 * np.log10(1 / np.mean((noisy - clean) ** 2)))
    return result


def cbm3d_tile_seconds() -> float:
    clean = cv2.resize(skimage_image("astronaut"), PHOTO_SIZE[::-1], interpolation=cv2.INTER_CUBIC)
    tile = add_noise(clean[1000:1512, 1500:2012].astype(np.float32) / 255, sigma=25.0, seed=0)
    start = time.perf_counter()
    bm3d_denoise(tile, 25.0 / 255)
    return time.perf_counter() - start


def table(results: dict) -> str:
    lines = ["| size | batch | precision | ms / iteration | images / s at the budget | peak GiB |",
             "|---|---|---|---|---|---|"]
    for r in results["speed"]:
        lines.append(f"| {r['size']} | {r['batch']} | {r['precision']} | {r['ms_per_iteration']:.1f} | "
                     f"{r['images_per_second']:.3f} ({r['budget']} it.) | {r['peak_gib']:.2f} |")
    for q in results["quality"]:
        lines += ["", f"sigma {q['sigma']:g}, {q['precision']}: mean {q['mean_psnr']:.2f} dB in {q['seconds']:.0f} s "
                  f"({', '.join(q['generators'])}): " + ", ".join(f"{k} {v:.2f}" for k, v in q["psnr"].items())]
    if "photo" in results:
        lines += ["", "photo: " + json.dumps(results["photo"])]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--timed", type=int, default=50)
    parser.add_argument("--speed-size", type=int, default=256)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--tile-batches", type=int, nargs="+", default=[1, 8, 16])
    parser.add_argument("--quality-size", type=int, default=256)
    parser.add_argument("--sigmas", type=float, nargs="+", default=[50.0])
    parser.add_argument("--quality-iterations", default="auto", help="auto: the size class's budget (tests: fewer)")
    parser.add_argument("--tile-batch", type=int, default=0, help="0: the fastest of --tile-batches")
    parser.add_argument("--photo-seconds", type=float, default=150.0)
    parser.add_argument("--work", type=Path, default=Path("/tmp/dip_gpu_photo"), help="the photo and its tiles")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    results: dict = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                     "torch": torch.__version__, "cpus": os.cpu_count(), "speed": [], "quality": []}

    def save() -> None:
        (args.out / "dip_gpu.json").write_text(json.dumps(results, indent=1))
        (args.out / "DIP_GPU.md").write_text(table(results))

    with ProcessPoolExecutor(1) as pool:
        cbm3d = pool.submit(cbm3d_tile_seconds)  # on the CPU while the GPU works
        for size, batches in ((args.speed_size, args.batches), (512, args.tile_batches)):
            for batch in batches:
                for precision in ("fp32", "bf16"):
                    results["speed"].append(speed(size, batch, precision, args.warmup, args.timed, device))
                    print(json.dumps(results["speed"][-1]), flush=True)
                    save()
        for sigma in args.sigmas:
            for precision in ("fp32", "bf16"):
                results["quality"].append(quality(sigma, precision, args.quality_size,
                                                  args.quality_iterations if args.quality_iterations == "auto"
                                                  else int(args.quality_iterations), device))
                print(json.dumps(results["quality"][-1]), flush=True)
                save()
        cost = statistics.mean(q["mean_psnr"] for q in results["quality"] if q["precision"] == "fp32") - \
            statistics.mean(q["mean_psnr"] for q in results["quality"] if q["precision"] == "bf16")
        tile_speed = [r for r in results["speed"] if r["size"] == 512]
        faster = min(("fp32", "bf16"), key=lambda p: min(r["ms_per_iteration"] / r["batch"] for r in tile_speed
                                                        if r["precision"] == p))
        precision = faster if cost <= 0.1 else "fp32"
        batch = args.tile_batch or min((r for r in tile_speed if r["precision"] == precision),
                                       key=lambda r: r["ms_per_iteration"] / r["batch"])["batch"]
        results["photo"] = photo(args.work, precision, batch, args.photo_seconds, device)
        print(json.dumps(results["photo"]), flush=True)
        save()
        results["photo"]["cbm3d_tile_seconds"] = cbm3d.result()
        print(json.dumps(results["photo"]), flush=True)
        save()
    print(table(results))


if __name__ == "__main__":
    main()
