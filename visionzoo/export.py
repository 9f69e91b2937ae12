"""ONNX export of BEN models (the zoo's DLA BENs, ``ben2_base``, ``ben_base``, ``mvanet``, ``ben2_refined``).

The exported graph takes ``image``: ``(N, 3, H, W)`` float32, ImageNet-normalised RGB, and returns ``alpha``,
``base`` and ``confidence``, each ``(N, 1, H, W)`` in [0, 1]. Batch size, height and width are free; height and
width must be multiples of the model's :func:`size_multiple` (the multi-view Swin networks: 128; the DLA BENs with
a Refiner: 64), which the graph does not check. Resize beforehand with the model card's filter (Lanczos for BEN,
bilinear for MVANet).

The graph is traced by PyTorch's TorchScript-based exporter (``dynamo=False``), which records the shape arithmetic
as ONNX operators: ``torch.export`` (``dynamo=True``) needed 3 minutes for an 8-block Swin and produced a graph
that failed at sizes other than the traced one (see docs/ben.md), against 9 seconds here for BEN2's 24 blocks.
The networks' forward passes are written so that traced sizes stay free (``visionzoo.models.ben2``: slices instead
of ``unflatten``/``chunk``, pooling as matrices, integer rounding).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from visionzoo.errors import ConfigError
from visionzoo.files import atomic_write

OUTPUT_NAMES = ("alpha", "base", "confidence")
#: The size rule of networks that declare none (a DLA's stride, 32).
DEFAULT_SIZE_MULTIPLE = 32


def size_multiple(model: nn.Module) -> int:
    """The multiple of which height and width must be: the largest ``size_multiple`` a submodule declares (the
    multi-view networks: 128; the DLA BENs' Refiner: 64), else :data:`DEFAULT_SIZE_MULTIPLE`."""
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
    model: nn.Module, path: str | os.PathLike, input_size: tuple[int, int] | None = None, opset: int = 18
) -> Path:
    """Write ``model`` (eval mode, CPU, fp32) to an ONNX file whose batch size, height and width are free (height
    and width multiples of :func:`size_multiple`). ``input_size`` is the example traced (a batch of 2), a multiple
    too; by default twice the multiple (tracing keeps every intermediate: BEN2 traced at 1024 x 1024 did not fit in
    24 GB, at 256 x 256 the command peaks at 4.4 GB, and the graph is the same). Returns the path."""
    multiple = size_multiple(model)
    input_size = input_size or (2 * multiple, 2 * multiple)
    if input_size[0] % multiple or input_size[1] % multiple:
        raise ConfigError(f"the example size {input_size[0]}x{input_size[1]} must be a multiple of {multiple} "
                          "(the model's size rule); pick another --size")
    path = Path(path)
    wrapper = _TupleOutputs(model.eval().cpu().float()).eval()
    free = {0: "batch", 2: "height", 3: "width"}

    def write(partial: Path) -> None:
        torch.onnx.export(
            wrapper, (torch.randn(2, 3, *input_size),), str(partial), dynamo=False, input_names=["image"],
            output_names=list(OUTPUT_NAMES), dynamic_axes={"image": free, **{name: free for name in OUTPUT_NAMES}},
            opset_version=opset,
        )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the traced size checks (the sizes stay free)
        warnings.filterwarnings("ignore", module=r"torch\.onnx")  # the exporter's notes on its own passes
        warnings.filterwarnings("ignore", "You are using the legacy TorchScript-based ONNX export")  # chosen above
        atomic_write(path, write)
    return path


def main(argv: list[str] | None = None) -> None:
    """``python -m visionzoo.export --model ben_dla34 --weights last.ckpt --out ben.onnx [--size 256]``."""
    import argparse
    import sys

    from visionzoo.errors import VisionZooError
    from visionzoo.models.factory import create_model
    from visionzoo.models.weights import load_weights

    parser = argparse.ArgumentParser(description="Export a BEN model to ONNX (free batch size, height and width).")
    parser.add_argument("--model", default="ben_dla34", help="registered model name, e.g. ben_dla34 or ben2_base")
    parser.add_argument("--weights", default=None,
                        help=".ckpt/.safetensors/.pth file (e.g. BEN2_Base.pth), save_pretrained folder or hf-hub: name")
    parser.add_argument("--out", required=True, help="output .onnx file")
    parser.add_argument("--size", type=int, default=None,
                        help="square size traced (default: twice the model's size multiple); the graph takes any allowed size")
    args = parser.parse_args(argv)
    try:
        model = create_model(args.model)
        if args.weights:
            load_weights(model, args.weights)
        path = export_onnx(model, args.out, (args.size, args.size) if args.size else None)
    except VisionZooError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {path} (input 'image' N x 3 x H x W, H and W multiples of {size_multiple(model)}; outputs "
          f"{', '.join(OUTPUT_NAMES)})")


if __name__ == "__main__":
    main()
