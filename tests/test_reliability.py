"""Reproducible and resumable training: same seed -> same metrics; a killed run resumes to the same end; a
diverging run stops with one line and keeps its last good checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers.configs import compose_config, small_data_overrides
from visionzoo.run import jobs
from visionzoo.errors import TrainingDivergedError
from visionzoo.tasks.dhd import DHDTask

pytestmark = pytest.mark.integration  # subprocesses / whole runs: make test runs them, make test-fast not

ROOT = Path(__file__).resolve().parents[1]
RECIPES = {"dhd": "experiment=dhd_synthetic", "ben": "experiment=ben_synthetic"}
DDP_MIOU_SHARE = 0.75  # the share of the 1-process run's mIoU a 2-process training run must reach (see the test)


def overrides(kind: str, tiny_dis: Path, tiny_occ3d: Path, epochs: int) -> list[str]:
    target = "Occ3DDataModule" if kind == "dhd" else "DISDataModule"
    extra = ["model=ben_tiny"] if kind == "ben" else []
    return [RECIPES[kind], f"trainer.max_epochs={epochs}", "callbacks.rich_progress_bar=null", "logger=csv",
            *extra, *small_data_overrides(target, tiny_dis, tiny_occ3d)]


@pytest.mark.parametrize("kind", ["dhd", "ben"])
def test_same_seed_gives_the_same_metrics_twice(kind, tiny_dis, tiny_occ3d, tmp_path):
    runs = []
    for name in ("a", "b"):
        cfg = compose_config("train", overrides(kind, tiny_dis, tiny_occ3d, 2), tmp_path / name)
        runs.append(jobs.train(cfg))
    assert runs[0].keys() == runs[1].keys() and any(k.startswith("val/") for k in runs[0])
    assert runs[0] == runs[1]


def _train(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _final_state(run: Path) -> tuple[int, int, list[dict]]:
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    return checkpoint["epoch"], checkpoint["global_step"], json.loads((run / "metrics.json").read_text())


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_run_resumes_to_the_same_end(sig, tiny_dis, tiny_occ3d, tmp_path):
    args = [*overrides("dhd", tiny_dis, tiny_occ3d, 4), "test=true"]
    reference = _train([*args, "hydra.run.dir=reference"], tmp_path)
    assert reference.wait(timeout=600) == 0, reference.stderr.read()[-2000:]

    killed = _train([*args, "hydra.run.dir=interrupted"], tmp_path)
    last = tmp_path / "interrupted" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not last.exists() and killed.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert killed.poll() is None, "the run ended before it could be interrupted"
    os.kill(killed.pid, sig)  # after epoch 0's checkpoint: during epoch 1
    killed.wait(timeout=120)
    assert not (tmp_path / "interrupted" / "metrics.json").exists()
    epoch_at_kill = torch.load(last, weights_only=True, map_location="cpu")["epoch"]
    assert epoch_at_kill < 3

    resumed = _train([*args, "hydra.run.dir=interrupted", "ckpt_path=last"], tmp_path)
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()[-2000:]
    assert _final_state(tmp_path / "interrupted") == _final_state(tmp_path / "reference")


def test_diverging_run_stops_in_one_line_and_keeps_its_last_checkpoint(tiny_dis, tiny_occ3d, tmp_path, monkeypatch):
    original = DHDTask.compute_losses

    def nan_from_step_4(self, out, batch):
        losses = original(self, out, batch)
        if self.global_step >= 4:  # two samples per epoch: epochs 0 and 1 finish and are checkpointed
            losses["ce"] = losses["ce"] * float("nan")
            losses["loss"] = losses["loss"] * float("nan")
        return losses

    monkeypatch.setattr(DHDTask, "compute_losses", nan_from_step_4)
    cfg = compose_config("train", overrides("dhd", tiny_dis, tiny_occ3d, 4), tmp_path)
    with pytest.raises(TrainingDivergedError) as raised:
        jobs.train(cfg)
    message = str(raised.value)
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert message.startswith("training diverged: non-finite loss at step 4 (epoch 2): ce=nan")
    assert f"the last good checkpoint is {last}" in message and "lower task.optimizer.lr" in message
    state = torch.load(last, weights_only=True, map_location="cpu")
    assert state["global_step"] == 4 and all(torch.isfinite(v).all() for v in state["state_dict"].values())
    with pytest.raises(SystemExit) as exited:
        jobs.main(jobs.train, compose_config("train", overrides("dhd", tiny_dis, tiny_occ3d, 4), tmp_path / "b"))
    assert exited.value.code == 2


def test_ckpt_path_last_without_a_checkpoint_is_one_clear_error(tiny_dis, tiny_occ3d, tmp_path):
    cfg = compose_config("train", [*overrides("dhd", tiny_dis, tiny_occ3d, 1), "ckpt_path=last"], tmp_path)
    with pytest.raises(jobs.VisionZooError, match=r"ckpt_path=last: no checkpoints/last.ckpt in .*; pass ckpt_path="):
        jobs.train(cfg)


@pytest.fixture(scope="module")
def occ3d_two_val(tmp_path_factory) -> Path:
    from visionzoo.data.synthetic_occ3d import generate_synthetic_occ3d

    return generate_synthetic_occ3d(tmp_path_factory.mktemp("occ3d_ddp"), train_scenes=4, val_scenes=2,
                                    image_scale=0.09, lidar_azimuths=180)


def test_ddp_on_two_cpu_processes(occ3d_two_val, tiny_dis, tmp_path):
    """2 gloo processes: one run folder, one set of results; evaluation equals 1 process to 1e-6 (the mIoU's
    confusion matrix is summed over processes); training runs with the per-process batch halved."""
    common = [a for a in overrides("dhd", tiny_dis, occ3d_two_val, 6) if a != "data.batch_size=1"]
    common += ["task.optimizer.lr=0.005"]
    single = subprocess.run([sys.executable, str(ROOT / "train.py"), *common, "data.batch_size=2", "test=true",
                             "hydra.run.dir=single"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-2000:]
    ddp = subprocess.run([sys.executable, str(ROOT / "train.py"), *common, "data.batch_size=1", "trainer=ddp_cpu",
                          "test=true"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    runs = list((tmp_path / "logs" / "dhd_synthetic" / "runs").iterdir())
    assert len(runs) == 1, runs  # the second process writes into the first one's folder
    assert {"config.yaml", "metrics.json", "train.log", "train_ddp_process_1.log"} <= {p.name for p in runs[0].iterdir()}
    assert ddp.stdout.count("metrics written to") == 1
    assert torch.load(runs[0] / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 12  # 6 x 4 / 2

    results = {}
    for name, extra in (("eval1", []), ("eval2", ["trainer=ddp_cpu"])):
        done = subprocess.run([sys.executable, str(ROOT / "eval.py"), *common, *extra, f"hydra.run.dir={name}",
                               f"ckpt_path={tmp_path / 'single' / 'checkpoints' / 'last.ckpt'}"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        results[name] = {r["class"]: r["IoU"] for r in json.loads((tmp_path / name / "metrics.json").read_text())}
    assert sum(v > 0 for k, v in results["eval1"].items() if k != "mIoU") >= 2  # predicts several classes
    assert results["eval1"].keys() == results["eval2"].keys()
    for key, value in results["eval1"].items():
        assert results["eval2"][key] == pytest.approx(value, abs=1e-6, nan_ok=True)

    # Training: each optimizer step sees the same 2 samples (one per process vs one batch of 2) and DDP averages
    # the gradients, but BatchNorm statistics are per process on the CPU (batch 1 vs 2) and the class-weighted
    # losses are normalised per process, so the trajectories differ; and 2-process training on the CPU is not
    # repeatable run to run (on the earlier zoo DHD the same command read mIoU 6.63 and 9.65 after 6 epochs on 4
    # scenes). So the check is one-sided and relative: DDP training must reach 3/4 of the single process's mIoU
    # (measured 5.81 against 6.10 at lr 0.005; at 0.02 the single run's last weights predicted one class only).
    trained = {name: {r["class"]: r["IoU"] for r in json.loads((folder / "metrics.json").read_text())}
               for name, folder in (("single", tmp_path / "single"), ("ddp", runs[0]))}
    print({name: round(scores["mIoU"], 2) for name, scores in trained.items()})
    assert trained["ddp"]["mIoU"] >= DDP_MIOU_SHARE * trained["single"]["mIoU"], trained


def test_two_job_sweep_through_the_submitit_launcher(tiny_dis, tiny_occ3d, tmp_path):
    """Hydra multirun with submitit's local executor (the same launcher plugin as hydra/launcher=slurm): two jobs,
    one folder each, each with its own override and its checkpoint."""
    args = ["-m", *overrides("dhd", tiny_dis, tiny_occ3d, 1), "hydra/launcher=submitit_local",
            "hydra.launcher.timeout_min=10", "hydra.sweep.dir=sweep", "task.optimizer.lr=0.001,0.002",
            "ckpt_path=auto"]
    done = subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    for job, lr in (("0", 0.001), ("1", 0.002)):
        folder = tmp_path / "sweep" / job
        config = (folder / "config.yaml").read_text()
        assert f"lr: {lr}" in config
        assert torch.load(folder / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2
    assert list((tmp_path / "sweep" / ".submitit").iterdir())  # submitit's job logs


def _submitit_job_pids(under: Path) -> list[int]:
    """Processes running a submitit job whose folder is under ``under`` (``python -m submitit.core._submit
    FOLDER``): only this test's, not those of a sweep test running beside it on the other pytest worker."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0") if entry.name.isdigit() else []
            if b"submitit.core._submit" in command and any(arg.startswith(bytes(under) + b"/") for arg in command):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def test_preempted_sweep_job_is_requeued_and_resumes(tiny_dis, tiny_occ3d, tmp_path):
    """Requeue on a cluster belongs to submitit: its preemption/timeout signal (USR2, which SLURM sends
    ``signal_delay_s`` before the time limit) requeues the job, which reruns in the same job folder and resumes
    from checkpoints/last.ckpt through ``ckpt_path=auto``. Lightning's own SLURM requeue handler stays out of the
    way (it is only installed where no handler holds the signal). The local executor requeues like SLURM does."""
    args = ["-m", *overrides("dhd", tiny_dis, tiny_occ3d, 4), "hydra/launcher=submitit_local",
            "hydra.launcher.timeout_min=10", "ckpt_path=auto", "test=true"]  # the default, dated sweep folder
    sweep = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *args], cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    multiruns = tmp_path / "logs" / "dhd_synthetic" / "multiruns"
    deadline = time.time() + 300
    while not list(multiruns.glob("*/0/checkpoints/last.ckpt")) and sweep.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    jobs = _submitit_job_pids(tmp_path)
    assert sweep.poll() is None and len(jobs) == 1, "the job ended before it could be preempted"
    os.kill(jobs[0], signal.SIGUSR2)  # what SLURM sends before the time limit (submitit's --signal)
    output, _ = sweep.communicate(timeout=600)
    assert sweep.returncode == 0, output[-3000:]
    folders = list(multiruns.iterdir())
    assert len(folders) == 1, folders  # the requeued job found its own (dated) folder again
    logs = "".join(p.read_text() for p in (folders[0] / ".submitit").rglob("*_log.*"))
    assert "Requeued job" in logs, logs[-3000:]
    job = folders[0] / "0"
    assert f"resuming from {job / 'checkpoints' / 'last.ckpt'}" in (job / "train.log").read_text()
    epoch, step, metrics = _final_state(job)
    assert (epoch, step) == (3, 8)  # 4 epochs x 2 steps, as if never interrupted
    assert metrics[-1]["class"] == "mIoU"


def test_slurm_launcher_config_composes_with_overrides(tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "configs")):
        cfg = compose("train", overrides=["experiment=dhd_occ3d", "hydra/launcher=slurm", "hydra.launcher.nodes=2",
                                          "hydra.launcher.gpus_per_node=4", "hydra.launcher.partition=gpu",
                                          "hydra.launcher.timeout_min=60"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.nodes, launcher.gpus_per_node, launcher.tasks_per_node) == (2, 4, 4)
    assert (launcher.partition, launcher.timeout_min, launcher.max_num_timeout) == ("gpu", 60, 3)
