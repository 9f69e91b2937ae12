"""Blending the default DIP output with BM3D/CBM3D by a fixed weight (issue 15): is there a weight, chosen without
the clean image, that beats BM3D given the true sigma?

On scikit-image's 10 images (the evaluation's preparation and noise seeds, so the numbers match ``eval.py
experiment=dip_denoise``), each noisy image is fitted with the default recipe and denoised by BM3D/CBM3D at the
estimated sigma (what a blend can use) and at the true sigma (the baseline). For every DIP share ``w`` on a grid,
``w DIP + (1 - w) BM3D(estimated)`` is scored; the table gives the mean PSNR per share and noise level, the oracle
share per image (needs the clean image: the ceiling of any blending rule), and the share picked
leave-one-image-out (the share with the best mean PSNR over the other images, both noise levels, applied to the
held-out one). It also scores an adaptive rule, ``share = min(1, scale x sigma_est^2 / mean((DIP - BM3D)^2))``
(a DIP output far from BM3D's, relative to the noise, gets less weight), its scale fitted the same way.

    python research/dip/dip_blend.py --size 96            # -> research/dip/DIP_BLEND.md (about 7 minutes, 2 cores)

``--outputs SIGMA=DIR ...`` reads the DIP outputs an evaluation saved instead of fitting them again (``python eval.py
experiment=dip_denoise data.size=256 data.sigma=50 task.save_outputs=true`` writes the DIP output alone as
``<run dir>/denoised_dip/<image>.png`` beside the default's blend in ``denoised/``; with ``task.fit.blend=null``
``denoised/`` holds it), so the blend is scored on exactly the outputs of that run (8-bit, as saved):

    python research/dip/dip_blend.py --size 256 --outputs 25=<run dir>/denoised_dip 50=<run dir>/denoised_dip \
        --out research/dip/DIP_BLEND_256.md
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

import numpy as np

import visionzoo
from visionzoo.data.denoise import SKIMAGE_SET, add_noise, skimage_image
from visionzoo.data.images import read_image
from visionzoo.dip.classical import bm3d_denoise
from visionzoo.dip.estimate import estimate_noise_sigma
from visionzoo.dip.fit import psnr
from visionzoo.dip.recipe import DIPFitSettings, fit_image, from_hwc, to_hwc

HERE = Path(__file__).resolve().parent
SHARES = np.round(np.arange(0.0, 1.0001, 0.05), 2)
SCALES = np.round(np.arange(0.0, 0.5001, 0.01), 2)


def _dip_output(noisy: np.ndarray, outputs: Path | None) -> np.ndarray:
    """The default DIP output for ``noisy`` ``(H, W, C)`` in [0, 1]: fitted (the evaluation's default recipe and
    stopping), or read from ``outputs`` (an evaluation's ``denoised`` folder) as ``(H, W, C)``."""
    if outputs is None:
        fitted = fit_image(partial(visionzoo.create_model, name="dip_scaled"), "auto", from_hwc(noisy),
                           DIPFitSettings(early_stop={"rule": "auto"}))  # configs/task/dip_denoise.yaml's stopping
        return to_hwc(fitted.result.image)
    loaded = read_image(outputs)
    pixels = loaded.pixels[..., :1] if noisy.shape[2] == 1 else loaded.pixels
    if pixels.shape != noisy.shape:
        raise SystemExit(f"{outputs} is {pixels.shape[1]}x{pixels.shape[0]}, the noisy image {noisy.shape[1]}x"
                         f"{noisy.shape[0]}: give the --size of the evaluation that saved it")
    return pixels.astype(np.float32) / 255.0


def _case(index: int, name: str, size: int, sigma: float, outputs: Path | None) -> dict:
    """One image at one noise level: the DIP output (:func:`_dip_output`; ``outputs`` the PNG an evaluation saved or
    ``None``), BM3D at the estimated and true sigma, the clean image (each ``(1, C, H, W)``), and the estimated sigma
    (0..255, the fit's own estimate)."""
    clean = skimage_image(name, size).astype(np.float32) / 255.0
    noisy = add_noise(clean, "gaussian", sigma, seed=index)  # the evaluation's seed for image ``index``
    sigma_est = estimate_noise_sigma(noisy) * 255.0
    return {"dip": from_hwc(_dip_output(noisy, outputs)), "estimated": from_hwc(bm3d_denoise(noisy, sigma_est / 255.0)),
            "true": from_hwc(bm3d_denoise(noisy, sigma / 255.0)), "clean": from_hwc(clean), "sigma_est": sigma_est}


def _output_folders(pairs: list[str], sigmas: list[float]) -> dict[float, Path]:
    """``["25=DIR", ...]`` as ``{25.0: DIR}``; every folder must exist and every sigma of ``--sigmas`` have one."""
    folders = {}
    for pair in pairs:
        sigma, sep, folder = pair.partition("=")
        if not sep or not Path(folder).is_dir():
            raise SystemExit(f"--outputs {pair}: write SIGMA=DIR with DIR an evaluation's denoised folder")
        folders[float(sigma)] = Path(folder)
    missing = [f"{s:g}" for s in sigmas if s not in folders]
    if folders and missing:
        raise SystemExit(f"--outputs has no folder for sigma {', '.join(missing)}; add SIGMA=DIR or leave it out of "
                         "--sigmas")
    return folders


def _blend_psnr(case: dict, share: float) -> float:
    return psnr(share * case["dip"] + (1 - share) * case["estimated"], case["clean"])


def _ratio(case: dict) -> float:
    """The estimated noise power over the mean squared DIP-BM3D difference (no clean image needed)."""
    difference = (case["dip"].double() - case["estimated"]).pow(2).mean().item()
    return (case["sigma_est"] / 255.0) ** 2 / max(difference, 1e-12)


def _scaled_share(case: dict, scale: float) -> float:
    """The adaptive rule's share, ``min(1, scale x sigma^2 / |DIP - BM3D|^2)``."""
    return min(1.0, scale * _ratio(case))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--sigmas", type=float, nargs="+", default=[25.0, 50.0])
    parser.add_argument("--images", nargs="+", default=list(SKIMAGE_SET))
    parser.add_argument("--out", default=str(HERE / "DIP_BLEND.md"))
    parser.add_argument("--outputs", nargs="+", default=[], metavar="SIGMA=DIR",
                        help="read each noise level's DIP outputs from an evaluation's denoised folder")
    args = parser.parse_args()
    folders = _output_folders(args.outputs, args.sigmas)
    cases = {}
    for sigma in args.sigmas:
        for position, name in enumerate(args.images):  # the evaluation seeds noise by position in data.images
            outputs = folders[sigma] / f"{name}.png" if folders else None
            cases[name, sigma] = case = _case(position, name, args.size, sigma, outputs)
            print(f"{name} sigma {sigma:g}: DIP {psnr(case['dip'], case['clean']):.2f}, BM3D true "
                  f"{psnr(case['true'], case['clean']):.2f}", flush=True)
    scores = {key: np.array([_blend_psnr(case, w) for w in SHARES]) for key, case in cases.items()}
    held_out = {}
    for name in args.images:
        others = np.mean([s for (n, _), s in scores.items() if n != name], axis=0)
        for sigma in args.sigmas:
            held_out[name, sigma] = (SHARES[int(np.argmax(others))], scores[name, sigma][int(np.argmax(others))])
    pooled = np.mean(list(scores.values()), axis=0)
    # the adaptive rule: share = min(1, scale x sigma^2 / |DIP - BM3D|^2), scale fitted like the fixed share
    adaptive = {key: np.array([_blend_psnr(case, _scaled_share(case, k)) for k in SCALES])
                for key, case in cases.items()}
    adaptive_held_out = {}
    for name in args.images:
        others = np.mean([s for (n, _), s in adaptive.items() if n != name], axis=0)
        for sigma in args.sigmas:
            best = int(np.argmax(others))
            share = _scaled_share(cases[name, sigma], SCALES[best])
            adaptive_held_out[name, sigma] = (share, adaptive[name, sigma][best])
    adaptive_pooled = np.mean(list(adaptive.values()), axis=0)
    subset = args.images != list(SKIMAGE_SET)
    source = (f"the DIP outputs saved by `python eval.py experiment=dip_denoise data.size={args.size} "
              + (f"'data.images=[{','.join(args.images)}]' " if subset else "")
              + "task.save_outputs=true` at each sigma (`denoised_dip/`, or `denoised/` of a run with "
              + "`task.fit.blend=null`; 8-bit PNGs)" if folders
              else "the default DIP recipe")
    chosen = ((f" --sigmas {' '.join(f'{s:g}' for s in args.sigmas)}" if args.sigmas != [25.0, 50.0] else "")
              + (f" --images {' '.join(args.images)}" if subset else ""))
    lines = [
        "# DIP + BM3D blend by a fixed share",
        "",
        f"Made by `python research/dip/dip_blend.py --size {args.size}{chosen}"
        + (" --outputs " + " ".join(f"{s:g}=<run dir>/{folders[s].name}" for s in args.sigmas) if folders else "")
        + f"`: scikit-image's images at {args.size}x{args.size}, the evaluation's noise seeds, {source}, "
        "BM3D/CBM3D at the estimated sigma in the blend. `share` is the DIP output's weight.",
        "",
        "| image | sigma | sigma est. | DIP dB | BM3D est. sigma dB | BM3D true sigma dB | oracle share | oracle blend "
        "dB | held-out share | held-out blend dB | sigma^2 / DIP-BM3D | adaptive share | adaptive blend dB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (name, sigma), case in cases.items():
        best = int(np.argmax(scores[name, sigma]))
        share, value = held_out[name, sigma]
        lines.append(f"| {name} | {sigma:g} | {case['sigma_est']:.1f} | {psnr(case['dip'], case['clean']):.2f} | "
                     f"{psnr(case['estimated'], case['clean']):.2f} | {psnr(case['true'], case['clean']):.2f} | "
                     f"{SHARES[best]:.2f} | {scores[name, sigma][best]:.2f} | {share:.2f} | {value:.2f} | "
                     f"{_ratio(case):.2f} | {adaptive_held_out[name, sigma][0]:.2f} | "
                     f"{adaptive_held_out[name, sigma][1]:.2f} |")
    lines += ["", "| sigma | DIP dB | BM3D est. sigma dB | BM3D true sigma dB | oracle blend dB | held-out blend dB | "
              "best fixed share (in-sample) | its dB | adaptive, held-out dB |",
              "|---|---|---|---|---|---|---|---|---|"]
    for sigma in args.sigmas:
        keys = [k for k in cases if k[1] == sigma]
        mean = lambda f: np.mean([f(k) for k in keys])  # noqa: E731
        per_share = np.mean([scores[k] for k in keys], axis=0)
        lines.append(
            f"| {sigma:g} | {mean(lambda k: psnr(cases[k]['dip'], cases[k]['clean'])):.2f} | "
            f"{mean(lambda k: psnr(cases[k]['estimated'], cases[k]['clean'])):.2f} | "
            f"{mean(lambda k: psnr(cases[k]['true'], cases[k]['clean'])):.2f} | {mean(lambda k: scores[k].max()):.2f}"
            f" | {mean(lambda k: held_out[k][1]):.2f} | {SHARES[int(np.argmax(per_share))]:.2f} | "
            f"{per_share.max():.2f} | {mean(lambda k: adaptive_held_out[k][1]):.2f} |")
    lines += ["", "Mean PSNR per share (both noise levels pooled): " + ", ".join(
        f"{w:.2f}: {p:.2f}" for w, p in zip(SHARES[::2], pooled[::2])) + "."]
    for sigma in args.sigmas:
        per_share = np.mean([scores[k] for k in cases if k[1] == sigma], axis=0)
        lines += ["", f"Mean PSNR per share up to 0.5 at sigma {sigma:g}: " + ", ".join(
            f"{w:.2f}: {p:.2f}" for w, p in zip(SHARES[:11], per_share[:11])) + "."]
    lines += ["", f"Adaptive rule `share = min(1, scale x sigma_est^2 / mean((DIP - BM3D)^2))`: best scale (in-sample, "
              f"pooled) {SCALES[int(np.argmax(adaptive_pooled))]:.2f}, mean PSNR {adaptive_pooled.max():.2f} dB; "
              "per scale: " + ", ".join(f"{k:.2f}: {p:.2f}" for k, p in zip(SCALES[::5], adaptive_pooled[::5])) + "."]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
