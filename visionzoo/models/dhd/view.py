"""DHD's view transform in plain PyTorch (no custom ops): lift-splat into the BEV and Mask-Guided Height Sampling.

:func:`frustum` places ``D`` depth hypotheses at every feature-map pixel; :func:`lift_frustum` moves them into the
(augmented) ego frame in the official order of operations; :func:`voxel_indices` turns ego points into flat cell
indices of a grid (points outside dropped); :func:`pool_to_bev` sums ``depth probability x feature`` of the points
in each cell with one ``scatter_add_`` (the official ``bev_pool_v2`` CUDA op sums the same products). Indices depend
only on the camera geometry, so :class:`VoxelIndexCache` keeps them while the geometry stays the same (evaluation,
fixed rigs) and training with augmentation recomputes them per batch.

Two conventions, chosen by :class:`MaskGuidedHeightSampling`'s arguments: the official code's (frustum pixels
``linspace(0, W - 1, W / 16)``, cell indices by truncation toward zero, so points up to one cell below a grid's
lower bound land in its first cell) and the zoo's (pixel centres, floor).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from visionzoo.constants import DHD_HEIGHT_BINS
from visionzoo.geometry import OccupancyGrid
from visionzoo.models.dhd.parts import CameraAwareNet, camera_vector

#: MGHS height bands (metres): low / middle / high, each ``[lower, upper)``.
MASK_RANGE = (-1.0, 0.6, 2.2, 5.4)
FRUSTUM_PIXELS = ("linspace", "centres")
ROUNDINGS = ("truncate", "floor")


def frustum(input_size: tuple[int, int], stride: int, depth_bins: Sequence[float],
            pixels: str = "linspace") -> torch.Tensor:
    """``(D, h, w, 3)`` of (u, v, depth) in network-input pixels and metres (``arange(*depth_bins)``).

    ``pixels="linspace"`` (the official LSS): ``h, w = H // stride, W // stride`` positions from 0 to ``W - 1``
    (not pixel centres); ``"centres"`` (the zoo): the centres of the ``ceil(H / stride) x ceil(W / stride)``
    feature pixels."""
    height, width = input_size
    if pixels == "linspace":
        h, w = height // stride, width // stride
        u_axis = torch.linspace(0, width - 1, w, dtype=torch.float32)
        v_axis = torch.linspace(0, height - 1, h, dtype=torch.float32)
    elif pixels == "centres":
        h, w = -(-height // stride), -(-width // stride)
        u_axis = (torch.arange(w, dtype=torch.float32) + 0.5) * stride - 0.5
        v_axis = (torch.arange(h, dtype=torch.float32) + 0.5) * stride - 0.5
    else:
        raise ValueError(f"frustum pixels must be one of {', '.join(FRUSTUM_PIXELS)}, not {pixels!r}")
    depth = torch.arange(*depth_bins, dtype=torch.float32).view(-1, 1, 1).expand(-1, h, w)
    u = u_axis.view(1, 1, w).expand_as(depth)
    v = v_axis.view(1, h, 1).expand_as(depth)
    return torch.stack([u, v, depth], dim=-1)


def invert(matrix: torch.Tensor) -> torch.Tensor:
    """``torch.inverse`` of ``(..., 3, 3)`` matrices; while exporting to ONNX (which has no inverse operator) the
    adjugate over the determinant, in standard operators."""
    if not torch.onnx.is_in_onnx_export():
        return torch.inverse(matrix)
    a, b, c = matrix[..., 0, 0], matrix[..., 0, 1], matrix[..., 0, 2]
    d, e, f = matrix[..., 1, 0], matrix[..., 1, 1], matrix[..., 1, 2]
    g, h, i = matrix[..., 2, 0], matrix[..., 2, 1], matrix[..., 2, 2]
    adjugate = torch.stack([e * i - f * h, c * h - b * i, b * f - c * e,
                            f * g - d * i, a * i - c * g, c * d - a * f,
                            d * h - e * g, b * g - a * h, a * e - b * d], dim=-1).view(matrix.shape)
    determinant = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
    return adjugate / determinant[..., None, None]


def invert_rigid(transform: torch.Tensor) -> torch.Tensor:
    """``torch.inverse`` of ``(..., 4, 4)`` transforms; while exporting to ONNX (no inverse operator) the rigid
    inverse ``[R^T, -R^T t]`` (camera transforms are rigid)."""
    if not torch.onnx.is_in_onnx_export():
        return torch.inverse(transform)
    rotation = transform[..., :3, :3].transpose(-1, -2)
    translation = -rotation.matmul(transform[..., :3, 3:])
    bottom = torch.zeros_like(transform[..., 3:, :])
    bottom[..., 3] = 1
    return torch.cat([torch.cat([rotation, translation], dim=-1), bottom], dim=-2)


def split_post(post: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A ``(..., 3, 3)`` image affine as the official ``post_rot`` (its linear part, 3 x 3) and ``post_tran``
    (its translation, a 3-vector with z = 0)."""
    post_rot = post.clone()
    post_rot[..., :2, 2] = 0
    post_tran = torch.zeros_like(post[..., :, 2])
    post_tran[..., :2] = post[..., :2, 2]
    return post_rot, post_tran


