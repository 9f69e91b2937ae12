"""Early stopping of a DIP fit without the clean image.

:class:`DiscrepancyStop` (the default of the denoising recipe) stops once the output is as close to the noisy image
as the estimated noise level allows; :class:`WindowedVarianceStop` follows the variance of the last ``window``
outputs (Wang et al., "Early Stopping for Deep Image Prior", 2023): it falls while the network fits image content
and rises once it starts fitting noise, so the fit stops when it has not reached a new minimum for ``patience``
iterations and returns the moving average as it was at the minimum.

The denoising recipe's ``{rule: auto}`` (the default) uses :class:`DiscrepancyStop` for images below
:data:`~visionzoo.dip.estimate.LARGE_SIDE` (where it was calibrated) and :class:`SettleStop` from it up: the
moving average's change per check stops falling once the network has fitted the content and starts to fit the
noise, which needs no noise estimate (at 256x256 a few per cent of error in the sigma estimate moved the
discrepancy rule's stop by hundreds of iterations; research/dip/LOG.md).

All take ``update(step, output, average)`` once per accepted iteration (``(1, C, H, W)`` raw output and its
moving average) and return ``True`` to stop; ``best_image`` / ``best_step`` are what the fit returns.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Union

import torch
from torch import special

from visionzoo.dip.estimate import LARGE_SIDE
from visionzoo.errors import VisionZooError

#: The discrepancy-stopping factor: ``python research/dip/dip_oracle.py table`` (research/dip/DIP_ORACLE.md).
DISCREPANCY_FACTOR = 0.95
#: :class:`SettleStop`'s patience in iterations and its gate (x the clipped noise power), chosen on the recorded
#: 256x256 fits with each image held out in turn (research/dip/LOG.md "Stopping at 256x256").
SETTLE_PATIENCE = 500
SETTLE_GATE = 1.1


class WindowedVarianceStop:
    """Windowed-moving-variance early stopping on the raw outputs.

    ``variance`` at step t is the mean squared distance of the last ``window`` outputs to their mean (per pixel);
    :meth:`update` returns ``True`` once ``patience`` steps have passed without a new minimum. ``best_image`` is
    the EMA output at the minimum and ``best_step`` its (0-based) iteration.
    """

    def __init__(self, window: int = 100, patience: int = 300) -> None:
        if window < 2 or patience < 1:
            raise ValueError("early stopping needs window >= 2 and patience >= 1")
        self.window, self.patience = window, patience
        self.outputs: deque[torch.Tensor] = deque(maxlen=window)
        self.variances: list[float] = []
        self.best_variance = float("inf")
        self.best_step = -1
        self.best_image: torch.Tensor | None = None

    def update(self, step: int, output: torch.Tensor, average: torch.Tensor) -> bool:
        self.outputs.append(output)
        if len(self.outputs) < self.window:
            return False
        stacked = torch.stack(tuple(self.outputs))
        variance = (stacked - stacked.mean(dim=0)).pow(2).mean().item()
        self.variances.append(variance)
        if variance < self.best_variance:
            self.best_variance, self.best_step, self.best_image = variance, step, average.clone()
        return step - self.best_step >= self.patience


def clipped_noise_power(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Expected squared residual ``E[(clip(x + n, 0, 1) - x)^2]``, ``n ~ N(0, sigma^2)``, per pixel of ``x`` =
    ``image`` in [0, 1] (any shape; ``sigma`` on the [0, 1] scale).

    With ``a = -x / sigma`` and ``b = (1 - x) / sigma`` (Phi, phi: standard normal CDF and density):
    ``sigma^2 (Phi(b) - Phi(a) + a phi(a) - b phi(b)) + x^2 Phi(a) + (1 - x)^2 (1 - Phi(b))``: the unclipped
    part of the noise plus the clipped tails. ``sigma^2`` mid-grey, ``sigma^2 / 2`` at black or white.
    """
    x = image.double()
    a, b = -x / sigma, (1 - x) / sigma

    def density(t: torch.Tensor) -> torch.Tensor:
        return torch.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)

    inside = special.ndtr(b) - special.ndtr(a) + a * density(a) - b * density(b)
    power = sigma**2 * inside + x * x * special.ndtr(a) + (1 - x) ** 2 * special.ndtr(-b)
    return power.to(image.dtype)


class DiscrepancyStop:
    """Morozov's discrepancy principle on the EMA output: stop at the first step where its mean squared distance to
    the noisy image ``(1, C, H, W)`` has fallen to ``factor`` times the noise power, ``sigma`` the (estimated)
    noise standard deviation on the image's [0, 1] scale. Fitting closer than the noise level can only mean
    fitting the noise.

    ``clipped=True`` (the noisy image was clipped to [0, 1], as every 8/16-bit image is) takes the noise power
    the clipped noise has around the current output (:func:`clipped_noise_power`, mean over pixels), which is
    below ``sigma^2`` near black and white; ``False`` takes ``sigma^2``. ``factor`` is calibrated by the oracle
    sweep (``research/dip/dip_oracle.py``); the check runs every ``every`` steps. ``best_image`` / ``best_step``:
    the EMA output and step where the rule fired.
    """

    def __init__(self, noisy: torch.Tensor, sigma: float, factor: float = DISCREPANCY_FACTOR, every: int = 10,
                 clipped: bool = True) -> None:
        if sigma <= 0 or factor <= 0 or every < 1:
            raise ValueError("discrepancy stopping needs sigma > 0, factor > 0 and every >= 1")
        self.noisy, self.sigma, self.factor, self.every, self.clipped = noisy, sigma, factor, every, clipped
        self.best_step = -1
        self.best_image: torch.Tensor | None = None
        self.calls = 0

    def threshold(self, output: torch.Tensor) -> float:
        """The mean squared distance to the noisy image at which the rule fires for this output."""
        if not self.clipped:
            return self.factor * self.sigma**2
        return self.factor * clipped_noise_power(output.clamp(0, 1), self.sigma).mean().item()

    def within(self, output: torch.Tensor) -> bool:
        """Whether ``output``'s mean squared distance to the noisy image is down to :meth:`threshold`."""
        return (output - self.noisy).pow(2).mean().item() <= self.threshold(output)

    def update(self, step: int, output: torch.Tensor, average: torch.Tensor) -> bool:
        self.calls += 1
        if self.calls % self.every:
            return False
        if not self.within(average):
            return False
        self.best_step, self.best_image = step, average.clone()
        return True


