"""Atomic file writes: a file is written beside its target and renamed onto it, so no half-written file is ever
left, and an existing file is replaced only by a complete one."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from visionzoo.errors import DataError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_outputs(*paths: str | os.PathLike, suffix: str = ".part") -> Iterator[list[Path]]:
    """Temporary files beside ``paths`` (folders created if needed) to write into; on leaving the block they are
    all renamed onto their targets, or, if the block raised, all removed. Files get the usual umask permissions."""
    temporaries: list[Path] = []
    try:
        for path in map(Path, paths):
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
            os.close(handle)
            os.chmod(temporary, 0o666 & ~_current_umask())  # mkstemp makes 0600 files
            temporaries.append(Path(temporary))
        yield list(temporaries)
        for temporary, path in zip(temporaries, paths):
            os.replace(temporary, path)
    finally:
        for temporary in temporaries:
            if temporary.exists():
                temporary.unlink()


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object], suffix: str = ".part") -> Path:
    """Call ``write(temporary_path)`` for a temporary file in ``path``'s folder (created if needed), then rename it
    onto ``path``; the temporary file is removed if ``write`` fails. ``suffix`` is the temporary file's suffix
    (writers that pick the format from it, like OpenCV, need the real one)."""
    with atomic_outputs(path, suffix=suffix) as (temporary,):
        write(temporary)
    return Path(path)


def ensure_writable_folder(directory: str | os.PathLike, key: str = "output") -> Path:
    """Create ``directory`` and check a file can be written in it, or fail with one line naming the config ``key``
    that chose it."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".visionzoo_write_test"
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise DataError(f"output folder {directory} is not writable ({err.strerror}); choose another {key}=") from err
    return directory
