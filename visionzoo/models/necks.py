"""DLA-Up / IDA-Up: the dense-prediction decoder of Deep Layer Aggregation (Yu et al., CVPR 2018).

Iterative Deep Aggregation (IDA) merges a list of features from shallow to deep at the resolution of the
shallowest: each input is projected to a common width, upsampled by a depthwise transposed convolution that
starts as bilinear interpolation (or, with ``upsample="bilinear"``, by fixed unlearnt interpolation, as the Deep
Image Prior generators need), and folded into the running feature by an aggregation node. DLA-Up chains IDA
stages from the deepest level towards the shallowest, so the output has the resolution of the first level used.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class ConvNormAct(nn.Sequential):
    """``k x k`` convolution (same padding, no bias, optional stride) + BatchNorm + ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


@torch.no_grad()
def fill_bilinear_(weight: torch.Tensor) -> torch.Tensor:
    """Set a transposed-convolution kernel ``(C_in, C_out/groups, k, k)`` to bilinear interpolation, in place.

    With kernel ``2f``, stride ``f`` and padding ``f // 2`` the layer then upsamples by ``f`` exactly like
    ``F.interpolate(mode="bilinear", align_corners=False)`` away from the borders.
    """
    size = weight.shape[-1]
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    ramp = 1 - (torch.arange(size, dtype=weight.dtype, device=weight.device) - center).abs() / factor
    weight.copy_((ramp[:, None] * ramp[None, :]).expand_as(weight))
    return weight


def bilinear_upsampler(channels: int, factor: int) -> nn.ConvTranspose2d:
    """A learnable depthwise ``x factor`` upsampler initialised to bilinear interpolation."""
    layer = nn.ConvTranspose2d(
        channels, channels, kernel_size=2 * factor, stride=factor, padding=factor // 2, groups=channels, bias=False
    )
    fill_bilinear_(layer.weight)
    return layer


UPSAMPLE_MODES = ("learnt", "bilinear")


def make_upsampler(channels: int, factor: int, mode: str = "learnt") -> nn.Module:
    """``x factor`` upsampler: ``"learnt"`` (:func:`bilinear_upsampler`) or fixed ``"bilinear"`` interpolation."""
    if factor == 1:
        return nn.Identity()
    if mode == "learnt":
        return bilinear_upsampler(channels, factor)
    if mode == "bilinear":
        return nn.Upsample(scale_factor=factor, mode="bilinear", align_corners=False)
    raise ValueError(f"upsample must be one of {', '.join(UPSAMPLE_MODES)}, not {mode!r}")


class IDAUp(nn.Module):
    """One Iterative Deep Aggregation stage.

    Args:
        out_channels: width of every projected input and of the aggregation nodes.
        in_channels: channels of the inputs, shallowest first.
        up_factors: each input's stride divided by the first input's stride (1 for the first).
        node: ``"concat"`` (the paper: 3x3 conv over the concatenation) or ``"add"`` (CenterNet's variant).
        upsample: ``"learnt"`` (the paper) or ``"bilinear"`` (fixed), see :func:`make_upsampler`.

    ``forward(features)`` returns the aggregation node outputs, all at the first input's resolution; the last one
    has seen every input.
    """

    def __init__(
        self, out_channels: int, in_channels: Sequence[int], up_factors: Sequence[int], node: str = "concat",
        upsample: str = "learnt",
    ) -> None:
        super().__init__()
        if len(in_channels) != len(up_factors) or len(in_channels) < 2:
            raise ValueError("IDAUp needs at least two inputs and one up factor per input")
        if node not in ("concat", "add"):
            raise ValueError(f"node must be 'concat' or 'add', not {node!r}")
        self.node_mode = node
        self.projections = nn.ModuleList(
            nn.Identity() if c == out_channels else ConvNormAct(c, out_channels, kernel_size=1) for c in in_channels
        )
        self.upsamplers = nn.ModuleList(make_upsampler(out_channels, int(f), upsample) for f in up_factors)
        node_in = 2 * out_channels if node == "concat" else out_channels
        self.nodes = nn.ModuleList(ConvNormAct(node_in, out_channels, 3) for _ in range(len(in_channels) - 1))

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        height, width = features[0].shape[-2:]
        inputs = [
            up(proj(f))[..., :height, :width]  # upsampling rounds odd sizes up; crop to the target
            for f, proj, up in zip(features, self.projections, self.upsamplers)
        ]
        x = inputs[0]
        outputs = []
        for node, y in zip(self.nodes, inputs[1:]):
            x = node(torch.cat([x, y], dim=1) if self.node_mode == "concat" else x + y)
            outputs.append(x)
        return outputs


class DLAUp(nn.Module):
    """DLA-Up decoder: fuses backbone levels from ``out_stride`` down to the deepest into one feature map.

    Args:
        in_channels: channels of the backbone levels, shallowest first.
        strides: strides of those levels (e.g. 2, 4, 8, 16, 32).
        out_stride: stride of the output; must be one of ``strides``.
        node: aggregation node type, see :class:`IDAUp`.
        upsample: ``"learnt"`` or ``"bilinear"``, see :func:`make_upsampler`.

    Shapes: takes the list of backbone features and returns ``(B, out_channels, H / out_stride, W / out_stride)``
    where ``out_channels`` is the channel count of the level at ``out_stride``.
    """

    def __init__(
        self, in_channels: Sequence[int], strides: Sequence[int], out_stride: int = 4, node: str = "concat",
        upsample: str = "learnt",
    ) -> None:
        super().__init__()
        strides = [int(s) for s in strides]
        if out_stride not in strides:
            raise ValueError(f"out_stride {out_stride} is not one of the backbone strides {strides}")
        self.first = strides.index(out_stride)
        channels = list(in_channels[self.first :])
        level_strides = strides[self.first :]
        self.out_channels = channels[0]
        self.out_stride = out_stride
        current_channels, current_strides = list(channels), list(level_strides)
        stages = []
        for j in range(len(channels) - 2, -1, -1):
            factors = [s // level_strides[j] for s in current_strides[j:]]
            stages.append(IDAUp(channels[j], current_channels[j:], factors, node=node, upsample=upsample))
            current_channels[j + 1 :] = [channels[j]] * (len(channels) - j - 1)
            current_strides[j + 1 :] = [level_strides[j]] * (len(channels) - j - 1)
        self.stages = nn.ModuleList(stages)

        #: Channels and strides of :meth:`forward_pyramid`'s outputs, deepest first.
        self.pyramid_channels = [channels[j] for j in range(len(channels) - 2, -1, -1)] or channels[:1]
        self.pyramid_strides = [level_strides[j] for j in range(len(channels) - 2, -1, -1)] or level_strides[:1]

    def forward_pyramid(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Every stage's fully aggregated output, deepest first; the last one is :meth:`forward`'s result.

        Useful for deep supervision: stage ``k`` has ``pyramid_channels[k]`` channels at ``pyramid_strides[k]``.
        """
        layers = list(features[self.first :])
        outputs = []
        for j, stage in zip(range(len(layers) - 2, -1, -1), self.stages):
            layers[j + 1 :] = stage(layers[j:])
            outputs.append(layers[-1])
        return outputs or layers[-1:]

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.forward_pyramid(features)[-1]
