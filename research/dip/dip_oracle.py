"""Oracle sweep for the DIP architecture estimator (issue 4).

For every scikit-image calibration image and noise level, fit every ``dip_scaled`` architecture of a width x
scales grid with the DIP recipe and record the PSNR to the clean image along the way; then compare the grid's best
with the architecture :func:`visionzoo.dip.estimate.estimate_architecture` picks from the noisy image alone.

    python research/dip/dip_oracle.py sweep --workers 2          # fits, appended to research/dip/dip_oracle.jsonl
    python research/dip/dip_oracle.py table                      # regret table -> research/dip/DIP_ORACLE.md
    python research/dip/dip_oracle.py sweep --device cuda --batch 10 --workers 4   # on a GPU: images batched

The sweep resumes: fits already in the JSONL file are skipped (it runs case by case, so a stopped sweep leaves
whole grids for the table; ``--batch`` runs architecture by architecture, several images per ``fit_dip_batch``).
``--size 256 --iterations 3000`` is the paper's protocol (a GPU job); the committed table uses the reduced CPU
protocol named in its header. Each fit also runs the product's own stopping rule for its size beside it
(discrepancy below ``LARGE_SIDE``, settle from it up) and records the PSNR of the image that rule returns, so from
``LARGE_SIDE`` up the table scores the product's architecture under the product's stopping.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECORD_EVERY = 10


def _case(name: str, sigma: float, size: int):
    from visionzoo.data.denoise import SKIMAGE_SET, add_noise, skimage_image

    clean = skimage_image(name, size).astype("float32") / 255.0
    return clean, add_noise(clean, "gaussian", sigma, seed=SKIMAGE_SET.index(name) * 1000 + int(sigma))


def _fit(job: dict) -> list[dict]:
    """Fit one architecture to ``job["images"]`` at one noise level: alone with ``fit_dip``, or several images (of
    one channel count) together with ``fit_dip_batch``; every generator starts from the same seed-0 weights and
    every image's fit from seed 0, so a batched image's record matches its fit alone. One record per image."""
    import torch

    import visionzoo
    from visionzoo.dip.estimate import estimate_noise_sigma
    from visionzoo.dip.fit import default_reg_noise_std, fit_dip, fit_dip_batch
    from visionzoo.dip.recipe import from_hwc

    torch.set_num_threads(job["threads"])
    device = torch.device(job.get("device", "cpu"))
    cases = [_case(image, job["sigma"], job["size"]) for image in job["images"]]
    clean = torch.cat([from_hwc(c) for c, _ in cases]).to(device)
    noisy = torch.cat([from_hwc(n) for _, n in cases]).to(device)
    nets = []
    for _ in cases:
        torch.manual_seed(0)
        nets.append(visionzoo.create_model("dip_scaled", width=job["width"], num_scales=job["scales"],
                                           out_channels=clean.shape[1]).to(device))
    sigmas = [estimate_noise_sigma(n) * 255.0 for _, n in cases]
    recorders = [_Recorder(noisy[i : i + 1], clean[i : i + 1], s) for i, s in enumerate(sigmas)]
    settings = dict(iterations=job["iterations"], clean=clean, reg_noise_std=default_reg_noise_std(job["sigma"]),
                    precision=job["precision"])
    start = time.perf_counter()
    if len(nets) == 1:
        results = [fit_dip(nets[0], noisy, early_stop=recorders[0], **settings)]
    else:
        results = fit_dip_batch(nets, noisy, seeds=[0] * len(nets), early_stops=recorders, **settings)
    seconds = (time.perf_counter() - start) / len(nets)  # a batch's time, shared out
    records = []
    for image, result, recorder, sigma_est in zip(job["images"], results, recorders, sigmas):
        psnr_stopped, stopped_at = recorder.product_result(result)
        records.append({
            "image": image, **{k: job[k] for k in ("sigma", "width", "scales", "size", "iterations", "precision")},
            "psnr": result.psnr_clean[-1], "curve": result.psnr_clean[RECORD_EVERY - 1 :: RECORD_EVERY],
            "mse_noisy": recorder.mse_noisy, "sigma_est": sigma_est, "psnr_stopped": psnr_stopped,
            "stopped_at": stopped_at, "seconds": seconds, "batch": len(nets)})
    return records


class _Recorder:
    """Stands in for an early-stopping rule: never stops, records the EMA output's MSE to the noisy image (the
    quantity no-reference stopping rules watch) every ``RECORD_EVERY`` iterations, next to the PSNR curve, and runs
    the product's own rule for the image's size alongside (``make_early_stop({rule: auto})`` at the estimated sigma
    ``sigma255``: discrepancy below ``LARGE_SIDE``, settle from it up), noting the image it returns where it fires,
    so the table scores the product's stopping on the same fit without refitting."""

    best_image = None

    def __init__(self, noisy, clean, sigma255: float) -> None:
        from visionzoo.dip.stopping import make_early_stop

        self.noisy, self.clean, self.mse_noisy, self.calls = noisy, clean, [], 0
        self.product = make_early_stop({"rule": "auto"}, noisy, sigma255)
        self.fired = False

    def update(self, step: int, output, average) -> bool:
        self.calls += 1  # counted like the PSNR curve: steps undone by backtracking are not recorded
        if self.calls % RECORD_EVERY == 0:
            self.mse_noisy.append(float((average - self.noisy).pow(2).mean()))
        if not self.fired:
            self.fired = self.product.update(step, output, average)
        return False

    def product_result(self, result) -> tuple[float, int]:
        """PSNR (dB) of the image the product's fit returns and the iterations it ran: the rule's best image when it
        fired or has one at the end of the budget, else the last EMA output (``result.image``, the fit's end), as the
        product's fit loop (``visionzoo.dip.fit``) returns; clamped to [0, 1] like the product's output."""
        from visionzoo.dip.fit import psnr

        if self.product.best_image is not None:
            return psnr(self.product.best_image.clamp(0, 1), self.clean), self.product.best_step + 1
        return psnr(result.image.clamp(0, 1), self.clean), result.iterations


