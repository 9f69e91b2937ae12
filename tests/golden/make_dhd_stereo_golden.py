"""Regenerate ``tests/golden/dhd_m.npz`` / ``dhd_l.npz`` from the official DHD code (run by hand, not by the tests).

    (the official checkout and the --deps folder of tests/golden/make_dhd_s_golden.py)
    .venv/bin/python tests/golden/make_dhd_stereo_golden.py --official /tmp/DHD --deps /tmp/dhdenv --model dhd_m
    .venv/bin/python tests/golden/make_dhd_stereo_golden.py --official /tmp/DHD --deps /tmp/dhdenv --model dhd_l

The official ``DHD_stereo`` detector (BEVStereo4D and its parents, read unmodified) is built from
``projects/configs/DHD/DHD-M.py`` or ``DHD-L.py`` with the stand-ins of ``make_dhd_s_golden.py`` and a few more:
mmdet3d's ``CenterPoint`` base is a module that builds ``img_backbone`` and ``img_neck`` (the only parts of it the
detector uses), and what the official Swin imports from mmcv 1.x is taken from mmcv 2.x / mmengine
(:func:`_stub_swin_imports`). The view transformer's input size is set to 128 x 352 (its frustum and the stereo
frustum follow); the weights are :func:`tests.helpers.deterministic.deterministic_state_dict`.

Stored (float32 unless said): for the image side, the official ``extract_img_feat`` on one camera (CAM_FRONT of
the nuScenes-like rig, the official test transform at a quarter of DHD-L's size and a left-right image flip, a BEV
flip in x) over three frames whose ego poses differ (images ``golden_input((1, 3, 1, 3, 128, 352), seed=7)``),
per lifted frame (the previous frame first): the depth distribution every 2nd pixel, the height argmax (int64),
and for the z-collapsed BEV and the z-folded band volume the sums over channels and X (per Y row), over channels
and Y (per X column) and the total; for the BEV side on a 32 x 32 crop (per frame a BEV and a volume of
``golden_input`` seeds 11..14): the official pre-process nets, frame fusion, encoders, SFA and head, logits every
8th cell and their mean and standard deviation. ``tests/golden/<model>_keys.json``: the official state dict's
names, shapes and dtypes, in order.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import types
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.golden.make_dhd_s_golden import load_official, profiles  # noqa: E402
from tests.helpers.deterministic import deterministic_state_dict, golden_input  # noqa: E402

GOLDEN = Path(__file__).parent
INPUT_SIZE = (128, 352)
#: The registered model -> its official config.
CONFIGS = {"dhd_m": "DHD-M.py", "dhd_l": "DHD-L.py"}


def load_official_stereo(official: Path, deps: Path, config: str = "DHD-M.py") -> torch.nn.Module:
    """The official ``DHD_stereo`` built from ``config`` with the view transformer at :data:`INPUT_SIZE`."""
    load_official(official, deps)
    models = sys.modules["mmdet3d.models"]
    build = sys.modules["mmdet3d.models.builder"].build_backbone

    class CenterPoint(torch.nn.Module):
        def __init__(self, img_backbone=None, img_neck=None, pts_bbox_head=None, **kwargs):
            super().__init__()
            self.img_backbone, self.img_neck = build(img_backbone), build(img_neck)

        @property
        def with_img_neck(self) -> bool:
            return self.img_neck is not None

    models.CenterPoint = CenterPoint
    _stub_swin_imports()
    plugin = official / "projects/mmdet3d_plugin/models"
    for sub in ("detectors", "model_utils"):
        module = types.ModuleType(f"projects.mmdet3d_plugin.models.{sub}")
        module.__path__ = [str(plugin / sub)]
        sys.modules[module.__name__] = module
    import projects.mmdet3d_plugin.models.necks.identity  # noqa: F401  (registers Identity)
    import projects.mmdet3d_plugin.models.backbones.swin  # noqa: F401  (registers SwinTransformer)
    from projects.mmdet3d_plugin.models.detectors.DHD_model import DHD_stereo
    namespace: dict = {}
    exec(compile((official / "projects/configs/DHD" / config).read_text(), config, "exec"), namespace)
    cfg = dict(namespace["model"])
    cfg.pop("type")
    cfg["img_view_transformer"] = {**cfg["img_view_transformer"], "input_size": INPUT_SIZE}
    return DHD_stereo(**cfg)


def _stub_swin_imports() -> None:
    """What the official Swin imports from mmcv 1.x, mmseg and mmdet3d, taken from mmcv 2.x / mmengine (the same
    functions) or stood in for (a registry, a logger, ``resize``: only used when loading pretrained weights)."""
    import mmcv.cnn
    import mmcv.cnn.bricks
    import mmengine.model
    import mmengine.model.weight_init as weight_init
    import torch.nn.functional as F

    mmcv.cnn.trunc_normal_init = weight_init.trunc_normal_init
    utils = types.ModuleType("mmcv.cnn.utils")
    utils.__path__ = []
    sys.modules["mmcv.cnn.utils"] = utils
    sys.modules["mmcv.cnn.utils.weight_init"] = types.SimpleNamespace(constant_init=weight_init.constant_init)
    sys.modules["mmcv.runner"]._load_checkpoint = None
    sys.modules["mmcv.runner.base_module"] = types.SimpleNamespace(BaseModule=mmengine.model.BaseModule,
                                                                   ModuleList=mmengine.model.ModuleList)
    sys.modules["mmcv.runner"].__path__ = []
    registry = sys.modules["mmdet3d.models"].BACKBONES.__class__()
    sys.modules["mmcv.cnn.bricks.registry"] = types.SimpleNamespace(ATTENTION=registry)
    sys.modules["mmseg"] = types.ModuleType("mmseg")
    sys.modules["mmseg.ops"] = types.SimpleNamespace(resize=F.interpolate)
    sys.modules["mmdet3d.utils"] = types.SimpleNamespace(get_root_logger=lambda: None)


def ego_pose(yaw: float, x: float, y: float, z: float = 0.0) -> torch.Tensor:
    """A float32 ego-to-global transform: a yaw (radians) and a position (metres)."""
    pose = torch.eye(4)
    pose[:2, :2] = torch.tensor([[math.cos(yaw), -math.sin(yaw)], [math.sin(yaw), math.cos(yaw)]])
    pose[:3, 3] = torch.tensor([x, y, z])
    return pose


#: The three frames' ego poses (key, previous, the one before): the car drives ~1.5 m per frame and turns.
EGO_POSES = (ego_pose(0.3, 10.0, 5.0), ego_pose(0.27, 8.6, 4.4, 0.02), ego_pose(0.22, 7.1, 3.9, 0.01))


def stereo_inputs(cameras: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """The zoo's inputs for the frames of :data:`EGO_POSES` (batch 1): ``intrinsics`` and ``post`` (the official
    test transform at half size with a left-right flip) shared by the frames, ``cam2ego`` ``(1, 3, N, 4, 4)`` every
    frame's cameras into the key ego (composed in float64 as the official ``prepare_inputs``), ``bda`` a flip in x."""
    from visionzoo.data.synthetic_occ3d import camera_rig
    from visionzoo.geometry import image_affine

    rig = camera_rig(1.0)
    sensor2ego = torch.tensor(np.stack([rig[c][0] for c in cameras]), dtype=torch.float32)
    global2key = torch.inverse(EGO_POSES[0].double())
    cam2ego = torch.stack([(global2key @ pose.double() @ sensor2ego.double()).float() for pose in EGO_POSES])
    post = torch.tensor(image_affine(0.22, (0, 70), True, 0.0, INPUT_SIZE), dtype=torch.float32)
    return {"intrinsics": torch.tensor(np.stack([rig[c][1] for c in cameras]), dtype=torch.float32)[None],
            "cam2ego": cam2ego[None], "post": post.expand(1, len(cameras), 3, 3).clone(),
            "bda": torch.diag(torch.tensor([-1.0, 1.0, 1.0]))[None]}


