"""The multiple-comparison corrections (`fptlab.report.multiple`) against statsmodels' and scipy's on
fixed inputs: ties, values near 1, NaN left out of the family, a family of one, an empty family."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import false_discovery_control
from statsmodels.stats.multitest import multipletests

from fptlab.report.multiple import adjust, benjamini_hochberg, holm

FAMILIES = [
    [0.01, 0.04, 0.03, 0.005],
    [0.2, 0.2, 0.01, 0.5, 0.9, 0.04],  # ties
    [0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008, 0.009, 0.01],
    [0.6, 0.7, 0.99, 0.98],  # nothing significant; adjusted values capped at 1
    [0.03],
]


@pytest.mark.parametrize("p", FAMILIES)
def test_holm_matches_statsmodels(p: list[float]) -> None:
    expected = multipletests(p, method="holm")[1]
    assert holm(p) == pytest.approx(list(expected))


@pytest.mark.parametrize("p", FAMILIES)
def test_benjamini_hochberg_matches_statsmodels_and_scipy(p: list[float]) -> None:
    assert benjamini_hochberg(p) == pytest.approx(list(multipletests(p, method="fdr_bh")[1]))
    assert benjamini_hochberg(p) == pytest.approx(list(false_discovery_control(np.array(p), method="bh")))


def test_nan_is_kept_and_left_out_of_the_family() -> None:
    p = [0.01, math.nan, 0.04]
    out = holm(p)
    assert math.isnan(out[1])
    assert [out[0], out[2]] == pytest.approx(list(multipletests([0.01, 0.04], method="holm")[1]))
    assert holm([]) == []
    assert math.isnan(benjamini_hochberg([math.nan])[0])


def test_an_unknown_method_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="holm, bh"):
        adjust([0.1], "bonferroni")
