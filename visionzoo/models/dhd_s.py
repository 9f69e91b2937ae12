"""DHD-S as published (Wu et al., ICRA 2025; github yanzq95/DHD, ``projects/configs/DHD/DHD-S.py``), in plain
PyTorch: the official module tree key for key, and the official computation, with no mmcv/mmdet3d and no custom
ops.

Pipeline for B samples of N = 6 cameras at 256 x 704 (feature stride 16: 16 x 44)::

    img_backbone (ResNet-50, layer3 + layer4) -> img_neck (FPN: 256 channels at stride 16)
    img_view_transformer.depth_net (1x1 conv): 44 depth bins (1..44 m) + 64 context channels
    img_view_transformer.height_net (camera-aware: BatchNorm1d of 27 camera numbers -> MLP -> SE; 3 BasicBlocks,
        ASPP, a deformable 3x3 conv, 1x1): 65 height bins (-1.0 .. 5.4 m in 0.1 m)
    lift-splat of the context with the depth distribution into the 200 x 200 BEV (z collapsed)
        -> img_bev_encoder_backbone (3 BasicBlock stages) + img_bev_encoder_neck (FPN-LSS) -> F_db (256)
    MGHS: the height map (argmax bin) splits the context into [-1, 0.6), [0.6, 2.2), [2.2, 5.4) m; each part is
        lifted with the same depth and pooled into its own z sub-grid (4, 4, 8 layers of 0.4 m)
        -> img_voxel_encoder0/1/2 (UNets on the z-folded channels) -> 64 + 128 + 64 = F_hr (256)
    mix (SFA) fuses F_db and F_hr -> occ_head: 3x3 conv + per-cell MLP -> (B, 200, 200, 16, 18) logits

Inputs are the zoo's (ImageNet-normalised RGB, ``cam2ego`` into the key ego frame); what the published weights
expect beyond that is done here or named on the model card. The official pipeline hands its network BGR channels
normalised with the RGB mean/std (mmcv's ``imnormalize`` with ``to_rgb=True`` applied to Pillow's RGB array):
:func:`bevdet_input` turns the zoo's input into exactly that. The card's ``resample="bicubic"`` and
``key_ego="first_camera"`` make the Occ3D data pipeline resize like the official one (Pillow, bicubic, then crop)
and put the geometry in the first camera's ego frame (CAM_FRONT_LEFT), as the official ``prepare_inputs`` does.
The computation, as the official code does it (and the zoo's own ``dhd_*`` do differently):
frustum pixels ``linspace(0, W - 1, W / 16)``; voxel indices by truncation toward zero (``.long()``), so points
up to one voxel below a grid's lower bound land in its first cell; the top height band half-open [2.2, 5.4); BEV
tensors ``(B, C, Y, X)`` with z-major channel folding (channel ``z * C + c``); HeightNet's 27 camera numbers in
the official order (:func:`camera_vector`); geometry in the frame of the first camera's ego pose
(CAM_FRONT_LEFT), which the data pipeline provides. Lifting is ``index_add_`` over the
lifted points (the official ``bev_pool_v2`` CUDA op sums the same products), the deformable convolution is
``torchvision.ops.deform_conv2d`` (mmcv's ``DCN`` offset layout). Voxel indices are cached while the camera
geometry does not change (evaluation on a fixed rig).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock

from visionzoo.constants import IMAGENET_MEAN, IMAGENET_STD
from visionzoo.geometry import OCC3D_GRID
from visionzoo.models.registry import register_model
from visionzoo.models.voxel_pooling import VoxelIndexCache
from visionzoo.preprocessing import Preprocessing

#: The published configuration.
DEPTH_BINS = (1.0, 45.0, 1.0)  # metres: 44 bins
HEIGHT_BINS = tuple(round(-1.0 + 0.1 * i, 1) for i in range(65))  # metres, the config's height_range
MASK_RANGE = (-1.0, 0.6, 2.2, 5.4)  # low / middle / high bands, each [lower, upper)
INPUT_SIZE = (256, 704)
STRIDE = 16
CONTEXT_CHANNELS = 64
#: (x, y, z) ranges and cell sizes in metres: the z-collapsed BEV grid, then the MGHS sub-grids.
BEV_GRID = ((-40.0, 40.0, 0.4), (-40.0, 40.0, 0.4), (-1.0, 5.4, 6.4))
SUBGRIDS = (((-40.0, 40.0, 0.4), (-40.0, 40.0, 0.4), (-1.0, 0.6, 0.4)),
            ((-40.0, 40.0, 0.4), (-40.0, 40.0, 0.4), (0.6, 2.2, 0.4)),
            ((-40.0, 40.0, 0.4), (-40.0, 40.0, 0.4), (2.2, 5.4, 0.4)))
#: nuScenes voxel counts per class (the official occupancy head's class weights are 1 / ln(count + 0.001)).
NUSCENES_CLASS_FREQUENCIES = (944004, 1897170, 152386, 2391677, 16957802, 724139, 189027, 2074468, 413451, 2384460,
                              5916653, 175883646, 4275424, 51393615, 61411620, 105975596, 116424404, 1892500630)


def bevdet_input(images: torch.Tensor) -> torch.Tensor:
    """ImageNet-normalised RGB ``(..., 3, H, W)`` -> what the official DHD network sees: the BGR channels, each
    normalised with the mean/std of the RGB channel at its position (``(B - mean_R) / std_R``, ``(G - mean_G) /
    std_G``, ``(R - mean_B) / std_B``)."""
    mean = images.new_tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = images.new_tensor(IMAGENET_STD).view(3, 1, 1)
    pixels = images * std + mean  # [0, 1] RGB
    return (pixels.flip(-3) - mean) / std


class ResNet50Features(nn.Module):
    """ResNet-50 (torchvision's layout = mmdet's ``style='pytorch'`` ResNet: the same keys) returning layer3 and
    layer4: ``(B, 3, H, W)`` -> ``[(B, 1024, H/16, W/16), (B, 2048, H/32, W/32)]``."""

    def __init__(self) -> None:
        super().__init__()
        resnet = torchvision.models.resnet50()
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            self.add_module(name, getattr(resnet, name))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x3 = self.layer3(self.layer2(self.layer1(x)))
        return [x3, self.layer4(x3)]


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
        self.lateral_convs = nn.ModuleList(_Conv(c, out_channels, 1) for c in in_channels)
        self.fpn_convs = nn.ModuleList([_Conv(out_channels, out_channels, 3)])

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        shallow, deep = (conv(f) for conv, f in zip(self.lateral_convs, features))
        shallow = shallow + F.interpolate(deep, size=shallow.shape[-2:], mode="nearest")
        return self.fpn_convs[0](shallow)


class _ConvBNReLU(nn.Sequential):
    """``atrous_conv`` / ``bn`` of an ASPP branch (the official ``_ASPPModule`` keys)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        self.atrous_conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=0 if kernel_size == 1 else dilation,
                                     dilation=dilation, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling (dilations 1, 6, 12, 18 and image pooling), 5 x ``mid`` -> ``channels``;
    dropout 0.5 when training."""

    def __init__(self, channels: int, mid: int) -> None:
        super().__init__()
        self.aspp1 = _ConvBNReLU(channels, mid, 1, 1)
        self.aspp2 = _ConvBNReLU(channels, mid, 3, 6)
        self.aspp3 = _ConvBNReLU(channels, mid, 3, 12)
        self.aspp4 = _ConvBNReLU(channels, mid, 3, 18)
        self.global_avg_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, mid, 1, bias=False),
                                             nn.BatchNorm2d(mid), nn.ReLU())
        self.conv1 = nn.Conv2d(5 * mid, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.dropout = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.aspp1(x), self.aspp2(x), self.aspp3(x), self.aspp4(x)]
        pooled = F.interpolate(self.global_avg_pool(x), size=x.shape[-2:], mode="bilinear", align_corners=True)
        x = torch.cat(branches + [pooled], dim=1)
        return self.dropout(F.relu(self.bn1(self.conv1(x))))


class DeformableConv2d(nn.Module):
    """mmcv's ``DeformConv2dPack`` (``DCN``) on ``torchvision.ops.deform_conv2d``: offsets from a 3x3 conv
    (``conv_offset``, 2 x 9 channels, (dy, dx) per kernel position), grouped weights, no bias."""

    def __init__(self, channels: int, kernel_size: int = 3, groups: int = 4) -> None:
        super().__init__()
        self.groups, self.padding = groups, kernel_size // 2
        self.weight = nn.Parameter(torch.empty(channels, channels // groups, kernel_size, kernel_size))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.conv_offset = nn.Conv2d(channels, 2 * kernel_size * kernel_size, kernel_size, padding=self.padding)
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torchvision.ops.deform_conv2d(x, self.conv_offset(x), self.weight, padding=self.padding)


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


class HeightNet(nn.Module):
    """The official camera-aware HeightNet: ``(B*N, C, h, w)`` features and ``(B*N, 27)`` camera numbers ->
    ``(B*N, bins, h, w)`` height logits."""

    def __init__(self, channels: int = 256, bins: int = len(HEIGHT_BINS)) -> None:
        super().__init__()
        self.reduce_conv = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels),
                                         nn.ReLU(inplace=True))
        self.bn = nn.BatchNorm1d(27)
        self.depth_mlp = _Mlp(27, channels, channels)
        self.depth_se = _SqueezeExcite(channels)
        self.depth_conv = nn.Sequential(
            BasicBlock(channels, channels), BasicBlock(channels, channels), BasicBlock(channels, channels),
            ASPP(channels, channels), DeformableConv2d(channels), nn.Conv2d(channels, bins, 1))

    def forward(self, x: torch.Tensor, camera: torch.Tensor) -> torch.Tensor:
        code = self.depth_mlp(self.bn(camera))[..., None, None]
        return self.depth_conv(self.depth_se(self.reduce_conv(x), code))


def camera_vector(intrinsics: torch.Tensor, post: torch.Tensor, bda: torch.Tensor,
                  cam2ego: torch.Tensor) -> torch.Tensor:
    """The 27 numbers per camera the official HeightNet reads, in its order: fx, fy, cx, cy; the image
    augmentation's rotation entries [0,0], [0,1], translation x, [1,0], [1,1], translation y; the BEV augmentation's
    [0,0], [0,1], [1,0], [1,1], [2,2]; the camera-to-key-ego matrix's first three rows, row-major.
    Shapes: ``(B, N, 3, 3)``, ``(B, N, 3, 3)`` (image affine), ``(B, 3, 3)``, ``(B, N, 4, 4)`` -> ``(B, N, 27)``."""
    batch, cams = intrinsics.shape[:2]
    bda = bda[:, None].expand(batch, cams, 3, 3)
    numbers = [intrinsics[..., 0, 0], intrinsics[..., 1, 1], intrinsics[..., 0, 2], intrinsics[..., 1, 2],
               post[..., 0, 0], post[..., 0, 1], post[..., 0, 2], post[..., 1, 0], post[..., 1, 1], post[..., 1, 2],
               bda[..., 0, 0], bda[..., 0, 1], bda[..., 1, 0], bda[..., 1, 1], bda[..., 2, 2]]
    return torch.cat([torch.stack(numbers, dim=-1), cam2ego[..., :3, :].reshape(batch, cams, 12)], dim=-1)


def official_frustum(input_size: tuple[int, int], stride: int, depth_bins: Sequence[float]) -> torch.Tensor:
    """``(D, h, w, 3)`` of (u, v, depth) as the official LSS builds it: ``linspace(0, W - 1, W / stride)`` pixels
    (not pixel centres) and ``arange(*depth_bins)`` metres."""
    height, width = input_size
    h, w = height // stride, width // stride
    depth = torch.arange(*depth_bins, dtype=torch.float32).view(-1, 1, 1).expand(-1, h, w)
    u = torch.linspace(0, width - 1, w, dtype=torch.float32).view(1, 1, w).expand_as(depth)
    v = torch.linspace(0, height - 1, h, dtype=torch.float32).view(1, h, 1).expand_as(depth)
    return torch.stack([u, v, depth], dim=-1)


def lift_frustum(frustum: torch.Tensor, intrinsics: torch.Tensor, cam2ego: torch.Tensor, post: torch.Tensor,
                 bda: torch.Tensor) -> torch.Tensor:
    """Ego points ``(B, N, D, h, w, 3)`` of a frustum, in the official order of operations: undo the image
    augmentation (translation, then inverse rotation), scale (u, v) by depth, apply ``cam2ego[:3, :3] @ K^-1``,
    add the camera position, apply the BEV augmentation."""
    batch, cams = intrinsics.shape[:2]
    post_rot = post.clone()
    post_rot[..., :2, 2] = 0
    post_tran = torch.zeros_like(post[..., :, 2])
    post_tran[..., :2] = post[..., :2, 2]
    points = frustum.to(post) - post_tran.view(batch, cams, 1, 1, 1, 3)
    points = torch.inverse(post_rot).view(batch, cams, 1, 1, 1, 3, 3).matmul(points.unsqueeze(-1))
    points = torch.cat([points[..., :2, :] * points[..., 2:3, :], points[..., 2:3, :]], dim=5)
    combine = cam2ego[..., :3, :3].matmul(torch.inverse(intrinsics))
    points = combine.view(batch, cams, 1, 1, 1, 3, 3).matmul(points).squeeze(-1)
    points = points + cam2ego[..., :3, 3].view(batch, cams, 1, 1, 1, 3)
    return bda.view(batch, 1, 1, 1, 1, 3, 3).matmul(points.unsqueeze(-1)).squeeze(-1)


def truncated_voxel_index(points: torch.Tensor, grid: Sequence[Sequence[float]]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(kept, index)`` of ego points ``(B, ..., 3)`` in a ``((lo, hi, step) x, y, z)`` grid, as the official
    pooling computes them: cell = ``((p - lo) / step).long()`` (truncation toward zero), kept when
    ``0 <= cell < size`` on every axis; ``index`` = ``((b * Z + z) * Y + y) * X + x``, for ``(B, Z, Y, X)`` volumes."""
    batch = points.shape[0]
    lower = points.new_tensor([axis[0] for axis in grid])
    step = points.new_tensor([axis[2] for axis in grid])
    size = points.new_tensor([(axis[1] - axis[0]) / axis[2] for axis in grid])
    cell = ((points.reshape(batch, -1, 3) - lower) / step).long()
    inside = ((cell >= 0) & (cell < size)).all(dim=-1)
    X, Y, Z = (int(s) for s in size.tolist())
    x, y, z = cell.unbind(-1)
    b = torch.arange(batch, device=points.device)[:, None]
    index = ((b * Z + z) * Y + y) * X + x
    kept = inside.reshape(-1).nonzero().squeeze(1)
    return kept, index.reshape(-1)[kept]


