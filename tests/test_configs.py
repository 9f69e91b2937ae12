"""Every config composes; every experiment runs one fast_dev_run step (train) on small built-in data."""

from __future__ import annotations

import logging

import lightning as L
import numpy as np
import pytest
import torch
from hydra._internal.utils import _locate
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from tests.helpers.configs import CONFIG_DIR, compose_config, small_data_overrides
from visionzoo.run import jobs
from visionzoo.serve.server import settings_from

EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))
GROUPS = sorted(p.name for p in CONFIG_DIR.iterdir() if p.is_dir() and p.name not in ("experiment", "hydra", "common"))
#: The recipe each predictor serves (predictors read its task and data keys and predict.py's input/output).
PREDICTOR_RECIPES = {"cutout": "ben_cutout", "occupancy": "dhd_occ3d", "denoise": "dip_denoise"}
GROUP_OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONFIG_DIR / g).glob("*.yaml"))]
_RECIPES = {e: OmegaConf.load(CONFIG_DIR / "experiment" / f"{e}.yaml") for e in EXPERIMENTS}
#: Recipes with a task: evaluated with eval.py; those with a predictor: run by predict.py; trained unless the
#: recipe says it needs no weights (every image fitted at test time).
EVAL_EXPERIMENTS = [e for e, r in _RECIPES.items() if any("/task" in str(d) for d in r.get("defaults", []))]
TRAIN_EXPERIMENTS = [e for e in EVAL_EXPERIMENTS if _RECIPES[e].get("weights_required", True)]
PREDICT_EXPERIMENTS = [e for e, r in _RECIPES.items() if any("/predictor" in str(d) for d in r.get("defaults", []))]
#: Recipes that score another model's prediction files (eval.py, no network).
EVALUATOR_EXPERIMENTS = [e for e, r in _RECIPES.items() if "evaluator" in r]


def test_experiments_exist():
    assert {"ben_dis5k", "ben_synthetic", "ben_cutout", "dip_denoise"} <= set(EXPERIMENTS)
    assert TRAIN_EXPERIMENTS == ["ben_dis5k", "ben_distill", "ben_synthetic", "dhd_occ3d", "dhd_synthetic"]
    assert PREDICT_EXPERIMENTS == ["ben_cutout", "dhd_occ3d", "dip_denoise"]
    assert EVALUATOR_EXPERIMENTS == ["dis_predictions", "occ3d_predictions"]
    assert set(EXPERIMENTS) == set(EVAL_EXPERIMENTS + PREDICT_EXPERIMENTS + EVALUATOR_EXPERIMENTS)


ENTRY_CASES = [("train", e) for e in TRAIN_EXPERIMENTS] + [("eval", e) for e in EVAL_EXPERIMENTS] + [
    ("predict", e) for e in PREDICT_EXPERIMENTS
]


@pytest.mark.parametrize("entry, experiment", ENTRY_CASES)
def test_experiment_composes_and_resolves(entry, experiment, tmp_path):
    extra = ["input=x", "output=y"] if entry == "predict" else []
    cfg = compose_config(entry, [f"experiment={experiment}", *extra], tmp_path)
    if entry != "predict" and "predictor" in cfg:  # a recipe's predictor reads predict.py's input/output keys
        with open_dict(cfg):
            del cfg["predictor"]
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert resolved["task_name"] and resolved["model"]["_target_"] == "visionzoo.create_model"


@pytest.mark.parametrize("experiment", EVALUATOR_EXPERIMENTS)
def test_evaluator_recipe_composes_and_names_its_required_values(experiment, tmp_path):
    cfg = compose_config("eval", [f"experiment={experiment}", "pred_root=p", "data.root=d"], tmp_path)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert resolved["evaluator"]["pred_root"] == "p" and resolved["evaluator"]["root"] == "d"
    assert resolved["weights_required"] is False


