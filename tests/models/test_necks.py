"""IDA-Up / DLA-Up: bilinear initialisation, fused output shapes and channels."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from visionzoo.models.necks import DLAUp, IDAUp, bilinear_upsampler


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_upsampler_starts_as_bilinear_interpolation(factor):
    x = torch.randn(1, 3, 8, 8)
    ours = bilinear_upsampler(3, factor)(x)
    reference = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    assert ours.shape == reference.shape == (1, 3, 8 * factor, 8 * factor)
    inner = slice(factor, -factor)  # borders differ: the transposed conv zero-pads, interpolate clamps
    torch.testing.assert_close(ours[..., inner, inner], reference[..., inner, inner])


def test_upsampler_keeps_constants_inside():
    ones = bilinear_upsampler(2, 4)(torch.ones(1, 2, 6, 6))
    torch.testing.assert_close(ones[..., 4:-4, 4:-4], torch.ones(1, 2, 16, 16))


def _pyramid(channels, strides, size=64, batch=2):
    return [torch.randn(batch, c, size // s, size // s) for c, s in zip(channels, strides)]


@pytest.mark.parametrize("out_stride, channels_out, stages", [(2, 32, 4), (4, 64, 3), (8, 128, 2), (32, 512, 0)])
def test_dlaup_output_stride_and_channels(out_stride, channels_out, stages):
    channels, strides = [32, 64, 128, 256, 512], [2, 4, 8, 16, 32]
    neck = DLAUp(channels, strides, out_stride=out_stride)
    out = neck(_pyramid(channels, strides))
    assert neck.out_channels == channels_out and len(neck.stages) == stages
    assert out.shape == (2, channels_out, 64 // out_stride, 64 // out_stride)


def test_dlaup_stage_structure_follows_the_paper():
    # Deepest first: stage 0 merges levels 16/32, the last stage merges the out_stride level with all the rest.
    neck = DLAUp([64, 128, 256, 512], [4, 8, 16, 32], out_stride=4)
    assert [len(stage.nodes) for stage in neck.stages] == [1, 2, 3]
    assert [stage.nodes[0][0].out_channels for stage in neck.stages] == [256, 128, 64]
    ups = [[m.stride[0] if hasattr(m, "stride") else 1 for m in stage.upsamplers] for stage in neck.stages]
    assert ups == [[1, 2], [1, 2, 2], [1, 2, 2, 2]]


def test_dlaup_rejects_unknown_stride():
    with pytest.raises(ValueError, match="out_stride 3 is not one of"):
        DLAUp([32, 64], [2, 4], out_stride=3)


@pytest.mark.parametrize("node", ["concat", "add"])
def test_idaup_nodes(node):
    ida = IDAUp(16, [16, 32, 64], [1, 2, 4], node=node)
    outs = ida([torch.randn(1, 16, 16, 16), torch.randn(1, 32, 8, 8), torch.randn(1, 64, 4, 4)])
    assert [tuple(o.shape) for o in outs] == [(1, 16, 16, 16)] * 2
    assert ida.nodes[0][0].in_channels == (32 if node == "concat" else 16)


def test_dlaup_pyramid_for_deep_supervision():
    channels, strides = [32, 64, 128, 256, 512], [2, 4, 8, 16, 32]
    neck = DLAUp(channels, strides, out_stride=2)
    outs = neck.forward_pyramid(_pyramid(channels, strides))
    assert neck.pyramid_channels == [256, 128, 64, 32] and neck.pyramid_strides == [16, 8, 4, 2]
    assert [tuple(o.shape) for o in outs] == [(2, 256, 4, 4), (2, 128, 8, 8), (2, 64, 16, 16), (2, 32, 32, 32)]


def test_fixed_bilinear_upsampling_matches_interpolate():
    import torch.nn.functional as F

    from visionzoo.models.necks import make_upsampler

    x = torch.rand(1, 3, 5, 7)
    assert torch.equal(make_upsampler(3, 4, "bilinear")(x), F.interpolate(x, scale_factor=4, mode="bilinear"))
    assert isinstance(make_upsampler(3, 1, "bilinear"), torch.nn.Identity)
    fixed = DLAUp([8, 16, 32], [1, 2, 4], out_stride=1, upsample="bilinear")
    assert not [m for m in fixed.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    with pytest.raises(ValueError, match="upsample must be one of"):
        make_upsampler(3, 2, "cubic")