def frustum_in_frame(frustum: torch.Tensor, intrinsics: torch.Tensor, transform: torch.Tensor,
                     post: torch.Tensor) -> torch.Tensor:
    """Points ``(B, N, D, h, w, 3)`` of a frustum ``(D, h, w, 3)`` (network-input pixels and depths) in the frame
    ``transform`` ``(B, N, 4, 4)`` maps each camera into, in the official order of operations: undo the image
    augmentation (translation, then inverse rotation), scale (u, v) by depth, apply ``transform[:3, :3] @ K^-1``,
    add ``transform[:3, 3]``."""
    batch, cams = intrinsics.shape[:2]
    post_rot, post_tran = split_post(post)
    points = frustum.to(post) - post_tran.view(batch, cams, 1, 1, 1, 3)
    points = invert(post_rot).view(batch, cams, 1, 1, 1, 3, 3).matmul(points.unsqueeze(-1))
    points = torch.cat([points[..., :2, :] * points[..., 2:3, :], points[..., 2:3, :]], dim=5)
    combine = transform[..., :3, :3].matmul(invert(intrinsics))
    points = combine.view(batch, cams, 1, 1, 1, 3, 3).matmul(points).squeeze(-1)
    return points + transform[..., :3, 3].view(batch, cams, 1, 1, 1, 3)


def lift_frustum(frustum: torch.Tensor, intrinsics: torch.Tensor, cam2ego: torch.Tensor, post: torch.Tensor,
                 bda: torch.Tensor) -> torch.Tensor:
    """Ego points ``(B, N, D, h, w, 3)`` of a frustum ``(D, h, w, 3)`` for cameras ``intrinsics (B, N, 3, 3)``,
    ``cam2ego (B, N, 4, 4)``, ``post (B, N, 3, 3)`` and BEV augmentation ``bda (B, 3, 3)``
    (:func:`frustum_in_frame`, then the BEV augmentation), in float32."""
    batch, cams = intrinsics.shape[:2]
    with float32_geometry(intrinsics):
        points = frustum_in_frame(frustum, intrinsics.float(), cam2ego.float(), post.float())
        return bda.float().view(batch, 1, 1, 1, 1, 3, 3).matmul(points.unsqueeze(-1)).squeeze(-1)


def float32_geometry(like: torch.Tensor) -> torch.autocast:
    """A context computing camera geometry in float32 even under autocast (whose bfloat16 matmuls would move
    lifted points by up to half a metre at 45 m)."""
    return torch.autocast(like.device.type, enabled=False)


def voxel_indices(points: torch.Tensor, grid: OccupancyGrid,
                  rounding: str = "truncate") -> tuple[torch.Tensor, torch.Tensor]:
    """``(kept, index)`` of ego points ``(B, ..., 3)`` in ``grid``: cell = ``(p - lower) / voxel`` rounded
    (``truncate``: toward zero, as the official pooling; ``floor``), kept when ``0 <= cell < shape`` on every axis;
    ``index`` = ``((b * Z + z) * Y + y) * X + x`` into ``(B, Z, Y, X)`` volumes; ``kept``: positions into the
    flattened points."""
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {', '.join(ROUNDINGS)}, not {rounding!r}")
    batch = points.shape[0]
    scaled = (points.reshape(batch, -1, 3) - points.new_tensor(grid.lower)) / points.new_tensor(grid.voxel)
    cell = (torch.floor(scaled) if rounding == "floor" else scaled).long()
    inside = ((cell >= 0) & (cell < points.new_tensor(grid.shape, dtype=torch.long))).all(dim=-1)
    X, Y, Z = grid.shape
    x, y, z = cell.unbind(-1)
    b = torch.arange(batch, device=points.device)[:, None]
    index = ((b * Z + z) * Y + y) * X + x
    kept = inside.reshape(-1).nonzero().squeeze(1)
    return kept, index.reshape(-1)[kept]


