"""A Hugging Face hub cache built by hand and read offline: how the tests check ``hf-hub:`` names (no hub is
reachable from them)."""

from __future__ import annotations

from pathlib import Path

import pytest


def offline_hub_cache(monkeypatch: pytest.MonkeyPatch, cache: Path, repo: str, files: dict[str, Path]) -> None:
    """Make ``cache`` the hub cache, offline, holding ``files`` (name -> a local file, linked) of ``repo``
    (``"ORG/NAME"``) at one snapshot that ``main`` points to."""
    from huggingface_hub import constants

    folder = cache / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for name, target in files.items():
        (snapshot / name).symlink_to(target)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