def grid_shape(grid: Sequence[Sequence[float]]) -> tuple[int, int, int]:
    """(X, Y, Z) cell counts of a ``(lo, hi, step)`` grid (as float32, like the official ``grid_size``)."""
    return tuple(int(torch.tensor((hi - lo) / step, dtype=torch.float32)) for lo, hi, step in grid)


def pool_to_bev(depth: torch.Tensor, features: torch.Tensor, kept: torch.Tensor, index: torch.Tensor,
                grid: Sequence[Sequence[float]]) -> torch.Tensor:
    """Sum of ``depth x feature`` per cell, as ``(B, Z*C, Y, X)`` with z-major channels (channel ``z * C + c``).

    ``depth`` ``(B, N, D, h, w)``, ``features`` ``(B, N, C, h, w)``; ``kept``/``index`` from
    :func:`truncated_voxel_index` over the ``(B, N, D, h, w)`` points."""
    batch, channels = depth.shape[0], features.shape[2]
    X, Y, Z = grid_shape(grid)
    lifted = depth.unsqueeze(-1) * features.permute(0, 1, 3, 4, 2).unsqueeze(2)  # (B, N, D, h, w, C)
    values = lifted.reshape(-1, channels).index_select(0, kept)
    volume = values.new_zeros(batch * Z * Y * X, channels).index_add_(0, index, values)
    return volume.view(batch, Z, Y, X, channels).permute(0, 1, 4, 2, 3).reshape(batch, Z * channels, Y, X)


