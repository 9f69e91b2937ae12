"""Foreground colour estimation for cut-outs: blur fusion (Forte and Pitie, "Approximate Fast Foreground Colour
Estimation", ICIP 2021), as BEN2's ``refine_foreground`` option runs it.

At soft edges (hair, fur, motion blur) an image pixel mixes the object's colour F with the background's B:
``I = alpha F + (1 - alpha) B``. Cutting out with the image's own colours keeps the background's tint in those
pixels; blur fusion estimates F from box-blurred local means of foreground and background, first with a wide box
(90 px), then again with a narrow one (6 px) from the first estimate. It changes the cut-out's colours, never the
mask.
"""

from __future__ import annotations

import cv2
import numpy as np

#: Box sizes (pixels) of the two passes, as BEN2 runs them.
BLUR_FUSION_RADII = (90, 6)
_EPS = 1e-5


def _blur_fusion_pass(
    image: np.ndarray, foreground: np.ndarray, background: np.ndarray, alpha: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """One pass: local means of F (weighted by alpha) and B (weighted by 1 - alpha) in a ``size`` box, then F
    corrected so that the compositing equation holds for the image pixel. Returns (F clipped to [0, 1], mean B)."""
    box = (size, size)
    mean_alpha = cv2.blur(alpha, box)[..., None]
    mean_fg = cv2.blur(foreground * alpha[..., None], box) / (mean_alpha + _EPS)
    mean_bg = cv2.blur(background * (1 - alpha[..., None]), box) / ((1 - mean_alpha) + _EPS)
    a = alpha[..., None]
    estimate = mean_fg + a * (image - a * mean_fg - (1 - a) * mean_bg)
    return np.clip(estimate, 0, 1), mean_bg


def estimate_foreground(image: np.ndarray, alpha: np.ndarray, radii: tuple[int, int] = BLUR_FUSION_RADII) -> np.ndarray:
    """Foreground colours of ``image`` ``(H, W, C)`` float64 in [0, 1] under ``alpha`` ``(H, W)`` in [0, 1].

    Returns ``(H, W, C)`` float64 in [0, 1]. The first pass starts from F = B = the image.
    """
    foreground, background = _blur_fusion_pass(image, image, image, alpha, radii[0])
    return _blur_fusion_pass(image, foreground, background, alpha, radii[1])[0]
