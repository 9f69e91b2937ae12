"""Regenerate ``tests/golden/dhd_s.npz`` from the official DHD code (run by hand, not by the tests).

    git clone https://github.com/yanzq95/DHD /tmp/DHD                              # commit 0684424 was used
    pip download --no-deps -d /tmp/w mmengine==0.10.7 mmcv-lite==2.2.0 mmdet==3.3.0
    pip install --no-deps --target /tmp/dhdenv /tmp/w/*.whl && pip install --target /tmp/dhdenv addict termcolor yapf
    rm -rf /tmp/dhdenv/numpy*                                                      # keep the venv's numpy
    .venv/bin/python tests/golden/make_dhd_s_golden.py --official /tmp/DHD --deps /tmp/dhdenv

The official sources are read unmodified. What stands in for what they need beyond pure Python: their packages are
registered without running their ``__init__`` files (which import all of mmdet3d and the CUDA ops); the mmdet3d
1.0rc4 / mmdet 2.x registries are dicts; ``mmcv.runner``'s fp16 decorators do nothing; mmcv's ``DCN`` is
``torchvision.ops.deform_conv2d`` (the same offset layout); ``bev_pool_v2`` is ``index_add_`` over the lifted
points (the CUDA op sums the same products per voxel). The DHD-S modules are built from
``projects/configs/DHD/DHD-S.py`` and filled with :func:`tests.helpers.deterministic.deterministic_state_dict`.

Stored (float32 unless said): for the image side on one camera (CAM_FRONT of the nuScenes-like rig, 256 x 704,
the official test transform, a BEV flip in x; images ``golden_input((1, 1, 3, 256, 704), seed=2)``): the
depth distribution every 4th pixel, the height argmax (int64), and for the z-collapsed BEV and the three MGHS
bands the sums over channels and X (per Y row), over channels and Y (per X column), and the total; for the BEV
side on a 32 x 32 crop (inputs ``golden_input`` of seeds 3..6): the logits every 8th cell and their mean and
standard deviation; end to end on six cameras (images seed 1): the logits every 25th cell, the argmax labels
every 10th cell (uint8) and the logits' mean and standard deviation. ``tests/golden/dhd_s_keys.json``: the
official state dict's names, shapes and dtypes, in order.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.helpers.deterministic import deterministic_state_dict, golden_input  # noqa: E402

GOLDEN = Path(__file__).with_name("dhd_s.npz")
KEYS = Path(__file__).with_name("dhd_s_keys.json")


def load_official(official: Path, deps: Path) -> types.SimpleNamespace:
    """The official DHD classes (and mmdet's ResNet) importable on the CPU, as described in the module docstring."""
    import torchvision

    sys.path.insert(0, str(deps))

    def stub(name: str, path: Path | None = None, **attrs) -> types.ModuleType:
        module = types.ModuleType(name)
        if path is not None:
            module.__path__ = [str(path)]
        module.__dict__.update(attrs)
        sys.modules[name] = module
        return module

    class Registry(dict):
        def register_module(self, name=None, force=False, module=None):
            def add(cls):
                self[name or cls.__name__] = cls
                return cls
            return add(module) if module is not None else add

    registries = {name: Registry() for name in ("BACKBONES", "NECKS", "HEADS", "DETECTORS", "LOSSES")}

    def build(cfg: dict):
        cfg = dict(cfg)
        kind = cfg.pop("type")
        return next(r[kind] for r in registries.values() if kind in r)(**cfg)

    import mmengine.model

    def passthrough(*args, **kwargs):
        return args[0] if args and callable(args[0]) and not kwargs else (lambda function: function)

    stub("mmcv.runner", BaseModule=mmengine.model.BaseModule, force_fp32=passthrough, auto_fp16=passthrough)
    stub("mmdet", deps / "mmdet")
    stub("mmdet.models", deps / "mmdet/models", **registries)
    for sub in ("backbones", "losses", "layers", "utils"):
        stub(f"mmdet.models.{sub}" if sub != "utils" else "mmdet.utils",
             deps / ("mmdet/models/" + sub if sub != "utils" else "mmdet/utils"))
    stub("mmdet.models.builder", **registries)
    import mmdet.utils.typing_utils as typing_utils
    sys.modules["mmdet.utils"].__dict__.update({k: v for k, v in vars(typing_utils).items() if not k.startswith("_")})
    from mmdet.models.layers.res_layer import ResLayer
    sys.modules["mmdet.models.layers"].ResLayer = ResLayer
    from mmdet.models.backbones.resnet import ResNet
    registries["BACKBONES"]["ResNet"] = ResNet
    stub("mmdet3d")
    builder = stub("mmdet3d.models.builder", **registries, build_loss=build, build_head=build, build_neck=build,
                   build_backbone=build)
    stub("mmdet3d.models", **registries, builder=builder)

    from mmengine.registry import MODELS

    class DeformConv2dPack(torch.nn.Module):  # mmcv's DCN, on torchvision
        def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                     deform_groups=1, bias=False, im2col_step=32):
            super().__init__()
            self.stride, self.padding, self.dilation = stride, padding, dilation
            self.weight = torch.nn.Parameter(torch.zeros(out_channels, in_channels // groups, kernel_size,
                                                         kernel_size))
            self.conv_offset = torch.nn.Conv2d(in_channels, deform_groups * 2 * kernel_size ** 2, kernel_size,
                                               stride, padding, dilation)

        def forward(self, x):
            return torchvision.ops.deform_conv2d(x, self.conv_offset(x), self.weight, None, self.stride,
                                                 self.padding, self.dilation)

    MODELS.register_module("DCN", module=DeformConv2dPack, force=True)

    def bev_pool_v2(depth, feat, ranks_depth, ranks_feat, ranks_bev, bev_feat_shape, interval_starts,
                    interval_lengths):
        channels = feat.shape[-1]
        out = feat.new_zeros(bev_feat_shape).view(-1, channels)
        values = depth.reshape(-1)[ranks_depth.long()][:, None] * feat.reshape(-1, channels)[ranks_feat.long()]
        out.index_add_(0, ranks_bev.long(), values)
        return out.view(bev_feat_shape).permute(0, 4, 1, 2, 3).contiguous()

    plugin = official / "projects/mmdet3d_plugin"
    stub("projects", official / "projects")
    stub("projects.mmdet3d_plugin", plugin)
    stub("projects.mmdet3d_plugin.ops", plugin / "ops", bev_pool_v2=bev_pool_v2, TRTBEVPoolv2=None)
    stub("projects.mmdet3d_plugin.models", plugin / "models")
    for sub in ("backbones", "necks", "dense_heads", "losses"):
        stub(f"projects.mmdet3d_plugin.models.{sub}", plugin / "models" / sub)
    import projects.mmdet3d_plugin.models.losses.cross_entropy_loss as cross_entropy
    registries["LOSSES"]["CrossEntropyLoss"] = cross_entropy.CrossEntropyLoss
    from projects.mmdet3d_plugin.models.backbones.resnet import CustomResNet
    from projects.mmdet3d_plugin.models.backbones.unet import UNet
    from projects.mmdet3d_plugin.models.dense_heads.occ_head import predictor
    from projects.mmdet3d_plugin.models.necks.fpn import CustomFPN
    from projects.mmdet3d_plugin.models.necks.lss_fpn import FPN_LSS
    from projects.mmdet3d_plugin.models.necks.lss_heightmap import MGHS
    from projects.mmdet3d_plugin.models.necks.mix import SFA
    return types.SimpleNamespace(ResNet=ResNet, CustomFPN=CustomFPN, MGHS=MGHS, CustomResNet=CustomResNet,
                                 FPN_LSS=FPN_LSS, UNet=UNet, SFA=SFA, predictor=predictor)


