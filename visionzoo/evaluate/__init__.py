"""Scoring other models' prediction files against a benchmark's ground truth (``eval.py experiment=..._predictions``)."""
