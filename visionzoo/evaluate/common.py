"""What the prediction-folder evaluators share: listing files by name and the raise-or-skip policy."""

from __future__ import annotations

import logging
from typing import Sequence

from visionzoo.errors import DataError

log = logging.getLogger(__name__)
ON_MISSING = ("raise", "skip")
_SHOWN = 5


def listing(names: Sequence[str]) -> str:
    """The first few names and how many there are in all."""
    return ", ".join(names[:_SHOWN]) + (f", ... ({len(names)} in all)" if len(names) > _SHOWN else "")


def check_on_missing(on_missing: str) -> str:
    if on_missing not in ON_MISSING:
        raise DataError(f"on_missing must be raise or skip, not {on_missing!r}")
    return on_missing


def report_problems(where: str, problems: Sequence[str], on_missing: str) -> None:
    """Nothing when ``problems`` is empty; else one :class:`DataError` line (``raise``) or a warning (``skip``)."""
    if not problems:
        return
    message = f"{where}: " + "; ".join(problems)
    if on_missing == "raise":
        raise DataError(message + "; fix them or set on_missing=skip to score the rest")
    log.warning("%s; left out", message)
