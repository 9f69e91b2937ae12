"""Regenerate ``tests/golden/ben2_base.npz`` from the published BEN2 code (run by hand, not by the tests).

    git clone https://github.com/PramaLLC/BEN2 /tmp/BEN2          # commit 41efc69 was used
    pip install --target /tmp/ben2deps einops                      # the one package BEN2.py needs beyond ours
    PYTHONPATH=/tmp/ben2deps .venv/bin/python tests/golden/make_ben2_golden.py --official /tmp/BEN2

It builds the official ``BEN_Base``, fills it with :func:`tests.helpers.deterministic.deterministic_state_dict`,
runs it (fp32, CPU) on ``golden_input((2, 3, 384, 384))`` and stores, as float32:

* ``mask_sub``: the sigmoid mask sampled every 8th pixel from (3, 3): ``(2, 1, 48, 48)``;
* ``mask_mean`` / ``mask_std``: per-image mean and standard deviation of the full mask, ``(2,)`` each;
* ``features_0`` .. ``features_4``: channel means of the backbone's five maps for the first image's top-left view;
* ``fg_image`` / ``fg_mask`` / ``fg_out``: ``refine_foreground_process`` (blur-fusion foreground colours) of a
  deterministic 96 x 128 RGB image and soft mask, uint8.

and ``tests/golden/ben2_base_keys.json``: the published state dict's names, shapes and dtypes, in order.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.helpers.deterministic import deterministic_state_dict, golden_input  # noqa: E402

GOLDEN = Path(__file__).with_name("ben2_base.npz")
KEYS = Path(__file__).with_name("ben2_base_keys.json")
SIZE, BATCH, STEP = 384, 2, 8


def foreground_case() -> tuple[np.ndarray, np.ndarray]:
    """A 96 x 128 RGB image (smooth colour ramps plus noise) and a soft disc mask, both uint8."""
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:96, 0:128]
    image = np.stack([xs * 2, ys * 2, 255 - xs - ys], axis=-1) + rng.integers(0, 30, (96, 128, 3))
    distance = np.hypot(ys - 48, xs - 64)
    mask = np.clip((40 - distance) * 32, 0, 255)
    return np.clip(image, 0, 255).astype(np.uint8), mask.astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", required=True, help="a checkout of github.com/PramaLLC/BEN2")
    args = parser.parse_args()
    sys.path.insert(0, args.official)
    import BEN2  # the published module
    from PIL import Image

    model = BEN2.BEN_Base().eval()
    model.load_state_dict(deterministic_state_dict(model.state_dict()), strict=True)
    x = golden_input((BATCH, 3, SIZE, SIZE))
    mask = model(x).float()
    first_view = BEN2.image2patches(x[:1])[:1]
    with torch.no_grad():
        features = model.backbone(first_view)
    image, soft = foreground_case()
    fg_out = np.asarray(BEN2.refine_foreground_process(Image.fromarray(image), Image.fromarray(soft)))
    np.savez_compressed(
        GOLDEN,
        mask_sub=mask[..., STEP // 2 - 1 :: STEP, STEP // 2 - 1 :: STEP].numpy(),
        mask_mean=mask.mean(dim=(1, 2, 3)).numpy(),
        mask_std=mask.std(dim=(1, 2, 3)).numpy(),
        **{f"features_{i}": f[0].mean(0).numpy() for i, f in enumerate(features)},
        fg_image=image, fg_mask=soft, fg_out=fg_out,
    )
    keys = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in model.state_dict().items()]
    KEYS.write_text("[\n" + ",\n".join(json.dumps(k) for k in keys) + "\n]\n")
    print(f"wrote {GOLDEN}: mask mean {mask.mean():.5f}, std {mask.std():.5f}; {KEYS}: {len(keys)} keys")


if __name__ == "__main__":
    main()
