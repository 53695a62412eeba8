"""Interval coverage on a few zoo families, with enough seeds to mean something.

A correct 95 % interval covers fewer than 34 of 40 seeds (or 21 of 24) with
probability about 2 % (binomial tail), so a collapse of the coverage fails
these tests while a correct interval passes them nearly always. The families are ones where each estimator is inside
its validity range (``benchmarks/README.md``, the zoo table); the seeds
(3000 and up) are neither the zoo's tuning nor its held-out seeds. Flagged
runs (``flags_``) are exempt: a flag says the interval may not cover.
"""
import warnings

import numpy as np
import pytest

from repgap import datasets
from repgap.estimators import GapLaw, TwoNN, WeibullShape

SEEDS = range(3000, 3040)


def _coverage(make, family, n, seeds):
    covered, flagged = 0, 0
    for s in seeds:
        m = datasets.zoo_family(family, n, random_state=s)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            est = make(s).fit(m.X)
        if est.flags_:
            flagged += 1
            continue
        lo, hi = est.dimension_ci_
        covered += int(lo <= m.d <= hi)
    return covered, len(seeds) - flagged


@pytest.mark.parametrize("family", ["sphere2", "cap2", "beta25_cube4"])
def test_twonn_interval_covers_where_it_is_valid(family):
    # 35-37 of 40 today; below 34 (85 %) the interval has collapsed. TwoNN's
    # best families: on most of the zoo it covers 80-88 % at n = 1000, and on
    # high-dimensional cubes almost never (the zoo table)
    covered, runs = _coverage(lambda s: TwoNN(), family, 1000, SEEDS)
    assert runs == len(SEEDS)
    assert covered >= 34, f"TwoNN covers {covered}/{runs} on {family}"


@pytest.mark.parametrize("family", ["torus3", "sphere2"])
def test_gap_law_interval_covers(family):
    seeds = SEEDS[:24]
    covered, runs = _coverage(lambda s: GapLaw(random_state=s, n_boot=100, repeats=3), family, 1000, seeds)
    assert runs >= 20, f"flagged {len(seeds) - runs} of {len(seeds)} runs on {family}"
    assert covered >= runs - 3, f"GapLaw covers {covered}/{runs} unflagged runs on {family}"


@pytest.mark.parametrize("family", ["gauss8", "mixture6_equal", "student_t4"])
def test_weibull_never_under_covers_silently(family):
    # outside its validity range (a varying density) the Weibull shape is
    # biased and its interval does not cover: every such run must be flagged
    covered, runs = _coverage(lambda s: WeibullShape(random_state=s), family, 1000, SEEDS[:15])
    assert covered >= runs - 1, f"WeibullShape: {runs} unflagged runs on {family}, {covered} covered"
    # and the flag comes from a measured spread above the limit, not from a failed measurement
    from repgap.estimators import WEIBULL_MAX_SPREAD

    e = WeibullShape(random_state=0).fit(datasets.zoo_family(family, 1000, random_state=SEEDS[0]).X)
    assert np.isfinite(e.density_spread_) and e.density_spread_ > WEIBULL_MAX_SPREAD


def test_twonn_under_covers_on_a_high_dimensional_cube():
    # the known limit that the zoo table reports: TwoNN's interval is the
    # sampling noise of the Pareto model only, and on a 12-cube at n = 1000
    # its bias (about -15 %) dwarfs it. If this starts to pass, the table and
    # the docs are out of date.
    covered, runs = _coverage(lambda s: TwoNN(), "cube12", 1000, SEEDS[:10])
    assert covered <= 2


def test_twonn_dependence_correction_matches_the_seed_to_seed_spread():
    # on the uniform periodic torus (no boundary, no curvature: TwoNN's model
    # holds but for the dependence between neighbouring ratios) the spread of
    # the estimate over seeds is what the corrected interval implies, and
    # about 1.25 times the independent chi-square one
    from repgap import knn
    from repgap.estimators import NeighbourStats, pareto_mle, ratio_dependence

    d, n = 3, 1000
    shifts = np.array(np.meshgrid(*[[-1.0, 0.0, 1.0]] * d)).reshape(d, -1).T
    est, half, factors = [], [], []
    for s in range(60):
        X = np.random.default_rng(4000 + s).random((n, d))
        dist, idx = knn(X, (X[None] + shifts[:, None]).reshape(-1, d), k=3)
        st = NeighbourStats.__new__(NeighbourStats)
        st.distances, st.indices = dist[:, 1:], idx[:, 1:] % n
        st.valid = st.distances[:, 0] > 0
        f = ratio_dependence(st)
        dh, (lo, hi) = pareto_mle(np.log(st.distances[:, 1] / st.distances[:, 0]), 0.95, f)
        est.append(dh)
        half.append((hi - lo) / 2)
        factors.append(f)
    assert 1.15 < np.mean(factors) < 1.35
    implied_sd = np.mean(half) / 1.96
    assert 0.75 < np.std(est) / implied_sd < 1.3
