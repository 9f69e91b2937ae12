"""Image statistics for choosing a DIP architecture from the noisy image alone.

* :func:`estimate_noise_sigma`: Gaussian noise level from the median absolute deviation of the finest diagonal
  wavelet coefficients (Donoho's estimator, scikit-image's ``estimate_sigma``).
* :func:`texture_strength`: the image's own fine-scale energy: the variance of its Laplacian of Gaussian minus what
  the estimated noise alone contributes, as a standard deviation.

The mapping from these statistics to width/depth is calibrated by the oracle sweep of issue 4 (not yet run).
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.restoration import estimate_sigma


def _as_float(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image.astype(np.float64) / 255.0
    if image.dtype == np.uint16:
        return image.astype(np.float64) / 65535.0
    return image.astype(np.float64)


def estimate_noise_sigma(image: np.ndarray) -> float:
    """Noise standard deviation of ``(H, W)`` or ``(H, W, C)`` image, on its [0, 1] scale (x255 for 8-bit units).

    Unbiased for additive Gaussian noise; clipping the noisy image to [0, 1] makes it read low at high noise (for
    the camera image at sigma 50 on the 0..255 scale: 43 clipped, 50 unclipped).
    """
    image = _as_float(image)
    channel_axis = -1 if image.ndim == 3 else None
    return float(estimate_sigma(image, channel_axis=channel_axis, average_sigmas=True))


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
