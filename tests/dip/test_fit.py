"""DIP fitting: a short fit on a tiny image beats the noisy input; collapses are backtracked."""

from __future__ import annotations

import copy

import cv2
import pytest
import numpy as np
import torch
from skimage import data

import visionzoo
from visionzoo.dip.fit import fit_dip, psnr


def _camera(size: int) -> torch.Tensor:
    image = cv2.resize(data.camera(), (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    return torch.from_numpy(image)[None, None]


def test_short_fit_raises_psnr_over_the_noisy_input():
    clean = _camera(48)
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(0)) * 25 / 255
    noisy = (clean + noise).clamp(0, 1)
    torch.manual_seed(0)
    net = visionzoo.create_model("dip_scaled", width=32, num_scales=2, out_channels=1)
    result = fit_dip(net, noisy, iterations=200, clean=clean)
    assert result.image.shape == clean.shape
    assert len(result.psnr_clean) == len(result.loss) == 200 - result.backtracks
    assert psnr(noisy, clean) < 21.0
    assert psnr(result.image, clean) > psnr(noisy, clean) + 2.0


def test_the_perturbation_follows_the_nearer_calibrated_noise_level():
    """1/30 at sigma 25 and 1/20 at 50, cut at their midpoint: estimates around 25 (24.4-28.6 at 256x256) all get
    sigma 25's."""
    from visionzoo.dip.fit import default_reg_noise_std

    assert [default_reg_noise_std(s) for s in (0.0, 24.4, 25.0, 25.8, 28.6, 37.5)] == [1 / 30] * 6
    assert [default_reg_noise_std(s) for s in (37.6, 45.98, 50.0, 75.0)] == [1 / 20] * 4


def test_collapse_is_backtracked():
    class Collapsing(torch.nn.Module):
        """Outputs a constant that jumps far away at the 5th call."""

        def input_shape(self, height, width):
            return 1, height, width

        def __init__(self):
            super().__init__()
            self.level = torch.nn.Parameter(torch.tensor(0.5))
            self.calls = 0

        def forward(self, z):
            self.calls += 1
            value = self.level + (5.0 if self.calls == 5 else 0.0)
            return value.clamp(0, 1).expand(1, 1, *z.shape[-2:])

    noisy = torch.full((1, 1, 8, 8), 0.5)
    result = fit_dip(Collapsing(), noisy, iterations=10, reg_noise_std=0.0)
    assert result.backtracks == 1 and len(result.loss) == 9


def test_decoders_fit_through_the_same_loop():
    clean = _camera(40)  # not a multiple of 2**3: the decoder's 48x48 output is cropped
    net = visionzoo.create_model("conv_decoder", channels=16, num_upsamples=3, out_channels=1)
    assert net.input_shape(40, 40) == (16, 5, 5)
    result = fit_dip(net, clean, iterations=5)
    assert result.image.shape == (1, 1, 40, 40)


def test_windowed_variance_stops_after_the_minimum():
    from visionzoo.dip.stopping import WindowedVarianceStop

    stop = WindowedVarianceStop(window=3, patience=4)
    values = [0.0, 1.0, 0.0, 1.0, 0.5, 0.5, 0.5, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    stopped_at = None
    for step, value in enumerate(values):
        if stop.update(step, torch.full((1, 1, 2, 2), value), average=torch.full((1, 1, 2, 2), float(step))):
            stopped_at = step
            break
    # window variances from step 2: 2/9, 2/9, 1/6, 1/18, 0 (steps 4-6 all 0.5), 1/18, ...: minimum at step 6
    assert stop.variances[:6] == pytest.approx([2 / 9, 2 / 9, 1 / 6, 1 / 18, 0.0, 1 / 18])
    assert stop.best_step == 6 and stopped_at == 10
    assert torch.equal(stop.best_image, torch.full((1, 1, 2, 2), 6.0))


def test_settle_stop_returns_the_average_where_its_change_was_lowest():
    from visionzoo.dip.stopping import SettleStop

    # EMA outputs of one constant value per step; checks every 2 steps from step 2 on (steps 1, 3, 5, ...)
    values = [0.0, 0.0, 0.0, 0.4, 0.0, 0.6, 0.0, 0.7, 0.0, 0.75, 0.0, 0.7, 0.0, 0.5, 0.0, 0.2, 0.0, 0.0]
    stop = SettleStop(torch.zeros(1, 1, 2, 2), sigma=0.5, patience=4, every=2, start=2, gate=1e9)  # gate open
    stopped_at = None
    for step, value in enumerate(values):
        if stop.update(step, torch.zeros(1, 1, 2, 2), average=torch.full((1, 1, 2, 2), value)):
            stopped_at = step
            break
    # changes between checks (0 -> 0.4 -> 0.6 -> 0.7 -> 0.75 -> 0.7 -> 0.5): 0.16, 0.04, 0.01, 0.0025, 0.0025, 0.04
    assert [step for step, _ in stop.changes] == [3, 5, 7, 9, 11, 13]
    assert [change for _, change in stop.changes] == pytest.approx([0.16, 0.04, 0.01, 0.0025, 0.0025, 0.04])
    # lowest at step 9 (a tie does not count as new), 4 steps on at 13 the rule fires with the average from step 9
    assert stopped_at == 13 and stop.best_step == 9
    assert torch.equal(stop.best_image, torch.full((1, 1, 2, 2), 0.75))
    # still settling when the steps run out: nothing to return, the fit keeps its last average
    falling = SettleStop(torch.zeros(1, 1, 1, 1), sigma=0.5, patience=4, every=1, start=0, gate=1e9)
    for step, value in enumerate([0.0, 0.5, 0.75, 0.875, 0.9375]):
        assert not falling.update(step, torch.zeros(1, 1, 1, 1), average=torch.full((1, 1, 1, 1), value))
    assert falling.best_image is None and falling.best_step == -1
    with pytest.raises(ValueError, match="patience >= every"):
        SettleStop(torch.zeros(1, 1, 1, 1), sigma=0.5, patience=5, every=10)


def test_settle_stop_looks_for_its_minimum_only_near_the_noisy_image():
    from visionzoo.dip.stopping import SettleStop, clipped_noise_power

    # noisy image 0, sigma 0.5: distance^2 / clipped noise power is 5.27 at 0.79 and 0.73 at 0.3 (closed form)
    distance = torch.tensor([0.79, 0.3], dtype=torch.float64)
    assert (distance**2 / clipped_noise_power(distance, 0.5)).tolist() == pytest.approx([5.27, 0.73], abs=0.01)
    values = [0.9, 0.8, 0.79, 0.7, 0.3, 0.29, 0.2, 0.1]  # changes 0.01, 1e-4, 0.0081, 0.16, 1e-4, 0.0081, 0.01
    fired = {}
    for gate in (1e9, 2.0):
        stop = SettleStop(torch.zeros(1, 1, 1, 1), sigma=0.5, patience=2, every=1, start=0, gate=gate)
        for step, value in enumerate(values):
            if stop.update(step, torch.zeros(1, 1, 1, 1), average=torch.full((1, 1, 1, 1), value)):
                fired[gate] = (step, stop.best_step, stop.best_image.item())
                break
    # open gate: the first lull (0.79, step 2) ends the fit two steps later; gate 2: not before 0.3 (step 4)
    assert fired[1e9] == (4, 2, pytest.approx(0.79)) and fired[2.0] == (7, 5, pytest.approx(0.29))


@pytest.mark.slow
def test_settle_stop_ends_a_fit_past_its_peak():
    """The product's settle rule (its defaults) where ``{rule: auto}`` starts to use it: 128x128, sigma 50."""
    from visionzoo.dip.stopping import SETTLE_PATIENCE, SettleStop

    clean = _camera(128)
    noisy = (clean + torch.randn(clean.shape, generator=torch.Generator().manual_seed(1)) * 50 / 255).clamp(0, 1)
    torch.manual_seed(0)
    net = visionzoo.create_model("dip_scaled", width=32, num_scales=3, out_channels=1)
    stop = SettleStop(noisy, 50 / 255)
    result = fit_dip(net, noisy, iterations=2500, early_stop=stop, clean=clean)
    assert result.iterations < 2500 and result.iterations == stop.best_step + 1 + SETTLE_PATIENCE
    assert result.returned_step == stop.best_step and torch.equal(result.image, stop.best_image.clamp(0, 1))
    # measured (2 threads): returned 23.80 dB (step 519, stopped at 1020), the best along the fit 24.06 (652), the
    # last 22.62, noisy 15.13; with 1 thread the fit takes another path: 24.04 (669), 24.06, last 21.51
    returned, peak, last = psnr(result.image, clean), max(result.psnr_clean), result.psnr_clean[-1]
    assert returned > peak - 0.5 and returned > last + 0.5 and returned > psnr(noisy, clean) + 8.0


def test_early_stopping_ends_the_fit_and_returns_the_minimum():
    from visionzoo.dip.stopping import WindowedVarianceStop

    clean = _camera(32)
    noisy = (clean + torch.randn(clean.shape, generator=torch.Generator().manual_seed(1)) * 50 / 255).clamp(0, 1)
    torch.manual_seed(0)
    net = visionzoo.create_model("dip_scaled", width=32, num_scales=2, out_channels=1)
    stop = WindowedVarianceStop(window=10, patience=20)
    result = fit_dip(net, noisy, iterations=2000, early_stop=stop, clean=clean)
    assert result.iterations < 2000 and result.iterations == stop.best_step + 1 + 20
    assert result.returned_step == stop.best_step
    assert torch.equal(result.image, stop.best_image.clamp(0, 1))


def test_discrepancy_stop_fires_once_the_output_is_within_the_noise_level():
    from visionzoo.dip.stopping import DiscrepancyStop

    clean = _camera(32)
    noisy = (clean + torch.randn(clean.shape, generator=torch.Generator().manual_seed(1)) * 25 / 255).clamp(0, 1)
    sigma = 25 / 255
    torch.manual_seed(0)
    net = visionzoo.create_model("dip_scaled", width=32, num_scales=2, out_channels=1)
    stop = DiscrepancyStop(noisy, sigma, factor=1.0, every=5)
    result = fit_dip(net, noisy, iterations=3000, early_stop=stop, clean=clean)
    assert result.iterations < 3000 and result.iterations % 5 == 0 and result.returned_step == stop.best_step
    # clipped noise has less power than sigma^2 around this image (dark and bright areas)
    fired_at = stop.threshold(stop.best_image)
    assert 0.5 * sigma**2 < fired_at < 0.98 * sigma**2
    assert float((stop.best_image - noisy).pow(2).mean()) <= fired_at
    assert psnr(result.image, clean) > psnr(noisy, clean) + 3.0
    # the check five steps earlier had not fired: the distance was still above the noise power then
    torch.manual_seed(0)
    net = visionzoo.create_model("dip_scaled", width=32, num_scales=2, out_channels=1)
    earlier = fit_dip(net, noisy, iterations=result.iterations - 5, clean=clean)
    assert float((earlier.image - noisy).pow(2).mean()) > stop.threshold(earlier.image)
    assert DiscrepancyStop(noisy, sigma, factor=0.9, clipped=False).threshold(noisy) == pytest.approx(0.9 * sigma**2)
    with pytest.raises(ValueError, match="sigma > 0"):
        DiscrepancyStop(noisy, 0.0)


def test_clipped_noise_power_matches_its_closed_form_and_sampling():
    from visionzoo.dip.stopping import clipped_noise_power

    sigma = 50 / 255
    # hand values: no clipping mid-grey with small noise; half the noise clipped away at black and white
    mid_grey = torch.tensor([0.5], dtype=torch.float64)
    assert clipped_noise_power(mid_grey, 0.02).item() == pytest.approx(0.02**2, rel=1e-9)
    edges = clipped_noise_power(torch.tensor([0.0, 1.0], dtype=torch.float64), 0.05)
    assert edges.tolist() == pytest.approx([0.05**2 / 2] * 2, rel=1e-9)
    # sampling: E[(clip(x + n) - x)^2] over 2 million draws
    x = torch.tensor([0.05, 0.3, 0.5, 0.9], dtype=torch.float64)
    n = torch.randn(2_000_000, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * sigma
    sampled = ((x + n).clamp(0, 1) - x).pow(2).mean(dim=0)
    assert clipped_noise_power(x, sigma).tolist() == pytest.approx(sampled.tolist(), rel=0.005)


def test_batched_fit_equals_fitting_one_by_one():
    from visionzoo.dip.fit import fit_dip_batch

    clean = torch.cat([_camera(24), _camera(24).flip(-1)])
    noisy = (clean + torch.randn(clean.shape, generator=torch.Generator().manual_seed(2)) * 25 / 255).clamp(0, 1)
    torch.manual_seed(0)
    nets = [visionzoo.create_model("dip_scaled", width=8, num_scales=2, out_channels=1) for _ in range(2)]
    originals = [copy.deepcopy(net) for net in nets]
    batched = fit_dip_batch(nets, noisy, iterations=30, clean=clean, seeds=[5, 6])
    for i, net in enumerate(originals):
        alone = fit_dip(net, noisy[i : i + 1], iterations=30, clean=clean[i : i + 1], seed=5 + i)
        assert batched[i].psnr_clean == pytest.approx(alone.psnr_clean, abs=1e-3)
        # float rounding differs (batched vs single kernels) and grows over the steps: tight early, looser late
        assert batched[i].loss[:15] == pytest.approx(alone.loss[:15], rel=1e-3)
        assert batched[i].loss == pytest.approx(alone.loss, rel=3e-2)
        assert torch.allclose(batched[i].image, alone.image, atol=1e-3)
        assert batched[i].iterations == 30 and batched[i].returned_step == 29
    # the fitted weights are copied back into the generators
    refit = fit_dip_batch(nets, noisy, iterations=1, seeds=[5, 6])
    assert refit[0].loss[0] < batched[0].loss[0] / 2


def test_batched_early_stops_end_each_image_as_alone():
    """Each image of a batch stops by its own rule, at the step it stops alone; one whose rule has a minimum but
    never fired returns that minimum in both paths (the budget ran out first)."""
    from visionzoo.dip.fit import fit_dip_batch
    from visionzoo.dip.stopping import WindowedVarianceStop

    clean = torch.cat([_camera(24), _camera(24).flip(-1)])
    noisy = (clean + torch.randn(clean.shape, generator=torch.Generator().manual_seed(3)) * 50 / 255).clamp(0, 1)
    torch.manual_seed(0)
    nets = [visionzoo.create_model("dip_scaled", width=8, num_scales=2, out_channels=1) for _ in range(2)]
    originals = [copy.deepcopy(net) for net in nets]
    rules = [dict(window=5, patience=10), dict(window=5, patience=1000)]
    batched = fit_dip_batch(nets, noisy, iterations=80, seeds=[1, 2],
                            early_stops=[WindowedVarianceStop(**rule) for rule in rules])
    for i, net in enumerate(originals):
        stop = WindowedVarianceStop(**rules[i])
        alone = fit_dip(net, noisy[i : i + 1], iterations=80, seed=1 + i, early_stop=stop)
        assert (batched[i].iterations, batched[i].returned_step) == (alone.iterations, alone.returned_step)
        assert torch.allclose(batched[i].image, alone.image, atol=1e-3)
        assert alone.returned_step == stop.best_step
    assert batched[0].iterations == batched[0].returned_step + 11 < 80  # fired: patience 10 after the minimum
    assert batched[1].iterations == 80 and batched[1].returned_step < 79  # never fired: its minimum returned


def test_bf16_fit_keeps_float32_weights_and_output_and_fits_as_well():
    """Under bfloat16 autocast the generator's weights, the loss and the returned image stay float32, the first
    loss is fp32's up to bf16 rounding, and 200 iterations denoise as well as fp32 (within 0.5 dB; 48x48, width 32).
    Batched bf16 needs CUDA (CPU autocast does not reach through vmap): on the CPU it is refused."""
    from visionzoo.dip.fit import fit_dip_batch

    clean = torch.cat([_camera(48), _camera(48).flip(-1)])
    noisy = (clean + torch.randn(clean.shape, generator=torch.Generator().manual_seed(3)) * 25 / 255).clamp(0, 1)
    fits = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        net = visionzoo.create_model("dip_scaled", width=32, num_scales=2, out_channels=1)
        fits[precision] = fit_dip(net, noisy[:1], iterations=200, clean=clean[:1], precision=precision)
        assert all(p.dtype == torch.float32 for p in net.parameters())
    fp32, bf16 = fits["fp32"], fits["bf16"]
    assert bf16.image.dtype == torch.float32 and bf16.image.shape == clean[:1].shape
    assert bf16.loss[0] == pytest.approx(fp32.loss[0], rel=0.02)
    assert bf16.loss[0] != fp32.loss[0]  # autocast did run the convolutions in bfloat16
    assert psnr(bf16.image, clean[:1]) > psnr(noisy[:1], clean[:1]) + 2.0
    assert abs(psnr(bf16.image, clean[:1]) - psnr(fp32.image, clean[:1])) < 0.5
    nets = [visionzoo.create_model("dip_scaled", width=32, num_scales=2, out_channels=1) for _ in range(2)]
    with pytest.raises(ValueError, match="batched bf16 fitting needs a CUDA device"):
        fit_dip_batch(nets, noisy, iterations=1, precision="bf16")
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16"):
        fit_dip(nets[0], noisy[:1], iterations=1, precision="fp16")


def test_auto_precision_is_bf16_only_on_a_cpu_that_computes_it_natively(monkeypatch):
    """``auto``: bf16 on a CPU with AVX512-BF16 or AMX (half the time of fp32 at 512x512, same PSNR), fp32 on
    other CPUs and on GPUs (no faster there); the recipe resolves it per device and passes explicit choices on."""
    from visionzoo.dip.fit import auto_precision
    from visionzoo.dip.recipe import DIPFitSettings

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    for avx512_bf16, amx, expected in ((True, False, "bf16"), (False, True, "bf16"), (False, False, "fp32")):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda value=avx512_bf16: value)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda value=amx: value)
        assert (auto_precision(cpu), auto_precision(cuda)) == (expected, "fp32")
        assert DIPFitSettings().precision_on(cpu) == expected
        assert [DIPFitSettings(precision=p).precision_on(cpu) for p in ("fp32", "bf16")] == ["fp32", "bf16"]
