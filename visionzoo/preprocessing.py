"""What a model expects of its input: one :class:`Preprocessing` object on its model card.

Datasets, predictors and the export take the whole object (``preprocessing=``) and read the fields they need, so a
field added to the class reaches every reader without a new argument anywhere. A job resolves it once from the
chosen model's card and the config's ``preprocessing`` overrides
(:func:`visionzoo.models.registry.resolve_preprocessing`).

This module imports neither models nor data: both sides read it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from visionzoo.constants import IMAGENET_MEAN, IMAGENET_STD, NUSCENES_CAMERAS
from visionzoo.errors import ConfigError
from visionzoo.geometry import OccupancyGrid, as_grid

#: Image resize filters a model's weights may expect (implemented by :func:`visionzoo.data.transforms.resize_image`).
RESAMPLE_FILTERS = ("area", "lanczos", "bicubic", "bilinear")
#: The ego frame of a multi-camera sample's geometry: the LiDAR timestamp's pose, or the first camera's (as
#: BEVDet-family code does).
KEY_EGO_FRAMES = ("lidar", "first_camera")


@dataclass(frozen=True)
class Preprocessing:
    """What a model's weights expect of their input.

    Images: ``input_size`` (channels, height, width) in pixels the weights were made for (``None``: any);
    ``mean``/``std`` normalise RGB scaled to [0, 1]; ``resample`` is the resize filter (one of
    :data:`RESAMPLE_FILTERS`: ``area`` for the zoo's models, ``lanczos`` for BEN, ``bilinear`` for MVANet,
    ``bicubic`` for BEVDet-family weights); ``channels_last`` says whether that memory layout makes the model faster on the CPU (measured in
    benchmarks/). Occupancy: ``grid`` is the voxel grid the model predicts on, ``cameras`` the camera order of its
    input, ``key_ego`` the frame of the geometry (one of :data:`KEY_EGO_FRAMES`) and ``frames`` the camera frames
    per sample: the key frame and the ``frames - 1`` before it (DHD-M/L: 3, two for the BEV and one more for the
    previous frame's stereo matching).
    """

    input_size: tuple[int, ...] | None = None
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    resample: str = "area"
    channels_last: bool = True
    grid: OccupancyGrid | None = None
    cameras: tuple[str, ...] = NUSCENES_CAMERAS
    key_ego: str = "lidar"
    frames: int = 1

    def __post_init__(self) -> None:
        # configs and JSON give lists and mappings: store tuples and a grid, so equal settings compare equal
        for name in ("input_size", "mean", "std", "cameras"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))
        object.__setattr__(self, "grid", as_grid(self.grid))
        if self.resample not in RESAMPLE_FILTERS:
            raise ConfigError(f"preprocessing.resample must be one of {', '.join(RESAMPLE_FILTERS)}, "
                              f"not {self.resample!r}")
        if self.key_ego not in KEY_EGO_FRAMES:
            raise ConfigError(f"preprocessing.key_ego must be one of {', '.join(KEY_EGO_FRAMES)}, "
                              f"not {self.key_ego!r}")
        if self.frames < 1:
            raise ConfigError(f"preprocessing.frames must be 1 or more, not {self.frames}")
        if len(self.mean) != len(self.std):
            raise ConfigError(f"preprocessing.mean has {len(self.mean)} values but std {len(self.std)}")

    def with_overrides(self, overrides: Mapping[str, Any] | None) -> Preprocessing:
        """A copy with ``overrides`` (config values: lists, a grid mapping; ``None`` keeps the value) applied; an
        unknown name is a :class:`~visionzoo.errors.ConfigError` naming ``preprocessing.<name>``."""
        known = {f.name for f in dataclasses.fields(self)}
        for name in overrides or {}:
            if name not in known:
                raise ConfigError(f"preprocessing has no field {name!r}; it has {', '.join(sorted(known))}")
        given = {name: value for name, value in (overrides or {}).items() if value is not None}
        return dataclasses.replace(self, **given) if given else self

    def as_dict(self) -> dict[str, Any]:
        """Plain values (lists, the grid as a mapping), for JSON and configs."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value
