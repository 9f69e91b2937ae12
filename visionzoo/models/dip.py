"""Deep Image Prior generators: the original "skip" hourglass, the scaled family of "The Devil is in the
Upsampling" (Liu et al., ICCV 2023), decoder-only generators, and a DLA-structured generator built on the zoo's
shared DLA-Up decoder with unlearnt upsampling.

One :class:`Hourglass` builds both. Each scale has an optional skip branch (1x1 conv-BN-act on the scale's input)
and a deeper branch (stride-2 3x3 conv, 3x3 conv, the next scale, unlearnt upsampling); their concatenation goes
through BN, a 3x3 conv and a 1x1 conv (each followed by BN and the activation). Convolutions use reflection padding,
and a final 1x1 conv + sigmoid gives the image. Inputs of any size work: the noise is reflection-padded to a multiple
of ``2 ** num_scales`` (at least two cells at the coarsest scale) and the output cropped back.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from visionzoo.models.necks import ConvNormAct, DLAUp
from visionzoo.models.registry import register_model
from visionzoo.preprocessing import Preprocessing

UPSAMPLERS = ("bilinear", "nearest", "transposed")
ACTIVATIONS = {"leaky_relu": lambda: nn.LeakyReLU(0.2, inplace=True), "relu": lambda: nn.ReLU(inplace=True)}


def reflect_conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> nn.Sequential:
    """Convolution with reflection padding (DIP's ``pad='reflection'``), with bias."""
    return nn.Sequential(nn.ReflectionPad2d(kernel_size // 2), nn.Conv2d(in_channels, out_channels, kernel_size, stride))


def _conv_bn_act(in_channels: int, out_channels: int, kernel_size: int, activation: str, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        reflect_conv(in_channels, out_channels, kernel_size, stride), nn.BatchNorm2d(out_channels), ACTIVATIONS[activation]()
    )


def _upsampler(mode: str, channels: int) -> nn.Module:
    if mode == "transposed":  # learnt, for the ablation the paper argues against
        return nn.ConvTranspose2d(channels, channels, kernel_size=4, stride=2, padding=1)
    return nn.Upsample(scale_factor=2, mode=mode, **({"align_corners": False} if mode == "bilinear" else {}))


class _Scale(nn.Module):
    """One hourglass scale; ``inner`` is the next (coarser) scale or ``None`` at the bottom."""

    def __init__(
        self, in_channels: int, down: int, up: int, skip: int, inner: nn.Module | None, inner_out: int,
        upsample: str, activation: str, kernel: int = 3,
    ) -> None:
        super().__init__()
        self.skip = _conv_bn_act(in_channels, skip, 1, activation) if skip else None
        deeper: list[nn.Module] = [
            _conv_bn_act(in_channels, down, kernel, activation, stride=2),
            _conv_bn_act(down, down, kernel, activation),
        ]
        if inner is not None:
            deeper.append(inner)
        deeper_out = inner_out if inner is not None else down
        deeper.append(_upsampler(upsample, deeper_out))
        self.deeper = nn.Sequential(*deeper)
        self.merge = nn.Sequential(
            nn.BatchNorm2d(skip + deeper_out),
            _conv_bn_act(skip + deeper_out, up, kernel, activation),
            _conv_bn_act(up, up, 1, activation),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        deep = self.deeper(x)
        if self.skip is not None:
            deep = torch.cat([self.skip(x), deep], dim=1)
        return self.merge(deep)


class Hourglass(nn.Module):
    """DIP encoder-decoder generator.

    Args:
        in_channels: depth of the noise input ``z`` (32 in the original DIP; the width in the scaled family).
        out_channels: image channels (3 for RGB, 1 for gray).
        channels_down / channels_up / channels_skip: per-scale widths, finest first (one entry per scale).
        upsample: ``"bilinear"`` (default), ``"nearest"`` or ``"transposed"`` (learnt, for ablations).
        activation: ``"leaky_relu"`` (0.2, the original) or ``"relu"``.

    Shapes: ``z`` ``(B, in_channels, H, W)`` -> image ``(B, out_channels, H, W)`` in [0, 1].
    """

    def __init__(
        self,
        in_channels: int = 32,
        out_channels: int = 3,
        channels_down: Sequence[int] = (128,) * 5,
        channels_up: Sequence[int] = (128,) * 5,
        channels_skip: Sequence[int] = (4,) * 5,
        upsample: str = "bilinear",
        activation: str = "leaky_relu",
    ) -> None:
        super().__init__()
        if not len(channels_down) == len(channels_up) == len(channels_skip) >= 1:
            raise ValueError("channels_down, channels_up and channels_skip need one entry per scale")
        if upsample not in UPSAMPLERS:
            raise ValueError(f"upsample must be one of {', '.join(UPSAMPLERS)}, not {upsample!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, not {activation!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.num_scales = len(channels_down)
        inner: nn.Module | None = None
        inner_out = 0
        for i in reversed(range(self.num_scales)):
            scale_in = in_channels if i == 0 else channels_down[i - 1]
            inner = _Scale(scale_in, channels_down[i], channels_up[i], channels_skip[i], inner, inner_out, upsample,
                           activation)
            inner_out = channels_up[i]
        self.body = inner
        self.head = nn.Sequential(reflect_conv(channels_up[0], out_channels, 1), nn.Sigmoid())

    def input_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """The noise input ``(C, H, W)`` for an image of ``height x width``."""
        return self.in_channels, height, width

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        height, width = z.shape[-2:]
        multiple = 2**self.num_scales
        # Each side a multiple of 2**scales and at least 2 px at the coarsest scale (its reflection padding).
        pad_h = max(-(-height // multiple), 2) * multiple - height
        pad_w = max(-(-width // multiple), 2) * multiple - width
        if pad_h or pad_w:
            reflect = pad_h < height and pad_w < width
            z = F.pad(z, (0, pad_w, 0, pad_h), mode="reflect" if reflect else "replicate")
        return self.head(self.body(z))[..., :height, :width]


_DIP_LICENSE = "Apache-2.0 (architecture after DIP, Ulyanov et al. 2018, and Liu et al. 2023)"


def _noise_input(channels: int, size: int) -> Preprocessing:
    """A generator's input: ``channels`` x ``size`` x ``size`` of noise, not normalised."""
    return Preprocessing(input_size=(channels, size, size), mean=(0.0,), std=(1.0,))


@register_model("dip_skip", task="generation", preprocessing=_noise_input(32, 512), license=_DIP_LICENSE,
                description="The original DIP 'skip' hourglass: 5 scales, 128 channels, 4-channel skips, bilinear")
def dip_skip(out_channels: int = 3, upsample: str = "bilinear", in_channels: int = 32) -> Hourglass:
    """The original Deep Image Prior denoising network (2,217,831 parameters for RGB); ``in_channels``: the
    input's depth (the image's channels when it is fed the noisy image, as with SURE)."""
    return Hourglass(in_channels, out_channels, (128,) * 5, (128,) * 5, (4,) * 5, upsample=upsample,
                     activation="leaky_relu")


@register_model("dip_scaled", task="generation", preprocessing=_noise_input(128, 512),
                license=_DIP_LICENSE,
                description="The scaled DIP hourglass of 'The Devil is in the Upsampling' (width x scales, no skips)")
def dip_scaled(
    width: int = 128, num_scales: int = 2, skip_channels: int = 0, out_channels: int = 3, upsample: str = "bilinear",
    in_channels: int | None = None,
) -> Hourglass:
    """``num_scales`` scales of ``width`` channels, ReLU, input depth ``in_channels`` (default: the width; 2
    scales: 58,339 / 231,363 / 921,475 parameters for width 32 / 64 / 128, RGB)."""
    depth = width if in_channels is None else in_channels
    return Hourglass(depth, out_channels, (width,) * num_scales, (width,) * num_scales, (skip_channels,) * num_scales,
                     upsample=upsample, activation="relu")


class UpsamplingDecoder(nn.Module):
    """Decoder-only generators: a small noise tensor is upsampled ``num_upsamples`` times to the image.

    ``kind="deep_decoder"`` (Heckel & Hand 2019): per layer 1x1 conv -> bilinear x2 -> ReLU -> BatchNorm.
    ``kind="conv_decoder"`` (Darestani & Heckel 2021): per layer bilinear x2 -> 3x3 conv -> ReLU -> BatchNorm.
    Both end with a 1x1 conv and a sigmoid.

    Shapes: ``z`` ``(B, channels, h, w)`` -> ``(B, out_channels, h * 2**num_upsamples, w * 2**num_upsamples)``;
    :meth:`input_shape` gives the ``z`` for an image size (the fit crops the output to it).
    """

    def __init__(self, kind: str = "deep_decoder", channels: int = 64, num_upsamples: int = 5, out_channels: int = 3) -> None:
        super().__init__()
        if kind not in ("deep_decoder", "conv_decoder"):
            raise ValueError(f"kind must be 'deep_decoder' or 'conv_decoder', not {kind!r}")
        self.in_channels, self.out_channels, self.num_upsamples = channels, out_channels, num_upsamples
        layers: list[nn.Module] = []
        for _ in range(num_upsamples):
            up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
            if kind == "deep_decoder":
                layers += [nn.Conv2d(channels, channels, 1, bias=False), up]
            else:
                layers += [up, reflect_conv(channels, channels, 3)]
            layers += [nn.ReLU(inplace=True), nn.BatchNorm2d(channels)]
        layers += [nn.Conv2d(channels, out_channels, 1), nn.Sigmoid()]
        self.body = nn.Sequential(*layers)

    def input_shape(self, height: int, width: int) -> tuple[int, int, int]:
        factor = 2**self.num_upsamples
        return self.in_channels, -(-height // factor), -(-width // factor)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)


@register_model("deep_decoder", task="generation", preprocessing=_noise_input(64, 16),
                license=_DIP_LICENSE, description="Deep Decoder: 1x1 convs and bilinear upsampling, no skips")
def deep_decoder(channels: int = 64, num_upsamples: int = 5, out_channels: int = 3) -> UpsamplingDecoder:
    """Deep Decoder generator (Heckel & Hand 2019)."""
    return UpsamplingDecoder("deep_decoder", channels, num_upsamples, out_channels)


@register_model("conv_decoder", task="generation", preprocessing=_noise_input(64, 16),
                license=_DIP_LICENSE, description="ConvDecoder: bilinear upsampling then 3x3 convs")
def conv_decoder(channels: int = 64, num_upsamples: int = 5, out_channels: int = 3) -> UpsamplingDecoder:
    """ConvDecoder generator (Darestani & Heckel 2021)."""
    return UpsamplingDecoder("conv_decoder", channels, num_upsamples, out_channels)


class DLAGenerator(nn.Module):
    """A DIP generator with Deep Layer Aggregation structure.

    A plain encoder (a 3x3 stem, then ``depth`` levels of a stride-2 3x3 conv and a 3x3 conv, all ``width``
    channels) feeds the zoo's :class:`~visionzoo.models.necks.DLAUp` with fixed bilinear upsampling: its iterative
    aggregation nodes (3x3 conv over the concatenation of a level and everything deeper) fold the levels back to
    full resolution, where a 1x1 conv and a sigmoid give the image. No learnt upsampling, as the DIP analysis asks.

    Shapes: ``z`` ``(B, width, H, W)`` -> ``(B, out_channels, H, W)`` in [0, 1]; any ``H, W`` (strided convs round
    up, the decoder crops back).
    """

    def __init__(self, width: int = 64, depth: int = 3, out_channels: int = 3) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be at least 1, not {depth}")
        self.in_channels, self.out_channels, self.depth = width, out_channels, depth
        self.stem = ConvNormAct(width, width, 3)
        self.levels = nn.ModuleList(
            nn.Sequential(ConvNormAct(width, width, 3, stride=2), ConvNormAct(width, width, 3)) for _ in range(depth)
        )
        self.neck = DLAUp([width] * (depth + 1), [2**i for i in range(depth + 1)], out_stride=1, upsample="bilinear")
        self.head = nn.Sequential(nn.Conv2d(width, out_channels, 1), nn.Sigmoid())

    def input_shape(self, height: int, width: int) -> tuple[int, int, int]:
        return self.in_channels, height, width

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        features = [self.stem(z)]
        for level in self.levels:
            features.append(level(features[-1]))
        return self.head(self.neck(features))


@register_model("dip_dla", task="generation", preprocessing=_noise_input(64, 512), license=_DIP_LICENSE,
                description="DLA-structured DIP generator: DLA-Up aggregation nodes with fixed bilinear upsampling")
def dip_dla(width: int = 64, depth: int = 3, out_channels: int = 3) -> DLAGenerator:
    """DLA-structured DIP generator of ``width`` channels and ``depth`` stride-2 levels."""
    return DLAGenerator(width, depth, out_channels)
