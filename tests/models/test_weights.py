"""Weights: safe reading, prefix handling, save/from_pretrained round trips, URLs with sha256, refusals."""

from __future__ import annotations

import functools
import http.server
import os
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import visionzoo
from visionzoo.errors import WeightsError
from visionzoo.models.weights import find_prefix, load_weights, read_state_dict, sha256_of


@pytest.fixture
def model():
    return visionzoo.create_model("dla_tiny_up", num_classes=3).eval()


def _same_outputs(a, b):
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return torch.equal(a(x), b(x))


def test_save_and_from_pretrained_round_trip(model, tmp_path):
    visionzoo.save_pretrained(model, tmp_path / "saved")
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == ["config.json", "model.safetensors"]
    rebuilt = visionzoo.from_pretrained(tmp_path / "saved").eval()
    assert rebuilt.classifier.out_channels == 3  # builder arguments travel in config.json
    assert _same_outputs(model, rebuilt)
    # create_model(pretrained=DIR) goes through the same loader.
    again = visionzoo.create_model("dla_tiny_up", pretrained=str(tmp_path / "saved"), num_classes=3).eval()
    assert _same_outputs(model, again)


def test_safetensors_file_round_trip(model, tmp_path):
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    fresh = visionzoo.create_model("dla_tiny_up", num_classes=3).eval()
    assert not _same_outputs(model, fresh)
    report = load_weights(fresh, path)
    assert report.clean and report.loaded == len(model.state_dict())
    assert _same_outputs(model, fresh)


def test_lightning_checkpoint_loads_into_bare_model(model, tmp_path):
    checkpoint = {
        "epoch": 3,
        "global_step": 120,
        "state_dict": {f"net.{k}": v for k, v in model.state_dict().items()},
        "hyper_parameters": {"lr": 0.001},
    }
    path = tmp_path / "last.ckpt"
    torch.save(checkpoint, path)
    fresh = visionzoo.create_model("dla_tiny_up", num_classes=3).eval()
    report = load_weights(fresh, path)
    assert report.prefix == "net." and report.clean
    assert _same_outputs(model, fresh)


def test_find_prefix():
    own = {"a.weight", "b.bias"}
    assert find_prefix(["module.a.weight", "module.b.bias"], own) == "module."
    assert find_prefix(["a.weight", "b.bias"], own) == ""
    assert find_prefix(["model.net.a.weight", "model.net.b.bias", "ema.x"], own) == "model.net."


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_code_executing_pickle_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": _RunsCode()}, path)
    with pytest.raises(WeightsError, match=r"refused to load .*evil\.pt: it holds pickled objects"):
        read_state_dict(path)
    assert not (tmp_path / "pwned").exists()


def test_checkpoint_of_another_model_is_an_error(model, tmp_path):
    visionzoo.save_pretrained(model, tmp_path / "seg")
    with pytest.raises(WeightsError, match=r"do not fit model 'dla34_up'.*shape-mismatched"):
        visionzoo.create_model("dla34_up", pretrained=str(tmp_path / "seg"))


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(WeightsError, match="weights not found"):
        read_state_dict(tmp_path / "nope.pt")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        read_state_dict(bad)
    truncated = tmp_path / "cut.pt"
    torch.save({"w": torch.zeros(100)}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:50])
    with pytest.raises(WeightsError, match="corrupt or truncated"):
        read_state_dict(truncated)


@pytest.fixture
def served(tmp_path):
    """An HTTP server on loopback that serves tmp_path/www."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_url_download_is_cached_and_hash_checked(model, served, monkeypatch):
    root, url = served
    visionzoo.save_pretrained(model, root / "saved")
    weights = root / "saved" / "model.safetensors"
    digest = sha256_of(weights)
    fresh = visionzoo.create_model("dla_tiny_up", num_classes=3).eval()
    load_weights(fresh, f"{url}/saved/model.safetensors", sha256=digest)
    assert _same_outputs(model, fresh)
    cached = list(Path(os.environ["VISIONZOO_CACHE"]).iterdir())
    assert [p.name for p in cached] == [f"{digest[:12]}-model.safetensors"]
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        load_weights(fresh, f"{url}/saved/model.safetensors", sha256="0" * 64)
    assert len(list(Path(os.environ["VISIONZOO_CACHE"]).iterdir())) == 1  # the bad download was discarded
    with pytest.raises(WeightsError, match="could not download"):
        load_weights(fresh, f"{url}/saved/missing.safetensors")
