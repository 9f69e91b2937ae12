"""ONNX export of BEN models: the graph takes any batch size and any allowed height and width (onnxruntime matches
PyTorch at three sizes, none of them the traced one, and two batch sizes), for the DLA BENs and the multi-view
Swin networks (BEN2, BEN v1, MVANet) alike."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest
import torch

import visionzoo
from visionzoo.errors import ConfigError
from visionzoo.export import OUTPUT_NAMES, export_onnx, size_multiple
from visionzoo.export import main as export_main

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
