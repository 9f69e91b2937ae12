"""Multi-scale image backbones: a thin wrapper over timm ``features_only`` models (DLA by default).

DLA itself is timm's implementation (``timm.models.dla``); this module only picks the levels, reports channels
and strides, and loads ImageNet weights offline from a local file in timm's or the original authors' layout.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import timm
from timm.models import adapt_input_conv
import torch
import torch.nn.functional as F
from torch import nn

from visionzoo.models.weights import LoadReport, load_state_dict_into, read_state_dict

log = logging.getLogger(__name__)

DLA_VARIANTS = (
    "dla34",
    "dla46_c",
    "dla46x_c",
    "dla60x_c",
    "dla60",
    "dla60x",
    "dla102",
    "dla102x",
    "dla102x2",
    "dla169",
    "dla60_res2net",
    "dla60_res2next",
)

#: A DLA small enough for unit tests (about 0.2 M parameters): dla34's blocks with fewer levels and channels.
TINY_DLA_KWARGS: dict[str, Any] = {"levels": [1, 1, 1, 1, 1, 1], "channels": [8, 8, 16, 16, 32, 64]}


class TimmFeatures(nn.Module):
    """Feature pyramid from any timm model that supports ``features_only``.

    Args:
        name: timm architecture, e.g. ``"dla34"`` (default) or ``"resnet50"``.
        out_indices: which of the model's feature levels to return (timm's numbering; for DLA level ``i`` has
            stride ``2**i``). ``None`` keeps timm's default (DLA: levels 1..5, strides 2..32).
        in_chans: input channels; ImageNet weights are adapted to it (timm's first-conv adaptation).
        pretrained: ImageNet weights (timm or original-author layout): a local file or URL, or ``None``.
        timm_kwargs: extra architecture arguments for ``timm.create_model`` (e.g. ``levels``/``channels``).

    Shapes: ``forward`` takes ``(B, in_chans, H, W)`` of any size and returns one tensor per level,
    ``(B, channels[i], ceil(H / strides[i]), ceil(W / strides[i]))``; sizes that are not multiples of the
    deepest stride are zero-padded on the bottom/right and the features cropped back.
    """

    def __init__(
        self,
        name: str = "dla34",
        out_indices: Sequence[int] | None = None,
        in_chans: int = 3,
        pretrained: str | None = None,
        timm_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        kwargs: dict[str, Any] = dict(timm_kwargs or {})
        if out_indices is not None:
            kwargs["out_indices"] = tuple(out_indices)
        self.name = name
        self.body = timm.create_model(name, features_only=True, pretrained=False, in_chans=in_chans, **kwargs)
        self.channels: list[int] = list(self.body.feature_info.channels())
        self.strides: list[int] = list(self.body.feature_info.reduction())
        self.in_chans = in_chans
        self.load_report: LoadReport | None = None
        if pretrained:
            self.load_pretrained(pretrained)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        height, width = x.shape[-2:]
        multiple = max(self.strides)
        pad_h, pad_w = -height % multiple, -width % multiple
        if not (pad_h or pad_w):
            return self.body(x)
        # DLA's pooled shortcuts need sizes divisible by the deepest stride: zero-pad (the normalised mean),
        # then crop every level back to ceil(size / stride).
        features = self.body(F.pad(x, (0, pad_w, 0, pad_h)))
        return [f[..., : -(-height // s), : -(-width // s)] for f, s in zip(features, self.strides)]

    def load_pretrained(self, source: str, sha256: str | None = None) -> LoadReport:
        """Load ImageNet weights (timm layout or the original authors' layout) from a file, folder or URL.

        The classifier (``fc``) and the original code's unused tree ``project`` layers arrive as unexpected
        keys; they and any missing keys are kept in the returned report (also ``self.load_report``) and logged,
        never silently dropped.
        """
        state = read_state_dict(source, sha256)
        first_conv = self.body.pretrained_cfg.get("first_conv")
        key = f"{first_conv}.weight"
        if self.in_chans != 3 and key in state and state[key].shape[1] == 3:
            state[key] = adapt_input_conv(self.in_chans, state[key])
        self.load_report = load_state_dict_into(self.body, state, source=str(source))
        return self.load_report
