"""DHD-M/L's stereo depth cue (BEVStereo4D's cost volume), in plain PyTorch.

Each camera's stride-4 features of the current frame are compared with the same camera's features of the frame
before: every stride-4 pixel and depth bin of the current frame (a stride-4 frustum in network-input pixels, as the
official ``cv_frustum``) is unprojected with the current camera, moved into the previous camera by the
current-to-previous sensor transform, projected there and the previous features sampled (bilinear, zeros outside
the image or behind the camera). The matching cost is the L1 distance over channels; bins whose sample fell outside
pay ``bias`` more; ``softmax(-cost)`` over the bins is the volume the depth net reads.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from visionzoo.models.dhd.view import float32_geometry, frustum_in_frame, invert_rigid, split_post

#: Channels compared per step: the official code's groups of 4, summed in its order (so the costs, which the softmax
#: turns into sharp distributions, match it to the last bit); a bin is invalid when the first channel of the last
#: group sampled exactly 0.
GROUP = 4


def current_to_previous_sensor(cam2key_ego: torch.Tensor) -> torch.Tensor:
    """``(B, T, N, 4, 4)`` camera-to-key-ego transforms of frames ``0 .. T-1`` (0 the key frame, each the one
    before the last) -> ``(B, T-1, N, 4, 4)``: camera ``n`` of frame ``t`` to camera ``n`` of frame ``t + 1``,
    computed in float64 as the official code does."""
    current, previous = cam2key_ego[:, :-1].double(), cam2key_ego[:, 1:].double()
    return (invert_rigid(previous) @ current).to(cam2key_ego.dtype)


def cost_volume_grid(frustum: torch.Tensor, current_to_previous: torch.Tensor, intrinsics: torch.Tensor,
                     post: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """``grid_sample`` positions ``(B*N, D*h, w, 2)`` (``align_corners=True``; -2 where the point is within 1 mm of
    or behind the previous camera) in the previous image of each frustum point.

    ``frustum``: ``(D, h, w, 3)`` of (u, v, depth) in network-input pixels and metres; ``current_to_previous``,
    ``intrinsics``, ``post`` (the image augmentation as a 3 x 3 affine, the same in both frames): ``(B, N, ...)``;
    ``image_size``: the (height, width) the pixel coordinates are normalised by.
    """
    batch, cams = intrinsics.shape[:2]
    depth, h, w, _ = frustum.shape
    with float32_geometry(intrinsics):
        intrinsics, post = intrinsics.float(), post.float()
        points = frustum_in_frame(frustum, intrinsics, current_to_previous.float(), post)
        behind = points[..., 2] < 1e-3
        points = intrinsics.view(batch, cams, 1, 1, 1, 3, 3).matmul(points.unsqueeze(-1))
        points = points[..., :2, :] / points[..., 2:3, :]
        post_rot, post_tran = split_post(post)
        points = post_rot[..., :2, :2].view(batch, cams, 1, 1, 1, 2, 2).matmul(points).squeeze(-1)
        points = points + post_tran[..., :2].view(batch, cams, 1, 1, 1, 2)
    height, width = image_size
    grid = torch.stack([points[..., 0] / (width - 1.0) * 2.0 - 1.0, points[..., 1] / (height - 1.0) * 2.0 - 1.0],
                       dim=-1)
    grid = grid.masked_fill(behind.unsqueeze(-1), -2.0)
    return grid.view(batch * cams, depth * h, w, 2)


def stereo_cost_volume(previous: torch.Tensor, current: torch.Tensor, grid: torch.Tensor, bias: float) -> torch.Tensor:
    """``softmax(-cost)`` over depth bins, ``(B*N, D, h, w)``.

    ``previous`` / ``current``: ``(B*N, C, h, w)`` stride-4 features of the previous and current frame (C a
    multiple of 4); ``grid`` from :func:`cost_volume_grid`; ``bias``: added to the cost of bins whose sample of
    channel ``C - 4`` is exactly 0 (the official validity test, see ``GROUP``). Computed without gradient, as the
    official code does, and in float32 (the official code samples in the features' dtype).
    """
    views, channels, h, w = current.shape
    depth = grid.shape[1] // h
    with torch.no_grad(), float32_geometry(current):  # sampling positions and sharp costs need float32
        previous, current, grid = previous.float(), current.float(), grid.float()
        cost = current.new_zeros(views, depth, h, w)
        for start in range(0, channels, GROUP):
            warped = F.grid_sample(previous[:, start:start + GROUP], grid, align_corners=True,
                                   padding_mode="zeros").view(views, GROUP, depth, h, w)
            cost = cost + (current[:, start:start + GROUP].unsqueeze(2) - warped).abs().sum(dim=1)
        if bias:
            cost = cost + bias * (warped[:, 0] == 0).to(cost.dtype)
        return (-cost).softmax(dim=1)
