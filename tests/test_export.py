"""ONNX export of BEN Base + Refiner: onnxruntime matches PyTorch at batch 1 and 2 (dynamic batch axis)."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest
import torch

import visionzoo
from visionzoo.export import OUTPUT_NAMES, export_onnx


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = visionzoo.create_model("ben_tiny").eval()
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / "ben.onnx", input_size=(96, 96))
    return model, onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("batch", [1, 2])
def test_onnx_matches_pytorch(exported, batch):
    model, session = exported
    assert [i.name for i in session.get_inputs()] == ["image"]
    assert [o.name for o in session.get_outputs()] == list(OUTPUT_NAMES)
    x = torch.randn(batch, 3, 96, 96, generator=torch.Generator().manual_seed(batch))
    with torch.no_grad():
        expected = model(x)
    outputs = session.run(None, {"image": x.numpy()})
    for name, value in zip(OUTPUT_NAMES, outputs):
        assert value.shape == (batch, 1, 96, 96)
        np.testing.assert_allclose(value, expected[name].numpy(), atol=1e-4, rtol=1e-4)