def _jobs(args: argparse.Namespace, done: set) -> list[dict]:
    """The fits not yet in ``done``, one job per process. By default one image per job, case by case (image,
    sigma), so a stopped sweep leaves whole grids; with ``args.batch`` n > 1, architecture by architecture, up to n
    images of one channel count in a job (``fit_dip_batch``: what pays on a GPU)."""
    from visionzoo.data.denoise import SKIMAGE_SET, skimage_image

    images = args.images or SKIMAGE_SET
    archs = [(width, scales) for width in sorted(args.widths, reverse=True) for scales in args.scales]
    protocol = dict(size=args.size, iterations=args.iterations, threads=args.threads, precision=args.precision,
                    device=args.device)

    def todo(image, sigma, width, scales) -> bool:
        return (image, sigma, width, scales, args.size, args.iterations, args.precision) not in done

    if args.batch <= 1:
        return [dict(images=[image], sigma=sigma, width=width, scales=scales, **protocol)
                for sigma in args.sigmas for image in images for width, scales in archs
                if todo(image, sigma, width, scales)]
    channels = {image: skimage_image(image, 8).shape[2] for image in images}
    jobs = []
    for sigma in args.sigmas:
        for width, scales in archs:
            for count in sorted(set(channels.values())):
                group = [i for i in images if channels[i] == count and todo(i, sigma, width, scales)]
                jobs += [dict(images=group[k : k + args.batch], sigma=sigma, width=width, scales=scales, **protocol)
                         for k in range(0, len(group), args.batch)]
    return jobs