@pytest.mark.parametrize("group, option", GROUP_OPTIONS)
def test_every_group_option_composes_and_builds(group, option, tmp_path):
    """Every option of every group composes and resolves, every ``_target_`` in it names something importable, and
    the groups that need no data or weights are instantiated: callbacks, loggers, CPU trainers, models."""
    experiment = "dhd_synthetic" if group == "model" and option.startswith("dhd") else "ben_synthetic"  # data.grid
    if group == "predictor":
        cfg = compose_config("predict", [f"experiment={PREDICTOR_RECIPES[option]}", f"predictor={option}", "input=x",
                                         "output=y"], tmp_path)
    elif group == "serve":  # visionzoo serve's own config
        cfg = compose_config("serve", [f"serve={option}"], tmp_path)
        assert settings_from(cfg).host == "127.0.0.1" and settings_from(cfg).max_pixels == 50_000_000
    else:
        cfg = compose_config("train", [f"experiment={experiment}", f"{group}={option}"], tmp_path)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    for key, target in _targets(resolved[group], group):
        assert callable(_locate(target)), f"{key}._target_={target}"
    node = cfg[group]
    if group in ("callbacks", "logger"):
        built = {name: instantiate(entry) for name, entry in node.items() if entry is not None and "_target_" in entry}
        assert all(type(obj).__name__ != "dict" for obj in built.values())
    elif group == "trainer" and node.get("accelerator") == "cpu":
        trainer = instantiate(node, callbacks=[], logger=False)
        assert isinstance(trainer, L.Trainer) and trainer.num_devices == int(node.get("devices", 1))
    elif group == "model":
        assert isinstance(instantiate(node), torch.nn.Module) or callable(instantiate(node))


def _targets(node, key: str):
    """(dotted key, target) of every ``_target_`` under a resolved config container."""
    if isinstance(node, dict):
        if "_target_" in node:
            yield key, node["_target_"]
        for name, child in node.items():
            yield from _targets(child, f"{key}.{name}")
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _targets(child, f"{key}[{index}]")


