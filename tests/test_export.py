"""ONNX export of BEN models: the graph takes any batch size and any allowed height and width (onnxruntime matches
PyTorch at three sizes, none of them the traced one, and two batch sizes), for the DLA BENs and the multi-view
Swin networks (BEN2, BEN v1, MVANet) alike. DHD models (DHD-S, the two-frame stereo DHD-M): standard operators
only, onnxruntime matches PyTorch for another batch size and another camera geometry than the traced ones."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

import visionzoo
from visionzoo.errors import ConfigError
from dataclasses import asdict

from tests.helpers.deterministic import deterministic_state_dict
from visionzoo.data.synthetic_occ3d import rig_example
from visionzoo.export import OCCUPANCY_INPUTS, OUTPUT_NAMES, export_occupancy_onnx, export_onnx, size_multiple
from visionzoo.export import main as export_main
from visionzoo.geometry import SYNTHETIC_GRID

#: (model, example size traced, the sizes then run): the DLA BENs with a Refiner take multiples of 64, the
#: multi-view networks multiples of 128 (at 128 and 384 x 256 MCLM's pools include empty ones; at 256 not).
CASES = [
    ("ben_tiny", 128, [(64, 64), (128, 192), (320, 128)]),
    pytest.param(("ben2_base", 256, [(128, 128), (384, 256), (256, 512)]), marks=pytest.mark.slow),  # 30 s
    pytest.param(("mvanet", 256, [(384, 128)]), marks=pytest.mark.slow),
]


@pytest.fixture(scope="module", params=CASES, ids=lambda case: case[0])
def exported(request, tmp_path_factory):
    name, example, sizes = request.param
    torch.manual_seed(0)
    model = visionzoo.create_model(name).eval()
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / f"{name}.onnx", input_size=(example, example))
    return model, sizes, onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("batch", [1, 2])
def test_onnx_matches_pytorch_at_any_allowed_size(exported, batch):
    model, sizes, session = exported
    assert [i.name for i in session.get_inputs()] == ["image"]
    assert [o.name for o in session.get_outputs()] == list(OUTPUT_NAMES)
    for height, width in sizes:
        x = torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            expected = model(x)
        outputs = session.run(None, {"image": x.numpy()})
        for name, value in zip(OUTPUT_NAMES, outputs):
            assert value.shape == (batch, 1, height, width)
            np.testing.assert_allclose(value, expected[name].numpy(), atol=1e-4, rtol=1e-4, err_msg=f"{height}x{width}")


def test_example_size_must_follow_the_size_rule(tmp_path, capsys):
    assert size_multiple(visionzoo.create_model("ben_tiny")) == 64  # the Refiner's context DLA at half resolution
    assert size_multiple(visionzoo.create_model("ben2_refined")) == 128  # the Base's rule wins over the Refiner's
    with pytest.raises(ConfigError, match="example size 100x100 must be a multiple of 64"):
        export_onnx(visionzoo.create_model("ben_tiny"), tmp_path / "x.onnx", input_size=(100, 100))
    with pytest.raises(SystemExit) as exit_info:  # the command line: one error line, status 2, no file
        export_main(["--model", "ben_tiny", "--out", str(tmp_path / "y.onnx"), "--size", "100"])
    assert exit_info.value.code == 2 and not (tmp_path / "y.onnx").exists()
    assert capsys.readouterr().err == ("error: the example size 100x100 must be a multiple of 64 (the model's size "
                                       "rule); pick another --size\n")


@pytest.mark.slow  # 15-30 s each: the export traces the whole network
@pytest.mark.parametrize("name", ["dhd_s", "dhd_m"])
def test_occupancy_export_runs_in_onnxruntime_with_standard_operators_only(name, tmp_path):
    """Pooling, lifting, stereo matching and DCN in standard ONNX operators; the graph follows its geometry inputs
    (a BEV flip and another image crop than traced) and its batch size. The published networks on the synthetic
    worlds' 50 x 50 grid (Occ3D's 200 x 200 makes no other graph, only a slower one)."""
    size, frames = (32, 64), visionzoo.model_card(name).preprocessing.frames
    model = visionzoo.create_model(name, input_size=size, grid=asdict(SYNTHETIC_GRID)).eval()
    model.load_state_dict(deterministic_state_dict(model.state_dict()))
    path = export_occupancy_onnx(model, tmp_path / f"{name}.onnx", size, frames)
    graph = onnx.load(str(path)).graph
    assert {node.domain for node in graph.node} == {""}  # no custom operator domain
    assert {"DeformConv", "ScatterElements", "NonZero"} <= {node.op_type for node in graph.node}
    assert ("GridSample" in {node.op_type for node in graph.node}) == (frames > 1)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    torch.manual_seed(0)
    images, intrinsics, cam2ego, post, bda = rig_example(size, frames, batch=2)  # traced with a batch of 1
    images[1] = images[0]
    post[1, :, 1, 2] += 5.0  # the second sample: the same images cropped 5 rows lower and mirrored in x
    bda[1] = torch.diag(torch.tensor([-1.0, 1.0, 1.0]))
    inputs = (images, intrinsics, cam2ego, post, bda)
    with torch.no_grad():
        expected = model(*inputs)["logits"].numpy()
    logits = session.run(None, {k: v.numpy() for k, v in zip(OCCUPANCY_INPUTS, inputs)})[0]
    assert logits.shape == expected.shape == (2, *model.grid.shape, 18)
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=0)
    assert np.array_equal(logits.argmax(-1), expected.argmax(-1))
    moved = np.abs(expected[1] - expected[0]).max()  # the other geometry moves the logits, and the graph moved
    assert moved > 100 * np.abs(logits - expected).max()  # with them (with the traced geometry baked in it would not)