def sweep(args: argparse.Namespace) -> None:
    if args.batch > 1 and args.precision == "bf16" and not args.device.startswith("cuda"):
        raise SystemExit("--batch with --precision bf16 needs --device cuda (CPU autocast does not reach through "
                         "fit_dip_batch's vmap); use --batch 1 or fp32")
    out = Path(args.out)
    done = set()
    if out.exists():
        for line in out.read_text().splitlines():
            r = json.loads(line)
            done.add((r["image"], r["sigma"], r["width"], r["scales"], r["size"], r["iterations"],
                      r.get("precision", "fp32")))
    jobs = _jobs(args, done)
    total, count = sum(len(job["images"]) for job in jobs), 0
    print(f"{total} fits to run in {len(jobs)} jobs ({len(done)} already in {out})", flush=True)
    with ProcessPoolExecutor(args.workers) as pool, open(out, "a") as handle:
        for records in pool.map(_fit, jobs):
            for record in records:
                count += 1
                handle.write(json.dumps(record) + "\n")
                print(f"[{count}/{total}] {record['image']} sigma {record['sigma']:g} w{record['width']} "
                      f"s{record['scales']}: {record['psnr']:.2f} dB in {record['seconds']:.0f} s", flush=True)
            handle.flush()


Grid = dict[tuple[str, float], dict[tuple[int, int], float]]


def _records(args: argparse.Namespace) -> dict[tuple[str, float], dict[tuple[int, int], dict]]:
    """The sweep's fits for this protocol, per case (image, sigma) and architecture (width, scales)."""
    fits: dict[tuple[str, float], dict[tuple[int, int], dict]] = {}
    for line in Path(args.out).read_text().splitlines():
        r = json.loads(line)
        if (r["size"] == args.size and r["iterations"] == args.iterations
                and r.get("precision", "fp32") == args.precision):
            fits.setdefault((r["image"], r["sigma"]), {})[(r["width"], r["scales"])] = r
    return fits


def _noise_power(case: tuple[str, float], size: int, sigma: float) -> float:
    """The noise power :class:`DiscrepancyStop` compares with for this case at estimated sigma ``sigma`` ([0, 1]
    scale): the clipped noise's around the image. The clean image stands in for the fit's output near the stop
    (the product takes the output; the sweep did not record outputs)."""
    import torch

    from visionzoo.dip.stopping import clipped_noise_power

    clean = torch.from_numpy(_case(case[0], case[1], size)[0])
    return clipped_noise_power(clean.double(), sigma).mean().item()


def _stopped(record: dict, power: float, factor: float) -> tuple[float, int]:
    """PSNR and iteration where :class:`DiscrepancyStop` (checked every RECORD_EVERY steps) fires for a fit whose
    noise power is ``power`` (:func:`_noise_power`); the end of the fit when it never fires."""
    for k, mse in enumerate(record["mse_noisy"]):
        if mse <= factor * power:
            return record["curve"][k], (k + 1) * RECORD_EVERY
    return record["curve"][-1], record["iterations"]


def _candidate_rules(values: dict[str, list[float]], widths: list[int], scales: list[int]):
    """Every rule of the ArchitectureRule family over this grid: thresholds at midpoints between observed values."""
    from itertools import combinations_with_replacement

    from visionzoo.dip.estimate import ArchitectureRule

    for statistic, observed in values.items():
        ordered = sorted(set(observed))
        cuts = [-1.0] + [round((a + b) / 2, 4) for a, b in zip(ordered, ordered[1:])] + [1e9]
        for threshold in cuts:
            for pair in combinations_with_replacement(sorted(widths), 2):
                for num_scales in scales:
                    yield ArchitectureRule(statistic, threshold, pair, num_scales)


def _regrets(rule, cases, stats, grid) -> list[float]:
    out = []
    for case in cases:
        choice = rule.choose(stats[case].sigma, stats[case].texture)
        out.append(max(grid[case].values()) - grid[case][choice])
    return out


def _fit_rule(cases, stats, grid, widths, scales):
    values = {"texture": [stats[c].texture for c in cases],
              "texture_snr": [stats[c].texture / (stats[c].sigma / 255) for c in cases]}
    best, best_regret = None, float("inf")
    for rule in _candidate_rules(values, widths, scales):
        regret = sum(_regrets(rule, cases, stats, grid)) / len(cases)
        if regret < best_regret - 1e-9:
            best, best_regret = rule, regret
    return best