def pool_to_bev(depth: torch.Tensor, features: torch.Tensor, kept: torch.Tensor, index: torch.Tensor,
                grid: OccupancyGrid) -> torch.Tensor:
    """Sum of ``depth x feature`` per cell, as ``(B, Z*C, Y, X)`` with z-major channels (channel ``z * C + c``).

    ``depth`` ``(B, N, D, h, w)`` (a distribution over depth bins), ``features`` ``(B, N, C, h, w)``;
    ``kept``/``index`` from :func:`voxel_indices` over the ``(B, N, D, h, w)`` points."""
    batch, channels = depth.shape[0], features.shape[2]
    X, Y, Z = grid.shape
    lifted = depth.unsqueeze(-1) * features.permute(0, 1, 3, 4, 2).unsqueeze(2)  # (B, N, D, h, w, C)
    values = lifted.reshape(-1, channels).index_select(0, kept)
    # scatter_add_, not index_add_: the same sums in the same order, and it exports to ONNX as a summing scatter
    # (index_add_ exports as an overwriting one, wrong where points share a cell)
    volume = values.new_zeros(batch * Z * Y * X, channels)
    volume.scatter_add_(0, index[:, None].expand(-1, channels), values)
    return volume.view(batch, Z, Y, X, channels).permute(0, 1, 4, 2, 3).reshape(batch, Z * channels, Y, X)


class VoxelIndexCache:
    """Keeps the last :func:`voxel_indices` results with the geometry they were computed for; reused when the same
    matrices come again (``torch.equal``), recomputed otherwise."""

    def __init__(self) -> None:
        self.key: torch.Tensor | None = None
        self.value: tuple[torch.Tensor, ...] | None = None

    def get(self, key: torch.Tensor, compute) -> tuple[torch.Tensor, ...]:
        if self.key is None or self.key.shape != key.shape or self.key.device != key.device \
                or not torch.equal(self.key, key):
            self.key, self.value = key.detach().clone(), compute()
        return self.value


def collapsed(grid: OccupancyGrid) -> OccupancyGrid:
    """The grid's BEV: one z cell spanning its whole height."""
    return OccupancyGrid(grid.x_range, grid.y_range, grid.z_range,
                         (grid.voxel[0], grid.voxel[1], grid.z_range[1] - grid.z_range[0]))


