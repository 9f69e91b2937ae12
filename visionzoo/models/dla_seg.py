"""DLA-Up semantic segmentation, the dense-prediction model of the DLA paper.

Backbone levels from ``out_stride`` down are fused by :class:`~visionzoo.models.necks.DLAUp`, a 1x1 convolution
maps the fused feature to class logits, and a fixed bilinear upsampling returns them to the input resolution.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from visionzoo.models.encoders import DLAUpEncoder


class DLASeg(nn.Module):
    """Backbone -> DLA-Up -> 1x1 classifier -> bilinear upsampling.

    Args:
        backbone: timm architecture name (a DLA variant by default).
        num_classes: output channels (19 for Cityscapes in the paper).
        out_stride: stride at which the decoder fuses levels (4 by default; the paper's dla*up use 2).
        in_chans: input channels.
        backbone_weights: optional local ImageNet weights file for the backbone.
        backbone_kwargs: architecture overrides for timm (e.g. a tiny DLA for tests).

    Shapes: ``(B, in_chans, H, W)`` -> logits ``(B, num_classes, H, W)``.
    """

    def __init__(
        self,
        backbone: str = "dla34",
        num_classes: int = 19,
        out_stride: int = 4,
        in_chans: int = 3,
        backbone_weights: str | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.encoder = DLAUpEncoder(backbone, out_stride, in_chans, backbone_weights, backbone_kwargs)
        self.classifier = nn.Conv2d(self.encoder.out_channels, num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.classifier(self.encoder(x))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