def _loo(cases, stats, grid, widths, scales) -> dict:
    """Leave-one-image-out: the rule refitted without each image (both noise levels), applied to it."""
    regrets, chosen = [], []
    for image in sorted({c[0] for c in cases}):
        rule = _fit_rule([c for c in cases if c[0] != image], stats, grid, widths, scales)
        for case in (c for c in cases if c[0] == image):
            pick = grid[case][rule.choose(stats[case].sigma, stats[case].texture)]
            regrets.append(max(grid[case].values()) - pick)
            chosen.append(pick)
    return {"regret": sum(regrets) / len(regrets), "psnr": sum(chosen) / len(chosen)}


def _loo_fixed(cases, grid: Grid) -> float:
    """Leave-one-image-out mean regret of a fixed architecture: the one with the best mean PSNR on the other
    images' cases (both noise levels), applied to the held-out image's."""
    regrets = []
    for image in sorted({c[0] for c in cases}):
        others = [c for c in cases if c[0] != image]
        pick = max(grid[others[0]], key=lambda a: _mean(grid[c][a] for c in others))
        regrets += [max(grid[c].values()) - grid[c][pick] for c in cases if c[0] == image]
    return _mean(regrets)


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def table(args: argparse.Namespace) -> None:
    from visionzoo.dip.estimate import DEFAULT_RULE, LARGE_ARCHITECTURE, LARGE_SIDE, estimate_architecture
    from visionzoo.dip.stopping import DISCREPANCY_FACTOR

    fits = _records(args)
    cases = sorted((c for c, f in fits.items() if len(f) == len(args.widths) * len(args.scales)),
                   key=lambda c: (c[1], c[0]))
    if not cases:
        raise SystemExit(f"no complete grid for size {args.size}, {args.iterations} iterations in {args.out}")
    stats = {case: estimate_architecture(_case(case[0], case[1], args.size)[1]) for case in cases}
    archs = sorted(fits[cases[0]])

    def grid_of(value) -> Grid:
        return {c: {a: value(fits[c][a], c) for a in archs} for c in cases}

    end = grid_of(lambda r, c: r["psnr"])
    peak = grid_of(lambda r, c: max(r["curve"]))
    power = {c: _noise_power(c, args.size, stats[c].sigma / 255) for c in cases}
    stop = {f: grid_of(lambda r, c, f=f: _stopped(r, power[c], f)[0]) for f in args.factors}
    # Pick the factor by held-out quality: the mean PSNR of leave-one-image-out rule choices.
    sweep = {}
    for factor, grid in stop.items():
        fitted = _fit_rule(cases, stats, grid, args.widths, args.scales)
        sweep[factor] = {"rule": fitted, "in": _mean(_regrets(fitted, cases, stats, grid)), **_loo(
            cases, stats, grid, args.widths, args.scales), "oracle": _mean(max(grid[c].values()) for c in cases)}
    best_factor = max(sweep, key=lambda f: sweep[f]["psnr"])
    large = args.size >= LARGE_SIDE
    # The product's pick: DEFAULT_RULE's choice below LARGE_SIDE, LARGE_ARCHITECTURE from it up.
    chosen = {c: (stats[c].width, stats[c].num_scales) for c in cases}
    if large:  # the product's settle rule, run alongside each fit by the sweep
        if any("psnr_stopped" not in r for f in fits.values() for r in f.values()):
            raise SystemExit("these fits were recorded before the sweep ran the product's stopping rule beside them; "
                             "sweep them again into a new --out file")
        if LARGE_ARCHITECTURE not in archs:
            raise SystemExit(f"the grid must hold the product's architecture {LARGE_ARCHITECTURE} at this size")
        grid = grid_of(lambda r, c: r["psnr_stopped"])
    else:
        grid = stop[DISCREPANCY_FACTOR] if DISCREPANCY_FACTOR in stop else stop[best_factor]
    used = [max(grid[c].values()) - grid[c][chosen[c]] for c in cases]
    fitted = sweep.get(DISCREPANCY_FACTOR, sweep[best_factor])["rule"]
    fixed = {a: _mean(max(grid[c].values()) - grid[c][a] for c in cases) for a in archs}
    best_fixed = min(fixed, key=fixed.get)
    lines = [
        "# DIP architecture estimator: oracle sweep",
        "",
        f"Protocol: scikit-image images resized (short side) and centre-cropped to {args.size}x{args.size}, seeded",
        "Gaussian noise, `dip_scaled` fitted with the DIP recipe (Adam 0.01, EMA 0.99, reg_noise_std 1/30 or 1/20) "
        f"for up to {args.iterations} iterations in {args.precision}. Grid: width "
        f"{'/'.join(map(str, args.widths))} x scales {'/'.join(map(str, args.scales))}. Every fit records, every "
        f"{RECORD_EVERY} iterations, the PSNR of the EMA",
        "output to the clean image and its MSE to the noisy image, so stopping rules are compared on the same fits.",
        "Made by `python research/dip/dip_oracle.py sweep` then `python research/dip/dip_oracle.py table`.",
        "",
        ("**Protocol the product uses from LARGE_SIDE** (`task.fit.early_stop={rule: auto}`, images from "
         f"{LARGE_SIDE} px): the settle rule (`SettleStop`, docs/dip.md), run by the sweep beside each fit on its "
         "EMA output at the estimated sigma, exactly as the product runs it; a fit is scored by the PSNR of the image "
         "the rule returns. Best = the best grid architecture under the same rule; regret = best - the product's "
         f"architecture (LARGE_ARCHITECTURE = {LARGE_ARCHITECTURE}). The rule family and stopping factors below are "
         "the discrepancy rule's, as below LARGE_SIDE, for comparison." if large else
         "**Protocol the product uses below LARGE_SIDE** (`task.fit.early_stop={rule: auto}`): each fit stops by the "
         f"discrepancy principle at factor {DISCREPANCY_FACTOR} (`DISCREPANCY_FACTOR`): the first check where the EMA "
         "output's MSE to the noisy image is <= factor x the power of the noise clipped to [0, 1] at the estimated "
         "sigma (here around the clean image, standing in for the output). Best = the best grid architecture under "
         "the same rule; regret = best - estimated."),
        "",
        f"Rule in `visionzoo/dip/estimate.py` (DEFAULT_RULE): `{DEFAULT_RULE}`" + (
            "" if args.size < LARGE_SIDE else f" (at {args.size}x{args.size} the product does not use it: images from "
            f"LARGE_SIDE = {LARGE_SIDE} px get LARGE_ARCHITECTURE = {LARGE_ARCHITECTURE}; compare its column in the "
            "grid)"),
        (f"Rule family fitted to the discrepancy-stopped fits at this size (for comparison): `{fitted}`" if large
         else f"Rule fitted by this table: `{fitted}`"
         + ("" if fitted == DEFAULT_RULE else " (differs: update DEFAULT_RULE)")),
        f"Factor with the best held-out PSNR: {best_factor}" + (
            "" if best_factor == DISCREPANCY_FACTOR or large
            else " (differs: update DISCREPANCY_FACTOR)"),
        "",
        "| image | sigma | sigma est. | texture | best (w, s) | best dB | estimated (w, s) | estimated dB | regret dB | "
        "stopped at it. | fixed-budget best dB | peak best dB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case, regret in zip(cases, used):
        best_arch = max(grid[case], key=grid[case].get)
        at = (fits[case][chosen[case]]["stopped_at"] if large else
              _stopped(fits[case][chosen[case]], power[case], DISCREPANCY_FACTOR)[1])
        lines.append(f"| {case[0]} | {case[1]:g} | {stats[case].sigma:.1f} | {stats[case].texture:.4f} | "
                     f"{best_arch} | {grid[case][best_arch]:.2f} | {chosen[case]} | {grid[case][chosen[case]]:.2f} | "
                     f"{regret:.2f} | {at} | {max(end[case].values()):.2f} | {max(peak[case].values()):.2f} |")
    for sigma in sorted({c[1] for c in cases}):
        subset = [r for c, r in zip(cases, used) if c[1] == sigma]
        lines.append(f"| **mean, sigma {sigma:g}** | | | | | | | | **{_mean(subset):.3f}** | | | |")
    lines += [
        "",
        f"- Mean regret of the estimator: **{_mean(used):.3f} dB** over {len(cases)} cases (max {max(used):.2f}); "
        f"mean PSNR of its choices {_mean(grid[c][chosen[c]] for c in cases):.2f} dB.",
        (f"- Leave-one-image-out (the fixed architecture with the best mean on the other images, both noise levels "
         f"held out): {_loo_fixed(cases, grid):.3f} dB mean regret." if large else
         f"- Leave-one-image-out (rule refitted without the image, both noise levels held out): "
         f"{sweep.get(DISCREPANCY_FACTOR, sweep[best_factor])['regret']:.3f} dB mean regret."),
        f"- Best single fixed architecture {best_fixed}: {fixed[best_fixed]:.3f} dB mean regret; "
        + ", ".join(f"{a}: {r:.2f}" for a, r in sorted(fixed.items())) + ".",
        "- Seconds per fit (mean over the cases, the whole budget, as the sweep ran them): "
        + ", ".join(f"{a}: {_mean(fits[c][a]['seconds'] for c in cases):.0f}" for a in archs) + ".",
        "",
        "Stopping factor (each row: the rule family refitted to the fits stopped at that factor):",
        "",
        "| factor | in-sample regret dB | leave-one-out regret dB | leave-one-out mean PSNR dB | oracle mean PSNR dB |",
        "|---|---|---|---|---|",
    ]
    for factor, row in sweep.items():
        lines.append(f"| {factor} | {row['in']:.3f} | {row['regret']:.3f} | {row['psnr']:.2f} | {row['oracle']:.2f} |")
    end_rule = _fit_rule(cases, stats, end, args.widths, args.scales)
    end_fixed = {a: _mean(max(end[c].values()) - end[c][a] for c in cases) for a in archs}
    lines += [
        "",
        f"Without stopping (every fit read after all {args.iterations} iterations): oracle mean "
        f"{_mean(max(end[c].values()) for c in cases):.2f} dB; the rule family fitted to it "
        f"{_mean(_regrets(end_rule, cases, stats, end)):.3f} dB in-sample regret (`{end_rule}`), "
        f"leave-one-out {_loo(cases, stats, end, args.widths, args.scales)['regret']:.3f} dB; best fixed "
        f"{min(end_fixed, key=end_fixed.get)}: {min(end_fixed.values()):.3f} dB. Under a fixed budget the final PSNR "
        "mostly measures when each net starts fitting noise, which is why the product stops by the discrepancy rule.",
        f"With oracle stopping (each fit read at its best recorded iteration; needs the clean image, so an upper "
        f"bound, not a method): oracle mean {_mean(max(peak[c].values()) for c in cases):.2f} dB.",
    ]
    Path(args.table_out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["sweep", "table"])
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--iterations", type=int, default=800)
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--sigmas", type=float, nargs="+", default=[25.0, 50.0])
    parser.add_argument("--factors", type=float, nargs="+", default=[0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1],
                        help="discrepancy-stopping factors compared by the table")
    parser.add_argument("--images", nargs="+", help="a subset of scikit-image's set (default: all ten)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="the fits' precision (task.fit.precision); the table reads one precision's fits")
    parser.add_argument("--device", default="cpu", help="where the fits run (cuda: workers share the GPU)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1,
                        help="images fitted together per job (fit_dip_batch; batched bf16 needs CUDA)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--out", default=str(HERE / "dip_oracle.jsonl"))
    parser.add_argument("--table-out", default=str(HERE / "DIP_ORACLE.md"))
    args = parser.parse_args()
    if args.command == "sweep":
        sweep(args)
    else:
        table(args)


if __name__ == "__main__":
    main()
