"""ONNX export of BEN models: onnxruntime matches PyTorch at batch 1 and 2 (dynamic batch axis)."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest
import torch

import visionzoo
from visionzoo.export import OUTPUT_NAMES, export_onnx

CASES = [("ben_tiny", 96), pytest.param(("ben2_base", 256), marks=pytest.mark.slow)]  # BEN2: ~2.5 min to export


@pytest.fixture(scope="module", params=CASES, ids=lambda case: case[0])
def exported(request, tmp_path_factory):
    name, size = request.param
    torch.manual_seed(0)
    model = visionzoo.create_model(name).eval()
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / f"{name}.onnx", input_size=(size, size))
    return model, size, onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("batch", [1, 2])
def test_onnx_matches_pytorch(exported, batch):
    model, size, session = exported
    assert [i.name for i in session.get_inputs()] == ["image"]
    assert [o.name for o in session.get_outputs()] == list(OUTPUT_NAMES)
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(batch))
    with torch.no_grad():
        expected = model(x)
    outputs = session.run(None, {"image": x.numpy()})
    for name, value in zip(OUTPUT_NAMES, outputs):
        assert value.shape == (batch, 1, size, size)
        np.testing.assert_allclose(value, expected[name].numpy(), atol=1e-4, rtol=1e-4)


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
