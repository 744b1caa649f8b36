"""Partial Spearman correlation (nnunet_hecktor.metrics.association)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from nnunet_hecktor.metrics.association import partial_spearman


def test_one_covariate_equals_the_textbook_partial_correlation_of_ranks():
    rng = np.random.default_rng(4)
    z = rng.normal(size=300)
    x = z + rng.normal(size=300)
    y = 0.5 * z + 0.3 * x + rng.normal(size=300)
    r_xy, r_xz, r_yz = (spearmanr(a, b)[0] for a, b in ((x, y), (x, z), (y, z)))
    expected = (r_xy - r_xz * r_yz) / np.sqrt((1 - r_xz ** 2) * (1 - r_yz ** 2))
    found = partial_spearman(x, y, z, n_bootstrap=50)
    assert found.value == pytest.approx(expected, abs=1e-10)
    assert found.low <= found.value <= found.high


def test_a_score_built_without_the_factor_does_not_carry_it():
    rng = np.random.default_rng(5)
    rest, factor = rng.normal(size=(2, 2000))
    without = rest + 0.1 * rng.normal(size=2000)     # reads only the rest
    with_factor = rest + 0.5 * factor                # reads the factor too
    assert not partial_spearman(without, factor, rest, n_bootstrap=200).positive
    carried = partial_spearman(with_factor, factor, rest, n_bootstrap=200)
    assert carried.positive and carried.value > 0.5


def test_lengths_must_agree():
    with pytest.raises(ValueError, match="differ in length"):
        partial_spearman([1, 2, 3], [1, 2], [1, 2, 3])


def test_paired_difference_is_the_difference_of_the_two_and_decides_a_clear_gap():
    from nnunet_hecktor.metrics.association import paired_partial_spearman

    rng = np.random.default_rng(6)
    rest, factor = rng.normal(size=(2, 1500))
    blind = rest + 0.2 * rng.normal(size=1500)
    reader = rest + 0.6 * factor
    found = paired_partial_spearman(reader, blind, factor, rest, n_bootstrap=200)
    expected = partial_spearman(reader, factor, rest, n_bootstrap=0).value - \
        partial_spearman(blind, factor, rest, n_bootstrap=0).value
    assert found.value == pytest.approx(expected, abs=1e-12)
    assert found.positive
    same = paired_partial_spearman(blind, blind, factor, rest, n_bootstrap=50)
    assert same.value == 0 and same.low == 0 and same.high == 0
