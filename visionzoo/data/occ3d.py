"""Occ3D-nuScenes in its real on-disk layout: BEVDet info pickles, six camera images, labels.npz, LiDAR sweeps.

Layout (under ``root``, the nuScenes folder that holds ``samples/`` and ``gts/``)::

    bevdetv2-nuscenes_infos_{train,val}.pkl     dict(infos=[...], metadata=dict(version=...))
    samples/CAM_*/<file>.jpg                    the six camera images (info["cams"][CAM]["data_path"])
    samples/LIDAR_TOP/<file>.pcd.bin            float32 x 5 per point (x, y, z, intensity, ring), LiDAR frame
    gts/<scene_name>/<token>/labels.npz         semantics / mask_lidar / mask_camera, (200, 200, 16) uint8, (x, y, z)

Paths inside the infos are relative to the mmdet3d working directory (``./data/nuscenes/...``); they are resolved
against ``root``. The pickles are read with an unpickler that builds only plain Python types and numpy arrays, so
an info file cannot run code.
"""

from __future__ import annotations

import dataclasses
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from visionzoo.constants import DHD_HEIGHT_RANGE, NUSCENES_CAMERAS, OCC3D_FREE
from visionzoo.data.sampling import sample_rng
from visionzoo.errors import DataError
from visionzoo.geometry import OccupancyGrid, bev_flip_matrix, image_affine, rigid
from visionzoo.preprocessing import Preprocessing

INFO_FILES = {"train": "bevdetv2-nuscenes_infos_train.pkl", "val": "bevdetv2-nuscenes_infos_val.pkl"}
INFO_KEYS = ("token", "lidar_path", "lidar2ego_translation", "lidar2ego_rotation", "ego2global_translation",
             "ego2global_rotation", "scene_name", "occ_path", "cams")
CAMERA_KEYS = ("data_path", "sensor2ego_translation", "sensor2ego_rotation", "ego2global_translation",
               "ego2global_rotation", "cam_intrinsic")
LABEL_ARRAYS = ("semantics", "mask_lidar", "mask_camera")
#: The prefix the BEVDet converters write in front of every path.
BEVDET_PREFIXES = ("./data/nuscenes/", "data/nuscenes/")


