"""OmegaConf resolvers the configs use; registered on import (by the runner and the command-line checks).

``${model_card:FIELD}``: a field of the chosen model's :class:`~visionzoo.models.registry.ModelCard` (read from
``model.name``), e.g. ``data.resample: ${model_card:resample}`` so that evaluation and prediction resize images the
way the model's weights expect. Without a ``model.name``, or with a name that is not registered (building the
model then reports it in one line), the card's default value is used.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from omegaconf import DictConfig, OmegaConf

from visionzoo.models.registry import ModelCard, list_models, model_card

_CARD_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ModelCard) if f.default is not dataclasses.MISSING}


def model_card_field(field: str, *, _root_: DictConfig) -> Any:
    """The value of ``field`` on the card of ``model.name`` (or the card default when no model is named)."""
    if field not in _CARD_DEFAULTS:
        raise ValueError(f"${{model_card:{field}}}: model cards have no field {field!r}; use one of "
                         f"{', '.join(sorted(_CARD_DEFAULTS))}")
    name = OmegaConf.select(_root_, "model.name", default=None)
    return getattr(model_card(name), field) if name in list_models() else _CARD_DEFAULTS[field]


if not OmegaConf.has_resolver("model_card"):
    OmegaConf.register_new_resolver("model_card", model_card_field)