class MaskGuidedHeightSampling(nn.Module):
    """The official ``img_view_transformer`` (MGHS): depth net, HeightNet, lift-splat into the BEV and into the
    three height sub-grids.

    ``forward(features (B, N, 256, h, w), intrinsics, cam2ego, post, bda)`` -> ``(bev (B, 64, 200, 200),
    [low (B, 256, 200, 200), middle (B, 256, 200, 200), high (B, 512, 200, 200)], depth logits (B*N, 44, h, w),
    height logits (B*N, 65, h, w))``.
    """

    def __init__(self, in_channels: int = 256, context_channels: int = CONTEXT_CHANNELS,
                 input_size: tuple[int, int] = INPUT_SIZE) -> None:
        super().__init__()
        self.register_buffer("frustum", official_frustum(input_size, STRIDE, DEPTH_BINS), persistent=False)
        self.num_depth, self.context_channels = self.frustum.shape[0], context_channels
        self.depth_net = nn.Conv2d(in_channels, self.num_depth + context_channels, 1)
        self.height_net = HeightNet(in_channels, len(HEIGHT_BINS))
        self._index_cache = VoxelIndexCache()

    def voxel_indices(self, intrinsics: torch.Tensor, cam2ego: torch.Tensor, post: torch.Tensor,
                      bda: torch.Tensor) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
        """``(kept, index)`` of the lifted frustum in the BEV grid and in each sub-grid; cached per geometry."""
        key = torch.cat([intrinsics.flatten(1), cam2ego.flatten(1), post.flatten(1), bda.flatten(1)], dim=1)

        def compute() -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
            points = lift_frustum(self.frustum, intrinsics, cam2ego, post, bda)
            return tuple(truncated_voxel_index(points, grid) for grid in (BEV_GRID, *SUBGRIDS))

        with torch.no_grad():
            return self._index_cache.get(key, compute)

    def forward(self, features: torch.Tensor, intrinsics: torch.Tensor, cam2ego: torch.Tensor, post: torch.Tensor,
                bda: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor, torch.Tensor]:
        batch, cams, channels, h, w = features.shape
        x = features.reshape(batch * cams, channels, h, w)
        out = self.depth_net(x)
        depth_logits, context = out[:, : self.num_depth], out[:, self.num_depth :]
        height_logits = self.height_net(x, camera_vector(intrinsics, post, bda, cam2ego).flatten(0, 1))
        depth = depth_logits.softmax(dim=1).view(batch, cams, self.num_depth, h, w)
        bins = torch.tensor(HEIGHT_BINS, dtype=torch.float32, device=x.device)  # float32 even under autocast
        heights = bins[height_logits.argmax(dim=1)]  # (B*N, h, w) metres
        indices = self.voxel_indices(intrinsics, cam2ego, post, bda)
        context = context.reshape(batch, cams, self.context_channels, h, w)
        bev = pool_to_bev(depth, context, *indices[0], BEV_GRID)
        subspaces = []
        for (lower, upper), (kept, index), grid in zip(zip(MASK_RANGE[:-1], MASK_RANGE[1:]), indices[1:], SUBGRIDS):
            band = ((heights >= lower) & (heights < upper)).to(context.dtype).view(batch, cams, 1, h, w)
            subspaces.append(pool_to_bev(depth, context * band, kept, index, grid))
        return bev, subspaces, depth_logits, height_logits


