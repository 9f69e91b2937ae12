"""Building registered models: ``create_model`` (random or pretrained) and ``from_pretrained`` (a saved folder).

``create_model`` records the name and the builder's keyword arguments on the model (``model.visionzoo_config``)
so that :func:`~visionzoo.models.weights.save_pretrained` can write them and :func:`from_pretrained` rebuild it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from torch import nn

from visionzoo.errors import UnknownModelError, WeightsError
from visionzoo.models.registry import builder, model_card
from visionzoo.models.weights import CONFIG_FILE, load_weights


def create_model(name: str, pretrained: bool | str | None = None, **overrides: Any) -> nn.Module:
    """Build a registered model.

    Args:
        name: a name from :func:`~visionzoo.models.registry.list_models`.
        pretrained: ``None``/``False`` for random init; ``True`` for the card's default weights; or a local file
            (.safetensors/.pt/.pth/.ckpt), a folder written by :func:`visionzoo.save_pretrained`, an https URL or an
            ``hf-hub:`` name.
        **overrides: keyword arguments for the builder (e.g. ``num_classes=2``); ``None`` for an argument the card
            bakes in (``defaults``) keeps the card's value, as a config's ``null`` does.
    """
    build = builder(name)
    card = model_card(name)
    given = {key: value for key, value in overrides.items() if value is not None or key not in card.defaults}
    model = build(**{**card.defaults, **given})
    model.visionzoo_config = {"name": name, "kwargs": dict(overrides)}
    if pretrained:
        source = card.weights if pretrained is True else pretrained
        if source is None:
            raise UnknownModelError(
                f"model {name!r} has no default pretrained weights yet; pass pretrained=PATH_OR_URL instead"
            )
        sha256 = card.sha256 if pretrained is True else None
        # A model may bring its own loader (e.g. backbones that take ImageNet checkpoints in several layouts).
        loader = getattr(model, "load_pretrained", None)
        if loader is not None:
            loader(source, sha256=sha256)
        else:
            load_weights(model, source, sha256=sha256)
    return model


def from_pretrained(directory: str | os.PathLike) -> nn.Module:
    """Rebuild a model saved by :func:`~visionzoo.models.weights.save_pretrained`, with identical weights."""
    directory = Path(directory)
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise WeightsError(f"{config_path} not found; pass a folder written by visionzoo.save_pretrained")
    try:
        config = json.loads(config_path.read_text())
        name, kwargs = config["name"], config.get("kwargs", {})
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise WeightsError(f"{config_path} is not a visionzoo model config ({err})") from err
    return create_model(name, pretrained=str(directory), **kwargs)
