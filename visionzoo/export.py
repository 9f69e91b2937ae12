"""ONNX export of BEN models (the zoo's DLA BENs, ``ben2_base``, ``ben_base``, ``mvanet``, ``ben2_refined``).

The exported graph takes ``image``: ``(N, 3, H, W)`` float32, ImageNet-normalised RGB, and returns ``alpha``,
``base`` and ``confidence``, each ``(N, 1, H, W)`` in [0, 1]. The batch size ``N`` is always free. The DLA BENs'
graph also takes any ``H`` and ``W`` that are multiples of :func:`size_multiple` (64: the Refiner's context DLA
runs at half resolution and strides 32) up to :data:`MAX_SIDE`. The multi-view Swin networks (BEN2, BEN v1,
MVANet) are exported at one ``H x W`` (a multiple of 128): traced with a free height and width, the Swin's window
padding and patch merging nest into size expressions that ``torch.export`` did not finish simplifying in 10
minutes (see docs/ben.md); export once per size you serve. The image is resized beforehand with the model card's
filter (Lanczos for BEN, bilinear for MVANet).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from visionzoo.errors import ConfigError

OUTPUT_NAMES = ("alpha", "base", "confidence")
#: The largest height or width an exported graph accepts, in pixels.
MAX_SIDE = 4096
#: The size rule of networks that declare none (a DLA's stride, 32).
DEFAULT_SIZE_MULTIPLE = 32


def exports_any_size(model: nn.Module) -> bool:
    """Whether the graph keeps height and width free: no submodule says ``exports_any_size = False``."""
    return all(getattr(m, "exports_any_size", True) for m in model.modules())


def size_multiple(model: nn.Module) -> int:
    """The multiple of which the exported height and width must be: the largest ``size_multiple`` a submodule
    declares (the multi-view networks: 128; the DLA BENs' Refiner: 64), else :data:`DEFAULT_SIZE_MULTIPLE`."""
    return max((getattr(m, "size_multiple", 0) for m in model.modules()), default=0) or DEFAULT_SIZE_MULTIPLE


class _TupleOutputs(nn.Module):
    """ONNX graphs return tuples: BEN's eval dict as (alpha, base, confidence)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.net(image)
        return tuple(out[name] for name in OUTPUT_NAMES)


def export_onnx(
    model: nn.Module, path: str | os.PathLike, input_size: tuple[int, int] = (1024, 1024), opset: int = 18
) -> Path:
    """Write ``model`` (eval mode, CPU, fp32) to an ONNX file with a free batch size and, where
    :func:`exports_any_size`, a free height and width (multiples of :func:`size_multiple`); ``input_size`` is the
    example traced (a multiple too), or the one size the graph takes. Returns the path."""
    multiple = size_multiple(model)
    if input_size[0] % multiple or input_size[1] % multiple:
        raise ConfigError(f"the example size {input_size[0]}x{input_size[1]} must be a multiple of {multiple} "
                          "(the model's size rule); pick another --size")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = _TupleOutputs(model.eval().cpu().float()).eval()
    example = torch.randn(2, 3, *input_size)
    batch = torch.export.Dim("batch", min=1, max=1024)
    axes: dict[int, object] = {0: batch}
    if exports_any_size(model):
        axes[2] = multiple * torch.export.Dim("rows", min=1, max=MAX_SIDE // multiple)
        axes[3] = multiple * torch.export.Dim("cols", min=1, max=MAX_SIDE // multiple)
    program = torch.onnx.export(
        wrapper,
        (example,),
        dynamo=True,
        input_names=["image"],
        output_names=list(OUTPUT_NAMES),
        dynamic_shapes={"image": axes},
        opset_version=opset,
        external_data=False,
    )
    program.save(str(path))
    return path


def main(argv: list[str] | None = None) -> None:
    """``python -m visionzoo.export --model ben_dla34 --weights last.ckpt --out ben.onnx [--size 1024]``."""
    import argparse
    import sys

    from visionzoo.errors import VisionZooError
    from visionzoo.models.factory import create_model
    from visionzoo.models.registry import resolve_preprocessing
    from visionzoo.models.weights import load_weights

    parser = argparse.ArgumentParser(description="Export a BEN model to ONNX (free batch size; the DLA BENs also "
                                                 "take any height and width).")
    parser.add_argument("--model", default="ben_dla34", help="registered model name, e.g. ben_dla34 or ben2_base")
    parser.add_argument("--weights", default=None,
                        help=".ckpt/.safetensors/.pth file (e.g. BEN2_Base.pth), save_pretrained folder or hf-hub: name")
    parser.add_argument("--out", required=True, help="output .onnx file")
    parser.add_argument("--size", type=int, default=None,
                        help="square size traced (default: the model card's); the DLA BENs' graph takes others too")
    args = parser.parse_args(argv)
    try:
        model = create_model(args.model)
        if args.weights:
            load_weights(model, args.weights)
        size = args.size or resolve_preprocessing(args.model).input_size[-1]
        path = export_onnx(model, args.out, (size, size))
    except VisionZooError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    sizes = (f"H and W multiples of {size_multiple(model)} up to {MAX_SIDE}" if exports_any_size(model)
             else f"H = W = {size}")
    print(f"wrote {path} (input 'image' N x 3 x H x W, {sizes}; outputs {', '.join(OUTPUT_NAMES)})")


if __name__ == "__main__":
    main()
