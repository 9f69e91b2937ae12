"""The model registry: ``register_model`` records builders and their cards; ``list_models`` and ``model_card`` read
them. It imports no model code: the families register themselves when ``visionzoo.models`` imports them (as timm
does), and :mod:`visionzoo.models.factory` builds models from it.

A registered model is a builder function plus a :class:`ModelCard` (task, default input size, normalisation,
default weights source, licence).
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from visionzoo.constants import IMAGENET_MEAN, IMAGENET_STD
from visionzoo.errors import UnknownModelError


@dataclass(frozen=True)
class ModelCard:
    """What a user needs to know to run a registered model.

    ``input_size`` is (channels, height, width) in pixels; ``mean``/``std`` normalise inputs scaled to [0, 1].
    ``weights`` is the default pretrained source (a URL, an ``hf-hub:ORG/REPO/FILE`` name, or ``None`` when the zoo
    ships none yet) and ``sha256`` its checksum. ``resample`` is the image resize filter the weights expect
    (``area``, ``lanczos`` or ``bicubic``: the filters of the data transforms' ``resize_image``); ``channels_last``
    says whether that memory layout makes the model faster on the CPU (measured in benchmarks/); ``key_ego`` is the
    ego frame of a multi-camera sample's geometry (``lidar``: the LiDAR timestamp's pose; ``first_camera``: the
    first camera's, as BEVDet-family code does).
    """

    name: str
    task: str
    input_size: tuple[int, int, int]
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    weights: str | None = None
    sha256: str | None = None
    license: str = "Apache-2.0"
    description: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)
    resample: str = "area"
    channels_last: bool = True
    key_ego: str = "lidar"


_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
_CARDS: dict[str, ModelCard] = {}


def register_model(
    name: str,
    *,
    task: str,
    input_size: tuple[int, int, int],
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
    weights: str | None = None,
    sha256: str | None = None,
    license: str = "Apache-2.0",
    description: str = "",
    defaults: dict[str, Any] | None = None,
    resample: str = "area",
    channels_last: bool = True,
    key_ego: str = "lidar",
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register ``builder(**kwargs) -> nn.Module`` under ``name``.

    ``defaults`` are keyword arguments baked into this name (e.g. the backbone), so one builder (a function or
    an ``nn.Module`` class) can serve several registered names; a caller's overrides take precedence over them.
    """

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is registered twice")
        _BUILDERS[name] = builder
        _CARDS[name] = ModelCard(
            name=name,
            task=task,
            input_size=input_size,
            mean=mean,
            std=std,
            weights=weights,
            sha256=sha256,
            license=license,
            description=description or (builder.__doc__ or "").strip().splitlines()[0],
            defaults=dict(defaults or {}),
            resample=resample,
            channels_last=channels_last,
            key_ego=key_ego,
        )
        return builder

    return decorator


def list_models(pattern: str = "*", task: str | None = None) -> list[str]:
    """Registered names matching a shell-style ``pattern`` (and ``task`` when given), sorted."""
    names = [n for n in _BUILDERS if fnmatch.fnmatch(n, pattern)]
    if task is not None:
        names = [n for n in names if _CARDS[n].task == task]
    return sorted(names)


def model_card(name: str) -> ModelCard:
    """The :class:`ModelCard` of a registered model."""
    _check_name(name)
    return _CARDS[name]


def _check_name(name: str) -> None:
    if name not in _BUILDERS:
        close = difflib.get_close_matches(name, list(_BUILDERS), n=5, cutoff=0.5)
        hint = f"closest: {', '.join(close)}" if close else "see visionzoo.list_models()"
        raise UnknownModelError(f"unknown model {name!r}; {hint}")


def builder(name: str) -> Callable[..., nn.Module]:
    """The builder registered as ``name`` (a one-line error with the closest names when there is none)."""
    _check_name(name)
    return _BUILDERS[name]
