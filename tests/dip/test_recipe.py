"""The per-image recipe: ensembles of fits averaged over seeds and flipped views."""

from __future__ import annotations

from functools import partial

import cv2
import numpy as np
import pytest
import torch
from skimage import data

import visionzoo
from visionzoo.dip.fit import fit_dip, psnr
from visionzoo.dip.recipe import DIPFitSettings, fit_image, fit_images, from_hwc, to_hwc, view
from visionzoo.errors import VisionZooError


def _noisy_camera(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    clean = torch.from_numpy(cv2.resize(data.camera(), (size, size), interpolation=cv2.INTER_AREA) / 255.0)
    clean = clean.float()[None, None]
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(3)) * 25 / 255
    return (clean + noise).clamp(0, 1), clean


def test_hwc_arrays_and_batched_tensors_convert_both_ways():
    array = np.arange(24, dtype=np.float32).reshape(2, 3, 4)  # (H, W, C)
    tensor = from_hwc(array)
    assert tensor.shape == (1, 4, 2, 3)
    assert tensor[0, 3, 1, 2].item() == array[1, 2, 3] == 23.0
    assert np.array_equal(to_hwc(tensor), array)


def test_views_are_flips_that_undo_themselves():
    image = torch.arange(6.0).view(1, 1, 2, 3)
    assert view(image, 0).equal(image)
    assert view(image, 1)[0, 0, 0].tolist() == [2.0, 1.0, 0.0]
    assert view(image, 2)[0, 0, :, 0].tolist() == [3.0, 0.0]
    assert view(image, 3)[0, 0, 0].tolist() == [5.0, 4.0, 3.0]
    assert all(view(view(image, k), k).equal(image) for k in range(8))


def test_ensemble_is_the_mean_of_its_members_fitted_alone():
    noisy, clean = _noisy_camera(24)
    net = partial(visionzoo.create_model, name="dip_scaled", width=8, num_scales=2)
    steps: list[int] = []
    settings = DIPFitSettings(iterations=40, experimental={"ensemble": 3}, seed=5, reg_noise_std=1 / 30,
                              precision="fp32")
    fitted = fit_image(net, "fixed", noisy, settings, clean, on_step=lambda step, _: steps.append(step))
    alone = []
    for k in range(3):  # member k: seed 5 + k on view k, turned back
        torch.manual_seed(5 + k)
        result = fit_dip(net(out_channels=1), view(noisy, k), iterations=40, reg_noise_std=1 / 30, seed=5 + k)
        alone.append(view(result.image, k))
    expected = torch.stack(alone).mean(dim=0)
    assert torch.allclose(fitted.result.image, expected, atol=1e-6)
    assert [torch.allclose(view(m.image, k), alone[k], atol=1e-6) for k, m in enumerate(fitted.members)] == [True] * 3
    assert fitted.result.iterations == 40 and fitted.result.seconds == pytest.approx(
        sum(m.seconds for m in fitted.members))
    assert steps == list(range(120))  # progress counts on across members
    # averaging fits that disagree only in their noise cannot be further from the clean image than their mean
    member_mse = np.mean([float((a - clean).pow(2).mean()) for a in alone])
    assert psnr(fitted.result.image, clean) >= 10 * np.log10(1 / member_mse)


def test_ensemble_needs_at_least_one_fit():
    with pytest.raises(VisionZooError, match="task.fit.experimental.ensemble must be 1 or more"):
        DIPFitSettings(experimental={"ensemble": 0})
    with pytest.raises(VisionZooError, match="task.fit.experimental has no option 'guide'; it has ensemble, loss"):
        DIPFitSettings(experimental={"guide": "bm3d"})


def test_sure_recipe_feeds_the_image_to_the_generator():
    noisy, clean = _noisy_camera(16)
    fitted = fit_image(partial(visionzoo.create_model, name="dip_scaled"), "auto", noisy,
                       DIPFitSettings(iterations=3, experimental={"loss": "sure"}), clean)
    assert fitted.generator.input_shape(16, 16) == (1, 16, 16) and fitted.result.iterations == 3
    assert fitted.parameters == sum(p.numel() for p in fitted.generator.parameters())
    with pytest.raises(VisionZooError, match="model=deep_decoder cannot be fed the noisy image"):
        fit_image(partial(visionzoo.create_model, name="deep_decoder"), "fixed", noisy,
                  DIPFitSettings(iterations=1, experimental={"loss": "sure"}))
    with pytest.raises(VisionZooError, match="task.fit.experimental.loss must be one of mse, sure"):
        DIPFitSettings(experimental={"loss": "l1"})


