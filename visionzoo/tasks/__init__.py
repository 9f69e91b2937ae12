"""LightningModules: one per task family (losses, optimisation, metrics, logging)."""

from visionzoo.tasks.base import VisionTask

__all__ = ["VisionTask"]
