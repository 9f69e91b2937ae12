"""BEN (Background Erase Network) on DLA: a Base segmenter plus a Refiner with Confidence-Guided Matting.

* :class:`BENBase`: DLA backbone -> DLA-Up decoder (stride 2) -> full-resolution foreground logits, with a side
  output at every decoder stage for deep supervision.
* Confidence-Guided Matting: from the Base probability ``p`` a per-pixel confidence ``|2p - 1|`` and a trimap
  (foreground where ``p >= high``, background where ``p <= low``, unknown between).
* :class:`BENRefiner`: a light DLA that sees the image, ``p``, the confidence and the trimap and predicts a
  correction of the Base logits at full resolution.
* :class:`BEN`: the final alpha keeps confident Base pixels and takes the Refiner's in the unknown band
  (``blend="hard"``), or mixes them by confidence (``blend="soft"``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from visionzoo.models.backbones import TINY_DLA_KWARGS
from visionzoo.models.encoders import DLAUpEncoder
from visionzoo.models.necks import ConvNormAct
from visionzoo.models.registry import register_model
from visionzoo.preprocessing import Preprocessing

TRIMAP_BACKGROUND, TRIMAP_UNKNOWN, TRIMAP_FOREGROUND = 0.0, 0.5, 1.0


def confidence_map(prob: torch.Tensor) -> torch.Tensor:
    """Per-pixel confidence in [0, 1] of a foreground probability: 0 at p = 0.5, 1 at p in {0, 1}."""
    return (2 * prob - 1).abs()


def trimap_from_probability(prob: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Trimap with values 0 (background, ``p <= low``), 1 (foreground, ``p >= high``) and 0.5 (unknown)."""
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(f"trimap thresholds need 0 <= low < high <= 1, got low={low}, high={high}")
    unknown = torch.full_like(prob, TRIMAP_UNKNOWN)
    return torch.where(prob >= high, torch.ones_like(prob), torch.where(prob <= low, torch.zeros_like(prob), unknown))


class BENBase(nn.Module):
    """DLA + DLA-Up foreground segmenter.

    Shapes: ``(B, in_chans, H, W)`` -> ``{"logits": (B, 1, H, W), "side_logits": [(B, 1, H/s, W/s) ...]}`` with
    one side output per decoder stage (strides 16, 8, 4, 2 for a stride-2 decoder), deepest first.
    """

    def __init__(
        self,
        backbone: str = "dla34",
        out_stride: int = 2,
        in_chans: int = 3,
        head_channels: int = 32,
        backbone_weights: str | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.encoder = DLAUpEncoder(backbone, out_stride, in_chans, backbone_weights, backbone_kwargs)
        neck = self.encoder.neck
        self.side_heads = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1) for c in neck.pyramid_channels[:-1])
        self.side_strides = neck.pyramid_strides[:-1]
        self.head = nn.Sequential(
            ConvNormAct(neck.out_channels, head_channels, 3), nn.Conv2d(head_channels, 1, kernel_size=1)
        )

    def forward(self, x: torch.Tensor) -> dict[str, Any]:
        pyramid = self.encoder.forward_pyramid(x)
        logits = F.interpolate(self.head(pyramid[-1]), size=x.shape[-2:], mode="bilinear", align_corners=False)
        side = [head(feature) for head, feature in zip(self.side_heads, pyramid[:-1])]
        return {"logits": logits, "side_logits": side}


