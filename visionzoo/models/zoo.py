"""Registers the zoo's shared DLA models; each task family registers its own models in its module."""

from __future__ import annotations

from visionzoo.models.backbones import DLA_VARIANTS, TINY_DLA_KWARGS, TimmFeatures
from visionzoo.models.dla_seg import DLASeg
from visionzoo.models.registry import register_model

DLA_LICENSE = "BSD-3-Clause (DLA ImageNet weights: timm / ucbdrive)"

#: The original authors' ImageNet checkpoints; the file-name suffix is the start of the file's sha256.
DLA_IMAGENET_HASHES = {
    "dla34": "ba72cf86", "dla46_c": "2bfd52c3", "dla46x_c": "d761bae7", "dla60x_c": "b870c45c",
    "dla60": "24839fc4", "dla60x": "d15cacda", "dla102": "d94d9790", "dla102x": "ad62be81",
    "dla102x2": "262837b6", "dla169": "0914e092",
}
DLA_IMAGENET_URL = "http://dl.yf.io/dla/models/imagenet/{name}-{hash}.pth"

for _variant in DLA_VARIANTS:
    _hash = DLA_IMAGENET_HASHES.get(_variant)
    register_model(
        _variant,
        task="features",
        input_size=(3, 224, 224),
        weights=DLA_IMAGENET_URL.format(name=_variant, hash=_hash) if _hash else None,
        sha256=_hash,
        license=DLA_LICENSE,
        defaults={"name": _variant},
    )(TimmFeatures)
register_model(
    "dla_tiny",
    task="features",
    input_size=(3, 224, 224),
    license=DLA_LICENSE,
    description="A tiny DLA (dla34 blocks, 8..64 channels, about 0.2 M parameters) for tests",
    defaults={"name": "dla34", "timm_kwargs": TINY_DLA_KWARGS},
)(TimmFeatures)

for _variant in ("dla34", "dla60x", "dla102", "dla169"):
    register_model(
        f"{_variant}_up", task="segmentation", input_size=(3, 512, 1024), license=DLA_LICENSE,
        defaults={"backbone": _variant},
    )(DLASeg)
register_model(
    "dla_tiny_up",
    task="segmentation",
    input_size=(3, 512, 1024),
    license=DLA_LICENSE,
    description="DLA-Up segmentation on the tiny DLA, for tests",
    defaults={"backbone": "dla34", "backbone_kwargs": TINY_DLA_KWARGS},
)(DLASeg)
