"""Benchmark metrics (thin wrappers over pysodmetrics / torchmetrics)."""

from visionzoo.metrics.dis import DISMetrics

__all__ = ["DISMetrics"]
