"""A real ``visionzoo serve`` subprocess on 127.0.0.1 (ben_tiny with seeded weights saved to a file) and the images
the tests send."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from skimage import data as skdata

import visionzoo
from visionzoo.serve.launch import RunningServer, launch

REPO = Path(__file__).resolve().parents[2]


def start_server(folder: Path, overrides: list[str]) -> RunningServer:
    """A server on a free port in ``folder`` with one OpenMP thread (the tests run beside it)."""
    return launch(overrides, folder, threads=1)


@pytest.fixture(scope="session")
def serve_folder(tmp_path_factory) -> Path:
    """Weights (ben_tiny, seed 0) and test images: three photos of different sizes and a 16-bit PNG."""
    folder = tmp_path_factory.mktemp("serve")
    torch.manual_seed(0)
    save_file({k: v.contiguous() for k, v in visionzoo.create_model("ben_tiny").state_dict().items()},
              str(folder / "tiny.safetensors"))
    images = folder / "images"
    images.mkdir()
    sources = {"astronaut": skdata.astronaut()[::6, ::6], "coffee": skdata.coffee()[::5, ::5],
               "chelsea": skdata.chelsea()[::4, ::4]}
    for name, rgb in sources.items():
        cv2.imwrite(str(images / f"{name}.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    deep = (skdata.astronaut()[::8, ::8].astype(np.uint16) * 257)
    cv2.imwrite(str(images / "deep16.png"), cv2.cvtColor(deep, cv2.COLOR_RGB2BGR))
    return folder


#: Every test server: the seeded weights, a 64-pixel network input, DIP jobs fitted briefly.
BASE_OVERRIDES = ["model=ben_tiny", "ckpt_path=tiny.safetensors", "serve.input_size=64", "serve.max_upload_mb=1",
                  "serve.denoise.fit.iterations=20", "serve.denoise.fit.early_stop=null"]


@pytest.fixture(scope="session")
def server(serve_folder):
    running = start_server(serve_folder, [*BASE_OVERRIDES, "serve.jobs_dir=jobs", "serve.max_batch=8",
                                          "serve.batch_window_ms=50", "+serve.models.ben_dla34=null"])
    yield running
    running.stop()
