"""Backbone + DLA-Up: the dense encoder-decoder that the task models share."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from visionzoo.models.backbones import TimmFeatures
from visionzoo.models.necks import DLAUp


class DLAUpEncoder(nn.Module):
    """A timm backbone (DLA by default) whose levels from ``out_stride`` down are fused by DLA-Up.

    Args:
        backbone: timm architecture name. out_stride: stride of the fused output.
        in_chans: input channels. backbone_weights: optional ImageNet weights file/URL for the backbone.
        backbone_kwargs: architecture overrides for timm (e.g. a tiny DLA for tests).

    ``forward``: ``(B, in_chans, H, W)`` -> ``(B, out_channels, H / out_stride, W / out_stride)``;
    ``forward_pyramid``: every decoder stage's output, deepest first (see :meth:`DLAUp.forward_pyramid`).
    """

    def __init__(
        self,
        backbone: str = "dla34",
        out_stride: int = 4,
        in_chans: int = 3,
        backbone_weights: str | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.backbone = TimmFeatures(backbone, in_chans=in_chans, pretrained=backbone_weights, timm_kwargs=backbone_kwargs)
        self.neck = DLAUp(self.backbone.channels, self.backbone.strides, out_stride=out_stride)
        self.out_channels = self.neck.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.neck(self.backbone(x))

    def forward_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.neck.forward_pyramid(self.backbone(x))
