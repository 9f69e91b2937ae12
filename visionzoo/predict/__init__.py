"""Predictors: users' files in, results out (cut-outs, denoised images, occupancy)."""
