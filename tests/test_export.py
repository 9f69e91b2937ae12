"""ONNX export of BEN models: the DLA BENs' graph takes any batch size and any allowed height and width (onnxruntime
matches PyTorch at three sizes and two batch sizes); the multi-view networks' any batch size at one image size."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest
import torch

import visionzoo
from visionzoo.errors import ConfigError
from visionzoo.export import OUTPUT_NAMES, export_onnx, exports_any_size, size_multiple
from visionzoo.export import main as export_main

#: (model, example size traced, the sizes then run): the DLA BENs with a Refiner take multiples of 64; BEN2 is
#: exported at one size.
CASES = [
    ("ben_tiny", 128, [(64, 64), (128, 192), (320, 128)]),
    pytest.param(("ben2_base", 256, [(256, 256)]), marks=pytest.mark.slow),  # BEN2: ~2.5 min to export
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


def test_which_graphs_keep_height_and_width_free():
    assert exports_any_size(visionzoo.create_model("ben_dla34"))
    assert not any(exports_any_size(visionzoo.create_model(name)) for name in ("ben2_base", "mvanet", "ben2_refined"))


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


def test_swin_window_attention_exports_with_a_dynamic_batch(tmp_path):
    """The BEN2 backbone's attention (fused eagerly, explicit when exported) in seconds rather than BEN2's minutes."""
    from visionzoo.models.swin import SwinBackbone

    class Maps(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.swin = SwinBackbone(embed_dim=16, depths=(2, 2), num_heads=(1, 2), window=4, drop_path_rate=0.0)

        def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return tuple(self.swin(image))

    model = Maps().eval()
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.onnx.export(model, (torch.randn(2, 3, 40, 40),), dynamo=True, input_names=["image"],
                                dynamic_shapes={"image": {0: batch}})
    program.save(str(tmp_path / "swin.onnx"))
    session = onnxruntime.InferenceSession(str(tmp_path / "swin.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, 40, 40, generator=torch.Generator().manual_seed(0))  # a batch the export never saw
    with torch.no_grad():
        expected = model(x)
    for value, reference in zip(session.run(None, {"image": x.numpy()}), expected):
        np.testing.assert_allclose(value, reference.numpy(), atol=1e-5, rtol=1e-5)
