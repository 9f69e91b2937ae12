"""Model cards own preprocessing: a field added to the card reaches datasets and predictors with no plumbing."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from tests.helpers.configs import compose_config
from visionzoo.data.images import read_image
from visionzoo.data.transforms import image_to_tensor, resize_image
from visionzoo.errors import ConfigError
from visionzoo.models import registry
from visionzoo.preprocessing import Preprocessing
from visionzoo.run.build import build, build_predictor


@dataclass(frozen=True)
class GammaPreprocessing(Preprocessing):
    """A card field the package does not have (as a new model family's port might add one)."""

    gamma: float = 1.0


@pytest.fixture
def throwaway_model(monkeypatch) -> str:
    """``ben_tiny_gamma``: ben_tiny's builder registered with a card carrying ``gamma``, Lanczos resizing and a
    64-pixel input; the registry is restored after the test."""
    monkeypatch.setattr(registry, "_BUILDERS", dict(registry._BUILDERS))
    monkeypatch.setattr(registry, "_CARDS", dict(registry._CARDS))
    tiny = registry.model_card("ben_tiny")
    preprocessing = GammaPreprocessing(input_size=(3, 64, 64), resample="lanczos", channels_last=False, gamma=2.2)
    registry.register_model("ben_tiny_gamma", task="matting", preprocessing=preprocessing,
                            defaults=tiny.defaults)(registry.builder("ben_tiny"))
    return "ben_tiny_gamma"


def test_a_new_card_field_reaches_the_dataset_and_the_predictor(throwaway_model, tiny_dis, tmp_path):
    evaluated = compose_config("eval", ["experiment=ben_dis5k", "model=ben_tiny", f"model.name={throwaway_model}",
                                        f"data.root={tiny_dis}", "data.input_size=48", "data.num_workers=0"], tmp_path)
    datamodule, task = build(evaluated)
    dataset = datamodule.test_dataloader()[0].dataset
    assert dataset.preprocessing.gamma == 2.2 and dataset.preprocessing.resample == "lanczos"
    # the dataset resizes with the card's filter: Lanczos, not the zoo's area averaging
    pair = dataset.pairs[0]
    rgb = read_image(pair.image).rgb8()
    assert torch.equal(dataset[0]["image"], image_to_tensor(resize_image(rgb, (48, 48), "lanczos")))
    assert not torch.equal(dataset[0]["image"], image_to_tensor(resize_image(rgb, (48, 48), "area")))

    predicted = compose_config("predict", ["experiment=ben_cutout", f"model.name={throwaway_model}", "input=x",
                                           "output=y", "+preprocessing.gamma=1.8"], tmp_path)
    predictor = build_predictor(predicted, task.net)
    assert predictor.model.preprocessing.gamma == 1.8  # a config override of the new field
    assert predictor.model.input_size == 64 and predictor.model.memory_format == torch.contiguous_format


def test_preprocessing_overrides_are_checked_by_name_and_value():
    base = Preprocessing(input_size=(3, 8, 8))
    assert base.with_overrides({"resample": None}) is base  # null: the card's
    assert base.with_overrides({"resample": "bicubic", "mean": [0.5, 0.5, 0.5]}).mean == (0.5, 0.5, 0.5)
    with pytest.raises(ConfigError, match="preprocessing has no field 'gama'; it has cameras, channels_last"):
        base.with_overrides({"gama": 2.0})
    with pytest.raises(ConfigError, match="preprocessing.resample must be one of area, lanczos, bicubic, bilinear, not 'near"):
        base.with_overrides({"resample": "nearest"})
    grid = Preprocessing(grid={"x_range": [-1, 1], "y_range": [-1, 1], "z_range": [0, 1], "voxel": [1, 1, 1]}).grid
    assert grid.shape == (2, 2, 1)