class BEVResNet(nn.Module):
    """The official ``CustomResNet``: three stages of two BasicBlocks at strides 2, 4, 8 (the first block's shortcut
    a 3x3 strided conv with bias). ``(B, 64, Y, X)`` -> ``[(B, 128, Y/2, X/2), (B, 256, Y/4, X/4), (B, 512, Y/8, X/8)]``."""

    def __init__(self, in_channels: int = CONTEXT_CHANNELS, channels: Sequence[int] = (128, 256, 512)) -> None:
        super().__init__()
        stages, previous = [], in_channels
        for c in channels:
            shortcut = nn.Conv2d(previous, c, 3, 2, 1)
            stages.append(nn.Sequential(BasicBlock(previous, c, stride=2, downsample=shortcut), BasicBlock(c, c)))
            previous = c
        self.layers = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for stage in self.layers:
            x = stage(x)
            outputs.append(x)
        return outputs


class FPNLSS(nn.Module):
    """The official ``FPN_LSS``: the stride-8 map upsampled x4 (bilinear, align_corners) and concatenated with the
    stride-2 map, two 3x3 conv-BN-ReLU, then x2 up, 3x3 conv-BN-ReLU and a 1x1 conv. -> ``(B, 256, Y, X)``."""

    def __init__(self, in_channels: int = 640, out_channels: int = 256) -> None:
        super().__init__()
        wide = 2 * out_channels
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, wide, 3, padding=1, bias=False), nn.BatchNorm2d(wide), nn.ReLU(inplace=True),
            nn.Conv2d(wide, wide, 3, padding=1, bias=False), nn.BatchNorm2d(wide), nn.ReLU(inplace=True))
        self.up2 = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
            nn.Conv2d(wide, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True), nn.Conv2d(out_channels, out_channels, 1))

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        shallow, deep = features[0], features[2]
        deep = F.interpolate(deep, scale_factor=4, mode="bilinear", align_corners=True)
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
    """The official 5-level UNet (64 .. 1024 channels, max-pool down, transposed-conv up, odd sizes padded) on a
    z-folded height band: ``(B, in_channels, Y, X)`` -> ``(B, out_channels, Y, X)``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.inc = _DoubleConv(in_channels, 64)
        self.down1, self.down2, self.down3, self.down4 = (_Down(a, b) for a, b in ((64, 128), (128, 256), (256, 512),
                                                                                (512, 1024)))
        self.up1, self.up2, self.up3, self.up4 = (_Up(a, b) for a, b in ((1024, 512), (512, 256), (256, 128),
                                                                        (128, 64)))
        self.outc = _OutConv(64, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x = self.up1(self.down4(x4), x4)
        return self.outc(self.up4(self.up3(self.up2(x, x3), x2), x1))


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
    """The official ``SFA`` (key ``mix``): ``relu(residual(gated fusion) + shortcut(concatenation))``,
    ``(B, 2C, Y, X)`` -> ``(B, out_channels, Y, X)``."""

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
    """The official occupancy head (``predictor``): 3x3 conv + ReLU, then a per-cell MLP (256 -> 512 -> Softplus
    -> 16 x 18). ``(B, 256, Y, X)`` -> ``(B, X, Y, 16, 18)`` logits."""

    def __init__(self, channels: int = 256, layers: int = 16, classes: int = 18) -> None:
        super().__init__()
        self.layers, self.classes = layers, classes
        self.final_conv = _Conv(channels, channels, 3, relu=True)
        self.predicter = nn.Sequential(nn.Linear(channels, 2 * channels), nn.Softplus(),
                                       nn.Linear(2 * channels, layers * classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.predicter(self.final_conv(x).permute(0, 3, 2, 1))  # (B, X, Y, 16 * 18)
        return x.view(*x.shape[:3], self.layers, self.classes)


class DHDS(nn.Module):
    """DHD-S as published (see the module docstring); 917 state-dict entries, 146,690,869 parameters.

    ``forward(images (B, N, 3, 256, 704), intrinsics (B, N, 3, 3), cam2ego (B, N, 4, 4), post (B, N, 3, 3),
    bda (B, 3, 3))`` with ImageNet-normalised RGB images and ``cam2ego`` into the key ego frame ->
    ``{"logits": (B, 200, 200, 16, 18), "depth": (B, N, 44, 16, 44), "height": (B, N, 65, 16, 44)}`` (depth and
    height as logits). :meth:`forward_official` takes the images as the official pipeline normalises them.
    """

    grid = OCC3D_GRID
    depth_bins = DEPTH_BINS
    num_depth = round((DEPTH_BINS[1] - DEPTH_BINS[0]) / DEPTH_BINS[2])

    def __init__(self, input_size: Sequence[int] = INPUT_SIZE) -> None:
        """``input_size``: the camera images' (height, width), multiples of 16 (published: 256 x 704)."""
        super().__init__()
        self.img_backbone = ResNet50Features()
        self.img_neck = LateralFPN()
        self.img_view_transformer = MaskGuidedHeightSampling(input_size=tuple(input_size))
        self.img_bev_encoder_backbone = BEVResNet()
        self.img_bev_encoder_neck = FPNLSS()
        self.occ_head = ChannelToHeightHead()
        self.img_voxel_encoder0 = UNet(4 * CONTEXT_CHANNELS, 64)
        self.img_voxel_encoder1 = UNet(4 * CONTEXT_CHANNELS, 128)
        self.img_voxel_encoder2 = UNet(8 * CONTEXT_CHANNELS, 64)
        self.mix = SynergisticFeatureAggregation()

    def forward(self, images: torch.Tensor, intrinsics: torch.Tensor, cam2ego: torch.Tensor, post: torch.Tensor,
                bda: torch.Tensor) -> dict[str, Any]:
        return self.forward_official(bevdet_input(images), intrinsics, cam2ego, post, bda)

    def forward_official(self, images: torch.Tensor, intrinsics: torch.Tensor, cam2ego: torch.Tensor,
                         post: torch.Tensor, bda: torch.Tensor) -> dict[str, Any]:
        """:meth:`forward` for images normalised as the official pipeline does (see :func:`bevdet_input`)."""
        batch, cams = images.shape[:2]
        features = self.img_neck(self.img_backbone(images.flatten(0, 1)))
        features = features.view(batch, cams, *features.shape[1:])
        bev, subspaces, depth, height = self.img_view_transformer(features, intrinsics, cam2ego, post, bda)
        f_db = self.img_bev_encoder_neck(self.img_bev_encoder_backbone(bev))
        encoders = (self.img_voxel_encoder0, self.img_voxel_encoder1, self.img_voxel_encoder2)
        f_hr = torch.cat([encoder(band) for encoder, band in zip(encoders, subspaces)], dim=1)
        logits = self.occ_head(self.mix(torch.cat([f_db, f_hr], dim=1)))
        h, w = depth.shape[-2:]
        return {"logits": logits, "depth": depth.view(batch, cams, -1, h, w),
                "height": height.view(batch, cams, -1, h, w)}


register_model(
    "dhd_s", task="occupancy",
    preprocessing=Preprocessing(input_size=(3, *INPUT_SIZE), resample="bicubic", key_ego="first_camera",
                                grid=OCC3D_GRID),
    license="Apache-2.0 (DHD design and published weights: Wu et al.; this implementation: visionzoo)",
    description="DHD-S as published (ResNet-50, 256 x 704, Occ3D-nuScenes): the official module tree and computation",
)(DHDS)