class MaskGuidedHeightSampling(nn.Module):
    """The official ``img_view_transformer`` (MGHS), configured: depth net, HeightNet, lift-splat into the BEV and
    into the height bands' sub-grids.

    Args:
        grid: the occupancy grid; ``mask_range``: band boundaries in metres (on its z layer boundaries).
        in_channels: image feature width; ``context_channels``: lifted context width; ``stride``: feature stride.
        input_size: the network input's (height, width) when ``forward`` is not told (published: 256 x 704).
        depth_bins: ``(min, max, step)`` metres of the depth distribution (published: 1 .. 44 m).
        depth_net: ``"conv"`` (DHD-S's 1x1 conv) or a dict of :class:`CameraAwareNet` options (the zoo's: one net
            for depth and context), where ``separate_context=True`` gives the context its own branch and
            ``stereo=True`` makes the net read a stereo cost volume over the depth bins (DHD-M/L's DepthNet).
        height_net: :class:`CameraAwareNet` options (published: its defaults).
        pixels / rounding: the frustum and cell conventions (:func:`frustum`, :func:`voxel_indices`).

    ``forward(features (B, N, C, h, w), intrinsics, cam2ego, post, bda[, input_size, camera, cost_volume])`` ->
    ``(bev (B, Cc, Y, X), [band (B, layers_k * Cc, Y, X) per band], depth logits (B*N, D, h, w), height logits
    (B*N, 65, h, w))``; ``camera``: the nets' ``(B, N, 27)`` camera vector when it is not the lifting geometry's
    (DHD-M/L give every frame the key frame's); ``cost_volume``: ``(B*N, D, 4h, 4w)`` for a stereo depth net.
    """

    def __init__(self, grid: OccupancyGrid, in_channels: int = 256, context_channels: int = 64,
                 input_size: Sequence[int] = (256, 704), stride: int = 16,
                 depth_bins: Sequence[float] = (1.0, 45.0, 1.0), mask_range: Sequence[float] = MASK_RANGE,
                 depth_net: str | dict = "conv", height_net: dict | None = None, pixels: str = "linspace",
                 rounding: str = "truncate") -> None:
        super().__init__()
        if mask_range[0] != grid.z_range[0] or mask_range[-1] != grid.z_range[1]:
            raise ValueError(f"mask_range {list(mask_range)} must span the grid's z range {grid.z_range}")
        for boundary in mask_range:
            grid.layer_index(boundary)  # raises unless on a layer boundary
        if pixels not in FRUSTUM_PIXELS or rounding not in ROUNDINGS:
            raise ValueError(f"pixels must be one of {FRUSTUM_PIXELS} and rounding one of {ROUNDINGS}")
        self.grid, self.bev_grid = grid, collapsed(grid)
        self.bands = [grid.z_slice(lo, hi) for lo, hi in zip(mask_range, mask_range[1:])]
        self.mask_range = tuple(float(v) for v in mask_range)
        self.input_size, self.stride = tuple(int(v) for v in input_size), stride
        self.depth_bins = tuple(float(v) for v in depth_bins)
        self.num_depth = len(torch.arange(*self.depth_bins))
        self.context_channels, self.pixels, self.rounding = context_channels, pixels, rounding
        if depth_net == "conv":
            self.depth_net: nn.Module = nn.Conv2d(in_channels, self.num_depth + context_channels, 1)
            self.stereo = False
        else:
            options = dict(depth_net)
            separate, self.stereo = options.pop("separate_context", False), options.pop("stereo", False)
            self.depth_net = CameraAwareNet(in_channels, self.num_depth + (0 if separate else context_channels),
                                            context_channels=context_channels if separate else 0,
                                            cost_volume_channels=self.num_depth if self.stereo else 0, **options)
        self.height_net = CameraAwareNet(in_channels, len(DHD_HEIGHT_BINS), **dict(height_net or {}))
        self._frusta: dict[tuple[int, int, int], torch.Tensor] = {}
        self._index_cache = VoxelIndexCache()

    def frustum(self, input_size: tuple[int, int], stride: int | None = None) -> torch.Tensor:
        """The ``(D, h, w, 3)`` frustum of an input size at the feature stride (or ``stride``: DHD-M/L's stereo
        matching runs at 4), kept per size and stride."""
        key = (*input_size, stride or self.stride)
        if key not in self._frusta:
            self._frusta[key] = frustum(input_size, key[2], self.depth_bins, self.pixels)
        return self._frusta[key]

    def voxel_indices(self, intrinsics: torch.Tensor, cam2ego: torch.Tensor, post: torch.Tensor, bda: torch.Tensor,
                      input_size: tuple[int, int] | None = None) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
        """``(kept, index)`` of the lifted frustum in the BEV grid and in each band's sub-grid; cached per
        geometry and input size."""
        size = tuple(input_size or self.input_size)
        key = torch.cat([intrinsics.flatten(1), cam2ego.flatten(1), post.flatten(1), bda.flatten(1),
                         intrinsics.new_tensor(size).expand(len(intrinsics), 2)], dim=1)

        def compute() -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
            points = lift_frustum(self.frustum(size), intrinsics, cam2ego, post, bda)
            return tuple(voxel_indices(points, grid, self.rounding) for grid in (self.bev_grid, *self.bands))

        with torch.no_grad():
            if torch.onnx.is_in_onnx_export():  # the exported graph computes them from its geometry inputs
                return compute()
            return self._index_cache.get(key, compute)

    def forward(self, features: torch.Tensor, intrinsics: torch.Tensor, cam2ego: torch.Tensor, post: torch.Tensor,
                bda: torch.Tensor, input_size: tuple[int, int] | None = None, camera: torch.Tensor | None = None,
                cost_volume: torch.Tensor | None = None,
                ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor, torch.Tensor]:
        batch, cams, channels, h, w = features.shape
        x = features.reshape(batch * cams, channels, h, w)
        if camera is None:
            camera = camera_vector(intrinsics, post, bda, cam2ego)
        camera = camera.flatten(0, 1)
        if isinstance(self.depth_net, nn.Conv2d):
            out = self.depth_net(x)
        else:
            out = self.depth_net(x, camera, cost_volume)
        depth_logits, context = out[:, : self.num_depth], out[:, self.num_depth :]
        height_logits = self.height_net(x, camera)
        depth = depth_logits.softmax(dim=1).view(batch, cams, self.num_depth, h, w)
        bins = torch.tensor(DHD_HEIGHT_BINS, dtype=torch.float32, device=x.device)  # float32 even under autocast
        heights = bins[height_logits.argmax(dim=1)]  # (B*N, h, w) metres
        indices = self.voxel_indices(intrinsics, cam2ego, post, bda, input_size)
        context = context.reshape(batch, cams, self.context_channels, h, w)
        bev = pool_to_bev(depth, context, *indices[0], self.bev_grid)
        bands = []
        for (lower, upper), (kept, index), grid in zip(zip(self.mask_range[:-1], self.mask_range[1:]), indices[1:],
                                                       self.bands):
            band = ((heights >= lower) & (heights < upper)).to(context.dtype).view(batch, cams, 1, h, w)
            bands.append(pool_to_bev(depth, context * band, kept, index, grid))
        return bev, bands, depth_logits, height_logits