def official_img_inputs(images: torch.Tensor, cameras: tuple[str, ...]) -> list[torch.Tensor]:
    """``images (1, T, N, 3, H, W)`` and the geometry of :func:`stereo_inputs` in the official layout: images
    camera by camera (each camera's frames together), the geometry frame by frame."""
    from visionzoo.data.synthetic_occ3d import camera_rig

    rig = camera_rig(1.0)
    zoo = stereo_inputs(cameras)
    frames, n = images.shape[1], len(cameras)
    sensor2ego = torch.tensor(np.stack([rig[c][0] for c in cameras]), dtype=torch.float32)
    post = zoo["post"][0]
    post_rots = post.clone()
    post_rots[..., :2, 2] = 0
    post_trans = torch.zeros(n, 3)
    post_trans[:, :2] = post[:, :2, 2]
    return [images.transpose(1, 2).flatten(1, 2), sensor2ego.repeat(frames, 1, 1)[None],
            torch.cat([pose.expand(n, 4, 4) for pose in EGO_POSES])[None], zoo["intrinsics"].repeat(1, frames, 1, 1),
            post_rots.repeat(frames, 1, 1)[None], post_trans.repeat(frames, 1)[None], zoo["bda"]]


def official_fused_logits(model: torch.nn.Module, bevs: list[torch.Tensor], volumes: list[torch.Tensor]):
    """The official detector's steps after the view transform, for per-frame BEVs ``(B, C, Y, X)`` and z-folded
    volumes ``(B, 16 * C, Y, X)`` (previous frame first): pre-process nets, frames side by side per layer, the
    bands cut at layers 4 and 8, encoders, SFA, head."""
    bev = torch.cat([model.pre_process_net(b)[0] for b in bevs], dim=1)
    volume = torch.cat([torch.stack(torch.chunk(model.pre_process_net_3d(v)[0], 16, dim=1), dim=2)
                        for v in volumes], dim=1)  # (B, frames * C, 16, Y, X)
    bands = [torch.cat(volume[:, :, lo:hi].unbind(dim=2), dim=1) for lo, hi in ((0, 4), (4, 8), (8, 16))]
    encoders = (model.voxel_encoder0, model.voxel_encoder1, model.voxel_encoder2)
    f_hr = torch.cat([encoder(band) for encoder, band in zip(encoders, bands)], dim=1)
    return model.occ_head(model.mix(torch.cat([model.bev_encoder(bev), f_hr], dim=1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, required=True, help="a checkout of github.com/yanzq95/DHD")
    parser.add_argument("--deps", type=Path, required=True, help="the --target folder with mmengine/mmcv-lite/mmdet")
    parser.add_argument("--model", choices=sorted(CONFIGS), required=True)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    model = load_official_stereo(args.official, args.deps, CONFIGS[args.model]).eval()
    model.load_state_dict(deterministic_state_dict(model.state_dict()), strict=True)
    golden: dict[str, np.ndarray] = {}

    lifted: list = []
    model.img_view_transformer.register_forward_hook(lambda module, inputs, output: lifted.append(output))
    images = golden_input((1, 3, 1, 3, *INPUT_SIZE), seed=7)
    model.extract_img_feat(official_img_inputs(images, ("CAM_FRONT",)), None)
    for t, (bev, volume, depth, height) in enumerate(lifted):
        golden[f"frame{t}_depth_sub"] = depth[:, :, ::2, ::2].numpy()
        golden[f"frame{t}_height_argmax"] = height.argmax(dim=1).numpy()
        for name, v in (("bev", bev[:, :, 0]), ("volume", torch.cat(volume.unbind(dim=2), dim=1))):
            golden[f"frame{t}_{name}_rows"], golden[f"frame{t}_{name}_cols"], golden[f"frame{t}_{name}_total"] = \
                profiles(v)

    bevs = [golden_input((1, 64, 32, 32), seed=seed) for seed in (11, 12)]
    volumes = [golden_input((1, 1024, 32, 32), seed=seed) for seed in (13, 14)]
    logits = official_fused_logits(model, bevs, volumes)
    golden["bev_logits_sub"] = logits[:, ::8, ::8].numpy()
    golden["bev_logits_stats"] = np.array([logits.mean().item(), logits.std().item()], dtype=np.float32)
    np.savez_compressed(GOLDEN / f"{args.model}.npz", **golden)
    keys = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in model.state_dict().items()]
    (GOLDEN / f"{args.model}_keys.json").write_text("[\n" + ",\n".join(json.dumps(k) for k in keys) + "\n]\n")
    print(f"wrote {args.model}: " + ", ".join(f"{k} {v.shape}" for k, v in golden.items()))


if __name__ == "__main__":
    main()