class BENRefiner(nn.Module):
    """Light DLA refiner: predicts a full-resolution correction of the Base logits.

    The guide (image, Base probability, confidence, trimap) is seen twice: downsampled by ``context_scale`` through
    a light DLA + DLA-Up for context, and at full resolution by a small fusion head (two 3x3 conv-BN-ReLU and a
    3x3 output conv) that sharpens edges. Keeping
    the DLA off the full-resolution grid is what keeps the Refiner cheap (see docs/ben.md for the timings).

    Input: the image ``(B, in_chans, H, W)`` and the Base logits, confidence and trimap ``(B, 1, H, W)`` each.
    Output: refined logits ``(B, 1, H, W)`` = Base logits + correction.
    """

    def __init__(
        self,
        backbone: str = "dla46_c",
        in_chans: int = 3,
        out_stride: int = 4,
        width: int = 16,
        context_scale: int = 2,
        backbone_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        guide_chans = in_chans + 3
        self.context_scale = context_scale
        #: Input sides must be multiples of this for exact shapes (read by the ONNX export): the context DLA runs
        #: at 1 / context_scale resolution and strides 32.
        self.size_multiple = 32 * context_scale
        self.encoder = DLAUpEncoder(backbone, out_stride, guide_chans, backbone_kwargs=backbone_kwargs)
        self.context = nn.Conv2d(self.encoder.out_channels, width, kernel_size=1)
        self.fuse = nn.Sequential(
            ConvNormAct(width + guide_chans, width, 3),
            ConvNormAct(width, width, 3),
            nn.Conv2d(width, 1, kernel_size=3, padding=1),
        )

    def forward(
        self, image: torch.Tensor, base_logits: torch.Tensor, confidence: torch.Tensor, trimap: torch.Tensor
    ) -> torch.Tensor:
        guide = torch.cat([image, torch.sigmoid(base_logits), confidence, trimap], dim=1)
        small = F.avg_pool2d(guide, self.context_scale) if self.context_scale > 1 else guide
        context = self.context(self.encoder(small))
        context = F.interpolate(context, size=image.shape[-2:], mode="bilinear", align_corners=False)
        return base_logits + self.fuse(torch.cat([context, guide], dim=1))


class BEN(nn.Module):
    """A Base segmenter + a Refiner with Confidence-Guided Matting.

    Args:
        base: any module whose ``forward(x)`` returns ``{"logits": (B, 1, H, W)}`` and, in training mode, also
            ``side_logits`` (a list of lower-resolution logits for deep supervision): :class:`BENBase`, or the
            published BEN2 network (:class:`visionzoo.models.ben2.BEN2Net`).
        refiner: a :class:`BENRefiner`.
        low, high: trimap thresholds on the Base probability.
        blend: ``"hard"`` (unknown band from the Refiner, the rest from the Base) or ``"soft"``
            (``alpha = c * base + (1 - c) * refined`` with confidence ``c``).

    ``forward(x, refine=True)`` with ``x`` ``(B, 3, H, W)`` normalised returns ``alpha`` (final foreground
    probability in [0, 1]), ``base`` (Base probability) and ``confidence``, each ``(B, 1, H, W)``; in training mode
    also ``base_logits``, ``side_logits``, ``refined_logits`` and ``trimap``. The Refiner's inputs are detached:
    the Base learns from its own losses only.
    """

    def __init__(self, base: nn.Module, refiner: BENRefiner, low: float = 0.1, high: float = 0.9,
                 blend: str = "hard") -> None:
        super().__init__()
        if blend not in ("hard", "soft"):
            raise ValueError(f"blend must be 'hard' or 'soft', not {blend!r}")
        trimap_from_probability(torch.zeros(1), low, high)  # validates the thresholds
        self.low, self.high, self.blend = low, high, blend
        self.base = base
        self.refiner = refiner

    def forward(self, x: torch.Tensor, refine: bool = True) -> dict[str, Any]:
        base_out = self.base(x)
        base_logits = base_out["logits"]
        prob = torch.sigmoid(base_logits)
        confidence = confidence_map(prob)
        out: dict[str, Any] = {"base": prob, "confidence": confidence}
        if self.training:
            out.update(base_logits=base_logits, side_logits=base_out.get("side_logits", []))
        if not refine:
            out["alpha"] = prob
            return out
        trimap = trimap_from_probability(prob.detach(), self.low, self.high)
        refined_logits = self.refiner(x, base_logits.detach(), confidence.detach(), trimap)
        refined = torch.sigmoid(refined_logits)
        if self.blend == "hard":
            out["alpha"] = torch.where(trimap == TRIMAP_UNKNOWN, refined, prob)
        else:
            out["alpha"] = confidence * prob + (1 - confidence) * refined
        if self.training:
            out.update(refined_logits=refined_logits, trimap=trimap)
        return out


def ben_dla(
    backbone: str = "dla34",
    refiner_backbone: str = "dla46_c",
    low: float = 0.1,
    high: float = 0.9,
    blend: str = "hard",
    out_stride: int = 2,
    refiner_out_stride: int = 4,
    refiner_width: int = 16,
    backbone_weights: str | None = None,
    backbone_kwargs: dict[str, Any] | None = None,
    refiner_kwargs: dict[str, Any] | None = None,
) -> BEN:
    """BEN Base (DLA + DLA-Up) + Refiner (light DLA) with Confidence-Guided Matting.

    Args:
        backbone / backbone_kwargs / backbone_weights: the Base's DLA (and optional ImageNet weights file).
        refiner_backbone / refiner_kwargs: the Refiner's (light) DLA.
        low, high, blend: see :class:`BEN`.
        out_stride: decoder stride of the Base.
        refiner_out_stride / refiner_width: decoder stride and width of the Refiner before its full-resolution fusion.
    """
    base = BENBase(backbone, out_stride, backbone_weights=backbone_weights, backbone_kwargs=backbone_kwargs)
    refiner = BENRefiner(refiner_backbone, out_stride=refiner_out_stride, width=refiner_width,
                         backbone_kwargs=refiner_kwargs)
    return BEN(base, refiner, low, high, blend)


_BEN_LICENSE = "Apache-2.0 (code); DLA ImageNet weights BSD-3-Clause"
for _name, _backbone in (("ben_dla34", "dla34"), ("ben_dla60x", "dla60x"), ("ben_dla102", "dla102")):
    register_model(
        _name, task="matting", preprocessing=Preprocessing(input_size=(3, 1024, 1024)), license=_BEN_LICENSE,
        description=f"BEN Base ({_backbone} + DLA-Up) + Refiner (dla46_c) with Confidence-Guided Matting",
        defaults={"backbone": _backbone},
    )(ben_dla)
register_model(
    "ben_tiny", task="matting", preprocessing=Preprocessing(input_size=(3, 1024, 1024)), license=_BEN_LICENSE,
    description="BEN on tiny DLAs (about 0.5 M parameters) for tests and the CPU demo",
    defaults={"backbone": "dla34", "backbone_kwargs": TINY_DLA_KWARGS, "refiner_backbone": "dla34",
              "refiner_kwargs": TINY_DLA_KWARGS, "refiner_width": 8},
)(ben_dla)
