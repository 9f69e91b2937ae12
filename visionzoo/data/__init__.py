"""Datasets in the benchmarks' real on-disk layouts, transforms, datamodules and synthetic generators."""
