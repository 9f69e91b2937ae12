"""Benchmark metrics (thin wrappers over pysodmetrics / torchmetrics)."""

from visionzoo.metrics.dis import DISMetrics
from visionzoo.metrics.occupancy import OCC3D_CLASSES, OccupancyMIoU

__all__ = ["DISMetrics", "OCC3D_CLASSES", "OccupancyMIoU"]
