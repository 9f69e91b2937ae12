"""Regenerate ``tests/golden/ben_base.npz``, ``mvanet.npz`` and ``mvanet_keys.json`` from the published code (run by
hand, not by the tests).

BEN v1 Base: its ``model.py`` is published beside the weights on the Hugging Face hub (PramaLLC/BEN), which the
build machines cannot reach; a copy is vendored in github chflame163/ComfyUI_LayerStyle, ``py/ben_ultra.py`` at
commit a267afb (the model code, followed by ComfyUI nodes). MVANet: github qianyu-dlut/MVANet at edecec5, whose
code places tensors on CUDA by hand and imports ``mmdet`` for a logger; both are patched out for a CPU run:

    git clone https://github.com/qianyu-dlut/MVANet /tmp/parity/MVANet
    sed -i "s/device='cuda'/device='cpu'/g; s/\\.cuda()//g" /tmp/parity/MVANet/model/MVANet.py
    mkdir -p /tmp/parity/stubs/mmdet && touch /tmp/parity/stubs/mmdet/__init__.py
    printf 'import logging\\ndef get_root_logger(*a, **k):\\n    return logging.getLogger("mmdet")\\n' \\
        > /tmp/parity/stubs/mmdet/utils.py
    git clone https://github.com/chflame163/ComfyUI_LayerStyle /tmp/parity/LayerStyle
    git -C /tmp/parity/LayerStyle show a267afb:py/ben_ultra.py | sed '/ComfyUI Nodes/,$d' > /tmp/parity/ben_v1_model.py
    pip install --target /tmp/parity/deps einops
    PYTHONPATH=/tmp/parity/deps:/tmp/parity/stubs .venv/bin/python tests/golden/make_multiview_golden.py \\
        --mvanet /tmp/parity/MVANet --ben-v1 /tmp/parity/ben_v1_model.py

Both published modules are filled with :func:`tests.helpers.deterministic.deterministic_state_dict` (BatchNorm
statistics too) and run in fp32 on the CPU on ``golden_input((1, 3, 384, 384))`` (both published forwards take
one image at a time). Each ``.npz`` holds, as float32: ``mask_sub`` (the sigmoid mask every 8th pixel from (3, 3),
``(1, 1, 48, 48)``), ``mask_mean`` and ``mask_std`` (``(1,)``). ``mvanet_keys.json`` is the state dict of the
official training class ``MVANet`` (names, shapes, dtypes, in order); BEN v1's is checked to equal
``ben2_base_keys.json`` (the script stops if it does not).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.helpers.deterministic import deterministic_state_dict, golden_input  # noqa: E402

GOLDEN = Path(__file__).parent
SIZE, STEP = 384, 8


def key_list(module: torch.nn.Module) -> list[list]:
    return [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in module.state_dict().items()]


def save_mask(name: str, mask: torch.Tensor) -> None:
    np.savez_compressed(
        GOLDEN / f"{name}.npz",
        mask_sub=mask[..., STEP // 2 - 1 :: STEP, STEP // 2 - 1 :: STEP].numpy(),
        mask_mean=mask.mean(dim=(1, 2, 3)).numpy(),
        mask_std=mask.std(dim=(1, 2, 3)).numpy(),
    )
    print(f"wrote {name}.npz: mask mean {mask.mean():.5f}, std {mask.std():.5f}")


def ben_v1(path: Path) -> None:
    spec = importlib.util.spec_from_file_location("ben_v1_model", path)
    published = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(published)
    model = published.BEN_Base().eval()
    if key_list(model) != json.loads((GOLDEN / "ben2_base_keys.json").read_text()):
        sys.exit("BEN v1's state dict differs from BEN2's: ben_base needs its own key list")
    model.load_state_dict(deterministic_state_dict(model.state_dict()), strict=True)
    with torch.no_grad():
        save_mask("ben_base", model(golden_input((1, 3, SIZE, SIZE))).float())  # its forward ends in sigmoid


def mvanet(checkout: Path) -> None:
    sys.path.insert(0, str(checkout))
    import model.MVANet as published
    import model.SwinTransformer as swin

    # SwinB(pretrained=True) reads an ImageNet file; the deterministic weights replace it anyway.
    published.SwinB = lambda pretrained=True: swin.SwinTransformer(
        embed_dim=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32], window_size=12)
    model = published.MVANet().eval()
    model.load_state_dict(deterministic_state_dict(model.state_dict()), strict=True)
    with torch.no_grad():
        save_mask("mvanet", torch.sigmoid(model(golden_input((1, 3, SIZE, SIZE)))).float())
    keys = key_list(model)
    (GOLDEN / "mvanet_keys.json").write_text("[\n" + ",\n".join(json.dumps(k) for k in keys) + "\n]\n")
    print(f"wrote mvanet_keys.json: {len(keys)} keys, {sum(p.numel() for p in model.parameters())} parameters")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mvanet", type=Path, required=True, help="a checkout of github.com/qianyu-dlut/MVANet")
    parser.add_argument("--ben-v1", type=Path, required=True, help="BEN v1's published model.py (a copy)")
    args = parser.parse_args()
    ben_v1(args.ben_v1)
    mvanet(args.mvanet)


if __name__ == "__main__":
    main()
