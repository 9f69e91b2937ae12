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
