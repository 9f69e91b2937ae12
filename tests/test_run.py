"""The runner's parts (visionzoo/run/): config checks name the key at fault, by structure rather than by parsing
error text; the weights policy is decided in one place; model and data agree on the occupancy grid."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from visionzoo.errors import ConfigError
from visionzoo.geometry import OCC3D_GRID, SYNTHETIC_GRID, OccupancyGrid
from visionzoo.run.checks import check_arguments, check_same_grid, check_weights_policy


def test_an_argument_a_nested_constructor_does_not_take_is_named_by_its_key():
    cfg = OmegaConf.create({"task": {"_target_": "visionzoo.tasks.ben.BENTask", "optimizer": {
        "_target_": "torch.optim.AdamW", "_partial_": True, "lr": 1e-3, "betas2": [0.9, 0.99]}}})
    with pytest.raises(ConfigError, match=r"^task\.optimizer: AdamW takes no argument 'betas2'; check the "
                                          r"task\.optimizer\.\* overrides"):
        check_arguments(cfg.task, "task")
    cfg.task.optimizer.pop("betas2")
    check_arguments(cfg.task, "task")  # every argument taken
    # lists of nodes, and targets taking **kwargs (anything goes) are walked too
    listed = OmegaConf.create([{"_target_": "collections.OrderedDict", "anything": 1},
                               {"_target_": "lightning.pytorch.callbacks.EarlyStopping", "monitr": "val/loss"}])
    with pytest.raises(ConfigError, match=r"^callbacks\[1\]: EarlyStopping takes no argument 'monitr'"):
        check_arguments(listed, "callbacks")


@pytest.mark.parametrize("job, weights_required, ckpt, pretrained, message", [
    ("train", False, None, None, "experiment x has nothing to train (it loads no weights); run eval.py with it"),
    ("eval", False, "a.ckpt", None, "experiment x loads no weights; drop ckpt_path"),
    ("predict", False, "a.ckpt", None, "experiment x loads no weights; drop ckpt_path"),
    ("eval", True, None, None, "eval needs weights: pass ckpt_path=PATH"),
    ("eval", True, None, "w.safetensors", None),
    ("eval", False, None, None, None),
    ("train", True, None, None, None),
])
def test_the_weights_policy(job, weights_required, ckpt, pretrained, message):
    cfg = OmegaConf.create({"task_name": "x", "weights_required": weights_required, "ckpt_path": ckpt,
                            "model": {"pretrained": pretrained}})
    if message is None:
        check_weights_policy(cfg, job)
    else:
        with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
            check_weights_policy(cfg, job)


def test_model_and_data_must_share_the_grid():
    class Part:
        def __init__(self, grid):
            self.grid = grid

    occ3d, synthetic = OCC3D_GRID, SYNTHETIC_GRID
    check_same_grid(Part(occ3d), Part(OccupancyGrid(*OCC3D_GRID.ranges, OCC3D_GRID.voxel)))
    check_same_grid(Part(occ3d), object())  # not an occupancy model: nothing to compare
    with pytest.raises(ConfigError, match=r"^data.grid \(50x50x16 voxels of 0.8x0.8x0.4 m from \(-20, -20, -1\)\) is "
                                          r"not the grid the model predicts on \(200x200x16 voxels of 0.4x0.4x0.4 m"):
        check_same_grid(Part(synthetic), Part(occ3d))