def build_dhd_s(o: types.SimpleNamespace) -> torch.nn.Module:
    """DHD-S from the config, registered in the official detector's order (917 entries)."""
    grid = {"x": [-40, 40, 0.4], "y": [-40, 40, 0.4]}
    m = torch.nn.Module()
    m.img_backbone = o.ResNet(depth=50, num_stages=4, out_indices=(2, 3), frozen_stages=-1,
                              norm_cfg=dict(type="BN", requires_grad=True), norm_eval=False, with_cp=True,
                              style="pytorch")
    m.img_neck = o.CustomFPN(in_channels=[1024, 2048], out_channels=256, num_outs=1, start_level=0, out_ids=[0])
    m.img_view_transformer = o.MGHS(
        grid_config={**grid, "z": [-1, 5.4, 6.4], "depth": [1.0, 45.0, 1.0]}, input_size=(256, 704),
        height_range=[round(-1.0 + 0.1 * i, 1) for i in range(65)], height_interval=0.1,
        mask_1_grid={**grid, "z": [-1, 0.6, 0.4], "depth": [1.0, 45.0, 0.5]},
        mask_2_grid={**grid, "z": [0.6, 2.2, 0.4], "depth": [1.0, 45.0, 0.5]},
        mask_3_grid={**grid, "z": [2.2, 5.4, 0.4], "depth": [1.0, 45.0, 0.5]},
        mask_range=[-1.0, 0.6, 2.2, 5.4], loss_height_weight=0.1, in_channels=256, out_channels=64, sid=False,
        collapse_z=True, downsample=16)
    m.img_bev_encoder_backbone = o.CustomResNet(numC_input=64, num_channels=[128, 256, 512])
    m.img_bev_encoder_neck = o.FPN_LSS(in_channels=640, out_channels=256)
    m.occ_head = o.predictor(in_dim=256, out_dim=256, Dz=16, use_mask=True, num_classes=18, use_predicter=True,
                             class_balance=True, weight_ce=10.0, weight_geo=0.2, weight_sem=0.2,
                             loss_occ=dict(type="CrossEntropyLoss", use_sigmoid=False, ignore_index=255,
                                           loss_weight=1.0))
    m.img_voxel_encoder0 = o.UNet(n_channels=256, n_classes=64)
    m.img_voxel_encoder1 = o.UNet(n_channels=256, n_classes=128)
    m.img_voxel_encoder2 = o.UNet(n_channels=512, n_classes=64)
    m.mix = o.SFA(in_channels=512, out_channels=256)
    return m


