"""slt.samplers.diagnostics computes ArviZ's rank-normalised split R-hat and bulk ESS in numpy
(no ArviZ, no scipy at run time): the same numbers as ArviZ, and the normal quantile as scipy's."""
import warnings

import numpy as np
import pytest
import scipy.special

from slt.samplers import diagnostics

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az


def test_ndtri_matches_scipy_including_the_tails():
    p = np.concatenate([np.linspace(1e-12, 1 - 1e-12, 20001), np.logspace(-300, -1, 300),
                        1 - np.logspace(-16, -1, 300)])
    ours, ref = diagnostics.ndtri(p), scipy.special.ndtri(p)
    assert np.all(np.abs(ours - ref) <= 1e-13 * np.maximum(1.0, np.abs(ref)))
    assert diagnostics.ndtri(0.5) == 0.0


@pytest.mark.parametrize("kind", ["normal", "tied", "autocorrelated"])
def test_rhat_and_bulk_ess_match_arviz(kind):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 301))
    if kind == "tied":
        x = np.round(x, 1)
    elif kind == "autocorrelated":
        x = np.cumsum(x, axis=1) * 0.1 + rng.normal(size=(4, 1))
    assert diagnostics.rhat(x) == pytest.approx(float(az.rhat(x, method="rank")), rel=1e-9)
    assert diagnostics.ess_bulk(x) == pytest.approx(float(az.ess(x, method="bulk")), rel=1e-9)


@pytest.mark.parametrize("kind", ["normal", "heavy", "autocorrelated"])
def test_ess_of_the_mean_and_its_mcse_match_arviz(kind):
    """The Monte Carlo error of an average uses the ESS of the mean (no rank normalisation), as
    ``arviz.mcse(method="mean")``: on heavy tails it differs from the bulk ESS."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 301))
    if kind == "heavy":
        x = rng.standard_t(2.5, size=(8, 400))
    elif kind == "autocorrelated":
        x = np.cumsum(x, axis=1) * 0.1 + rng.normal(size=(4, 1))
    assert diagnostics.ess_mean(x) == pytest.approx(float(az.ess(x, method="mean")), rel=1e-9)
    assert diagnostics.mcse_mean(x) == pytest.approx(float(az.mcse(x, method="mean")), rel=1e-9)