class SettleStop:
    """Stop once the moving average has settled: every ``every`` steps (from step ``start`` on) the mean squared
    change of the EMA output since the previous check; when ``patience`` steps have passed without a new minimum of
    that change, the fit stops and returns the EMA output as it was at the minimum (``best_image``, ``best_step``).
    A fit whose change is still reaching new minima when the budget ends keeps its last EMA output.

    The change falls while the network fits the image's content and rises once it fits the noise (the same signal
    as :class:`WindowedVarianceStop`, read from the smoothed output so that it is steady enough for one minimum).
    Texture images can pause early while the output is still far from the noisy image, so the search for the
    minimum opens only once the output is within ``gate`` x the clipped noise power of the noisy image
    ``(1, C, H, W)`` at the estimated ``sigma`` ([0, 1] scale), a loose version of :class:`DiscrepancyStop`'s test that a few per cent of error in sigma do not move
    much. ``patience`` = :data:`SETTLE_PATIENCE` and ``gate`` = :data:`SETTLE_GATE` were chosen at 256x256
    (leave-one-image-out; research/dip/LOG.md).
    """

    def __init__(self, noisy: torch.Tensor, sigma: float, patience: int = SETTLE_PATIENCE, gate: float = SETTLE_GATE,
                 every: int = 10, start: int = 100) -> None:
        if patience < every or every < 1 or start < 0:
            raise ValueError("settle stopping needs every >= 1, patience >= every and start >= 0")
        self.near = DiscrepancyStop(noisy, sigma, factor=gate, every=1)  # the gate's test, not a rule of its own
        self.patience, self.every, self.start = patience, every, start
        self.previous: torch.Tensor | None = None
        self.changes: list[tuple[int, float]] = []  # (step, mean squared change since the previous check)
        self.lowest = float("inf")
        self.lowest_step = -1
        self.lowest_image: torch.Tensor | None = None
        self.best_step = -1
        self.best_image: torch.Tensor | None = None
        self.calls = 0

    def update(self, step: int, output: torch.Tensor, average: torch.Tensor) -> bool:
        self.calls += 1
        if self.calls % self.every:
            return False
        settled = average.clamp(0, 1)
        previous, self.previous = self.previous, settled.clone()
        if previous is None or step + 1 < self.start:
            return False
        if self.lowest_step < 0 and not self.near.within(average):
            return False  # still far from the noisy image: not looking for the minimum yet
        change = (settled - previous).pow(2).mean().item()
        self.changes.append((step, change))
        if change < self.lowest:
            self.lowest, self.lowest_step, self.lowest_image = change, step, average.clone()
            return False
        if step - self.lowest_step < self.patience:
            return False
        self.best_step, self.best_image = self.lowest_step, self.lowest_image
        return True


EarlyStop = Union[DiscrepancyStop, WindowedVarianceStop, SettleStop]
EARLY_STOP_RULES = ("auto", "discrepancy", "settle", "variance")


def make_early_stop(config: dict[str, Any] | None, noisy: torch.Tensor, sigma255: float) -> EarlyStop | None:
    """The early-stopping rule of ``task.fit.early_stop`` for one noisy ``(1, C, H, W)`` image whose estimated
    noise sigma is ``sigma255`` (0..255 scale): ``None`` or ``{}`` for none, ``{rule: auto}`` (discrepancy below
    :data:`~visionzoo.dip.estimate.LARGE_SIDE` px on the shorter side, settle from it up), ``{rule: discrepancy,
    factor: F, every: N, clipped: true}``, ``{rule: settle, patience: P, gate: G, every: N, start: S}`` or
    ``{rule: variance, window: W, patience: P}``."""
    if not config:
        return None
    options = dict(config)
    rule = options.pop("rule", None)
    if rule == "auto":
        if options:
            raise VisionZooError(f"task.fit.early_stop={{rule: auto}} takes no options (got {', '.join(options)}); "
                                 "name the rule (discrepancy or settle) to set them")
        rule = "settle" if min(noisy.shape[-2:]) >= LARGE_SIDE else "discrepancy"
    try:
        if rule == "discrepancy":
            return DiscrepancyStop(noisy, max(sigma255, 1e-3) / 255.0, **options)
        if rule == "settle":
            return SettleStop(noisy, max(sigma255, 1e-3) / 255.0, **options)
        if rule == "variance":
            return WindowedVarianceStop(**options)
    except (TypeError, ValueError) as err:
        raise VisionZooError(f"task.fit.early_stop: {err}") from None
    raise VisionZooError(f"task.fit.early_stop.rule must be one of {', '.join(EARLY_STOP_RULES)}, not {rule!r}")
