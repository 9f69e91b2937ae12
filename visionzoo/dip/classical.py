"""Classical denoisers the DIP results are compared with: BM3D for gray images and its colour variant CBM3D."""

from __future__ import annotations

import numpy as np


def bm3d_denoise(noisy: np.ndarray, sigma: float) -> np.ndarray:
    """Denoise ``(H, W, C)`` float in [0, 1] (C = 1 or 3) with BM3D / CBM3D (``bm3d`` package).

    ``sigma`` is the noise standard deviation on the [0, 1] scale. Colour images go through ``bm3d_rgb``
    (CBM3D, denoising in a luminance-chrominance space), which is clearly stronger than ``bm3d`` on the RGB array.
    Returns ``(H, W, C)`` float32 clipped to [0, 1].
    """
    import bm3d

    noisy = np.asarray(noisy, dtype=np.float64)
    if noisy.ndim != 3 or noisy.shape[2] not in (1, 3):
        raise ValueError(f"expected (H, W, 1) or (H, W, 3), got {noisy.shape}")
    if noisy.shape[2] == 3:
        out = bm3d.bm3d_rgb(noisy, sigma_psd=sigma)
    else:
        out = bm3d.bm3d(noisy[..., 0], sigma_psd=sigma)[..., None]
    return np.clip(out, 0.0, 1.0).astype(np.float32)
