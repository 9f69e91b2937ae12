"""ONNX export of BEN models (the zoo's Base + Refiner, ``ben2_base``, ``ben2_refined``) with a dynamic batch axis.

The exported graph takes ``image``: ``(N, 3, H, W)`` float32, ImageNet-normalised RGB, at the fixed ``H x W`` it was
exported with (1024 x 1024 for the registered BEN models), and returns ``alpha``, ``base`` and ``confidence``,
each ``(N, 1, H, W)`` in [0, 1]. The batch size ``N`` is free. The image is resized to ``H x W`` beforehand with
the model card's filter (Lanczos for BEN2).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

OUTPUT_NAMES = ("alpha", "base", "confidence")


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
    """Write ``model`` (eval mode, CPU, fp32) to an ONNX file with a dynamic batch axis; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = _TupleOutputs(model.eval().cpu().float()).eval()
    example = torch.randn(2, 3, *input_size)
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.onnx.export(
        wrapper,
        (example,),
        dynamo=True,
        input_names=["image"],
        output_names=list(OUTPUT_NAMES),
        dynamic_shapes={"image": {0: batch}},
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

    parser = argparse.ArgumentParser(description="Export a BEN model to ONNX (dynamic batch, fixed image size).")
    parser.add_argument("--model", default="ben_dla34", help="registered model name, e.g. ben_dla34 or ben2_base")
    parser.add_argument("--weights", default=None,
                        help=".ckpt/.safetensors/.pth file (e.g. BEN2_Base.pth), save_pretrained folder or hf-hub: name")
    parser.add_argument("--out", required=True, help="output .onnx file")
    parser.add_argument("--size", type=int, default=None, help="square input size (default: the model card's)")
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
    print(f"wrote {path} (input 'image' N x 3 x {size} x {size}, outputs {', '.join(OUTPUT_NAMES)})")


if __name__ == "__main__":
    main()
