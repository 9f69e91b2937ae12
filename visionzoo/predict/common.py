"""What every files-in/files-out predictor shares: finding inputs, skipping finished work, reporting faults."""

from __future__ import annotations

import glob
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import torch
from rich.console import Console

from visionzoo.data.images import IMAGE_SUFFIXES
from visionzoo.errors import DataError

log = logging.getLogger(__name__)


@dataclass
class BatchReport:
    """Outcome of a batch job: what was written, skipped as finished, or failed (file -> reason)."""

    written: list[Path] = field(default_factory=list)
    finished: list[Path] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)
    failed: dict[Path, str] = field(default_factory=dict)

    def print(self, console: Console | None = None) -> None:
        console = console or Console(stderr=True)
        console.print(
            f"{len(self.written)} processed, {len(self.finished)} already done (overwrite=true redoes them), "
            f"{len(self.failed)} failed, {len(self.ignored)} other files ignored"
        )
        for path, reason in self.failed.items():
            console.print(f"  failed: {path}: {reason}", highlight=False, soft_wrap=True)


def find_inputs(spec: str | Path, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> tuple[list[Path], list[Path]]:
    """Files with one of ``suffixes`` (images by default) named by a file, a folder (not recursive) or a glob
    pattern, and the other files seen.

    Raises :class:`DataError` when nothing matches.
    """
    text = str(spec)
    path = Path(text).expanduser()
    if path.is_file():
        candidates = [path]
    elif path.is_dir():
        candidates = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    elif any(ch in text for ch in "*?["):
        candidates = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
    else:
        raise DataError(f"input {text} does not exist; pass an image file, a folder or a quoted glob like 'photos/*.jpg'")
    wanted = [p for p in candidates if p.suffix.lower() in suffixes]
    others = [p for p in candidates if p.suffix.lower() not in suffixes]
    if not wanted:
        kind = "image" if suffixes == IMAGE_SUFFIXES else "image or video"
        raise DataError(f"no {kind} files ({', '.join(suffixes)}) found at {text}")
    return wanted, others


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), max(1, size)):
        yield items[start : start + max(1, size)]
