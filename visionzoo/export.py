"""ONNX export of BEN models (image -> alpha matte) and DHD models (cameras -> occupancy logits).

BEN (the zoo's DLA BENs, ``ben2_base``, ``ben_base``, ``mvanet``, ``ben2_refined``): the graph takes ``image``:
``(N, 3, H, W)`` float32, ImageNet-normalised RGB, and returns ``alpha``, ``base`` and ``confidence``, each
``(N, 1, H, W)`` in [0, 1]. Batch size, height and width are free; height and width must be multiples of the
model's :func:`size_multiple` (the multi-view Swin networks: 128; the DLA BENs with a Refiner: 64), which the graph
does not check. Resize beforehand with the model card's filter (Lanczos for BEN, bilinear for MVANet).

DHD (``dhd_s``, ``dhd_m``, ``dhd_l``, the zoo's ``dhd_*``; :func:`export_occupancy_onnx`): the graph takes the
model's inputs, ``images`` ``(B, N, 3, H, W)`` (multi-frame models: ``(B, T, N, 3, H, W)``, T from the card's
``preprocessing.frames``), ``intrinsics`` ``(B, N, 3, 3)``, ``cam2ego`` ``(B, N, 4, 4)`` (multi-frame: ``(B, T,
N, 4, 4)``), ``post`` ``(B, N, 3, 3)`` and ``bda`` ``(B, 3, 3)``, and returns ``logits`` ``(B, X, Y, Z, classes)``.
The batch size is free; cameras and the image size are the traced ones. Everything runs in standard ONNX
operators, no plug-in: the lifting and the cost-volume geometry in-graph (3 x 3 inverses as adjugates, the 4 x 4
camera motion as a rigid inverse), the BEV pooling as a summing ``ScatterElements`` over the in-graph voxel
indices, the stereo matching with ``GridSample``, DCN as opset 19's ``DeformConv``.

The graphs are traced by PyTorch's TorchScript-based exporter (``dynamo=False``), which records the shape
arithmetic as ONNX operators: ``torch.export`` (``dynamo=True``) needed 3 minutes for an 8-block Swin and produced a
graph that failed at sizes other than the traced one (see docs/ben.md), against 9 seconds here for BEN2's 24
blocks. The BEN forward passes are written so that traced sizes stay free (``visionzoo.models.ben2``: slices
instead of ``unflatten``/``chunk``, pooling as matrices, integer rounding).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn
from torch.onnx import symbolic_helper

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


OCCUPANCY_INPUTS = ("images", "intrinsics", "cam2ego", "post", "bda")
#: ONNX's DeformConv (for the DHD HeightNet's DCN) arrived in opset 19.
OCCUPANCY_OPSET = 19


@symbolic_helper.parse_args("v", "v", "v", "v", "v", "i", "i", "i", "i", "i", "i", "i", "i", "b")
def _deform_conv2d(g, x, weight, offset, mask, bias, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w,
                   groups, offset_groups, use_mask):
    """``torchvision::deform_conv2d`` as ONNX ``DeformConv`` (the same offset layout; torchvision has no symbolic)."""
    kernel = symbolic_helper._get_tensor_sizes(weight)[2:]
    inputs = [x, weight, offset, bias] + ([mask] if use_mask else [])
    return g.op("DeformConv", *inputs, dilations_i=[dilation_h, dilation_w], group_i=groups, kernel_shape_i=kernel,
                offset_group_i=offset_groups, pads_i=[pad_h, pad_w, pad_h, pad_w], strides_i=[stride_h, stride_w])


class _Logits(nn.Module):
    """ONNX graphs return tensors: a DHD's output dict as its logits."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor, intrinsics: torch.Tensor, cam2ego: torch.Tensor, post: torch.Tensor,
                bda: torch.Tensor) -> torch.Tensor:
        return self.net(images, intrinsics, cam2ego, post, bda)["logits"]


def export_occupancy_onnx(model: nn.Module, path: str | os.PathLike, input_size: tuple[int, int],
                          frames: int = 1) -> Path:
    """Write a DHD ``model`` (eval mode, CPU, fp32) to an ONNX file (see the module docstring) traced on the six
    cameras of the nuScenes-like rig at ``input_size`` (height, width), with ``frames`` frames per sample (the
    model card's ``preprocessing.frames``). Returns the path."""
    from visionzoo.data.synthetic_occ3d import rig_example

    path = Path(path)
    wrapper = _Logits(model.eval().cpu().float()).eval()
    example = rig_example(tuple(input_size), frames)
    batch_free = {name: {0: "batch"} for name in (*OCCUPANCY_INPUTS, "logits")}
    torch.onnx.register_custom_op_symbolic("torchvision::deform_conv2d", _deform_conv2d, OCCUPANCY_OPSET)

    def write(partial: Path) -> None:
        torch.onnx.export(wrapper, example, str(partial), dynamo=False, input_names=list(OCCUPANCY_INPUTS),
                          output_names=["logits"], dynamic_axes=batch_free, opset_version=OCCUPANCY_OPSET)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the traced size checks
        warnings.filterwarnings("ignore", module=r"torch\.onnx")
        warnings.filterwarnings("ignore", "You are using the legacy TorchScript-based ONNX export")
        atomic_write(path, write)
    return path


def main(argv: list[str] | None = None) -> None:
    """``python -m visionzoo.export --model ben_dla34 --weights last.ckpt --out ben.onnx [--size 256]`` (or a DHD:
    ``--model dhd_m --weights DHD-M.pth --out dhd_m.onnx [--size 256 704]``)."""
    import argparse
    import sys

    from visionzoo.errors import VisionZooError
    from visionzoo.models.factory import create_model
    from visionzoo.models.registry import model_card
    from visionzoo.models.weights import load_weights

    parser = argparse.ArgumentParser(description="Export a BEN (image -> matte) or DHD (cameras -> occupancy) model "
                                                 "to ONNX.")
    parser.add_argument("--model", default="ben_dla34", help="registered model name, e.g. ben2_base or dhd_m")
    parser.add_argument("--weights", default=None,
                        help=".ckpt/.safetensors/.pth file (e.g. BEN2_Base.pth), save_pretrained folder or hf-hub: name")
    parser.add_argument("--out", required=True, help="output .onnx file")
    parser.add_argument("--size", type=int, nargs="+", default=None,
                        help="size traced: BEN one side (default: twice the model's size multiple; the graph takes "
                             "any allowed size); DHD height and width (default: the model card's; fixed in the graph)")
    args = parser.parse_args(argv)
    try:
        model = create_model(args.model)
        if args.weights:
            load_weights(model, args.weights)
        card = model_card(args.model).preprocessing
        if model_card(args.model).task == "occupancy":
            size = tuple(args.size) if args.size else tuple(card.input_size[-2:])
            if len(size) != 2:
                raise ConfigError("--size takes the height and the width for an occupancy model, e.g. --size 256 704")
            path = export_occupancy_onnx(model, args.out, size, card.frames)
            shape = "B x T x 6 x 3 x H x W" if card.frames > 1 else "B x 6 x 3 x H x W"
            print(f"wrote {path} (inputs {', '.join(OCCUPANCY_INPUTS)}: images {shape} at {size[0]} x {size[1]}; "
                  "output logits B x X x Y x Z x classes)")
            return
        path = export_onnx(model, args.out, (args.size[0], args.size[0]) if args.size else None)
    except VisionZooError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {path} (input 'image' N x 3 x H x W, H and W multiples of {size_multiple(model)}; outputs "
          f"{', '.join(OUTPUT_NAMES)})")


if __name__ == "__main__":
    main()