def test_bm3d_blend_mixes_the_fit_and_bm3d_by_the_share():
    from visionzoo.dip.classical import bm3d_denoise
    from visionzoo.dip.recipe import BLEND_SHARE

    noisy, clean = _noisy_camera(32)
    net = partial(visionzoo.create_model, name="dip_scaled", width=8, num_scales=2)
    plain = fit_image(net, "fixed", noisy, DIPFitSettings(iterations=30), clean)
    classical = from_hwc(bm3d_denoise(to_hwc(noisy), plain.estimate.sigma / 255))
    for share in (BLEND_SHARE, 0.0, 1.0):
        blended = fit_image(net, "fixed", noisy, DIPFitSettings(iterations=30, blend="bm3d", blend_share=share),
                            clean)
        assert blended.blend_weight == share and plain.blend_weight is None
        assert torch.allclose(blended.classical, classical, atol=1e-6) and plain.classical is None  # for the baseline
        expected = (share * plain.result.image + (1 - share) * classical).clamp(0, 1)
        assert torch.allclose(blended.result.image, expected, atol=1e-6)
        assert torch.allclose(blended.unblended, plain.result.image, atol=1e-6) and plain.unblended is None
    automatic = fit_image(net, "fixed", noisy, DIPFitSettings(iterations=30, blend="bm3d"), clean)
    assert automatic.blend_weight == BLEND_SHARE  # 32 px: the small size class's share
    for bad in (-0.1, 1.5, "half"):
        with pytest.raises(VisionZooError, match=r"task.fit.blend_share is the DIP output's share in the blend, "
                                                 rf"auto \(0.25 below 128 px, 0.1 from 128 px up\) or between 0 "
                                                 rf"and 1, not {bad!r}"):
            DIPFitSettings(blend="bm3d", blend_share=bad)


def test_bm3d_for_the_blend_runs_beside_a_gpu_fit_with_the_same_result(monkeypatch):
    """Where :func:`classical_beside_fit` says so (a GPU; forced here on the CPU), BM3D for the blend runs in
    another thread while the two images are fitted, and the blended outputs equal those of BM3D run before the fit;
    on the CPU it runs first, in the fitting thread."""
    import threading

    from visionzoo.dip import recipe

    noisy = [_noisy_camera(32)[0], _noisy_camera(32)[0].flip(-1)]
    net = partial(visionzoo.create_model, name="dip_scaled", width=8, num_scales=2)
    settings = DIPFitSettings(iterations=30, blend="bm3d", blend_share=0.5, precision="fp32")
    before = fit_images(net, "fixed", noisy, settings)
    threads, denoise = [], recipe.classical_denoise

    def recording(image, estimate):
        threads.append(threading.get_ident())
        return denoise(image, estimate)

    monkeypatch.setattr(recipe, "classical_denoise", recording)
    monkeypatch.setattr(recipe, "classical_beside_fit", lambda device: True)
    beside = fit_images(net, "fixed", noisy, settings)
    assert len(threads) == 2 and threading.get_ident() not in threads
    for first, second in zip(before, beside):  # (the bm3d package's threads vary its last bits from run to run)
        assert torch.equal(second.unblended, first.unblended) and second.result.image.shape == (1, 1, 32, 32)
        assert torch.allclose(second.classical, first.classical, atol=1e-6) and second.classical_seconds > 0
        assert torch.allclose(second.result.image, first.result.image, atol=1e-6)
    threads.clear()
    monkeypatch.setattr(recipe, "classical_beside_fit", lambda device: False)
    fit_images(net, "fixed", noisy[:1], DIPFitSettings(iterations=5, blend="bm3d", precision="fp32"))
    assert threads == [threading.get_ident()]


def test_automatic_blend_share_follows_the_size_class():
    from visionzoo.dip.recipe import BLEND_SHARE, LARGE_BLEND_SHARE

    assert (BLEND_SHARE, LARGE_BLEND_SHARE) == (0.25, 0.10)
    automatic = DIPFitSettings(blend="bm3d")
    assert [automatic.share(h, w) for h, w in ((96, 96), (127, 4000), (128, 128), (3000, 4000))] == [
        0.25, 0.25, 0.10, 0.10]
    assert DIPFitSettings(blend="bm3d", blend_share=0.4).share(3000, 4000) == 0.4


def test_bf16_recipe_on_the_cpu_fits_a_same_size_group_one_by_one():
    """On the CPU a bf16 group is not batched (no autocast through vmap): each image gets exactly the bf16 fit it
    gets alone, which differs from fp32's."""
    noisy, _ = _noisy_camera(24)
    pair = [noisy, noisy.flip(-1)]
    net = partial(visionzoo.create_model, name="dip_scaled", width=8, num_scales=2)
    settings = DIPFitSettings(iterations=20, reg_noise_std=1 / 30, precision="bf16")
    together = fit_images(net, "fixed", pair, settings)
    for image, fitted in zip(pair, together):
        alone = fit_image(net, "fixed", image, settings)
        assert torch.equal(fitted.result.image, alone.result.image)
    fp32 = fit_image(net, "fixed", pair[0], DIPFitSettings(iterations=20, reg_noise_std=1 / 30, precision="fp32"))
    assert not torch.equal(fp32.result.image, together[0].result.image)
    assert [fitted.precision for fitted in together] == ["bf16", "bf16"] and fp32.precision == "fp32"
    with pytest.raises(VisionZooError, match="task.fit.precision must be one of auto, fp32, bf16, not 'fp16'"):
        DIPFitSettings(precision="fp16")
