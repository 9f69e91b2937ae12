"""Shared test set-up: seeded randomness, a private weights cache, small CPU thread counts."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_and_cache(monkeypatch, tmp_path_factory):
    torch.manual_seed(0)
    monkeypatch.setenv("VISIONZOO_CACHE", str(tmp_path_factory.mktemp("cache")))
