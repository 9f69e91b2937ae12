"""The run folder and the results a job leaves in it: ``metrics.json``, ``metrics.csv`` and a printed table."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

log = logging.getLogger(__name__)


def output_dir(cfg: DictConfig) -> Path:
    """The run folder (``paths.output_dir``), created."""
    path = Path(cfg.paths.output_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_results(rows: list[dict[str, Any]], directory: Path, title: str = "results") -> None:
    """Write ``metrics.json`` and ``metrics.csv`` into ``directory`` and print the rows as a table."""
    if not rows:
        log.warning("no results to write")
        return
    (directory / "metrics.json").write_text(json.dumps(rows, indent=2) + "\n")
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(directory / "metrics.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="left" if isinstance(rows[0].get(column), str) else "right")
    for row in rows:
        table.add_row(*(_format(row.get(c)) for c in columns))
    Console(width=max(120, 14 * len(columns))).print(table)
    print(f"metrics written to {directory / 'metrics.json'} and {directory / 'metrics.csv'}")


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) >= 1000 else f"{value:.3f}"
    return "" if value is None else str(value)
