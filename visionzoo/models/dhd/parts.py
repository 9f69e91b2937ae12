"""DHD's building blocks, under the official DHD code's key names and configured by width and depth, so the
published DHD-S and the zoo's own DHD variants are built from the same classes.

Image side: :class:`ResNet50Features` + :class:`LateralFPN` (the published DHD-S), :class:`StrideFuse` (the zoo's
IDA-Up fusion over a timm backbone). Camera-aware nets: :class:`CameraAwareNet` (the official HeightNet; the zoo
uses it for depth too), fed :func:`camera_vector`. BEV side: :class:`BEVResNet` + :class:`FPNLSS` (the depth-based
feature F_db), :class:`UNet` per height band (F_hr), :class:`SynergisticFeatureAggregation` (SFA) and the
:class:`ChannelToHeightHead`. BEV tensors are ``(B, C, Y, X)`` as in the official code.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock

from visionzoo.models.backbones import TimmFeatures
from visionzoo.models.necks import IDAUp

#: Numbers per camera that :func:`camera_vector` gives the camera-aware nets.
CAMERA_NUMBERS = 27


class ResNet50Features(nn.Module):
    """ResNet-50 (torchvision's layout = mmdet's ``style='pytorch'`` ResNet: the same keys) returning layer3 and
    layer4: ``(B, 3, H, W)`` -> ``[(B, 1024, H/16, W/16), (B, 2048, H/32, W/32)]``; with ``stereo`` layer1's
    ``(B, 256, H/4, W/4)`` first (the stereo matching features of DHD-M, mmdet's ``out_indices=(0, 2, 3)``)."""

    def __init__(self, stereo: bool = False) -> None:
        super().__init__()
        resnet = torchvision.models.resnet50()
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            self.add_module(name, getattr(resnet, name))
        self.stereo = stereo

    def stereo_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` -> layer1's ``(B, 256, H/4, W/4)``, the only part a stereo reference frame needs."""
        return self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(x)))))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x1 = self.stereo_features(x)
        x3 = self.layer3(self.layer2(x1))
        return [x1, x3, self.layer4(x3)] if self.stereo else [x3, self.layer4(x3)]


class _Conv(nn.Module):
    """A convolution under the key ``conv`` (mmcv's ConvModule without norm), with an optional ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, relu: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return F.relu(x) if self.relu else x


class LateralFPN(nn.Module):
    """The official ``CustomFPN`` with one output: 1x1 laterals of both inputs, the deeper one upsampled (nearest)
    and added, one 3x3 conv. ``[(B, 1024, h, w), (B, 2048, h/2, w/2)]`` -> ``(B, 256, h, w)``."""

    def __init__(self, in_channels: Sequence[int] = (1024, 2048), out_channels: int = 256) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.lateral_convs = nn.ModuleList(_Conv(c, out_channels, 1) for c in in_channels)
        self.fpn_convs = nn.ModuleList([_Conv(out_channels, out_channels, 3)])

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        shallow, deep = (conv(f) for conv, f in zip(self.lateral_convs, features))
        shallow = shallow + F.interpolate(deep, size=shallow.shape[-2:], mode="nearest")
        return self.fpn_convs[0](shallow)


def timm_image_encoder(backbone: str, channels: int, backbone_kwargs: dict[str, Any] | None = None,
                       pretrained: str | None = None) -> tuple[TimmFeatures, StrideFuse]:
    """A timm backbone and the :class:`StrideFuse` neck over its stride-16 and stride-32 features."""
    features = TimmFeatures(backbone, pretrained=pretrained, timm_kwargs=backbone_kwargs)
    if 16 not in features.strides or 32 not in features.strides:
        raise ValueError(f"backbone {backbone} has feature strides {features.strides}; DHD needs 16 and 32")
    levels = (features.strides.index(16), features.strides.index(32))
    return features, StrideFuse(channels, [features.channels[i] for i in levels], levels)


class StrideFuse(nn.Module):
    """The zoo's image neck: the backbone's stride-16 and stride-32 features (``levels`` of its outputs) fused by one
    IDA-Up node -> ``(B, channels, H/16, W/16)``."""

    def __init__(self, channels: int, in_channels: Sequence[int], levels: Sequence[int]) -> None:
        super().__init__()
        self.out_channels, self.levels = channels, tuple(levels)
        self.fuse = IDAUp(channels, in_channels, (1, 2))

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.fuse([features[i] for i in self.levels])[-1]


class _ConvBNReLU(nn.Sequential):
    """``atrous_conv`` / ``bn`` of an ASPP branch (the official ``_ASPPModule`` keys)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        self.atrous_conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=0 if kernel_size == 1 else dilation,
                                     dilation=dilation, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: a 1x1 branch, a 3x3 branch per dilation (official: 6, 12, 18) and image
    pooling, ``(1 + len(dilations) + 1) x mid`` -> ``channels``; ``dropout`` when training (official: 0.5). Branch
    ``k`` is ``asppk`` (``aspp1`` the 1x1)."""

    def __init__(self, channels: int, mid: int, dilations: Sequence[int] = (6, 12, 18), dropout: float = 0.5) -> None:
        super().__init__()
        self.branches = len(dilations) + 1
        self.aspp1 = _ConvBNReLU(channels, mid, 1, 1)
        for k, dilation in enumerate(dilations, start=2):
            setattr(self, f"aspp{k}", _ConvBNReLU(channels, mid, 3, dilation))
        self.global_avg_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, mid, 1, bias=False),
                                             nn.BatchNorm2d(mid), nn.ReLU())
        self.conv1 = nn.Conv2d((self.branches + 1) * mid, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [getattr(self, f"aspp{k}")(x) for k in range(1, self.branches + 1)]
        pooled = F.interpolate(self.global_avg_pool(x), size=x.shape[-2:], mode="bilinear", align_corners=True)
        x = torch.cat(branches + [pooled], dim=1)
        return self.dropout(F.relu(self.bn1(self.conv1(x))))


class DeformableConv2d(nn.Module):
    """mmcv's ``DeformConv2dPack`` (``DCN``) on ``torchvision.ops.deform_conv2d``: offsets from a 3x3 conv
    (``conv_offset``, 2 x 9 channels, (dy, dx) per kernel position), grouped weights, no bias.

    torchvision's kernel computes in float32 (or float64) only: under autocast, or with a bfloat16/float16 input,
    the deformable convolution itself runs in float32 (the offsets as autocast computed them) and returns float32
    under autocast, the input's dtype otherwise.
    """

    def __init__(self, channels: int, kernel_size: int = 3, groups: int = 4) -> None:
        super().__init__()
        self.groups, self.padding = groups, kernel_size // 2
        self.weight = nn.Parameter(torch.empty(channels, channels // groups, kernel_size, kernel_size))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.conv_offset = nn.Conv2d(channels, 2 * kernel_size * kernel_size, kernel_size, padding=self.padding)
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offset = self.conv_offset(x)
        autocast = torch.is_autocast_enabled(x.device.type)
        if not autocast and x.dtype in (torch.float32, torch.float64):
            return torchvision.ops.deform_conv2d(x, offset, self.weight, padding=self.padding)
        with torch.autocast(x.device.type, enabled=False):
            out = torchvision.ops.deform_conv2d(x.float(), offset.float(), self.weight.float(), padding=self.padding)
        return out if autocast else out.to(x.dtype)


class _Mlp(nn.Module):
    def __init__(self, in_features: int, hidden: int, out_features: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(in_features, hidden), nn.Linear(hidden, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x)))


class _SqueezeExcite(nn.Module):
    """``x * sigmoid(expand(relu(reduce(code))))`` with a per-image code ``(B, C, 1, 1)``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv_reduce = nn.Conv2d(channels, channels, 1)
        self.conv_expand = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.conv_expand(F.relu(self.conv_reduce(code))))


class CameraAwareNet(nn.Module):
    """The official camera-aware HeightNet / DepthNet, configured: a 3x3 conv-BN-ReLU to ``mid_channels``, gated per
    camera by an MLP of the BatchNorm'd :func:`camera_vector` (squeeze-excite), then ``blocks`` residual blocks, an
    :class:`ASPP` (``aspp_dilations``, ``aspp_channels`` wide, ``aspp_dropout``; ``None``: none), a deformable 3x3
    conv (``deformable``) and a 1x1 conv to ``out_channels``. The published HeightNet: 256 channels, 3 blocks, ASPP
    (6, 12, 18; 256 wide; dropout 0.5), deformable, 65 height bins.

    The DepthNet of DHD-M/L adds ``context_channels`` of context from a second gated branch (``context_mlp``,
    ``context_se``, ``context_conv``) and ``cost_volume_channels``: a stereo cost volume at 4x the feature
    resolution, brought down by two strided conv-BN (``cost_volumn_net``, the official spelling) and concatenated
    before the first residual block (whose shortcut becomes a 1x1 conv).

    ``forward(x (B*N, in_channels, h, w), camera (B*N, 27)[, cost_volume (B*N, cost_volume_channels, 4h, 4w)])`` ->
    ``(B*N, out_channels + context_channels, h, w)``: the net's output, then the context.
    """

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int | None = None, blocks: int = 3,
                 aspp_dilations: Sequence[int] | None = (6, 12, 18), aspp_dropout: float = 0.5,
                 deformable: bool = True, aspp_channels: int | None = None, context_channels: int = 0,
                 cost_volume_channels: int = 0) -> None:
        super().__init__()
        mid = mid_channels or in_channels
        self.reduce_conv = nn.Sequential(nn.Conv2d(in_channels, mid, 3, padding=1), nn.BatchNorm2d(mid),
                                         nn.ReLU(inplace=True))
        if context_channels:
            self.context_conv = nn.Conv2d(mid, context_channels, 1)
        self.bn = nn.BatchNorm1d(CAMERA_NUMBERS)
        self.depth_mlp = _Mlp(CAMERA_NUMBERS, mid, mid)
        self.depth_se = _SqueezeExcite(mid)
        if context_channels:
            self.context_mlp = _Mlp(CAMERA_NUMBERS, mid, mid)
            self.context_se = _SqueezeExcite(mid)
        layers: list[nn.Module] = [BasicBlock(mid, mid) for _ in range(blocks)]
        if cost_volume_channels:
            c = cost_volume_channels
            self.cost_volumn_net = nn.Sequential(nn.Conv2d(c, c, 3, 2, 1), nn.BatchNorm2d(c),
                                                 nn.Conv2d(c, c, 3, 2, 1), nn.BatchNorm2d(c))
            layers[0] = BasicBlock(mid + c, mid, downsample=nn.Conv2d(mid + c, mid, 1))
        if aspp_dilations is not None:
            layers.append(ASPP(mid, aspp_channels or mid, aspp_dilations, aspp_dropout))
        if deformable:
            layers.append(DeformableConv2d(mid))
        layers.append(nn.Conv2d(mid, out_channels, 1))
        self.depth_conv = nn.Sequential(*layers)
        self.context_channels, self.cost_volume_channels = context_channels, cost_volume_channels

    def forward(self, x: torch.Tensor, camera: torch.Tensor, cost_volume: torch.Tensor | None = None) -> torch.Tensor:
        camera = self.bn(camera)
        x = self.reduce_conv(x)
        out = self.depth_se(x, self.depth_mlp(camera)[..., None, None])
        if self.cost_volume_channels:
            if cost_volume is None:
                raise ValueError("this net reads a stereo cost volume: pass cost_volume (B*N, D, 4h, 4w)")
            out = torch.cat([out, self.cost_volumn_net(cost_volume)], dim=1)
        out = self.depth_conv(out)
        if not self.context_channels:
            return out
        context = self.context_conv(self.context_se(x, self.context_mlp(camera)[..., None, None]))
        return torch.cat([out, context], dim=1)


def camera_vector(intrinsics: torch.Tensor, post: torch.Tensor, bda: torch.Tensor,
                  cam2ego: torch.Tensor) -> torch.Tensor:
    """The 27 numbers per camera the camera-aware nets read, in the official order: fx, fy, cx, cy; the image
    augmentation's rotation entries [0,0], [0,1], translation x, [1,0], [1,1], translation y; the BEV augmentation's
    [0,0], [0,1], [1,0], [1,1], [2,2]; the camera-to-key-ego matrix's first three rows, row-major.
    Shapes: ``(B, N, 3, 3)``, ``(B, N, 3, 3)`` (image affine), ``(B, 3, 3)``, ``(B, N, 4, 4)`` -> ``(B, N, 27)``."""
    batch, cams = intrinsics.shape[:2]
    bda = bda[:, None].expand(batch, cams, 3, 3)
    numbers = [intrinsics[..., 0, 0], intrinsics[..., 1, 1], intrinsics[..., 0, 2], intrinsics[..., 1, 2],
               post[..., 0, 0], post[..., 0, 1], post[..., 0, 2], post[..., 1, 0], post[..., 1, 1], post[..., 1, 2],
               bda[..., 0, 0], bda[..., 0, 1], bda[..., 1, 0], bda[..., 1, 1], bda[..., 2, 2]]
    return torch.cat([torch.stack(numbers, dim=-1), cam2ego[..., :3, :].reshape(batch, cams, 12)], dim=-1)


class BEVResNet(nn.Module):
    """The official ``CustomResNet``: one stage of ``blocks`` BasicBlocks per width, each stage at ``stride`` (the
    first block's shortcut a 3x3 strided conv with bias). ``(B, Cin, Y, X)`` -> one map per stage. The BEV
    encoder: widths 128, 256, 512, 2 blocks, stride 2 (maps at strides 2, 4, 8); DHD-M/L's ``pre_process`` nets:
    one width equal to the input, 1 block, stride 1."""

    def __init__(self, in_channels: int, channels: Sequence[int] = (128, 256, 512), blocks: int = 2,
                 stride: int = 2) -> None:
        super().__init__()
        stages, previous = [], in_channels
        for c in channels:
            shortcut = nn.Conv2d(previous, c, 3, stride, 1)
            first = BasicBlock(previous, c, stride=stride, downsample=shortcut)
            stages.append(nn.Sequential(first, *(BasicBlock(c, c) for _ in range(blocks - 1))))
            previous = c
        self.layers = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for stage in self.layers:
            x = stage(x)
            outputs.append(x)
        return outputs


class FPNLSS(nn.Module):
    """The official ``FPN_LSS``: the deepest map upsampled to the first map's size (bilinear, align_corners; the
    BEV encoder's stride 8 to 2, x4 on Occ3D's grid) and concatenated with it, two 3x3 conv-BN-ReLU, then (with
    ``extra_upsample``, the BEV encoder's) x2 up, 3x3 conv-BN-ReLU and a 1x1 conv -> ``(B, out_channels, Y, X)``.
    ``in_channels``: the two maps' widths summed. Without ``extra_upsample`` it is DHD-L's image neck (Swin
    stride 16 and 32 -> stride 16)."""

    def __init__(self, in_channels: int = 640, out_channels: int = 256, extra_upsample: bool = True) -> None:
        super().__init__()
        wide = 2 * out_channels if extra_upsample else out_channels
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, wide, 3, padding=1, bias=False), nn.BatchNorm2d(wide), nn.ReLU(inplace=True),
            nn.Conv2d(wide, wide, 3, padding=1, bias=False), nn.BatchNorm2d(wide), nn.ReLU(inplace=True))
        self.up2 = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
            nn.Conv2d(wide, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True), nn.Conv2d(out_channels, out_channels, 1)) if extra_upsample else nn.Identity()

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        shallow, deep = features[0], features[-1]
        deep = F.interpolate(deep, size=shallow.shape[-2:], mode="bilinear", align_corners=True)
        return self.up2(self.conv(torch.cat([shallow, deep], dim=1)))


class _DoubleConv(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.double_conv(x)


class _Down(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), _DoubleConv(in_channels, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool_conv(x)


class _Up(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, 2, stride=2)
        self.conv = _DoubleConv(in_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        dy, dx = skip.shape[-2] - x.shape[-2], skip.shape[-1] - x.shape[-1]
        x = F.pad(x, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([skip, x], dim=1))


class _OutConv(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class UNet(nn.Module):
    """The official UNet on a z-folded height band, ``len(widths)`` levels (official: 64 .. 1024, five levels; each
    width twice the one before): max-pool down, transposed-conv up, odd sizes padded. Keys ``inc``, ``down1`` ..,
    ``up1`` (the deepest) .., ``outc``. ``(B, in_channels, Y, X)`` -> ``(B, out_channels, Y, X)``."""

    def __init__(self, in_channels: int, out_channels: int, widths: Sequence[int] = (64, 128, 256, 512, 1024)) -> None:
        super().__init__()
        if len(widths) < 2 or any(b != 2 * a for a, b in zip(widths, widths[1:])):
            raise ValueError(f"UNet widths {list(widths)}: two or more levels, each twice the one before")
        self.levels = len(widths) - 1
        self.inc = _DoubleConv(in_channels, widths[0])
        for k, (a, b) in enumerate(zip(widths, widths[1:]), start=1):
            setattr(self, f"down{k}", _Down(a, b))
        for k, (a, b) in enumerate(zip(widths[::-1], widths[-2::-1]), start=1):
            setattr(self, f"up{k}", _Up(a, b))
        self.outc = _OutConv(widths[0], out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]
        for k in range(1, self.levels + 1):
            skips.append(getattr(self, f"down{k}")(skips[-1]))
        x = skips.pop()
        for k in range(1, self.levels + 1):
            x = getattr(self, f"up{k}")(x, skips.pop())
        return self.outc(x)


class _ChannelSpatialStage(nn.Module):
    """SFA's two gates: per channel ``a`` from the pooled concatenation, then per cell and channel ``b``:
    ``b a F_db + (1 - b) (1 - a) F_hr``."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        half = channels // 2
        self.fc = nn.Sequential(nn.Linear(channels, channels // reduction), nn.ReLU(),
                                nn.Linear(channels // reduction, half), nn.Sigmoid())
        self.spacial_leanring = nn.Sequential(  # the official key's spelling
            nn.Conv2d(half, half, 1), nn.BatchNorm2d(half), nn.ReLU(inplace=True),
            nn.Conv2d(half, half, 1), nn.BatchNorm2d(half))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bev, voxel = x.chunk(2, dim=1)
        a = self.fc(x.mean(dim=(2, 3)))[..., None, None]
        bev, voxel = a * bev, (1 - a) * voxel
        b = torch.sigmoid(self.spacial_leanring(bev + voxel))
        return b * bev + (1 - b) * voxel


class SynergisticFeatureAggregation(nn.Module):
    """The official ``SFA`` (key ``mix``) of F_db and F_hr concatenated:
    ``relu(residual(gated fusion) + shortcut(concatenation))``, ``(B, 2C, Y, X)`` -> ``(B, out_channels, Y, X)``."""

    def __init__(self, in_channels: int = 512, out_channels: int = 256) -> None:
        super().__init__()
        self.mysk_7 = _ChannelSpatialStage(in_channels)
        self.mix_residual = nn.Sequential(
            nn.Conv2d(in_channels // 2, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels))
        self.mix_shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.mix_residual(self.mysk_7(x)) + self.mix_shortcut(x))


class ChannelToHeightHead(nn.Module):
    """The official occupancy head (``predictor``): 3x3 conv + ReLU to C, then a per-cell MLP (C -> 2C -> Softplus
    -> layers x classes). ``(B, in_channels, Y, X)`` -> ``(B, X, Y, layers, classes)`` logits; ``in_channels``
    defaults to C (DHD-M: 512 in, C = 256)."""

    def __init__(self, channels: int = 256, layers: int = 16, classes: int = 18,
                 in_channels: int | None = None) -> None:
        super().__init__()
        self.layers, self.classes = layers, classes
        self.final_conv = _Conv(in_channels or channels, channels, 3, relu=True)
        self.predicter = nn.Sequential(nn.Linear(channels, 2 * channels), nn.Softplus(),
                                       nn.Linear(2 * channels, layers * classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.predicter(self.final_conv(x).permute(0, 3, 2, 1))  # (B, X, Y, layers * classes)
        return x.view(*x.shape[:3], self.layers, self.classes)