def rig_inputs(batch: int, cameras: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """The nuScenes-like rig at 1600 x 900 under the official test transform (x 0.44, 140 rows cropped) and a BEV
    flip in x: ``intrinsics``, ``cam2ego``, ``post`` (3 x 3 image affine), ``bda``."""
    from visionzoo.data.synthetic_occ3d import camera_rig
    from visionzoo.geometry import image_affine

    rig = camera_rig(1.0)
    n = len(cameras)

    def stack(index: int) -> torch.Tensor:
        return torch.tensor(np.stack([rig[c][index] for c in cameras]), dtype=torch.float32)[None].repeat(
            batch, 1, 1, 1)

    post = torch.tensor(image_affine(0.44, (0, 140), False, 0.0, (256, 704)), dtype=torch.float32)
    return {"intrinsics": stack(1), "cam2ego": stack(0), "post": post.expand(batch, n, 3, 3).clone(),
            "bda": torch.diag(torch.tensor([-1.0, 1.0, 1.0]))[None].repeat(batch, 1, 1)}


def official_view(model: torch.nn.Module, images: torch.Tensor, geometry: dict[str, torch.Tensor]):
    """The official detector's image side: image encoder, camera vector, MGHS."""
    batch, cams = images.shape[:2]
    x = model.img_neck(model.img_backbone(images.flatten(0, 1)))[0]
    x = x.view(batch, cams, *x.shape[1:])
    post = geometry["post"]
    post_rots = post.clone()
    post_rots[..., :2, 2] = 0
    post_trans = torch.zeros(batch, cams, 3)
    post_trans[..., :2] = post[..., :2, 2]
    ego2globals = torch.eye(4).expand(batch, cams, 4, 4)
    vt = model.img_view_transformer
    mlp = vt.get_mlp_input(geometry["cam2ego"], ego2globals, geometry["intrinsics"], post_rots, post_trans,
                           geometry["bda"])
    return vt([x, geometry["cam2ego"], ego2globals, geometry["intrinsics"], post_rots, post_trans, geometry["bda"],
               mlp])


def official_bev(model: torch.nn.Module, bev: torch.Tensor, bands: list[torch.Tensor]) -> torch.Tensor:
    """The official detector's BEV side: BEV encoder, voxel encoders, SFA, head -> (B, X, Y, 16, 18)."""
    f_db = model.img_bev_encoder_neck(model.img_bev_encoder_backbone(bev))
    encoders = (model.img_voxel_encoder0, model.img_voxel_encoder1, model.img_voxel_encoder2)
    f_hr = [encoder(band) for encoder, band in zip(encoders, bands)]
    return model.occ_head(model.mix(torch.cat([f_db, *f_hr], dim=1)))


def profiles(volume: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(B, C, Y, X)`` -> sums over channels and X (per row), over channels and Y (per column), and in all."""
    return volume.sum(dim=(1, 3))[0].numpy(), volume.sum(dim=(1, 2))[0].numpy(), volume.sum().reshape(1).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, required=True, help="a checkout of github.com/yanzq95/DHD")
    parser.add_argument("--deps", type=Path, required=True, help="the --target folder with mmengine/mmcv-lite/mmdet")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    model = build_dhd_s(load_official(args.official, args.deps)).eval()
    model.load_state_dict(deterministic_state_dict(model.state_dict()), strict=True)
    golden: dict[str, np.ndarray] = {}

    images = golden_input((1, 1, 3, 256, 704), seed=2)
    bev, depth, height, *bands = official_view(model, images, rig_inputs(1, ("CAM_FRONT",)))
    golden["view_depth_sub"] = depth[:, :, ::4, ::4].numpy()
    golden["view_height_argmax"] = height.argmax(dim=1).numpy()
    for name, volume in zip(("bev", "low", "middle", "high"), (bev, *bands)):
        golden[f"view_{name}_rows"], golden[f"view_{name}_cols"], golden[f"view_{name}_total"] = profiles(volume)

    crop_inputs = [golden_input(shape, seed=seed) for seed, shape in
                   zip((3, 4, 5, 6), ((1, 64, 32, 32), (1, 256, 32, 32), (1, 256, 32, 32), (1, 512, 32, 32)))]
    logits = official_bev(model, crop_inputs[0], crop_inputs[1:])
    golden["bev_logits_sub"] = logits[:, ::8, ::8].numpy()
    golden["bev_logits_stats"] = np.array([logits.mean().item(), logits.std().item()], dtype=np.float32)

    cameras = ("CAM_FRONT_LEFT", "CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_BACK_LEFT", "CAM_BACK", "CAM_BACK_RIGHT")
    images = golden_input((1, 6, 3, 256, 704), seed=1)
    bev, _, _, *bands = official_view(model, images, rig_inputs(1, cameras))
    logits = official_bev(model, bev, bands)
    golden["full_logits_sub"] = logits[:, ::25, ::25].numpy()
    golden["full_labels_sub"] = logits.argmax(dim=-1)[:, ::10, ::10].numpy().astype(np.uint8)
    golden["full_logits_stats"] = np.array([logits.mean().item(), logits.std().item()], dtype=np.float32)
    np.savez_compressed(GOLDEN, **golden)
    keys = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in model.state_dict().items()]
    KEYS.write_text("[\n" + ",\n".join(json.dumps(k) for k in keys) + "\n]\n")
    print(f"wrote {GOLDEN}: " + ", ".join(f"{k} {v.shape}" for k, v in golden.items()))


if __name__ == "__main__":
    main()
