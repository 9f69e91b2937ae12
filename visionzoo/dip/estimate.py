"""Image statistics for choosing a DIP architecture from the noisy image alone.

* :func:`estimate_noise_sigma`: Gaussian noise level from the median absolute deviation of the finest diagonal
  wavelet coefficients (Donoho's estimator), read only where the image is far enough from 0 and 1 that the
  noise was not clipped.
* :func:`texture_strength`: the image's own fine-scale energy: the variance of its Laplacian of Gaussian minus what
  the estimated noise alone contributes, as a standard deviation.

* :func:`estimate_architecture`: the ``dip_scaled`` width and number of scales for a noisy image: below
  :data:`LARGE_SIDE` by :class:`ArchitectureRule` (a texture threshold -> width; one number of scales), calibrated
  at 96x96 by the oracle sweep in ``research/dip/dip_oracle.py`` (table and reasoning in
  ``research/dip/DIP_ORACLE.md`` and ``research/dip/LOG.md``); from :data:`LARGE_SIDE` up :data:`LARGE_ARCHITECTURE`.
* :func:`iteration_budget`: the size class's iteration budget, :data:`ITERATIONS` below :data:`LARGE_SIDE` and
  :data:`LARGE_ITERATIONS` from it up.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np
import pywt

from visionzoo.pixels import full_scale


def _as_float(image: np.ndarray) -> np.ndarray:
    if image.dtype in (np.uint8, np.uint16):
        return image.astype(np.float64) / full_scale(image.dtype)
    return image.astype(np.float64)


def _diagonal_details(channel: np.ndarray) -> np.ndarray:
    """Finest diagonal ``db2`` wavelet coefficients of one ``(H, W)`` channel (what Donoho's estimator reads)."""
    return pywt.dwt2(channel, "db2")[1][2]


def _mad_sigma(magnitudes: np.ndarray) -> float:
    """Gaussian sigma from absolute wavelet coefficients: their median over the normal's 75th percentile, exact
    zeros (flat, clipped areas) left out, as scikit-image's ``estimate_sigma`` does."""
    return float(np.median(magnitudes[magnitudes > 0]) / 0.6744897501960817)


def _local_range(channel: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Minimum and maximum of the smoothed channel (Gaussian 2 px) over 5x5 neighbourhoods, at ``shape``."""
    smooth = cv2.GaussianBlur(channel, (0, 0), 2.0)
    kernel = np.ones((5, 5), np.uint8)
    size = (shape[1], shape[0])
    low = cv2.resize(cv2.erode(smooth, kernel), size, interpolation=cv2.INTER_NEAREST)
    high = cv2.resize(cv2.dilate(smooth, kernel), size, interpolation=cv2.INTER_NEAREST)
    return low, high


def estimate_noise_sigma(image: np.ndarray, margin: float = 2.0, rounds: int = 3, min_coefficients: int = 500) -> float:
    """Noise standard deviation of ``(H, W)`` or ``(H, W, C)`` image, on its [0, 1] scale (x255 for 8-bit units).

    Donoho's estimate (median absolute finest diagonal wavelet coefficient / 0.6745) per channel, averaged, then
    ``rounds`` times re-read only where the smoothed image stays ``margin`` sigmas inside (0, 1): a noisy image
    clipped to [0, 1] has less noise near black and white, which made the plain estimate read low at high noise
    (camera at sigma 50 on the 0..255 scale: 44 clipped; this estimate: within 10% at 256x256 on scikit-image's
    set, tested). Falls back to the plain estimate when fewer than ``min_coefficients`` coefficients qualify.
    """
    image = _as_float(image)
    channels = image[..., None] if image.ndim == 2 else image
    magnitudes, lows, highs = [], [], []
    for c in range(channels.shape[-1]):
        channel = np.ascontiguousarray(channels[..., c])
        detail = _diagonal_details(channel)
        low, high = _local_range(channel, detail.shape)
        magnitudes.append(np.abs(detail).ravel())
        lows.append(low.ravel())
        highs.append(high.ravel())
    # the plain estimate: per-channel estimates averaged (scikit-image's estimate_sigma(average_sigmas=True))
    sigma = float(np.mean([_mad_sigma(m) for m in magnitudes]))
    magnitude, low, high = np.concatenate(magnitudes), np.concatenate(lows), np.concatenate(highs)
    for _ in range(rounds):
        inside = (low > margin * sigma) & (high < 1 - margin * sigma)
        if inside.sum() < min_coefficients:
            break
        sigma = _mad_sigma(magnitude[inside])
    return sigma


def _log_response(channel: np.ndarray, blur: float) -> np.ndarray:
    return cv2.Laplacian(cv2.GaussianBlur(channel, (0, 0), blur), cv2.CV_64F, ksize=1)


def texture_strength(image: np.ndarray, sigma: float | None = None, blur: float = 1.0) -> float:
    """Noise-corrected Laplacian-of-Gaussian standard deviation of an image in [0, 1] (channels averaged).

    The Gaussian (``blur`` px) damps the noise before the Laplacian, so an error in ``sigma`` (default:
    :func:`estimate_noise_sigma`) barely moves the result; the noise's remaining share, ``sigma^2`` times the
    squared norm of the combined kernel, is subtracted. 0 for flat images.
    """
    image = _as_float(image)
    if sigma is None:
        sigma = estimate_noise_sigma(image)
    delta = np.zeros((33, 33))
    delta[16, 16] = 1.0
    noise_gain = float((_log_response(delta, blur) ** 2).sum())
    channels = image[..., None] if image.ndim == 2 else image
    variances = [_log_response(np.ascontiguousarray(channels[..., c]), blur).var() for c in range(channels.shape[-1])]
    return float(np.sqrt(max(0.0, float(np.mean(variances)) - noise_gain * sigma**2)))


@dataclass(frozen=True)
class ArchitectureRule:
    """Texture -> ``dip_scaled`` architecture: one threshold between a plain and a busy image.

    ``statistic`` is ``"texture"`` (:func:`texture_strength`) or ``"texture_snr"`` (texture over the noise sigma,
    both on the [0, 1] scale); below ``threshold`` the image gets ``widths[0]``, at or above it ``widths[1]``;
    every image gets ``num_scales`` scales. (An earlier family had three width classes and a noise split for the
    scales; fitted, the third class was never selected and the split gave the same scales either way.)
    """

    statistic: str
    threshold: float
    widths: tuple[int, int]
    num_scales: int

    def choose(self, sigma255: float, texture: float) -> tuple[int, int]:
        """``(width, num_scales)`` for an estimated noise sigma (0..255) and texture strength."""
        value = texture if self.statistic == "texture" else texture / max(sigma255 / 255.0, 1e-6)
        return self.widths[0] if value < self.threshold else self.widths[1], self.num_scales


@dataclass(frozen=True)
class EstimatedArchitecture:
    """What :func:`estimate_architecture` found: the choice and the statistics behind it."""

    width: int
    num_scales: int
    sigma: float  # estimated noise standard deviation, 0..255 scale
    texture: float  # texture_strength, [0, 1] scale

    def model_kwargs(self) -> dict[str, int]:
        return {"width": self.width, "num_scales": self.num_scales}

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


#: The rule fitted by ``python research/dip/dip_oracle.py table`` (see research/dip/DIP_ORACLE.md).
DEFAULT_RULE = ArchitectureRule(statistic="texture", threshold=0.0213, widths=(16, 32), num_scales=2)

#: Shorter side in pixels from which an image gets :data:`LARGE_ARCHITECTURE` instead of the rule's choice (the rule
#: was fitted at 96x96; its generators fit bigger images far too slowly): ``python eval.py experiment=dip_denoise
#: data.size=S`` at 128 and 192 px, the rule's pick against 32 x 3 (research/dip/LOG.md "Architecture estimation").
LARGE_SIDE = 128
#: ``(width, num_scales)`` from :data:`LARGE_SIDE` up, backed by ``python research/dip/dip_oracle.py sweep --size
#: 256`` (research/dip/DIP_ORACLE_256.md).
LARGE_ARCHITECTURE = (32, 3)
#: Iterations below :data:`LARGE_SIDE`: DIP's budget at the 96x96 calibration.
ITERATIONS = 800
#: Iterations from :data:`LARGE_SIDE` up: about 3 minutes per 256x256 image on a 2-core CPU (``python eval.py
#: experiment=dip_denoise data.size=256 data.limit=5 task.fit.iterations=N``, research/dip/LOG.md).
LARGE_ITERATIONS = 1400


def iteration_budget(height: int, width: int, large_side: int | None = LARGE_SIDE) -> int:
    """The iteration budget of an ``height`` x ``width`` image: :data:`LARGE_ITERATIONS` when its shorter side is at
    least ``large_side`` pixels (``None``: never), otherwise :data:`ITERATIONS`."""
    return LARGE_ITERATIONS if large_side is not None and min(height, width) >= large_side else ITERATIONS


def estimate_architecture(noisy: np.ndarray, rule: ArchitectureRule = DEFAULT_RULE,
                          large_side: int | None = LARGE_SIDE) -> EstimatedArchitecture:
    """Pick a ``dip_scaled`` architecture from a noisy ``(H, W[, C])`` image alone: :data:`LARGE_ARCHITECTURE`
    when its shorter side is at least ``large_side`` pixels (``None``: never), otherwise ``rule``'s choice."""
    sigma = estimate_noise_sigma(noisy)
    texture = texture_strength(noisy, sigma=sigma)
    if large_side is not None and min(noisy.shape[:2]) >= large_side:
        width, num_scales = LARGE_ARCHITECTURE
    else:
        width, num_scales = rule.choose(sigma * 255.0, texture)
    return EstimatedArchitecture(width, num_scales, sigma * 255.0, texture)
