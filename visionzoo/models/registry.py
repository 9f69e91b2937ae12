"""The model registry: ``register_model`` records builders and their cards; ``list_models``, ``model_card`` and
``resolve_preprocessing`` read them. It imports no model code: the families register themselves when
``visionzoo.models`` imports them (as timm does), and :mod:`visionzoo.models.factory` builds models from it.

A registered model is a builder function plus a :class:`ModelCard`: task, what it expects of its input
(:class:`~visionzoo.preprocessing.Preprocessing`), default weights source, licence. A new card fact is a field of
:class:`ModelCard` (or, for the input, of ``Preprocessing``): ``register_model`` passes its keywords through.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from visionzoo.errors import UnknownModelError
from visionzoo.preprocessing import Preprocessing


@dataclass(frozen=True)
class ModelCard:
    """What a user needs to know to run a registered model.

    ``preprocessing`` is what the model expects of its input (input size, normalisation, resize filter, memory
    layout; for occupancy models the grid, camera order and key-ego frame). ``weights`` is the default pretrained
    source (a URL, an ``hf-hub:ORG/REPO/FILE`` name, or ``None`` when the zoo ships none yet) and ``sha256`` its
    checksum. ``defaults`` are builder keyword arguments baked into this name (e.g. the backbone), so one builder
    (a function or an ``nn.Module`` class) can serve several registered names. ``reference`` is what the published
    weights are known to score (the paper's numbers, with where they come from).
    """

    name: str
    task: str
    preprocessing: Preprocessing
    weights: str | None = None
    sha256: str | None = None
    license: str = "Apache-2.0"
    description: str = ""
    reference: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)


_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
_CARDS: dict[str, ModelCard] = {}


def register_model(name: str, **card: Any) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register ``builder(**kwargs) -> nn.Module`` under ``name`` with a :class:`ModelCard` of ``card``'s fields
    (``task`` and ``preprocessing`` required; ``description`` defaults to the builder's first docstring line).
    A caller's keyword arguments take precedence over the card's ``defaults``."""

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is registered twice")
        description = card.get("description") or (builder.__doc__ or "").strip().splitlines()[0]
        _CARDS[name] = ModelCard(name=name, **{**card, "description": description})
        _BUILDERS[name] = builder
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


def resolve_preprocessing(name: str | None, overrides: Mapping[str, Any] | None = None) -> Preprocessing:
    """What model ``name`` expects of its input (its card's :class:`~visionzoo.preprocessing.Preprocessing`) with a
    config's ``preprocessing`` overrides applied: the one place jobs, predictors and the export get it from.
    Without a model (``None``) the class defaults apply."""
    base = model_card(name).preprocessing if name is not None else Preprocessing()
    return base.with_overrides(overrides)
