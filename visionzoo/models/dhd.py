"""DHD (Deep Height Decoupling, Wu et al. 2024): camera-only 3D semantic occupancy in plain PyTorch.

Pipeline (shapes for B samples, N cameras, input H x W, feature stride s = 16, h = H / s, w = W / s)::

    images (B, N, 3, H, W) -> ImageEncoder (timm backbone, strides 16 + 32 fused by IDA-Up) -> (B*N, Cn, h, w)
      -> DepthNet: depth distribution (D bins) + context (Cc)        -> lift + voxel pooling, z collapsed -> F_db
      -> HeightNet: 65 height bins (-1.0 .. 5.4 m), argmax = height map
      -> MGHS: height masks of mask_range x context, lifted with the same depth, pooled into the low / middle /
         high z sub-grids, each encoded by its own BEV UNet                                    -> F_hr (concat)
    F_db = BEVResNetFPN(pooled) ; SFA(F_db, F_hr) -> channel-to-height head -> logits (B, X, Y, Z, classes)

BEV tensors are ``(B, C, X, Y)`` (Occ3D's x, y order). Every size comes from the grid, the input and the config,
so reduced grids (tests, the synthetic worlds) use the same code as Occ3D's 200 x 200 x 16.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from visionzoo.geometry import OCC3D_GRID, SYNTHETIC_GRID, OccupancyGrid, as_grid
from visionzoo.models.backbones import TINY_DLA_KWARGS, TimmFeatures
from visionzoo.models.necks import ConvNormAct, IDAUp
from visionzoo.models.registry import register_model
from visionzoo.models.voxel_pooling import VoxelIndexCache, frustum, lift_points, pool_voxels, voxel_indices
from visionzoo.preprocessing import Preprocessing

HEIGHT_BINS = (-1.0, 5.4, 0.1)
MASK_RANGE = (-1.0, 0.6, 2.2, 5.4)


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs) with a 1x1 projection shortcut when shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride, dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False), nn.BatchNorm2d(out_channels))
        self.shortcut = nn.Identity() if stride == 1 and in_channels == out_channels else nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class ImageEncoder(nn.Module):
    """timm backbone features at strides 16 and 32 fused by one IDA-Up node -> ``(B, channels, H/16, W/16)``."""

    def __init__(self, backbone: str, channels: int, backbone_kwargs: dict[str, Any] | None = None,
                 pretrained: str | None = None) -> None:
        super().__init__()
        self.backbone = TimmFeatures(backbone, pretrained=pretrained, timm_kwargs=backbone_kwargs)
        strides = self.backbone.strides
        if 16 not in strides or 32 not in strides:
            raise ValueError(f"backbone {backbone} has feature strides {strides}; DHD needs 16 and 32")
        self.levels = (strides.index(16), strides.index(32))
        in_channels = [self.backbone.channels[i] for i in self.levels]
        self.fuse = IDAUp(channels, in_channels, (1, 2))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.backbone(images)
        return self.fuse([features[i] for i in self.levels])[-1]


class CameraAwareNet(nn.Module):
    """BEVDepth-style camera-aware head: an MLP of the camera parameters gates (SE) the image feature, then
    residual blocks and a small dilated context module (ASPP-like) predict ``out_channels`` per pixel.

    ``forward(x (B*N, Cin, h, w), camera (B*N, P))`` -> ``(B*N, out_channels, h, w)``.
    """

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, camera_dims: int) -> None:
        super().__init__()
        self.reduce = ConvNormAct(in_channels, mid_channels, 3)
        self.camera_mlp = nn.Sequential(nn.Linear(camera_dims, mid_channels), nn.ReLU(inplace=True),
                                        nn.Linear(mid_channels, mid_channels), nn.Sigmoid())
        self.blocks = nn.Sequential(BasicBlock(mid_channels, mid_channels), BasicBlock(mid_channels, mid_channels))
        self.context = nn.ModuleList(ConvNormAct(mid_channels, mid_channels // 2, 3) if d == 1 else nn.Sequential(
            nn.Conv2d(mid_channels, mid_channels // 2, 3, padding=d, dilation=d, bias=False),
            nn.BatchNorm2d(mid_channels // 2), nn.ReLU(inplace=True)) for d in (1, 3, 6))
        self.merge = ConvNormAct(3 * (mid_channels // 2) + mid_channels, mid_channels, 1)
        self.out = nn.Conv2d(mid_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, camera: torch.Tensor) -> torch.Tensor:
        x = self.reduce(x) * self.camera_mlp(camera)[..., None, None]
        x = self.blocks(x)
        x = self.merge(torch.cat([x] + [branch(x) for branch in self.context], dim=1))
        return self.out(x)


def camera_parameters(intrinsics: torch.Tensor, cam2ego: torch.Tensor, post: torch.Tensor,
                      bda: torch.Tensor) -> torch.Tensor:
    """``(B, N, 27)`` camera description for the camera-aware heads: focal lengths and principal point (4, /1000),
    the image augmentation's 2x3 affine (6, translations /1000), the BEV augmentation's 3x3 (9) and the camera
    pose: the first two rows of its rotation (6) and its x, y position in metres (2)."""
    batch, cams = intrinsics.shape[:2]
    k = torch.stack([intrinsics[..., 0, 0], intrinsics[..., 1, 1], intrinsics[..., 0, 2], intrinsics[..., 1, 2]],
                    dim=-1) / 1000.0
    p = post[..., :2, :].reshape(batch, cams, 6) * post.new_tensor([1, 1, 1e-3, 1, 1, 1e-3])
    b = bda.reshape(batch, 1, 9).expand(batch, cams, 9)
    pose = torch.cat([cam2ego[..., :2, :3].reshape(batch, cams, 6), cam2ego[..., :2, 3]], dim=-1)
    return torch.cat([k, p, b, pose], dim=-1)


CAMERA_DIMS = 27


class BEVResNetFPN(nn.Module):
    """BEV encoder for the depth-based feature: three residual stages at BEV strides 2, 4, 8, their deepest two
    fused FPN-LSS style and brought back to the input resolution. ``(B, Cin, X, Y)`` -> ``(B, out, X, Y)``."""

    def __init__(self, in_channels: int, channels: Sequence[int], out_channels: int) -> None:
        super().__init__()
        stages, previous = [], in_channels
        for c in channels:
            stages.append(nn.Sequential(BasicBlock(previous, c, stride=2), BasicBlock(c, c)))
            previous = c
        self.stages = nn.ModuleList(stages)
        self.lateral = ConvNormAct(channels[0] + channels[-1], out_channels, 3)
        self.out = nn.Sequential(ConvNormAct(out_channels, out_channels, 3), nn.Conv2d(out_channels, out_channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        deep = F.interpolate(features[-1], size=features[0].shape[-2:], mode="bilinear", align_corners=False)
        x = self.lateral(torch.cat([features[0], deep], dim=1))
        return self.out(F.interpolate(x, size=size, mode="bilinear", align_corners=False))


class BEVUNet(nn.Module):
    """A two-level 2D UNet for one height subspace: ``(B, Cin, X, Y)`` -> ``(B, out, X, Y)``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        mid = max(out_channels, 32)
        self.enc = nn.Sequential(ConvNormAct(in_channels, mid, 3), BasicBlock(mid, mid))
        self.down = BasicBlock(mid, 2 * mid, stride=2)
        self.dec = nn.Sequential(ConvNormAct(3 * mid, mid, 3), nn.Conv2d(mid, out_channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.enc(x)
        deep = F.interpolate(self.down(skip), size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.dec(torch.cat([skip, deep], dim=1))


class SFA(nn.Module):
    """Synergistic Feature Aggregation of the depth-based ``F_db`` and height-refined ``F_hr`` BEV features.

    Channel stage: ``a = sigmoid(MLP(GAP(cat(F_db, F_hr))))`` (C), ``F_db' = a F_db``, ``F_hr' = (1 - a) F_hr``.
    Spatial stage: ``b = sigmoid(BN(conv1x1(ReLU(BN(conv1x1(F_db' + F_hr'))))))`` per pixel and channel,
    ``fused = b F_db' + (1 - b) F_hr'``; then a residual block (two 3x3 convs + 1x1 shortcut) over
    ``cat(fused, F_db' + F_hr')`` (2C) -> ``out_channels``. Inputs ``(B, C, X, Y)``.
    """

    def __init__(self, channels: int, out_channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(2 * channels // reduction, 4)
        self.channel = nn.Sequential(nn.Linear(2 * channels, hidden), nn.ReLU(inplace=True),
                                     nn.Linear(hidden, channels), nn.Sigmoid())
        self.spatial = nn.Sequential(
            nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.Sigmoid())
        self.out = BasicBlock(2 * channels, out_channels)

    def forward(self, f_db: torch.Tensor, f_hr: torch.Tensor) -> torch.Tensor:
        a = self.channel(torch.cat([f_db, f_hr], dim=1).mean(dim=(2, 3)))[..., None, None]
        f_db, f_hr = a * f_db, (1 - a) * f_hr
        both = f_db + f_hr
        b = self.spatial(both)
        return self.out(torch.cat([b * f_db + (1 - b) * f_hr, both], dim=1))


class ChannelToHeightHead(nn.Module):
    """FlashOcc's head: 3x3 conv, then a per-BEV-cell MLP to ``Z x classes`` -> logits ``(B, X, Y, Z, classes)``."""

    def __init__(self, channels: int, layers: int, num_classes: int) -> None:
        super().__init__()
        self.layers, self.num_classes = layers, num_classes
        self.conv = ConvNormAct(channels, channels, 3)
        self.mlp = nn.Sequential(nn.Linear(channels, 2 * channels), nn.Softplus(),
                                 nn.Linear(2 * channels, layers * num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mlp(self.conv(x).permute(0, 2, 3, 1))
        return x.reshape(*x.shape[:3], self.layers, self.num_classes)


def height_masks(height_map: torch.Tensor, mask_range: Sequence[float]) -> torch.Tensor:
    """MGHS masks: ``(..., 1, h, w)`` heights (metres) -> ``(..., K, h, w)`` bool, mask ``k`` set where the height
    is in ``[mask_range[k], mask_range[k + 1])`` (the last interval closed)."""
    masks = []
    for k, (lo, hi) in enumerate(zip(mask_range, mask_range[1:])):
        upper = height_map <= hi if k == len(mask_range) - 2 else height_map < hi
        masks.append((height_map >= lo) & upper)
    return torch.cat(masks, dim=-3)


class DHD(nn.Module):
    """Deep Height Decoupling occupancy network.

    Args:
        backbone / backbone_kwargs / backbone_pretrained: the timm image backbone (needs strides 16 and 32).
        grid: the occupancy grid (:class:`~visionzoo.geometry.OccupancyGrid` or its fields); Occ3D by default.
        depth_bins: ``(min, max, step)`` metres of the LSS depth distribution.
        neck_channels / context_channels / head_channels: image-feature, lifted-context and camera-head widths.
        bev_channels: width C of F_db, F_hr and the head; ``bev_stages``: widths of the F_db encoder's stages.
        mask_range: MGHS height boundaries (metres, on the grid's z layer boundaries), three subspaces.
        subspace_channels: output widths of the three subspace UNets (sum = ``bev_channels``).
        num_classes: occupancy classes (Occ3D: 18, free last).

    ``forward(images (B, N, 3, H, W), intrinsics (B, N, 3, 3), cam2ego (B, N, 4, 4), post (B, N, 3, 3),
    bda (B, 3, 3))`` returns ``logits`` (B, X, Y, Z, classes), ``depth`` (B, N, D, h, w) and ``height``
    (B, N, 65, h, w) logits.
    """

    def __init__(
        self,
        backbone: str = "dla34",
        backbone_kwargs: dict[str, Any] | None = None,
        backbone_pretrained: str | None = None,
        grid: OccupancyGrid | dict | None = None,
        depth_bins: Sequence[float] = (1.0, 45.0, 1.0),
        neck_channels: int = 256,
        context_channels: int = 64,
        head_channels: int = 256,
        bev_channels: int = 256,
        bev_stages: Sequence[int] = (128, 256, 512),
        mask_range: Sequence[float] = MASK_RANGE,
        subspace_channels: Sequence[int] = (64, 128, 64),
        num_classes: int = 18,
        stride: int = 16,
    ) -> None:
        super().__init__()
        self.grid = as_grid(grid, OCC3D_GRID)
        self.depth_bins = tuple(float(v) for v in depth_bins)
        self.num_depth = len(torch.arange(*self.depth_bins))
        self.context_channels, self.stride = context_channels, stride
        if len(mask_range) != 4 or len(subspace_channels) != 3:
            raise ValueError("MGHS needs four mask_range boundaries (three subspaces) and three subspace widths")
        if sum(subspace_channels) != bev_channels:
            raise ValueError(f"subspace_channels {list(subspace_channels)} must sum to bev_channels {bev_channels}")
        if mask_range[0] != self.grid.z_range[0] or mask_range[-1] != self.grid.z_range[1]:
            raise ValueError(f"mask_range {list(mask_range)} must span the grid's z range {self.grid.z_range}")
        self.mask_range = tuple(float(v) for v in mask_range)
        for boundary in self.mask_range:
            self.grid.layer_index(boundary)  # raises unless on a layer boundary
        self.subgrids = [self.grid.z_slice(lo, hi) for lo, hi in zip(self.mask_range, self.mask_range[1:])]
        self.num_height = len(torch.arange(*HEIGHT_BINS)) + 1  # -1.0 .. 5.4 inclusive: 65
        self.image_encoder = ImageEncoder(backbone, neck_channels, backbone_kwargs, backbone_pretrained)
        self.depth_net = CameraAwareNet(neck_channels, head_channels, self.num_depth + context_channels, CAMERA_DIMS)
        self.height_net = CameraAwareNet(neck_channels, head_channels, self.num_height, CAMERA_DIMS)
        self.bev_encoder = BEVResNetFPN(context_channels, bev_stages, bev_channels)
        self.subspace_encoders = nn.ModuleList(
            BEVUNet(context_channels * sub.shape[2], c) for sub, c in zip(self.subgrids, subspace_channels))
        self.sfa = SFA(bev_channels, bev_channels)
        self.head = ChannelToHeightHead(bev_channels, self.grid.shape[2], num_classes)
        self._frustum: torch.Tensor | None = None
        self._index_cache = VoxelIndexCache()

    def frustum_points(self, input_size: tuple[int, int], device: torch.device) -> torch.Tensor:
        if self._frustum is None or self._frustum.device != device or self._frustum_size != input_size:
            self._frustum = frustum(input_size, self.stride, self.depth_bins, device)
            self._frustum_size = input_size
        return self._frustum

    def height_values(self, device: torch.device) -> torch.Tensor:
        """``(65,)`` metres of the height bins."""
        lo, _, step = HEIGHT_BINS
        return lo + step * torch.arange(self.num_height, device=device, dtype=torch.float32)

    def geometry(self, input_size: tuple[int, int], intrinsics: torch.Tensor, cam2ego: torch.Tensor,
                 post: torch.Tensor, bda: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Voxel indices of the lifted frustum: ``(kept, bev_index)`` for the z-collapsed grid, then
        ``(kept, index)`` per MGHS subspace. Cached while the geometry is unchanged."""
        key = torch.cat([intrinsics.flatten(1), cam2ego.flatten(1), post.flatten(1), bda.flatten(1)], dim=1)

        def compute() -> tuple[torch.Tensor, ...]:
            points = lift_points(self.frustum_points(input_size, intrinsics.device), intrinsics, cam2ego, post, bda)
            out = list(voxel_indices(points, self.grid, collapse_z=True))
            for sub in self.subgrids:
                out += list(voxel_indices(points, sub))
            return tuple(out)

        with torch.no_grad():
            return self._index_cache.get(torch.cat([key, key.new_tensor(input_size).expand(len(key), 2)], 1), compute)

    def forward(self, images: torch.Tensor, intrinsics: torch.Tensor, cam2ego: torch.Tensor, post: torch.Tensor,
                bda: torch.Tensor) -> dict[str, torch.Tensor]:
        batch, cams = images.shape[:2]
        input_size = tuple(images.shape[-2:])
        features = self.image_encoder(images.flatten(0, 1))
        camera = camera_parameters(intrinsics, cam2ego, post, bda).flatten(0, 1)
        depth_out = self.depth_net(features, camera)
        h, w = depth_out.shape[-2:]
        depth_logits = depth_out[:, : self.num_depth]
        context = depth_out[:, self.num_depth:]
        height_logits = self.height_net(features, camera)
        depth = depth_logits.softmax(dim=1).view(batch, cams, self.num_depth, h, w)
        context = context.view(batch, cams, self.context_channels, h, w)
        indices = self.geometry(input_size, intrinsics, cam2ego, post, bda)
        X, Y, Z = self.grid.shape

        def to_bev(volume: torch.Tensor, layers: int) -> torch.Tensor:  # (B*X*Y*layers, C) -> (B, C*layers, X, Y)
            volume = volume.view(batch, X, Y, layers, -1)
            return volume.permute(0, 4, 3, 1, 2).reshape(batch, -1, X, Y)

        pooled = pool_voxels(depth, context, indices[0], indices[1], batch * X * Y)
        f_db = self.bev_encoder(to_bev(pooled, 1))
        # MGHS: the height map masks the context; each masked context is lifted with the same depth distribution.
        height_map = self.height_values(images.device)[height_logits.argmax(dim=1)].view(batch, cams, 1, h, w)
        masks = height_masks(height_map, self.mask_range).to(context.dtype)
        subspaces = []
        for i, (sub, encoder) in enumerate(zip(self.subgrids, self.subspace_encoders)):
            layers = sub.shape[2]
            volume = pool_voxels(depth, context * masks[:, :, i : i + 1], indices[2 + 2 * i], indices[3 + 2 * i],
                                 batch * X * Y * layers)
            subspaces.append(encoder(to_bev(volume, layers)))
        fused = self.sfa(f_db, torch.cat(subspaces, dim=1))
        return {
            "logits": self.head(fused),
            "depth": depth_logits.view(batch, cams, self.num_depth, h, w),
            "height": height_logits.view(batch, cams, self.num_height, h, w),
        }


_DHD_LICENSE = "Apache-2.0 (visionzoo re-implementation; DHD paper: Wu et al. 2024)"
_OCC3D_INPUT = Preprocessing(input_size=(3, 256, 704), grid=OCC3D_GRID)
register_model(
    "dhd_dla34", task="occupancy", preprocessing=_OCC3D_INPUT, license=_DHD_LICENSE,
    description="DHD-S recipe on a DLA-34 image backbone, Occ3D-nuScenes grid (200 x 200 x 16)",
    defaults={"backbone": "dla34"},
)(DHD)
register_model(
    "dhd_r50", task="occupancy", preprocessing=_OCC3D_INPUT, license=_DHD_LICENSE,
    description="The zoo's DHD on a ResNet-50 image backbone, Occ3D-nuScenes grid (the published module tree is dhd_s)",
    defaults={"backbone": "resnet50"},
)(DHD)
register_model(
    "dhd_tiny", task="occupancy", preprocessing=Preprocessing(input_size=(3, 128, 256), grid=SYNTHETIC_GRID),
    license=_DHD_LICENSE,
    description="DHD on the tiny DLA with narrow BEV encoders, on the synthetic worlds' grid (50 x 50 x 16), "
                "for tests and the CPU demo",
    defaults={"backbone": "dla34", "backbone_kwargs": TINY_DLA_KWARGS,
              "grid": asdict(SYNTHETIC_GRID),
              "depth_bins": (1.0, 29.0, 1.0), "neck_channels": 32, "context_channels": 16, "head_channels": 32,
              "bev_channels": 32, "bev_stages": (32, 64, 64), "subspace_channels": (8, 16, 8)},
)(DHD)
