"""Time-to-PSNR of DIP denoising (issues 4 and 15): the estimated architecture vs the original DIP ``skip`` net vs
the product's default vs BM3D.

On scikit-image images at sigma 25 (same preparation and noise as the oracle sweep), each DIP variant is fitted
with the DIP recipe while its wall time and PSNR (EMA output vs clean) are recorded every iteration; BM3D/CBM3D
gives one point. Reported per image: the original DIP's final PSNR and time, the time the estimated architecture
needs to reach that PSNR (target: at most 1/10 of the original's time), both final PSNRs and BM3D's. The default
(``configs/task/dip_denoise.yaml``'s ``task.fit``: the size class's budget, its stopping rule and the blend with
BM3D/CBM3D at the estimated sigma) is timed from its start, BM3D included, with the blend's PSNR at every
iteration (:func:`default_fit`).

    python research/dip/dip_time_to_psnr.py --images camera astronaut          # -> research/dip/DIP_TIME_TO_PSNR.md
"""

from __future__ import annotations

import argparse
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

from omegaconf import OmegaConf

import visionzoo
from visionzoo.data.denoise import SKIMAGE_SET, add_noise, skimage_image
from visionzoo.data.images import write_image
from visionzoo.dip.classical import bm3d_denoise
from visionzoo.dip.estimate import estimate_architecture
from visionzoo.dip.recipe import DIPFitSettings, classical_denoise, fit_image, from_hwc
from visionzoo.dip.fit import psnr
from visionzoo.visualize import line_plot

HERE = Path(__file__).resolve().parent
DEFAULT_FIT = HERE.parents[1] / "configs" / "task" / "dip_denoise.yaml"


def timed_fit(name: str, architecture: str, noisy: torch.Tensor, clean: torch.Tensor, iterations: int):
    """Fit and return (seconds after each iteration, PSNR after each iteration, estimate, parameters)."""
    stamps: list[float] = []
    start = time.perf_counter()
    fitted = fit_image(partial(visionzoo.create_model, name=name), architecture, noisy,
                       DIPFitSettings(iterations=iterations), clean,
                       on_step=lambda step, _: stamps.append(time.perf_counter() - start))
    psnrs = fitted.result.psnr_clean  # backtracked steps log no PSNR: keep the latest stamps
    return np.array(stamps[len(stamps) - len(psnrs):]), np.array(psnrs), fitted.estimate, fitted.parameters


def default_fit(noisy: np.ndarray, clean: np.ndarray, device: torch.device):
    """The product's default fit of ``noisy`` ``(H, W, C)`` in [0, 1] (:data:`DEFAULT_FIT`'s ``task.fit``): seconds
    since the start after each iteration, the blend's PSNR after each iteration, the returned output's PSNR and
    seconds, and the DIP share.

    The blend of the moving average ``D_t`` with BM3D's output ``B`` is ``s D_t + (1 - s) B``; its error to the
    clean image ``C`` is ``s (D_t - C')`` with ``C' = (C - (1 - s) B) / s``, so the fit is given ``C'`` as its
    reference and its PSNR curve, shifted by ``-20 log10(s)`` dB, is the blend's at every iteration. ``B`` comes
    from the recipe's own :func:`~visionzoo.dip.recipe.classical_denoise` (deterministic), run once here before the
    clock starts; the clock includes the recipe's own BM3D run, which comes before the fit.
    """
    settings = DIPFitSettings(**OmegaConf.to_container(OmegaConf.load(DEFAULT_FIT).task.fit))
    share = settings.share(*noisy.shape[:2])
    if settings.blend != "bm3d" or share <= 0:
        raise SystemExit(f"{DEFAULT_FIT}: the default no longer blends a DIP share with BM3D; update default_fit")
    noisy_t, clean_t = from_hwc(noisy).to(device), from_hwc(clean).to(device)
    classical, _ = classical_denoise(noisy_t, estimate_architecture(noisy))
    reference = (clean_t - (1 - share) * classical) / share
    stamps: list[float] = []
    start = time.perf_counter()
    fitted = fit_image(partial(visionzoo.create_model, name="dip_scaled"), "auto", noisy_t, settings, reference,
                       on_step=lambda step, _: stamps.append(time.perf_counter() - start))
    seconds = time.perf_counter() - start
    curve = np.array(fitted.result.psnr_clean) - 20 * np.log10(share)
    return (np.array(stamps[len(stamps) - len(curve):]), curve, psnr(fitted.result.image, clean_t), seconds,
            share)


