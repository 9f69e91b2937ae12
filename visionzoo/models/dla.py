"""The zoo's DLA models: every timm DLA as a registered feature extractor (with the original authors' ImageNet
checkpoints) and DLA-Up semantic segmentation, the dense-prediction model of the DLA paper.

:class:`DLASeg`: backbone levels from ``out_stride`` down are fused by :class:`~visionzoo.models.necks.DLAUp`, a
1x1 convolution maps the fused feature to class logits, and a fixed bilinear upsampling returns them to the input
resolution.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from visionzoo.models.backbones import DLA_VARIANTS, TINY_DLA_KWARGS, TimmFeatures
from visionzoo.models.encoders import DLAUpEncoder
from visionzoo.models.registry import register_model
from visionzoo.preprocessing import Preprocessing


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


_IMAGENET_INPUT = Preprocessing(input_size=(3, 224, 224))
_SEGMENTATION_INPUT = Preprocessing(input_size=(3, 512, 1024))

DLA_LICENSE = "BSD-3-Clause (DLA ImageNet weights: timm / ucbdrive)"

#: The original authors' ImageNet checkpoints; the file-name suffix is the start of the file's sha256.
DLA_IMAGENET_HASHES = {
    "dla34": "ba72cf86", "dla46_c": "2bfd52c3", "dla46x_c": "d761bae7", "dla60x_c": "b870c45c",
    "dla60": "24839fc4", "dla60x": "d15cacda", "dla102": "d94d9790", "dla102x": "ad62be81",
    "dla102x2": "262837b6", "dla169": "0914e092",
}
DLA_IMAGENET_URL = "http://dl.yf.io/dla/models/imagenet/{name}-{hash}.pth"

for _variant in DLA_VARIANTS:
    _hash = DLA_IMAGENET_HASHES.get(_variant)
    register_model(
        _variant,
        task="features",
        preprocessing=_IMAGENET_INPUT,
        weights=DLA_IMAGENET_URL.format(name=_variant, hash=_hash) if _hash else None,
        sha256=_hash,
        license=DLA_LICENSE,
        defaults={"name": _variant},
    )(TimmFeatures)
register_model(
    "dla_tiny",
    task="features",
    preprocessing=_IMAGENET_INPUT,
    license=DLA_LICENSE,
    description="A tiny DLA (dla34 blocks, 8..64 channels, about 0.2 M parameters) for tests",
    defaults={"name": "dla34", "timm_kwargs": TINY_DLA_KWARGS},
)(TimmFeatures)

for _variant in ("dla34", "dla60x", "dla102", "dla169"):
    register_model(
        f"{_variant}_up", task="segmentation", preprocessing=_SEGMENTATION_INPUT, license=DLA_LICENSE,
        defaults={"backbone": _variant},
    )(DLASeg)
register_model(
    "dla_tiny_up",
    task="segmentation",
    preprocessing=_SEGMENTATION_INPUT,
    license=DLA_LICENSE,
    description="DLA-Up segmentation on the tiny DLA, for tests",
    defaults={"backbone": "dla34", "backbone_kwargs": TINY_DLA_KWARGS},
)(DLASeg)
