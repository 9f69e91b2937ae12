"""The DHD networks (:class:`DHD` for the published DHD-S and the zoo's variants, :class:`StereoDHD` for the
published two-frame DHD-M and DHD-L) and their registered models.

Pipeline for B samples of N cameras, input H x W, feature stride 16 (h = H / 16, w = W / 16)::

    img_backbone -> img_neck: (B*N, C, h, w)
    img_view_transformer (MGHS): depth distribution (D bins) + context (Cc), HeightNet (65 bins: -1.0 .. 5.4 m);
        the context lifted with the depth into the z-collapsed BEV, and, masked by the argmax height map into
        [-1, 0.6), [0.6, 2.2), [2.2, 5.4) m, into each band's sub-grid
    img_bev_encoder_backbone + img_bev_encoder_neck (BEVResNet + FPN-LSS) on the BEV        -> F_db (C_bev)
    img_voxel_encoder0/1/2 (UNets) on the z-folded bands, concatenated                        -> F_hr (C_bev)
    mix (SFA) over cat(F_db, F_hr) -> occ_head: 3x3 conv + per-cell MLP -> (B, X, Y, Z, classes) logits

``dhd_s`` is DHD-S as published (Wu et al., ICRA 2025; github yanzq95/DHD, ``projects/configs/DHD/DHD-S.py``): the
official module tree key for key and the official computation, with no mmcv/mmdet3d. Its weights expect BGR
channels normalised with the RGB mean/std (mmcv's ``imnormalize`` with ``to_rgb=True`` on Pillow's RGB array), which
:func:`bevdet_input` makes of the zoo's input; its card's preprocessing (``resample="bicubic"``,
``key_ego="first_camera"``) makes the data pipeline resize like the official one and put the geometry in the first
camera's ego frame. ``dhd_dla34``, ``dhd_r50`` and ``dhd_tiny`` are the zoo's: a timm backbone fused by IDA-Up,
camera-aware depth and height nets without the deformable convolution, pixel-centre frustum and floor cell indices,
narrower BEV encoders; every size follows the grid, so reduced grids use the same code.

``dhd_m`` and ``dhd_l`` are DHD-M and DHD-L as published (``projects/configs/DHD/DHD-M.py``, ``DHD-L.py``, the
``DHD_stereo`` detector): the key frame and the frame before are each lifted into the key ego with a depth net that
also reads a stereo cost volume against their own previous frame (:mod:`~visionzoo.models.dhd.stereo`),
pre-processed per frame and concatenated; DHD-M on a ResNet-50 with a UNet for F_db, DHD-L on mmdet's Swin-B
(:class:`~visionzoo.models.swin.MMDetSwin`). They read three frames per sample (their cards' ``frames``).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Sequence

import torch
from torch import nn

from visionzoo.constants import IMAGENET_MEAN, IMAGENET_STD
from visionzoo.geometry import OCC3D_GRID, SYNTHETIC_GRID, OccupancyGrid, as_grid
from visionzoo.models.backbones import TINY_DLA_KWARGS
from visionzoo.models.dhd.parts import (FPNLSS, BEVResNet, ChannelToHeightHead, LateralFPN, ResNet50Features,
                                        SynergisticFeatureAggregation, UNet, camera_vector, timm_image_encoder)
from visionzoo.models.dhd.stereo import cost_volume_grid, current_to_previous_sensor, stereo_cost_volume
from visionzoo.models.dhd.view import MASK_RANGE, MaskGuidedHeightSampling
from visionzoo.models.registry import register_model
from visionzoo.models.swin import MMDetSwin
from visionzoo.preprocessing import Preprocessing

#: F_db encoders: DHD-S/L's ResNet + FPN-LSS, DHD-M's UNet.
BEV_ENCODERS = ("resnet", "unet")


def bevdet_input(images: torch.Tensor) -> torch.Tensor:
    """ImageNet-normalised RGB ``(..., 3, H, W)`` -> what the official DHD network sees: the BGR channels, each
    normalised with the mean/std of the RGB channel at its position (``(B - mean_R) / std_R``, ``(G - mean_G) /
    std_G``, ``(R - mean_B) / std_B``)."""
    mean = images.new_tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = images.new_tensor(IMAGENET_STD).view(3, 1, 1)
    pixels = images * std + mean  # [0, 1] RGB
    return (pixels.flip(-3) - mean) / std


class DHD(nn.Module):
    """Deep Height Decoupling occupancy network (see the module docstring).

    Args:
        img_backbone / img_neck: image features ``(B*N, 3, H, W)`` -> a list -> ``(B*N, C, h, w)``.
        img_view_transformer: the :class:`~visionzoo.models.dhd.view.MaskGuidedHeightSampling`; its grid is the
            network's.
        bev_stages: widths of the BEV encoder's three stages; ``bev_channels``: width C_bev of F_db, F_hr and the
            SFA output; ``band_channels``: the band UNets' output widths (summing to ``bev_channels``);
            ``unet_widths``: the UNets' level widths.
        num_classes: occupancy classes (Occ3D: 18, free last).
        bevdet_normalisation: the network was trained on the official pipeline's inputs (:func:`bevdet_input`).
        bev_encoder: ``"resnet"`` (:class:`BEVResNet` + :class:`FPNLSS`, DHD-S/L) or ``"unet"`` (one
            :class:`UNet`, DHD-M) for F_db; ``head_channels``: the head's width (default ``bev_channels``).
        fused_frames: frames whose BEVs are concatenated before the encoders (DHD-M/L: 2), so the encoders read
            ``fused_frames`` times the context width; ``pre_process``: DHD-M/L's one-block nets on each frame's
            BEV and z-folded volume.

    ``forward(images (B, N, 3, H, W), intrinsics (B, N, 3, 3), cam2ego (B, N, 4, 4), post (B, N, 3, 3),
    bda (B, 3, 3))`` with ImageNet-normalised RGB images and ``cam2ego`` into the key ego frame -> ``{"logits":
    (B, X, Y, Z, classes), "depth": (B, N, D, h, w), "height": (B, N, 65, h, w)}`` (depth and height as logits).
    """

    def __init__(self, img_backbone: nn.Module, img_neck: nn.Module, img_view_transformer: MaskGuidedHeightSampling,
                 bev_stages: Sequence[int] = (128, 256, 512), bev_channels: int = 256,
                 band_channels: Sequence[int] = (64, 128, 64),
                 unet_widths: Sequence[int] = (64, 128, 256, 512, 1024), num_classes: int = 18,
                 bevdet_normalisation: bool = False, bev_encoder: str = "resnet", head_channels: int | None = None,
                 fused_frames: int = 1, pre_process: bool = False) -> None:
        super().__init__()
        view = img_view_transformer
        if len(band_channels) != len(view.bands) or sum(band_channels) != bev_channels:
            raise ValueError(f"band_channels {list(band_channels)} must be one width per height band summing to "
                             f"bev_channels {bev_channels}")
        if bev_encoder not in BEV_ENCODERS:
            raise ValueError(f"bev_encoder must be one of {', '.join(BEV_ENCODERS)}, not {bev_encoder!r}")
        X, Y, Z = view.grid.shape
        if X % 2 or Y % 2:
            raise ValueError(f"the BEV encoder returns to the grid from half its size: {X} x {Y} cells must be even")
        self.bevdet_normalisation, self.fused_frames = bevdet_normalisation, fused_frames
        context = view.context_channels
        # registration order = the official state dict's key order
        self.img_backbone = img_backbone
        self.img_neck = img_neck
        self.img_view_transformer = view
        if bev_encoder == "resnet":
            self.img_bev_encoder_backbone: nn.Module = BEVResNet(fused_frames * context, bev_stages)
            self.img_bev_encoder_neck = FPNLSS(bev_stages[0] + bev_stages[-1], bev_channels)
        else:
            self.img_bev_encoder_backbone = UNet(fused_frames * context, bev_channels)
            self.img_bev_encoder_neck = nn.Identity()
        if pre_process:
            self.pre_process_net = BEVResNet(context, (context,), blocks=1, stride=1)
        self.occ_head = ChannelToHeightHead(head_channels or bev_channels, Z, num_classes, in_channels=bev_channels)
        for i, (band, width) in enumerate(zip(view.bands, band_channels)):
            setattr(self, f"img_voxel_encoder{i}",
                    UNet(fused_frames * context * band.shape[2], width, unet_widths))
        if pre_process:
            self.pre_process_net_3d = BEVResNet(context * Z, (context * Z,), blocks=1, stride=1)
        self.mix = SynergisticFeatureAggregation(2 * bev_channels, bev_channels)

    @property
    def grid(self) -> OccupancyGrid:
        return self.img_view_transformer.grid

    @property
    def depth_bins(self) -> tuple[float, ...]:
        return self.img_view_transformer.depth_bins

    @property
    def num_depth(self) -> int:
        return self.img_view_transformer.num_depth

    def forward(self, images: torch.Tensor, intrinsics: torch.Tensor, cam2ego: torch.Tensor, post: torch.Tensor,
                bda: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.bevdet_normalisation:
            images = bevdet_input(images)
        return self.forward_official(images, intrinsics, cam2ego, post, bda)

    def forward_official(self, images: torch.Tensor, intrinsics: torch.Tensor, cam2ego: torch.Tensor,
                         post: torch.Tensor, bda: torch.Tensor) -> dict[str, torch.Tensor]:
        """:meth:`forward` for images already normalised as the network was trained on (for ``dhd_s``: as the
        official pipeline does, see :func:`bevdet_input`)."""
        bev, bands, depth, height = self.lift(images, intrinsics, cam2ego, post, bda)
        batch, cams = intrinsics.shape[:2]
        h, w = depth.shape[-2:]
        return {"logits": self.decode(bev, bands), "depth": depth.view(batch, cams, -1, h, w),
                "height": height.view(batch, cams, -1, h, w)}

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, N, 3, H, W)`` -> the neck's ``(B, N, C, h, w)``."""
        features = self.img_neck(self.img_backbone(images.flatten(0, 1)))
        return features.view(*images.shape[:2], *features.shape[1:])

    def lift(self, images: torch.Tensor, intrinsics: torch.Tensor, cam2ego: torch.Tensor, post: torch.Tensor,
             bda: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """Images to the BEV ``(B, Cc, Y, X)``, the bands ``[(B, layers_k * Cc, Y, X)]`` and the depth and height
        logits ``(B*N, D | 65, h, w)`` (:class:`MaskGuidedHeightSampling`)."""
        return self.img_view_transformer(self.image_features(images), intrinsics, cam2ego, post, bda,
                                         tuple(images.shape[-2:]))

    def decode(self, bev: torch.Tensor, bands: Sequence[torch.Tensor]) -> torch.Tensor:
        """The BEV side: F_db from ``bev``, F_hr from the bands, SFA, head -> ``(B, X, Y, Z, classes)`` logits."""
        f_db = self.img_bev_encoder_neck(self.img_bev_encoder_backbone(bev))
        encoders = [getattr(self, f"img_voxel_encoder{i}") for i in range(len(bands))]
        f_hr = torch.cat([encoder(band) for encoder, band in zip(encoders, bands)], dim=1)
        return self.occ_head(self.mix(torch.cat([f_db, f_hr], dim=1)))


class StereoDHD(DHD):
    """DHD-M/L (the official ``DHD_stereo``, BEVStereo4D): the key frame and the frame before it are each lifted
    into the key ego frame with a stereo depth net, and their BEV volumes concatenated (previous frame first).

    Every lifted frame matches its stride-4 image features against the frame before it
    (:func:`~visionzoo.models.dhd.stereo.stereo_cost_volume`), so a third, older frame gives the previous frame its
    stereo partner and only runs the backbone's stride-4 part. Frames other than the key frame run without
    gradient, as in the official code. The camera-aware nets read the key frame's camera vector in every frame.
    ``img_backbone`` returns its stride-4 features first and has ``stereo_features(x)``.

    ``forward(images (B, 3, N, 3, H, W), intrinsics (B, N, 3, 3), cam2ego (B, 3, N, 4, 4), post (B, N, 3, 3),
    bda (B, 3, 3))``: frames key, previous, the one before (the image augmentation shared by all three;
    ``cam2ego`` every frame's camera into the key frame's ego) -> :class:`DHD`'s outputs for the key frame.
    """

    def __init__(self, *args: Any, cost_volume_bias: float = 5.0, **kwargs: Any) -> None:
        super().__init__(*args, fused_frames=2, pre_process=True, **kwargs)
        if not self.img_view_transformer.stereo:
            raise ValueError("StereoDHD needs a view transformer with a stereo depth net (depth_net stereo=True)")
        self.cost_volume_bias = cost_volume_bias

    def lift(self, images: torch.Tensor, intrinsics: torch.Tensor, cam2ego: torch.Tensor, post: torch.Tensor,
             bda: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor, torch.Tensor]:
        lifted = self.lift_frames(images, intrinsics, cam2ego, post, bda)
        bev, bands = self.fuse([frame[0] for frame in lifted], [frame[1] for frame in lifted])
        return bev, bands, *lifted[-1][2:]

    def lift_frames(self, images: torch.Tensor, intrinsics: torch.Tensor, cam2ego: torch.Tensor, post: torch.Tensor,
                    bda: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor], torch.Tensor, torch.Tensor]]:
        """The view transformer's outputs (BEV, bands, depth and height logits) of each lifted frame, the previous
        frame first, the key frame last."""
        batch, frames, cams = images.shape[:3]
        if frames != self.fused_frames + 1 or cam2ego.shape[1] != frames:
            raise ValueError(f"{type(self).__name__} reads {self.fused_frames + 1} frames (key, previous, the one "
                             f"before) of images and cam2ego, not {frames} and {cam2ego.shape[1]}")
        view = self.img_view_transformer
        size = tuple(images.shape[-2:])
        camera = camera_vector(intrinsics, post, bda, cam2ego[:, 0])
        to_previous = current_to_previous_sensor(cam2ego)
        with torch.no_grad():
            previous = self.img_backbone.stereo_features(images[:, -1].flatten(0, 1))
        lifted = []
        for t in range(frames - 2, -1, -1):
            with torch.set_grad_enabled(t == 0 and torch.is_grad_enabled()):
                stereo, *features = self.img_backbone(images[:, t].flatten(0, 1))
                features = self.img_neck(features)
                features = features.view(batch, cams, *features.shape[1:])
                grid = cost_volume_grid(view.frustum(size, stride=4), to_previous[:, t], intrinsics, post,
                                        (4 * stereo.shape[-2], 4 * stereo.shape[-1]))
                cost = stereo_cost_volume(previous, stereo, grid, self.cost_volume_bias)
                lifted.append(view(features, intrinsics, cam2ego[:, t], post, bda, size, camera, cost))
            previous = stereo
        return lifted

    def fuse(self, bevs: Sequence[torch.Tensor], bands: Sequence[Sequence[torch.Tensor]],
             ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Per frame (previous first) BEV ``(B, Cc, Y, X)`` and bands ``[(B, layers_k * Cc, Y, X)]`` -> the
        encoders' inputs: the ``pre_process`` nets on each frame, then the frames' channels side by side, per
        layer in the bands: ``(B, frames * Cc, Y, X)`` and ``[(B, layers_k * frames * Cc, Y, X)]`` (channel
        ``(z * frames + t) * Cc + c``)."""
        view = self.img_view_transformer
        layers = view.grid.shape[2]
        processed, volumes = [], []
        for t, (bev, frame_bands) in enumerate(zip(bevs, bands)):
            with torch.set_grad_enabled(t == len(bevs) - 1 and torch.is_grad_enabled()):  # as in lift_frames
                processed.append(self.pre_process_net(bev)[0])
                volume = self.pre_process_net_3d(torch.cat(list(frame_bands), dim=1))[0]
            volumes.append(volume.view(volume.shape[0], layers, view.context_channels, *volume.shape[-2:]))
        volume = torch.cat(volumes, dim=2)  # (B, Z, frames * Cc, Y, X)
        fused_bands, start = [], 0
        for band in view.bands:
            fused_bands.append(volume[:, start:start + band.shape[2]].flatten(1, 2))
            start += band.shape[2]
        return torch.cat(processed, dim=1), fused_bands


#: The published DHD-S's input size (height, width).
DHD_S_INPUT_SIZE = (256, 704)


def dhd_s(input_size: Sequence[int] = DHD_S_INPUT_SIZE, grid: OccupancyGrid | dict | None = None) -> DHD:
    """DHD-S as published: 917 state-dict entries, 146,690,869 parameters. ``input_size``: the camera images'
    (height, width), multiples of 16 (published: 256 x 704); ``grid``: Occ3D's (published) or another of 16 layers
    from -1 to 5.4 m (the same weights on another area: tests, export checks)."""
    view = MaskGuidedHeightSampling(as_grid(grid, OCC3D_GRID), input_size=input_size)
    return DHD(ResNet50Features(), LateralFPN(), view, bevdet_normalisation=True)


#: DHD-M/L's depth net: the DepthNet with its own context branch, a stereo cost volume, ASPP 96 wide, no DCN.
STEREO_DEPTH_NET = {"separate_context": True, "stereo": True, "aspp_channels": 96, "deformable": False}


def dhd_m(input_size: Sequence[int] = DHD_S_INPUT_SIZE, grid: OccupancyGrid | dict | None = None) -> StereoDHD:
    """DHD-M as published (``projects/configs/DHD/DHD-M.py``): ResNet-50 with stereo depth from the previous frame,
    two frames of BEV, 0.5 m depth bins, a UNet BEV encoder; 1083 state-dict entries, 198,730,375 parameters.
    ``input_size``: multiples of 16 (published: 256 x 704); ``grid``: Occ3D's (published) or another of 16
    layers from -1 to 5.4 m (the synthetic worlds': the same weights on a smaller area)."""
    view = MaskGuidedHeightSampling(as_grid(grid, OCC3D_GRID), input_size=input_size, depth_bins=(1.0, 45.0, 0.5),
                                    depth_net=STEREO_DEPTH_NET)
    return StereoDHD(ResNet50Features(stereo=True), LateralFPN(), view, bev_channels=512,
                     band_channels=(128, 256, 128), bev_encoder="unet", head_channels=256, bevdet_normalisation=True)


#: The published DHD-L's input size (height, width).
DHD_L_INPUT_SIZE = (512, 1408)


def dhd_l(input_size: Sequence[int] = DHD_L_INPUT_SIZE, grid: OccupancyGrid | dict | None = None) -> StereoDHD:
    """DHD-L as published (``projects/configs/DHD/DHD-L.py``): DHD-M's two frames and stereo depth on a Swin-B
    (mmdet's layout; stereo features from its first stage) with an FPN-LSS image neck, 512-wide image features,
    a HeightNet without DCN, DHD-S's ResNet + FPN-LSS BEV encoder. ``input_size``: multiples of 32 (published:
    512 x 1408); ``grid``: as for :func:`dhd_m`."""
    view = MaskGuidedHeightSampling(as_grid(grid, OCC3D_GRID), in_channels=512, input_size=input_size,
                                    depth_bins=(1.0, 45.0, 0.5), depth_net=STEREO_DEPTH_NET,
                                    height_net={"deformable": False, "aspp_channels": 96})
    return StereoDHD(MMDetSwin(stereo=True), FPNLSS(512 + 1024, 512, extra_upsample=False), view,
                     bevdet_normalisation=True)


def dhd(
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
    unet_widths: Sequence[int] = (64, 128),
    num_classes: int = 18,
    stride: int = 16,
    input_size: Sequence[int] = DHD_S_INPUT_SIZE,
) -> DHD:
    """The zoo's DHD on a timm image backbone.

    Args:
        backbone / backbone_kwargs / backbone_pretrained: the timm image backbone (needs strides 16 and 32).
        grid: the occupancy grid (:class:`~visionzoo.geometry.OccupancyGrid` or its fields); Occ3D's by default.
        depth_bins: ``(min, max, step)`` metres of the depth distribution.
        neck_channels / context_channels / head_channels: image-feature, lifted-context and camera-net widths.
        bev_channels / bev_stages: width of F_db, F_hr and the head; widths of the BEV encoder's stages.
        mask_range: MGHS band boundaries (metres, on the grid's z layer boundaries); ``subspace_channels``: the
            band UNets' output widths (sum = ``bev_channels``); ``unet_widths``: their level widths.
        input_size: the input (height, width) the frustum is made for when none is seen yet.
    """
    image_backbone, image_neck = timm_image_encoder(backbone, neck_channels, backbone_kwargs, backbone_pretrained)
    camera_net = dict(mid_channels=head_channels, blocks=2, aspp_dilations=(3, 6), aspp_dropout=0.0,
                      deformable=False)
    view = MaskGuidedHeightSampling(as_grid(grid, OCC3D_GRID), neck_channels, context_channels, input_size, stride,
                                    depth_bins, mask_range, depth_net=camera_net, height_net=camera_net,
                                    pixels="centres", rounding="floor")
    return DHD(image_backbone, image_neck, view, bev_stages, bev_channels, subspace_channels, unet_widths, num_classes)


_DHD_LICENSE = "Apache-2.0 (visionzoo re-implementation; DHD paper: Wu et al. 2024)"
_OCC3D_INPUT = Preprocessing(input_size=(3, *DHD_S_INPUT_SIZE), grid=OCC3D_GRID)


def _register_published(name: str, builder: Any, input_size: Sequence[int], frames: int, summary: str) -> None:
    """A published DHD's card: BEVDet's bicubic resize, the first camera's ego as the key ego, Occ3D's grid."""
    register_model(
        name, task="occupancy",
        preprocessing=Preprocessing(input_size=(3, *input_size), resample="bicubic", key_ego="first_camera",
                                    grid=OCC3D_GRID, frames=frames),
        license="Apache-2.0 (DHD design and published weights: Wu et al.; this implementation: visionzoo)",
        description=f"{summary} as published ({input_size[0]} x {input_size[1]}, Occ3D-nuScenes): the official "
                    "module tree and computation",
    )(builder)


_register_published("dhd_s", dhd_s, DHD_S_INPUT_SIZE, 1, "DHD-S (ResNet-50, one frame)")
_register_published("dhd_m", dhd_m, DHD_S_INPUT_SIZE, 3, "DHD-M (ResNet-50, two frames with stereo depth)")
_register_published("dhd_l", dhd_l, DHD_L_INPUT_SIZE, 3, "DHD-L (Swin-B, two frames with stereo depth)")
register_model(
    "dhd_dla34", task="occupancy", preprocessing=_OCC3D_INPUT, license=_DHD_LICENSE,
    description="DHD-S recipe on a DLA-34 image backbone, Occ3D-nuScenes grid (200 x 200 x 16)",
    defaults={"backbone": "dla34"},
)(dhd)
register_model(
    "dhd_r50", task="occupancy", preprocessing=_OCC3D_INPUT, license=_DHD_LICENSE,
    description="The zoo's DHD on a ResNet-50 image backbone, Occ3D-nuScenes grid (the published module tree is dhd_s)",
    defaults={"backbone": "resnet50"},
)(dhd)
register_model(
    "dhd_tiny", task="occupancy", preprocessing=Preprocessing(input_size=(3, 128, 256), grid=SYNTHETIC_GRID),
    license=_DHD_LICENSE,
    description="DHD on the tiny DLA with narrow BEV encoders, on the synthetic worlds' grid (50 x 50 x 16), "
                "for tests and the CPU demo",
    defaults={"backbone": "dla34", "backbone_kwargs": TINY_DLA_KWARGS, "grid": asdict(SYNTHETIC_GRID),
              "depth_bins": (1.0, 29.0, 1.0), "neck_channels": 32, "context_channels": 16, "head_channels": 32,
              "bev_channels": 32, "bev_stages": (32, 64, 64), "subspace_channels": (8, 16, 8),
              "unet_widths": (16, 32), "input_size": (128, 256)},
)(dhd)