def first_time_at(seconds: np.ndarray, curve: np.ndarray, target: float) -> float:
    reached = np.nonzero(curve >= target)[0]
    return float(seconds[reached[0]]) if len(reached) else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", nargs="+", default=list(SKIMAGE_SET))
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--sigma", type=float, default=25.0)
    parser.add_argument("--skip-iterations", type=int, default=3000)
    parser.add_argument("--iterations", type=int, default=800, help="for the estimated architecture")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default=str(HERE / "DIP_TIME_TO_PSNR.md"))
    args = parser.parse_args()
    device = torch.device(args.device)
    rows, plots = [], []
    for image in args.images:
        clean_np = skimage_image(image, args.size).astype(np.float32) / 255
        noisy_np = add_noise(clean_np, "gaussian", args.sigma, seed=SKIMAGE_SET.index(image) * 1000 + int(args.sigma))
        clean, noisy = (from_hwc(a).to(device) for a in (clean_np, noisy_np))
        t_skip, p_skip, _, n_skip = timed_fit("dip_skip", "fixed", noisy, clean, args.skip_iterations)
        t_est, p_est, estimate, n_est = timed_fit("dip_scaled", "auto", noisy, clean, args.iterations)
        t_def, p_def, final_def, s_def, share = default_fit(noisy_np, clean_np, device)
        start = time.perf_counter()
        bm3d_out = bm3d_denoise(noisy_np, args.sigma / 255)
        t_bm3d = time.perf_counter() - start
        p_bm3d = psnr(torch.from_numpy(bm3d_out), torch.from_numpy(clean_np))
        reach = first_time_at(t_est, p_est, p_skip[-1])
        rows.append(dict(image=image, skip_psnr=p_skip[-1], skip_peak=p_skip.max(), skip_s=t_skip[-1],
                         skip_peak_s=float(t_skip[p_skip.argmax()]), est=(estimate.width, estimate.num_scales),
                         est_params=n_est, est_psnr=p_est[-1], est_peak=p_est.max(), est_s=t_est[-1], reach_s=reach,
                         ratio=reach / t_skip[-1], reach_peak_s=first_time_at(t_est, p_est, p_skip.max()),
                         bm3d_psnr=p_bm3d, bm3d_s=t_bm3d, skip_params=n_skip, default_psnr=final_def,
                         default_s=s_def, default_steps=len(p_def), share=share))
        print(rows[-1], flush=True)
        curves = {f"dip_skip ({n_skip:,})": p_skip, f"estimated {estimate.width}x{estimate.num_scales} ({n_est:,})": p_est,
                  f"default: {share:g} x DIP + {1 - share:g} x BM3D": p_def,
                  f"BM3D {p_bm3d:.2f} dB in {t_bm3d:.1f} s": [p_bm3d, p_bm3d]}
        times = dict(zip(curves, (t_skip, t_est, t_def, [0.0, float(max(t_skip[-1], t_def[-1]))])))
        plots.append(line_plot(curves, f"{image}, sigma {args.sigma:g}: PSNR vs wall time", "seconds", "PSNR (dB)",
                               x=times))
    write_image(Path(args.out).with_suffix(".png"), np.concatenate(plots, axis=0))
    mean = lambda key: float(np.nanmean([r[key] for r in rows]))  # noqa: E731
    lines = [
        "# DIP time-to-PSNR",
        "",
        f"{args.size}x{args.size} scikit-image images, Gaussian sigma {args.sigma:g}, device {device} "
        f"({torch.get_num_threads()} threads). Original DIP `dip_skip`: {args.skip_iterations} iterations; estimated "
        f"`dip_scaled`: {args.iterations}; both with the DIP recipe (EMA output) and no stopping rule. The default: "
        f"`configs/task/dip_denoise.yaml`'s fit (size-class budget, its stopping rule, the DIP output blended with "
        f"BM3D/CBM3D at the estimated sigma), timed from its start with its BM3D run. BM3D/CBM3D given the true "
        f"sigma.",
        f"Made by `python research/dip/dip_time_to_psnr.py --images {' '.join(args.images)}`; curves in "
        f"`{Path(args.out).with_suffix('.png').name}`.",
        "",
        "| image | dip_skip final dB | dip_skip s | dip_skip peak dB (at s) | estimated (w, s), params | "
        "estimated final (peak) dB | estimated s | s to reach dip_skip final | share of dip_skip time | "
        "s to reach dip_skip peak | default dB (DIP share) | default s (iterations) | BM3D dB | BM3D s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['image']} | {r['skip_psnr']:.2f} | {r['skip_s']:.0f} | {r['skip_peak']:.2f} "
                     f"({r['skip_peak_s']:.0f}) | {r['est']}, {r['est_params']:,} | {r['est_psnr']:.2f} "
                     f"({r['est_peak']:.2f}) | {r['est_s']:.0f} | {r['reach_s']:.1f} | {r['ratio']:.3f} | "
                     f"{r['reach_peak_s']:.1f} | {r['default_psnr']:.2f} ({r['share']:g}) | {r['default_s']:.0f} "
                     f"({r['default_steps']}) | {r['bm3d_psnr']:.2f} | {r['bm3d_s']:.1f} |")
    lines += [
        f"| **mean** | {mean('skip_psnr'):.2f} | {mean('skip_s'):.0f} | {mean('skip_peak'):.2f} "
        f"({mean('skip_peak_s'):.0f}) | | {mean('est_psnr'):.2f} ({mean('est_peak'):.2f}) | {mean('est_s'):.0f} | "
        f"{mean('reach_s'):.1f} | {mean('ratio'):.3f} | {mean('reach_peak_s'):.1f} | {mean('default_psnr'):.2f} | "
        f"{mean('default_s'):.0f} | {mean('bm3d_psnr'):.2f} | {mean('bm3d_s'):.1f} |",
        "",
        f"Mean PSNR gap of the estimated architecture to BM3D: {mean('est_psnr') - mean('bm3d_psnr'):+.2f} dB "
        f"(final), {mean('est_peak') - mean('bm3d_psnr'):+.2f} dB (peak, needs the clean image to find). NaN: the "
        "PSNR was never reached. The default against BM3D given the true sigma: "
        f"{mean('default_psnr') - mean('bm3d_psnr'):+.2f} dB in {mean('default_s') / mean('bm3d_s'):.0f}x its time.",
    ]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