@pytest.mark.parametrize("experiment", TRAIN_EXPERIMENTS)
def test_experiment_fast_dev_run(experiment, tiny_dis, tiny_occ3d, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    overrides = [f"experiment={experiment}", "trainer.fast_dev_run=true", "logger=csv", "test=true",
                 "callbacks.rich_progress_bar=null"]
    data_target = compose_config("train", overrides, tmp_path).data._target_
    cfg = compose_config("train", overrides + small_data_overrides(data_target, tiny_dis, tiny_occ3d), tmp_path)
    metrics = jobs.train(cfg)
    assert metrics["train/loss"] > 0
    assert (tmp_path / "config.yaml").exists()
    assert (tmp_path / "metrics.json").exists() and (tmp_path / "metrics.csv").exists()
    assert "GPU available" in caplog.text and "Tip:" not in caplog.text  # Lightning's log, without its adverts


def test_dip_denoise_evaluates_against_bm3d(tmp_path):
    from visionzoo.dip.fit import auto_precision

    overrides = ["experiment=dip_denoise", "data.size=32", "data.images=[camera,astronaut]", "task.fit.iterations=20",
                 "callbacks.rich_progress_bar=null", "task.save_outputs=true"]
    rows = jobs.evaluate(compose_config("eval", overrides, tmp_path))
    assert [row["image"] for row in rows] == ["camera", "astronaut", "mean"]
    assert [row["channels"] for row in rows[:2]] == [1, 3]
    assert rows[2]["psnr_dip"] == pytest.approx((rows[0]["psnr_dip"] + rows[1]["psnr_dip"]) / 2)
    assert all(row["psnr_bm3d"] > row["psnr_noisy"] + 3 for row in rows)  # BM3D ran on the same noisy images
    assert all(row["iterations"] == 20 for row in rows)
    assert {row.get("precision") for row in rows} == {auto_precision(torch.device("cpu")), None}  # none in the mean
    assert (tmp_path / "metrics.csv").read_text().splitlines()[0] == (
        "image,channels,sigma_est,texture,model,params,iterations,returned_at,psnr_noisy,psnr_dip,ssim_dip,"
        "seconds_dip,precision,dip_weight,psnr_dip_alone,ssim_dip_alone,psnr_bm3d,ssim_bm3d,seconds_bm3d")
    assert all(row["dip_weight"] == 0.25 for row in rows)  # the default blends with BM3D (32 px: share 0.25)
    assert all(row["psnr_dip"] > row["psnr_dip_alone"] + 1 for row in rows)  # 20 iterations: the blend lifts it
    assert rows[0]["model"].startswith("dip_scaled(width=") and "model" not in rows[2]
    assert {"denoising.png", "camera_curves.png", "astronaut_curves.png"} <= {
        p.name for p in (tmp_path / "pictures").iterdir()}
    # the saved outputs, 8-bit: the blend in denoised/, the DIP output alone in denoised_dip/ (gray stays gray)
    from visionzoo.data.denoise import skimage_image
    from visionzoo.data.images import read_image

    for row in rows[:2]:
        clean = skimage_image(row["image"], 32).astype(np.float64)
        for folder, key in (("denoised", "psnr_dip"), ("denoised_dip", "psnr_dip_alone")):
            saved = read_image(tmp_path / folder / f"{row['image']}.png")
            pixels = saved.pixels[..., :1] if saved.grayscale else saved.pixels
            assert pixels.shape == clean.shape
            mse = np.mean((pixels.astype(np.float64) - clean) ** 2)
            assert 10 * np.log10(255.0**2 / mse) == pytest.approx(row[key], abs=0.05)  # up to the 8-bit rounding


def test_dip_denoise_baseline_at_the_estimated_sigma_reuses_the_fits_estimate(tmp_path):
    from visionzoo.data.denoise import add_noise, skimage_image
    from visionzoo.dip.classical import bm3d_denoise
    from visionzoo.dip.recipe import from_hwc
    from visionzoo.tasks.dip_denoise import psnr

    overrides = ["experiment=dip_denoise", "data.size=32", "data.images=[camera]", "task.fit.iterations=5",
                 "callbacks.rich_progress_bar=null", "task.pictures=0", "data.sigma=50"]
    true = jobs.evaluate(compose_config("eval", overrides, tmp_path / "true"))[0]
    estimated = jobs.evaluate(compose_config("eval", overrides + ["task.baseline_sigma=estimated"],
                                               tmp_path / "estimated"))[0]
    clean = skimage_image("camera", 32).astype("float32") / 255.0
    noisy = add_noise(clean, "gaussian", 50.0, seed=0)
    # BM3D reruns by hand at the sigma the row reports (rounded to 0.01) and at the true 50
    by_hand = psnr(from_hwc(bm3d_denoise(noisy, estimated["sigma_est"] / 255.0)), from_hwc(clean))
    assert estimated["psnr_bm3d"] == pytest.approx(by_hand, abs=0.02)
    assert true["psnr_bm3d"] == pytest.approx(psnr(from_hwc(bm3d_denoise(noisy, 50 / 255.0)), from_hwc(clean)),
                                              abs=1e-4)
    assert abs(estimated["sigma_est"] - 50) > 0.5 and estimated["psnr_bm3d"] != pytest.approx(true["psnr_bm3d"],
                                                                                               abs=1e-3)
    # with the blend, the baseline is the blend's own BM3D run (same sigma, same numbers up to the bm3d package's
    # threads, which vary its last bits from run to run: 1.3e-6 dB apart once)
    blend = ["task.baseline_sigma=estimated", "task.fit.blend=bm3d"]
    blended = jobs.evaluate(compose_config("eval", overrides + blend, tmp_path / "blended"))[0]
    assert blended["psnr_bm3d"] == pytest.approx(estimated["psnr_bm3d"], abs=1e-4)


def test_dip_denoise_batches_images_with_the_same_architecture(tmp_path):
    overrides = ["experiment=dip_denoise", "data.size=32", "data.images=[camera,coins,astronaut]",
                 "task.fit.iterations=10", "callbacks.rich_progress_bar=null", "task.baseline=null", "task.pictures=0",
                 "task.fit.precision=fp32"]  # auto may be bf16 on the CPU, which fits one image at a time
    one_by_one = jobs.evaluate(compose_config("eval", overrides, tmp_path / "single"))
    batched = jobs.evaluate(compose_config("eval", overrides + ["data.batch_size=3"], tmp_path / "batched"))
    for alone, together in zip(one_by_one, batched):
        assert together["image"] == alone["image"] and together.get("model") == alone.get("model")
        # batched sums round differently: up to 1.1e-3 dB apart after 10 iterations (1 or 2 threads); another
        # seed moves these images 0.16-0.38 dB
        assert together["psnr_dip"] == pytest.approx(alone["psnr_dip"], abs=5e-3)


@pytest.mark.parametrize("model, expected, channels_last", [
    ("ben2_base", "lanczos", False), ("ben_base", "lanczos", False), ("mvanet", "bilinear", False),
    ("ben_dla34", "area", True),
])
def test_jobs_take_the_model_cards_preprocessing_and_its_overrides(model, expected, channels_last, tmp_path):
    from visionzoo.run.build import preprocessing_of

    evaluated = preprocessing_of(compose_config("eval", ["experiment=ben_dis5k", f"model={model}"], tmp_path))
    predicted = preprocessing_of(compose_config("predict", ["experiment=ben_cutout", f"model={model}", "input=x",
                                                            "output=y"], tmp_path))
    assert evaluated.resample == predicted.resample == expected and predicted.channels_last is channels_last
    assert predicted.input_size == (3, 1024, 1024)
    overridden = compose_config("eval", ["experiment=ben_dis5k", f"model={model}", "preprocessing.resample=area"],
                                tmp_path)
    assert preprocessing_of(overridden).resample == "area"
