"""DHD losses on hand-computed cases, and the position-prior baseline."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.helpers.occupancy_baseline import position_prior, prior_miou
from visionzoo.tasks.occupancy_losses import (bin_bce_loss, class_weights_from_counts, depth_bins_of,
                                              geo_scal_loss, sem_scal_loss, weighted_cross_entropy)


def test_class_weights_are_inverse_log_counts_with_mean_one():
    counts = torch.tensor([0, math.e ** 2 - math.e, math.e ** 4 - math.e])  # ln(count + e) = 2 and 4
    weights = class_weights_from_counts(counts)
    assert weights.tolist() == pytest.approx([0.0, (1 / 2) / (3 / 8), (1 / 4) / (3 / 8)])


def test_weighted_cross_entropy_uses_only_masked_voxels():
    logits = torch.tensor([[[2.0, 0.0]], [[0.0, 1.0]], [[5.0, -5.0]]])  # (3, 1, 2)
    target = torch.tensor([[0], [1], [1]])
    mask = torch.tensor([[True], [True], [False]])
    weights = torch.tensor([1.0, 3.0])
    nll = [-F.log_softmax(torch.tensor([2.0, 0.0]), 0)[0], -F.log_softmax(torch.tensor([0.0, 1.0]), 0)[1]]
    expected = (1.0 * nll[0] + 3.0 * nll[1]) / 4.0
    assert float(weighted_cross_entropy(logits, target, mask, weights)) == pytest.approx(float(expected))


def test_scene_affinity_losses_by_hand():
    target = torch.tensor([0, 0, 1, 2])  # class 2 = free
    mask = torch.ones(4, dtype=torch.bool)
    confident = F.one_hot(target, 3).float() * 40 - 20
    assert float(sem_scal_loss(confident, target, mask)) == pytest.approx(0.0, abs=1e-6)
    assert float(geo_scal_loss(confident, target, mask, free_index=2)) == pytest.approx(0.0, abs=1e-6)
    # uniform prediction: every voxel 1/3 per class
    uniform = torch.zeros(4, 3)
    # geo: occupied prob 2/3 everywhere, 3 of 4 voxels occupied
    precision, recall, specificity = (3 * 2 / 3) / (4 * 2 / 3), (3 * 2 / 3) / 3, (1 / 3) / 1
    expected_geo = -math.log(precision) - math.log(recall) - math.log(specificity)
    assert float(geo_scal_loss(uniform, target, mask, 2)) == pytest.approx(expected_geo, rel=1e-5)
    # sem: class c with n_c voxels: precision n_c/4, recall 1/3, specificity 2/3; averaged over the 3 classes
    terms = [-math.log(n / 4) - math.log(1 / 3) - math.log(2 / 3) for n in (2, 1, 1)]
    assert float(sem_scal_loss(uniform, target, mask)) == pytest.approx(sum(terms) / 3, rel=1e-5)


def test_bin_bce_by_hand_and_depth_bins():
    logits = torch.zeros(1, 1, 4, 1, 2)  # uniform over 4 bins at two pixels
    bins = torch.tensor([[[[1, 3]]]])
    valid = torch.tensor([[[[True, False]]]])
    expected = -math.log(0.25) - 3 * math.log(0.75)  # one pixel: the true bin and three others
    assert float(bin_bce_loss(logits, bins, valid)) == pytest.approx(expected, rel=1e-5)
    index, ok = depth_bins_of(torch.tensor([0.5, 1.0, 2.7, 44.99, 45.0, float("nan")]), (1.0, 45.0, 1.0))
    assert index.tolist()[:4] == [0, 0, 1, 43] and ok.tolist() == [False, True, True, True, False, False]


def test_position_prior_baseline_by_hand():
    a = np.array([[[0], [17]]], dtype=np.uint8)  # (1, 2, 1)
    b = np.array([[[0], [4]]], dtype=np.uint8)
    c = np.array([[[11], [4]]], dtype=np.uint8)
    seen = np.ones((1, 2, 1), np.uint8)
    prior = position_prior([(a, seen), (b, seen), (c, seen)])
    assert prior[:, :, 0].tolist() == [[0, 4]]
    result = prior_miou(prior, [(c, seen)])  # truth 11, 4; predicted 0, 4
    assert result["IoU/car"] == pytest.approx(100.0) and result["IoU/others"] == 0.0
    assert result["IoU/driveable_surface"] == 0.0 and result["mIoU"] == pytest.approx(100 / 3)
