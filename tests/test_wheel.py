"""The installable CLI: the wheel carries the configs, and `visionzoo eval` runs from a fresh virtualenv outside
the repository (its dependencies are this environment's, made visible through a path file)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # builds a wheel and a virtualenv (about a minute)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True, timeout=600)
    return next(out.glob("visionzoo-*.whl"))


def test_the_wheel_carries_every_config(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {p.relative_to(ROOT).as_posix() for p in (ROOT / "configs").rglob("*.yaml")}
    assert configs and {f"visionzoo/{name}" for name in configs} <= names
    assert any(name.endswith("entry_points.txt") for name in names)


def test_visionzoo_eval_runs_from_a_fresh_virtualenv(wheel, tmp_path):
    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # The dependencies (torch, lightning ...) from this environment; its editable visionzoo is not picked up
    # (the path file adds the folder, it does not run the .pth files in it).
    (site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True, timeout=600)
    work = tmp_path / "somewhere_else"
    work.mkdir()
    where = subprocess.run([str(python), "-c", "import visionzoo.cli as c; print(c.__file__, c.CONFIG_DIR.is_dir())"],
                           cwd=work, check=True, capture_output=True, text=True).stdout
    assert where.startswith(str(site)) and where.strip().endswith("True")  # the wheel's copy, with its configs
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "VISIONZOO_CACHE": str(tmp_path / "cache")}
    result = subprocess.run([str(env_dir / "bin" / "visionzoo"), "eval", "experiment=dip_denoise", "data.images=[camera]",
                             "data.size=32", "task.fit.iterations=10", "hydra.run.dir=run"],
                            cwd=work, capture_output=True, text=True, timeout=600, env=environment)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads((work / "run" / "metrics.json").read_text())
    assert rows[0]["image"] == "camera" and rows[0]["psnr_bm3d"] > rows[0]["psnr_noisy"] > 10
    assert (work / "run" / "eval.log").is_file()
    bad = subprocess.run([str(env_dir / "bin" / "visionzoo"), "eval", "experiment=dip_denois"], cwd=work,
                         capture_output=True, text=True, timeout=600, env=environment)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith(
        "error: no config experiment=dip_denois (did you mean experiment=dip_denoise?)")