class _PlainUnpickler(pickle.Unpickler):
    """Builds plain Python containers and numpy arrays only; any other class in the file is refused."""

    ALLOWED = {
        ("collections", "OrderedDict"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name}")
        return super().find_class(module, name)


def load_infos(path: str | Path, root_key: str = "data.root") -> list[dict[str, Any]]:
    """The sample records of a BEVDet info pickle, sorted as stored (by timestamp). ``root_key``: the config key
    that chose the folder, named when the file is missing."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"info file {path} not found; point {root_key} at the folder holding the BEVDet info pickles")
    try:
        with open(path, "rb") as handle:
            content = _PlainUnpickler(handle).load()
    except pickle.UnpicklingError as err:
        raise DataError(f"info file {path} holds a {err} object; only plain types and numpy arrays are read "
                        "(regenerate it with the BEVDet converter)") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise DataError(f"info file {path} is not a readable pickle ({err}); regenerate it") from None
    infos = content.get("infos") if isinstance(content, dict) else None
    if not isinstance(infos, list):
        raise DataError(f"info file {path} has no 'infos' list; expected dict(infos=[...], metadata=...)")
    if not infos:
        raise DataError(f"info file {path} has no samples")
    return infos


def resolve_path(root: Path, path: str) -> Path:
    """A path from an info record, relative to ``root`` (the BEVDet ``./data/nuscenes/`` prefix removed)."""
    for prefix in BEVDET_PREFIXES:
        if path.startswith(prefix):
            return root / path[len(prefix):]
    candidate = Path(path)
    return candidate if candidate.is_absolute() else root / candidate


@dataclass
class CameraRecord:
    """One camera of a sample: image file, intrinsics ``(3, 3)`` (source pixels) and ``cam2ego`` ``(4, 4)``."""

    name: str
    image_path: Path
    intrinsics: np.ndarray
    cam2ego: np.ndarray


@dataclass
class SampleRecord:
    """One Occ3D sample: token, scene, LiDAR file and its ``lidar2ego`` ``(4, 4)`` (into the key ego frame), labels
    file, cameras, the key ego pose ``key_ego2global`` ``(4, 4)`` and, for multi-frame models, the cameras of the
    frames before it (``adjacent[k]``: ``k + 1`` samples back, ``cam2ego`` into this sample's key ego;
    :func:`attach_adjacent_frames`)."""

    token: str
    scene: str
    lidar_path: Path
    lidar2ego: np.ndarray
    labels_path: Path
    cameras: list[CameraRecord] = field(default_factory=list)
    key_ego2global: np.ndarray = field(default_factory=lambda: np.eye(4))
    adjacent: list[list[CameraRecord]] = field(default_factory=list)


def _matrix(value: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.shape != shape:
        raise DataError(f"{what} has shape {array.shape}, expected {shape}")
    return array


def parse_info(info: dict[str, Any], root: str | Path, cameras: Sequence[str] = NUSCENES_CAMERAS,
               key_ego: str = "lidar") -> SampleRecord:
    """Paths and per-camera matrices of one info record; one :class:`DataError` naming the sample otherwise.

    ``cam2ego`` maps into the sample's key ego frame: ``inv(key_ego2global) @ cam_ego2global @ sensor2ego``, with
    the key pose the LiDAR timestamp's (``key_ego="lidar"``) or the first camera's (``"first_camera"``, as
    BEVDet-family code does); ``lidar2ego`` maps LiDAR points into the same frame.
    """
    root = Path(root)
    token = info.get("token", "<no token>") if isinstance(info, dict) else "<not a dict>"
    missing = [k for k in INFO_KEYS if not isinstance(info, dict) or k not in info]
    if missing:
        raise DataError(f"sample {token}: info record lacks {', '.join(missing)}; regenerate the info file")
    try:
        ego2global = rigid(_matrix(info["ego2global_rotation"], (4,), "ego2global_rotation"),
                           _matrix(info["ego2global_translation"], (3,), "ego2global_translation"))
        lidar2ego = rigid(_matrix(info["lidar2ego_rotation"], (4,), "lidar2ego_rotation"),
                          _matrix(info["lidar2ego_translation"], (3,), "lidar2ego_translation"))
        records, key_ego2global = [], ego2global
        for name in cameras:
            cam = info["cams"].get(name)
            if cam is None:
                raise DataError(f"camera {name} is missing (has {', '.join(sorted(info['cams']))})")
            lacking = [k for k in CAMERA_KEYS if k not in cam]
            if lacking:
                raise DataError(f"camera {name} lacks {', '.join(lacking)}")
            sensor2ego = rigid(_matrix(cam["sensor2ego_rotation"], (4,), f"{name} sensor2ego_rotation"),
                               _matrix(cam["sensor2ego_translation"], (3,), f"{name} sensor2ego_translation"))
            cam_ego2global = rigid(_matrix(cam["ego2global_rotation"], (4,), f"{name} ego2global_rotation"),
                                   _matrix(cam["ego2global_translation"], (3,), f"{name} ego2global_translation"))
            if key_ego == "first_camera" and not records:
                key_ego2global = cam_ego2global
            records.append(CameraRecord(name, resolve_path(root, cam["data_path"]),
                                        _matrix(cam["cam_intrinsic"], (3, 3), f"{name} cam_intrinsic"),
                                        np.linalg.inv(key_ego2global) @ cam_ego2global @ sensor2ego))
    except DataError as err:
        raise DataError(f"sample {token}: {err}") from None
    labels = resolve_path(root, info["occ_path"]) / "labels.npz"
    lidar2key = np.linalg.inv(key_ego2global) @ ego2global @ lidar2ego
    return SampleRecord(str(token), str(info["scene_name"]), resolve_path(root, info["lidar_path"]), lidar2key,
                        labels, records, key_ego2global)


def attach_adjacent_frames(records: Sequence[SampleRecord], frames: int) -> list[SampleRecord]:
    """``records`` (one scene's samples consecutive, in time order) with the cameras of the ``frames - 1`` samples
    before each, as the official sequential pipeline picks them: ``k`` samples back, or the sample itself where
    that one is in another scene (a scene's first sample stands in for its own predecessor), each camera's
    ``cam2ego`` moved into the sample's key ego: ``inv(key_ego2global) @ other_key_ego2global @ other_cam2ego``."""
    out = []
    for i, record in enumerate(records):
        adjacent = []
        for back in range(1, frames):
            other = records[max(i - back, 0)]
            other = other if other.scene == record.scene else record
            to_key = np.linalg.inv(record.key_ego2global) @ other.key_ego2global
            adjacent.append([CameraRecord(c.name, c.image_path, c.intrinsics, to_key @ c.cam2ego)
                             for c in other.cameras])
        out.append(dataclasses.replace(record, adjacent=adjacent))
    return out


def read_labels(path: Path, grid: OccupancyGrid, sample: str = "") -> dict[str, np.ndarray]:
    """``semantics`` / ``mask_lidar`` / ``mask_camera`` arrays ``(X, Y, Z)`` uint8 of a labels.npz, checked against
    ``grid``."""
    where = f"sample {sample}: " if sample else ""
    if not path.is_file():
        raise DataError(f"{where}labels file {path} not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in LABEL_ARRAYS if k not in data.files]
            if missing:
                raise DataError(f"{where}{path} lacks the array(s) {', '.join(missing)}")
            arrays = {k: np.asarray(data[k]) for k in LABEL_ARRAYS}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise DataError(f"{where}{path} is not a readable .npz ({err}); re-download or regenerate it") from None
    for name, array in arrays.items():
        if array.shape != grid.shape:
            raise DataError(f"{where}{path}: {name} has shape {array.shape} but the grid is {grid.shape}; "
                            "set data.grid to the labels' grid")
    if arrays["semantics"].max() > OCC3D_FREE:
        raise DataError(f"{where}{path}: semantics holds label {int(arrays['semantics'].max())} > {OCC3D_FREE}")
    return arrays


def read_lidar_points(path: Path, sample: str = "") -> np.ndarray:
    """``(P, 3)`` float32 x, y, z (LiDAR frame, metres) of a nuScenes ``.pcd.bin`` (5 float32 per point)."""
    where = f"sample {sample}: " if sample else ""
    if not path.is_file():
        raise DataError(f"{where}LiDAR file {path} not found")
    raw = np.fromfile(path, dtype=np.float32)
    if raw.size % 5:
        raise DataError(f"{where}{path} holds {raw.size} floats, not a multiple of 5 (x, y, z, intensity, ring)")
    return raw.reshape(-1, 5)[:, :3]


def lidar_depth_height(points_ego: np.ndarray, intrinsics: np.ndarray, cam2ego: np.ndarray, post: np.ndarray,
                       image_size: tuple[int, int], stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Depth and ego-frame height maps ``(H / stride, W / stride)`` of one camera from LiDAR points in the ego frame.

    Points are projected into the network-input image (``post`` applied); the nearest point wins each pixel; a
    feature cell takes the smallest depth and the smallest height among its pixels that have a point (the paper's
    "minimum non-zero" reduction). Cells without points are NaN. Depth in metres along the camera axis, height in
    metres above the ego origin.
    """
    height, width = image_size
    ego2cam = np.linalg.inv(cam2ego)
    cam = points_ego @ ego2cam[:3, :3].T + ego2cam[:3, 3]
    front = cam[:, 2] > 0.1
    cam, z_ego = cam[front], points_ego[front, 2]
    uv = cam @ intrinsics.T
    uv = uv[:, :2] / uv[:, 2:3]
    uv = uv @ post[:2, :2].T + post[:2, 2]
    col, row = np.floor(uv[:, 0]).astype(np.int64), np.floor(uv[:, 1]).astype(np.int64)
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    col, row, depth, z_ego = col[inside], row[inside], cam[inside, 2], z_ego[inside]
    order = np.argsort(-depth)  # far first, so the nearest point is written last and wins its pixel
    depth_px = np.full((height, width), np.inf)
    height_px = np.full((height, width), np.inf)
    depth_px[row[order], col[order]] = depth[order]
    height_px[row[order], col[order]] = z_ego[order]
    fh, fw = height // stride, width // stride
    cells = lambda a: a[: fh * stride, : fw * stride].reshape(fh, stride, fw, stride).min(axis=(1, 3))  # noqa: E731
    depth_map, height_map = cells(depth_px), cells(height_px)
    depth_map[~np.isfinite(depth_map)] = np.nan
    height_map[~np.isfinite(height_map)] = np.nan
    return depth_map.astype(np.float32), height_map.astype(np.float32)


@dataclass
class ImageAugment:
    """BEVDet-style camera-image augmentation, drawn per camera.

    ``size`` = (height, width) of the network input. The image is resized to ``size[1]`` wide plus a random
    ``resize`` offset of the scale (training), cropped bottom-aligned (the top, mostly sky, is dropped) and
    horizontally at random (centred in evaluation), mirrored with probability 0.5 when ``flip``, and rotated by
    a uniform angle in ``rotate`` degrees.
    """

    size: tuple[int, int] = (256, 704)
    resize: tuple[float, float] = (-0.06, 0.11)
    rotate: tuple[float, float] = (-5.4, 5.4)
    flip: bool = True

    def sample(self, source_size: tuple[int, int], rng: np.random.Generator | None) -> tuple[float, tuple[int, int],
                                                                                          bool, float]:
        """``(scale, crop (x, y), flip, angle in degrees)`` for a source image of ``source_size`` = (height, width);
        ``rng=None``: the evaluation view."""
        height, width = self.size
        scale = width / source_size[1]
        if rng is not None:
            scale += float(rng.uniform(*self.resize))
        new_h, new_w = source_size[0] * scale, source_size[1] * scale
        crop_x = float(rng.uniform(0, max(0.0, new_w - width))) if rng is not None else max(0.0, new_w - width) / 2
        crop = (int(crop_x), int(max(0.0, new_h - height)))
        flip = bool(rng is not None and self.flip and rng.random() < 0.5)
        angle = float(rng.uniform(*self.rotate)) if rng is not None else 0.0
        return scale, crop, flip, angle

    def post(self, source_size: tuple[int, int], rng: np.random.Generator | None) -> np.ndarray:
        """(3, 3) image affine for a source image of ``source_size`` = (height, width); ``rng=None``: evaluation."""
        return image_affine(*self.sample(source_size, rng), self.size)


def pillow_augment(image: Image.Image, scale: float, crop: tuple[int, int], flip: bool, angle: float,
                   size: tuple[int, int]) -> np.ndarray:
    """The BEVDet pipeline's image steps with Pillow: resize to ``(int(W * scale), int(H * scale))`` (bicubic),
    crop the ``size`` = (height, width) window at ``crop``, mirror, rotate by ``angle`` degrees about the centre
    (nearest, black outside). Returns ``(height, width, 3)`` uint8 RGB."""
    image = image.resize((int(image.width * scale), int(image.height * scale)), Image.Resampling.BICUBIC)
    image = image.crop((crop[0], crop[1], crop[0] + size[1], crop[1] + size[0]))
    if flip:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.asarray(image.rotate(angle) if angle else image)


def _read_image(path: Path, sample: str, camera: str, pillow: bool = False) -> np.ndarray | Image.Image:
    """A camera image as ``(H, W, 3)`` uint8 RGB (OpenCV) or, with ``pillow``, an RGB Pillow image."""
    if not path.is_file():
        raise DataError(f"sample {sample}: {camera} image {path} not found")
    if pillow:
        try:
            with Image.open(path) as image:
                return image.convert("RGB")
        except (OSError, ValueError) as err:
            raise DataError(f"sample {sample}: {camera} image {path} cannot be decoded (corrupt or not an "
                            "image)") from err
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"sample {sample}: {camera} image {path} cannot be decoded (corrupt or not an image)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _height_bin(height: np.ndarray) -> np.ndarray:
    lo, hi, step = DHD_HEIGHT_RANGE
    bins = np.rint((np.nan_to_num(height, nan=lo) - lo) / step)
    return np.clip(bins, 0, round((hi - lo) / step)).astype(np.int64)


class Occ3DDataset(Dataset):
    """Occ3D samples as network inputs and targets.

    Args:
        records: parsed samples (:func:`parse_info`).
        grid: the label grid; labels.npz arrays must have its shape.
        augment: camera-image augmentation (its ``size`` is the network input).
        train: random augmentation (image and BEV flips) when true; deterministic evaluation view otherwise.
        bev_flip: mirror ego x / y with probability 0.5 each in training (labels and geometry alike).
        stride: feature stride of the depth / height maps.
        targets: read labels and LiDAR (training, evaluation); ``False`` reads only the cameras (prediction).
        preprocessing: what the model expects: the normalisation and the image resize, ``resample`` ``area`` (the
            zoo's: one affine warp with OpenCV, bilinear) or ``bicubic`` (BEVDet's: Pillow resize (bicubic), crop,
            mirror and rotate, :func:`pillow_augment`); the same ``post`` either way.

    Keys are indices, or ``(epoch, index)`` pairs from :class:`~visionzoo.data.sampling.EpochShuffle`, whose
    augmentation is drawn from ``(seed, epoch, index)``: a seeded run, and a resumed one, replays exactly.

    Items (tensors; ``N`` cameras, input ``H x W``, maps at ``H / stride x W / stride``): ``images`` (N, 3, H, W)
    normalised, ``intrinsics`` (N, 3, 3), ``cam2ego`` (N, 4, 4), ``post`` (N, 3, 3), ``bda`` (3, 3); for records
    with adjacent frames ``images`` (T, N, 3, H, W) and ``cam2ego`` (T, N, 4, 4), the key frame first, every
    frame under the key frame's image augmentation and BEV flip, the targets the key frame's; ``semantics``
    (X, Y, Z) long, ``mask_camera`` / ``mask_lidar`` (X, Y, Z) bool, ``depth`` / ``height`` (N, h, w) metres (NaN
    where no LiDAR point), ``height_bin`` (N, h, w) long, ``token``.
    """

    def __init__(self, records: Sequence[SampleRecord], grid: OccupancyGrid, augment: ImageAugment,
                 train: bool = False, bev_flip: bool = True, stride: int = 16, targets: bool = True,
                 seed: int = 0, preprocessing: Preprocessing | None = None) -> None:
        self.preprocessing = preprocessing or Preprocessing()
        if self.preprocessing.resample not in ("area", "bicubic"):
            raise DataError(f"preprocessing.resample must be area or bicubic for Occ3D data, not "
                            f"{self.preprocessing.resample!r}")
        self.records, self.grid, self.augment, self.seed = list(records), grid, augment, seed
        self.train, self.bev_flip, self.stride, self.targets = train, bev_flip, stride, targets
        if train and bev_flip and (grid.x_range[0] != -grid.x_range[1] or grid.y_range[0] != -grid.y_range[1]):
            raise DataError(f"BEV flips need a grid symmetric about the ego origin, not {grid.ranges}")

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, rng = sample_rng(key, self.seed)
        record = self.records[index]
        rng = rng if self.train else None
        if self.targets:
            labels = read_labels(record.labels_path, self.grid, record.token)
            points = read_lidar_points(record.lidar_path, record.token)
            points_ego = points @ record.lidar2ego[:3, :3].T + record.lidar2ego[:3, 3]
        mean, std = np.array(self.preprocessing.mean) * 255, np.array(self.preprocessing.std) * 255
        bicubic = self.preprocessing.resample == "bicubic"
        height, width = self.augment.size
        images, posts, depths, heights = [], [], [], []
        for c, cam in enumerate(record.cameras):
            sources = [cam] + [frame[c] for frame in record.adjacent]  # this camera in every frame, key first
            frames = [_read_image(s.image_path, record.token, s.name, pillow=bicubic) for s in sources]
            view = self.augment.sample((frames[0].height, frames[0].width) if bicubic else frames[0].shape[:2], rng)
            post = image_affine(*view, self.augment.size)
            warped = [pillow_augment(image, *view, self.augment.size) if bicubic else
                      cv2.warpAffine(image, post[:2], (width, height), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=tuple(float(m) for m in mean))
                      for image in frames]  # the frames share the augmentation, as in the official pipeline
            images.append(np.stack([((w - mean) / std).transpose(2, 0, 1) for w in warped]))
            posts.append(post)
            if self.targets:
                depth, z = lidar_depth_height(points_ego, cam.intrinsics, cam.cam2ego, post, (height, width),
                                              self.stride)
                depths.append(depth)
                heights.append(z)
        flip_x = flip_y = False
        if rng is not None and self.bev_flip:
            flip_x, flip_y = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
        images = np.stack(images, axis=1)  # (T, N, 3, H, W)
        cam2ego = np.stack([[c.cam2ego for c in frame] for frame in [record.cameras, *record.adjacent]])
        if not record.adjacent:
            images, cam2ego = images[0], cam2ego[0]
        item = {
            "images": torch.from_numpy(images.astype(np.float32)),
            "intrinsics": torch.from_numpy(np.stack([c.intrinsics for c in record.cameras]).astype(np.float32)),
            "cam2ego": torch.from_numpy(cam2ego.astype(np.float32)),
            "post": torch.from_numpy(np.stack(posts).astype(np.float32)),
            "bda": torch.from_numpy(bev_flip_matrix(flip_x, flip_y).astype(np.float32)),
            "token": record.token,
        }
        if not self.targets:
            return item
        flip_axes = tuple(axis for axis, flip in ((0, flip_x), (1, flip_y)) if flip)
        volumes = {k: np.flip(v, flip_axes).copy() if flip_axes else v for k, v in labels.items()}
        height_maps = np.stack(heights)
        return {
            **item,
            "semantics": torch.from_numpy(volumes["semantics"].astype(np.int64)),
            "mask_camera": torch.from_numpy(volumes["mask_camera"] > 0),
            "mask_lidar": torch.from_numpy(volumes["mask_lidar"] > 0),
            "depth": torch.from_numpy(np.stack(depths)),
            "height": torch.from_numpy(height_maps),
            "height_bin": torch.from_numpy(_height_bin(height_maps)),
        }


def key_frame_images(images: torch.Tensor) -> torch.Tensor:
    """A batch's key-frame images ``(B, N, 3, H, W)`` from ``(B, N, 3, H, W)`` or multi-frame
    ``(B, T, N, 3, H, W)``."""
    return images[:, 0] if images.dim() == 6 else images


def collate_occ3d(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors along a new batch dimension; tokens become a list."""
    return {k: [item[k] for item in items] if k == "token" else torch.stack([item[k] for item in items])
            for k in items[0]}


def occ3d_records(root: str | Path, split: str, cameras: Sequence[str] = NUSCENES_CAMERAS,
                  info_file: str | None = None, root_key: str = "data.root",
                  key_ego: str = "lidar", frames: int = 1) -> list[SampleRecord]:
    """Parsed samples of ``split`` (``train`` / ``val``) under ``root`` (chosen by the config key ``root_key``),
    their geometry in the ``key_ego`` frame (:func:`parse_info`), in time order (by ``timestamp`` where every
    record has one, as mmdet3d's nuScenes dataset sorts them); with ``frames`` > 1 each carries the cameras of the
    samples before it (:func:`attach_adjacent_frames`)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data root {root} not found; set {root_key} to the nuScenes folder holding gts/ and samples/")
    if info_file is None and split not in INFO_FILES:
        raise DataError(f"unknown split {split!r}; use one of {', '.join(INFO_FILES)} or set the info file")
    infos = load_infos(root / (info_file or INFO_FILES[split]), root_key)
    if all(isinstance(info, dict) and "timestamp" in info for info in infos):
        infos = sorted(infos, key=lambda info: info["timestamp"])
    records = [parse_info(info, root, cameras, key_ego) for info in infos]
    return attach_adjacent_frames(records, frames) if frames > 1 else records
