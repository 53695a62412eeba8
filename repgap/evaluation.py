"""Evaluating generative models: every nearest-neighbour metric of the field
from one set of exact searches, modulo a symmetry group.

A diffusion model's samples are judged by where they fall relative to the
training set. Each metric below is a statement about nearest-neighbour
distances between four sets: the training set ``T`` (n rows), the generated
samples ``G`` (m rows), optionally held-out real data ``H``, and the
k-NN balls of ``T`` and ``G``. repgap computes those distances once,
exactly (the certified k-NN engine, docs/theory.md section 6), and modulo
the model's symmetry group when one is given, so that an equivariant model
is not scored as novel for a rotated or permuted copy of a training item.

Definitions
-----------
``NND_k(x; S)`` is the distance from ``x`` to its k-th nearest neighbour in
``S`` other than itself; ``B(x, r)`` the open ball of radius ``r``.

Precision and recall
    Kynkaanniemi et al. 2019, "Improved precision and recall metric for
    assessing generative models" (NeurIPS).
    ``precision = (1/m) sum_j 1[g_j in U_i B(t_i, NND_k(t_i; T))]``: the
    fraction of samples inside the k-NN manifold of the training set;
    ``recall = (1/n) sum_i 1[t_i in U_j B(g_j, NND_k(g_j; G))]``.
Density and coverage
    Naeem et al. 2020, "Reliable fidelity and diversity metrics for
    generative models" (ICML).
    ``density = (1/(k m)) sum_j sum_i 1[g_j in B(t_i, NND_k(t_i; T))]``;
    ``coverage = (1/n) sum_i 1[exists j: g_j in B(t_i, NND_k(t_i; T))]``.
    The balls are open (strict ``<``), as in the authors' ``prdc`` package,
    whose numbers these are on the same features and ``k``.
Authenticity
    Alaa et al. 2022, "How faithful is your synthetic data?" (ICML), the
    sample-level rule. ``g_j`` is authentic when it is farther from its nearest training item
    ``t*`` than ``t*``'s own nearest other training item:
    ``d(g_j, t*) > NND_1(t*; T)``; a sample that is closer is a copy of
    ``t*`` at the scale of the data there (exact copies of a duplicated
    item, at distance 0 = NND_1, are not authentic).
Data-copying test C_T
    Meehan, Chaudhuri & Dasgupta 2020, "A non-parametric test to detect
    data-copying in generative models" (AISTATS). The training set is partitioned into cells (k-means on the training
    rows; every point belongs to the cell of its nearest centroid). In each
    cell ``pi``, the distances ``L`` of held-out and generated points to their
    nearest training point *in the cell* are compared by the Mann-Whitney
    statistic ``U = sum_ij 1[L(g_j) > L(h_i)]`` (ties count 1/2), z-scored
    under the null: ``Z_U = (U - a b / 2) / sqrt(a b (a + b + 1) / 12)``.
    ``C_T = sum_pi P_n(pi) Z_U(pi) / sum_pi P_n(pi)`` over the cells holding
    at least ``tau m`` generated samples, ``P_n(pi)`` the fraction of
    held-out points in the cell. ``C_T << 0`` is data-copying (samples closer
    to the training set than fresh data), ``C_T >> 0`` underfitting.
    Modulo a group, points are assigned to cells modulo the group (the
    nearest centroid's orbit); the centroids are k-means centroids of the
    stored rows (any fixed partition is valid for the test).
Distance to the closest record, memorization, Representation Gap
    The quantiles of ``d(g_j, T)`` next to those of ``d(h_i, T)``; the
    fraction of samples with ``d1 / d2 < 1/3`` (Gu et al. 2023, "On
    memorization in diffusion models"); and the Representation Gap of the
    training set measured on generated and on held-out points,
    ``mean d(g, T)^2`` vs ``mean d(h, T)^2`` (Perera et al.,
    arXiv:2605.21692): their ratio is below 1 when the samples sit closer
    to the training set than fresh data does.

Searches
--------
One exact k-NN search of ``T`` in itself (``k + 1`` neighbours with the
point itself: the radii ``NND_k`` and ``NND_1``), one of ``G`` in itself
(both over the tiles above the diagonal only, from
:data:`SELF_PASS_MIN_DIM` features), one of ``H`` in ``T``, and one pass over ``G x T`` that gives
the ball counts of precision, density, coverage and recall and each
sample's two nearest training rows together (below). Nothing of size
``m x n`` is ever held: the tiles are bounded by ``max_memory``. In low
dimension (at most :data:`BALL_TREE_MAX_DIM` features) the searches are
k-d trees and the balls are k-d tree ball queries; modulo a group, the
searches are the orbit searches of :mod:`repgap.orbit`.

Exact ball counts
-----------------
Without a group the pass computes ``|g|^2 + |t|^2 - 2 g.t`` for a tile of
pairs by one float32 matrix product of centred copies, with the a priori
bound of :mod:`repgap._search.certify` on its error (Higham 2002, section
3.1); the pairs whose value is not farther than that bound above every
radius they are compared with (a ball's radius, or the current second
nearest distance of the sample) are recomputed in float64 by the engine's
exact primitive, so every decision ``d < r`` is the one the exact
distances give, and the nearest rows are :func:`repgap.knn`'s, bit for
bit. Modulo a group the counts
come from k-NN searches modulo the group with as many neighbours as it takes
for the ``K``-th distance to pass the largest radius (beyond it no ball can
hold the point), for every group. These decisions are as exact as the
distances modulo the group. For the groups acting by signed coordinate
permutations (cyclic shifts, particle permutations, sign flips, finite
groups of index permutations) those are summed in a canonical order
(:meth:`repgap.groups.Group.canonical_distance2`), so ``d_G(x, y)`` and
``d_G(y, x)`` are the same bits and a point exactly on a radius (a group
image of a training item whose nearest neighbour defines that radius) is
outside the open ball, as it is exactly. For rotations and translations
the distance of a pair may differ in the last bit with the roles of query
and reference swapped, and such a point can be decided either way.

Intervals
---------
Sample-level metrics are means over one set with the other held fixed
(precision, density and authenticity over the generated samples; recall and
coverage over the training items). Their intervals are percentile
bootstraps over that set, conditional on the k-NN balls of the other: they
cover the metric's expectation for a fresh set of samples against *these*
balls, not the variability of the balls themselves (which a bootstrap of
the training set would distort, since resampling duplicates items and
shrinks their radii to 0). Distance quantiles get distribution-free
order-statistic intervals.
"""
import dataclasses
import math
import warnings

import numpy as np

from ._arrays import is_tensor, take_rows
from ._validation import check_array, check_int, check_real, check_random_state
from .diffusion import _max_abs
from .gap import _host, _jsonable, _to_dict
from .groups import Identity, check_group
from .neighbors import knn, _tensor_sqrt

__all__ = ["evaluate", "Evaluation", "EvaluationMeter", "Metric", "CopyingTest", "data_copying_test", "default_cells"]

#: quantiles of the distance to the closest record that are reported
DCR_QUANTILES = (0.01, 0.05, 0.25, 0.5)
#: above this many resampled values, a mean's bootstrap is drawn from its
#: normal limit (exact resampling would cost n * n_boot)
_BOOT_CELLS = 1 << 25
#: distinct values below which a mean's bootstrap is drawn exactly as
#: multinomial counts of the values (booleans, counts)
_BOOT_DISTINCT = 4096
#: the k-d tree's ball queries beat the float32 brute-force pass up to this
#: many features (2e4 x 2e4 standard Gaussians, 2 cores: 0.9 s vs 2.3 s at
#: D = 8, 3.8 s vs 1.9 s at D = 12; benchmarks/bench_evaluate.py)
BALL_TREE_MAX_DIM = 10
#: from this many features the radii come from the symmetric float32 pass
#: (half the products) rather than the k-NN engine, whose plan is faster
#: below: 1e4 x D, k = 6, 2 cores, two families (network-like ReLU features
#: and standard Gaussians): engine 2.2 / 2.1 s vs 2.4 / 2.5 s at D = 1024,
#: 5.1 / 4.9 s vs 4.3 / 4.1 s at D = 2048
SELF_PASS_MIN_DIM = 1536
#: training rows the k-means of the C_T partition is fitted on
_KMEANS_ROWS = 20000


# ---------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------
@dataclasses.dataclass
class Metric:
    """One metric's value and its interval.

    Attributes
    ----------
    value : float
    low, high : float
        The interval at ``level`` (NaN when none was computed).
    level : float
    over : str
        The set the interval resamples ("generated", "train", "held-out").
    """

    value: float
    low: float
    high: float
    level: float
    over: str

    def __repr__(self):
        return f"{self.value:.4g} [{self.low:.4g}, {self.high:.4g}]"


@dataclasses.dataclass(repr=False)
class CopyingTest:
    """The data-copying test of Meehan, Chaudhuri & Dasgupta (2020).

    Attributes
    ----------
    statistic : float
        ``C_T``: the held-out-weighted mean of the cells' ``Z_U`` (NaN when no
        cell holds enough samples).
    p_value : float
        One-sided, for data-copying (small when ``C_T << 0``): ``Phi(C_T /
        s)`` with ``s^2 = sum w^2 / (sum w)^2`` the null variance of a
        weighted mean of independent standard normals (a large-sample
        approximation; the paper reads ``C_T`` on its own scale).
    z : ndarray (n_cells,)
        ``Z_U`` of each cell (NaN where it is not defined).
    used : ndarray of bool (n_cells,)
        Cells that enter ``C_T``: at least ``min_samples`` generated samples
        and one held-out point.
    n_train, n_test, n_generated : ndarray of int (n_cells,)
        Points of each set in each cell.
    n_cells : int
    min_samples : int
    """

    statistic: float
    p_value: float
    z: np.ndarray
    used: np.ndarray
    n_train: np.ndarray
    n_test: np.ndarray
    n_generated: np.ndarray
    n_cells: int
    min_samples: int

    def __repr__(self):
        return (f"CopyingTest(C_T={self.statistic:.4g}, p_value={self.p_value:.3g}, "
                f"cells used={int(self.used.sum())} of {self.n_cells})")

    def to_dict(self):
        return _to_dict(self)


@dataclasses.dataclass(repr=False)
class Evaluation:
    """Nearest-neighbour metrics of generated samples against a training set.

    Attributes
    ----------
    precision, recall, density, coverage, authenticity : Metric
        See :mod:`repgap.evaluation` for the definitions and sources.
    memorized : Metric
        Fraction of samples with ``d1 / d2 < memorization_ratio``.
    gap_generated : Metric
        ``mean d(g, T)^2``: the Representation Gap measured on the samples.
    gap_test, gap_ratio : Metric or None
        The same on held-out data, and ``gap_generated / gap_test``.
    test_authenticity, test_memorized : Metric or None
        Authenticity and the fraction memorized of held-out real data: the
        values a model that generalises perfectly would get (fresh data are
        authentic only about half of the time by the sample-level rule).
    dcr : dict
        ``{"generated": {q: Metric}, "test": {q: Metric}}``: quantiles of the
        distance to the closest training record.
    copying : CopyingTest or None
        With held-out data.
    copying_p_value : float or None
        One-sided Mann-Whitney test that the samples' distances to the
        training set are smaller than held-out data's (all cells together).
    k : int
    n_generated, n_train, n_test : int
    group : str
        ``repr`` of the group (``"none"``).
    in_support : ndarray of bool (m,)
        Per sample: inside the training set's k-NN manifold (precision).
    ball_counts : ndarray of int (m,)
        Per sample: how many training balls hold it (density = mean / k).
    authentic : ndarray of bool (m,)
    distances, second_distances : ndarray (m,)
        Each sample's distances to its nearest and second-nearest training
        items; ``nearest`` their rows.
    nearest : ndarray of int (m,)
    recalled, covered : ndarray of bool (n,)
        Per training item: inside the samples' k-NN manifold (recall); its
        own ball holds a sample (coverage).
    train_radii : ndarray (n,)
        ``NND_k`` of each training item; ``generated_radii`` (m,) the same
        for the samples.
    test_distances : ndarray (h,) or None
    memorization_ratio : float
    level : float
    """

    precision: Metric
    recall: Metric
    density: Metric
    coverage: Metric
    authenticity: Metric
    memorized: Metric
    gap_generated: Metric
    gap_test: object
    gap_ratio: object
    test_authenticity: object
    test_memorized: object
    dcr: dict
    copying: object
    copying_p_value: object
    k: int
    n_generated: int
    n_train: int
    n_test: int
    group: str
    in_support: np.ndarray
    ball_counts: np.ndarray
    authentic: np.ndarray
    distances: np.ndarray
    second_distances: np.ndarray
    nearest: np.ndarray
    recalled: np.ndarray
    covered: np.ndarray
    train_radii: np.ndarray
    generated_radii: np.ndarray
    test_distances: object
    memorization_ratio: float
    level: float

    METRICS = ("precision", "recall", "density", "coverage", "authenticity", "test_authenticity", "memorized",
               "test_memorized", "gap_generated", "gap_test", "gap_ratio")

    def metrics(self):
        """``{name: Metric}`` of the scalar metrics that were computed."""
        return {name: getattr(self, name) for name in self.METRICS if getattr(self, name) is not None}

    def table(self):
        """Rows ``(metric, value, low, high, over)`` for the CLI and reports."""
        rows = [(name, m.value, m.low, m.high, m.over) for name, m in self.metrics().items()]
        for who, qs in self.dcr.items():
            for q, m in qs.items():
                rows.append((f"dcr_{who}_q{q:g}", m.value, m.low, m.high, m.over))
        if self.copying is not None:
            rows.append(("C_T", self.copying.statistic, float("nan"), float("nan"), "cells"))
        return rows

    def __repr__(self):
        parts = [f"{name}={m!r}" for name, m in self.metrics().items()]
        if self.copying is not None:
            parts.append(f"C_T={self.copying.statistic:.4g}")
        return (f"Evaluation(k={self.k}, n_generated={self.n_generated}, n_train={self.n_train}, "
                f"n_test={self.n_test}, group={self.group}, " + ", ".join(parts) + ")")

    def to_dict(self, per_sample=False):
        """A JSON-ready summary (the per-sample arrays only when asked)."""
        out = {"k": self.k, "n_generated": self.n_generated, "n_train": self.n_train, "n_test": self.n_test,
               "group": self.group, "level": self.level, "memorization_ratio": self.memorization_ratio,
               "interval": "percentile bootstrap over the set named in 'over', conditional on the other set's "
                           "k-NN balls; order-statistic intervals for the distance quantiles"}
        out["metrics"] = {name: dataclasses.asdict(m) for name, m in self.metrics().items()}
        out["dcr"] = {who: {f"{q:g}": dataclasses.asdict(m) for q, m in qs.items()} for who, qs in self.dcr.items()}
        out["copying"] = None if self.copying is None else self.copying.to_dict()
        out["copying_p_value"] = self.copying_p_value
        if per_sample:
            for name in ("in_support", "ball_counts", "authentic", "distances", "second_distances", "nearest",
                         "recalled", "covered", "train_radii", "generated_radii", "test_distances"):
                v = getattr(self, name)
                out[name] = None if v is None else np.asarray(v).tolist()
        return _jsonable(out)


# ---------------------------------------------------------------------------
# intervals
# ---------------------------------------------------------------------------
def _boot_means(values, n_boot, rng):
    """``n_boot`` bootstrap replicates of the mean of ``values``: exact
    multinomial counts over the distinct values when there are few (booleans,
    counts), index resampling when ``n * n_boot`` is moderate, otherwise the
    normal limit of the bootstrap mean (``N(mean, s^2 / n)``)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    n = v.size
    u, counts = np.unique(v, return_counts=True)
    if u.size <= _BOOT_DISTINCT:
        return rng.multinomial(n, counts / n, size=n_boot) @ u / n
    if n * n_boot <= _BOOT_CELLS:
        out = np.empty(n_boot)
        step = max(1, _BOOT_CELLS // (8 * n))
        for s in range(0, n_boot, step):
            b = min(step, n_boot - s)
            out[s : s + b] = v[rng.integers(0, n, size=(b, n))].mean(axis=1)
        return out
    return rng.normal(v.mean(), v.std(ddof=1) / math.sqrt(n), size=n_boot)


def _metric(values, n_boot, level, rng, over):
    v = np.asarray(values, dtype=np.float64)
    value = float(v.mean())
    if n_boot == 0 or v.size < 2:
        return Metric(value, float("nan"), float("nan"), level, over), None
    b = _boot_means(v, n_boot, rng)
    lo, hi = np.quantile(b, [(1 - level) / 2, (1 + level) / 2])
    return Metric(value, float(lo), float(hi), level, over), b


def _quantile_metric(values, q, level, over):
    """The q-quantile with a distribution-free interval from order statistics
    (the number of values below the true quantile is Binomial(n, q))."""
    from scipy import stats

    x = np.sort(np.asarray(values, dtype=np.float64))
    n = x.size
    value = float(np.quantile(x, q))
    a = (1 - level) / 2
    lo_i = int(stats.binom.ppf(a, n, q)) - 1
    hi_i = int(stats.binom.ppf(1 - a, n, q))
    lo = min(float(x[lo_i]), value) if lo_i >= 0 else float("nan")
    hi = max(float(x[hi_i]), value) if hi_i < n else float("nan")
    return Metric(value, lo, hi, level, over)


# ---------------------------------------------------------------------------
# exact ball counts
# ---------------------------------------------------------------------------
def _budget_rows(max_memory):
    # a t x t tile: the float32 products, their bound and two sums (16 bytes a pair)
    t = int(math.sqrt(max(max_memory, 1 << 20) / 16))
    return int(max(256, min(t, 8192)))


def _bound_factor(D):
    """``f`` with ``|value - exact squared distance| <= f (|g~|^2 + |t~|^2)``
    for the float32 expansion on centred copies: ``2 gamma_D`` for the dot
    product and ``gamma_D`` for each norm (Higham 2002, section 3.1), the
    roundings of the sums and of the copies (``|d~^2 - d^2| <= 4 u32 (...)``),
    the float64 centring and recomputation; all doubled (see
    :mod:`repgap._search.certify`)."""
    from ._search.certify import U32, U64

    return 2.0 * (4.0 * (D + 8) * U32 + 12.0 * U32 + 4.0 * (D + 8) * U64)


def _radius_bound(r, scale):
    """A float32 upper bound of ``(r / scale)^2`` for each radius."""
    r2 = (np.asarray(r, dtype=np.float64) / scale) ** 2
    return np.nextafter(r2.astype(np.float32), np.float32(np.inf))


def _ball_pass(G, T, rT, rG, *, n_threads, max_memory, progress, top=0):
    """Exact ball relations between samples ``G`` and training rows ``T``.

    Returns ``count`` (m,): training balls ``B(t_i, rT_i)`` holding each
    sample, and ``covered`` (n,): the ball of ``t_i`` holds a sample (both
    None when ``rT`` is None); ``recalled`` (n,): some ball ``B(g_j, rG_j)``
    holds ``t_i`` (None when ``rG`` is None); and, with ``top > 0``, each
    sample's ``top`` nearest training rows ``(squared distances, rows)``,
    sorted by (distance, row), the bits of :func:`repgap.knn` (else None).
    """
    if is_tensor(G) or is_tensor(T):
        return _ball_pass_torch(G, T, rT, rG, max_memory=max_memory, progress=progress) + (None,)
    if not _dense_ok(G, T):
        return _ball_pass_tree(G, T, rT, rG, n_threads=n_threads) + (None,)
    return _dense_pass(G, T, rT, rG, n_threads=n_threads, max_memory=max_memory, progress=progress, top=top)


def _in_range(*arrays):
    """Every value's square and every sum of D squares stay normal float64."""
    return _frame_scale(*arrays) == 1.0


def _dense_pass(G, T, rT, rG, *, n_threads, max_memory, progress, top=0):
    """:func:`_ball_pass` by float32 matrix products over tiles of ``G x T``.

    For a tile, ``Z = 2 g.t - |g|^2 - |t|^2`` (minus the search value of the
    squared distance, on centred copies scaled by a power of two) is within
    ``e = f (max |g|^2 + max |t|^2)`` of the exact value. A pair is
    *flagged* when ``-Z - e`` is below a radius it is compared with (the
    ball's, or an upper bound on the row's ``top``-th distance,
    :class:`_TopCandidates`). After a block of samples has met every tile
    (or earlier, where they outgrow the budget), its flagged pairs (about
    ``k + top`` per sample, plus the rare near-ties) are recomputed by the
    exact primitive in one multi-threaded call and decided on those values. A pair that is not flagged is farther
    than every radius it could fall inside, with certainty, so every
    decision is the exact one.
    """
    from ._progress import Progress
    from ._search.exact import sqdist_rows

    m, D = G.shape
    n = T.shape[0]
    t = min(_budget_rows(max_memory or (256 << 20)), _DENSE_TILE)
    tq, tr = min(t, m), min(t, n)
    # centred on the training mean; an exact power of two brings the copies
    # near 1: no float32 overflow or loss to subnormals in their squares
    c, scale = _frame(T, G)
    f = _bound_factor(D)
    hiT = None if rT is None else _radius_bound(rT, scale)
    hiG = None if rG is None else _radius_bound(rG, scale)
    rT = None if rT is None else np.asarray(rT, dtype=np.float64)
    rG = None if rG is None else np.asarray(rG, dtype=np.float64)
    count = np.zeros(m, dtype=np.int64) if rT is not None else None
    covered = np.zeros(n, dtype=bool) if rT is not None else None
    recalled = np.zeros(n, dtype=bool) if rG is not None else None
    best = (np.full((m, top), np.inf), np.full((m, top), -1, dtype=np.int64)) if top else None
    same = G.dtype == T.dtype
    f32 = same and G.dtype == np.float32
    Tall = ntall = None
    if n * (D + 2) * 4 <= (max_memory or (1 << 30)):  # the float32 copy of T, made once, within the budget
        Tall, ntall = _augmented(T, 0, n, c, scale, "reference", f32)
    # one buffer each for the query block, the reference tile and the product
    Gbuf = np.empty((tq, D + 2), dtype=np.float32)
    Tbuf = None if Tall is not None else np.empty((tr, D + 2), dtype=np.float32)
    Zbuf = np.empty(tq * tr, dtype=np.float32)

    def exact(qi, ti, threads):
        if same:
            return sqdist_rows(G, T, qi, ti[:, None], n_threads=threads)[:, 0]
        a, b = np.asarray(G[qi], dtype=np.float64), np.asarray(T[ti], dtype=np.float64)
        k = np.arange(qi.size)
        return sqdist_rows(a, b, k, k[:, None], n_threads=threads)[:, 0]

    if not same:  # the copies to float64 take memory
        exact = _exact_chunks(exact, D, n_threads, max_memory or (256 << 20))
    else:
        exact = (lambda f: lambda qi, ti, th=n_threads: f(qi, ti, th))(exact)
    # pairs buffered: 24 bytes each, and a copy when merged; the radii's pairs
    # as many again (about 1.3 max_memory in all with the tiles)
    budget = max(_TopCandidates.MIN_BUDGET, (max_memory or (256 << 20)) // 48)

    def decide(qi, ti, q0, rows, cand, ball=None):
        """Exact values of the block's pairs (rows local, of ``rows``; columns
        global): the radii's decisions on the pairs a radius flagged (``ball``:
        a mask; None: all), each decided once, and, with ``top``, the merge of
        every pair into the block's lists."""
        if not qi.size:
            return
        sq = exact(qi + q0, ti)
        if cand is not None:
            cand.merge(qi, ti, sq)
        if ball is not None:
            qi, ti, sq = qi[ball], ti[ball], sq[ball]
        d = np.sqrt(sq)
        if rT is not None:
            inside = d < rT[ti]
            count[q0 : q0 + rows] += np.bincount(qi[inside], minlength=rows)
            covered[ti[inside]] = True
        if rG is not None:
            recalled[ti[d < rG[qi + q0]]] = True

    bar = Progress(-(-m // tq) * -(-n // tr), "ball counts", progress)
    try:
        for q0 in range(0, m, tq):
            q1 = min(q0 + tq, m)
            Gq, ng = _augmented(G, q0, q1, c, scale, "query", f32, out=Gbuf)
            # the block's flagged pairs are decided after its last tile, in one
            # multi-threaded call (:class:`_TopCandidates`), or earlier where
            # they outgrow the budget (duplicates: every pair of copies is flagged)
            cand = None
            if top:
                cand = _TopCandidates(q1 - q0, top, lambda i, j, th, q0=q0: exact(i + q0, j, th), n_threads, scale,
                                     budget)
            balls, nballs = [], 0  # (rows, columns) flagged by a radius
            for r0 in range(0, n, tr):
                r1 = min(r0 + tr, n)
                if Tall is not None:
                    Tr, nt = Tall[r0:r1], ntall[r0:r1]
                else:
                    Tr, nt = _augmented(T, r0, r1, c, scale, "reference", f32, out=Tbuf)
                # 2 g.t - |g|^2 - |t|^2 in one product
                Z = np.matmul(Gq, Tr.T, out=Zbuf[: (q1 - q0) * (r1 - r0)].reshape(q1 - q0, r1 - r0))
                e = np.float32(f * (float(ng.max()) + float(nt.max())) + 2.0**-100)
                rowthr = None  # flag when Z >= a row's threshold (the loosest of its radii)
                if rG is not None:
                    rowthr = -hiG[q0:q1] - e
                if top:
                    cand.seed(Z, 0, r0, e)
                    tt = cand.threshold(0, q1 - q0, e)
                    rowthr = tt if rowthr is None else np.minimum(rowthr, tt)
                colthr = None if rT is None else -hiT[r0:r1] - e
                qi, ti = _flag_pairs(Z, rowthr, colthr, True, _TILE_THREADS)
                if top:
                    cand.add(Z, qi, ti, 0, r0, e)
                if qi.size and (rT is not None or rG is not None):
                    # the pairs a radius flagged (the others only the top's bound)
                    lb = -Z[qi, ti].astype(np.float64) - float(e)
                    near = np.zeros(qi.size, dtype=bool)
                    if rG is not None:
                        h = hiG[qi + q0].astype(np.float64)
                        near |= lb <= h + _TopCandidates.SLACK * h
                    if rT is not None:
                        h = hiT[ti + r0].astype(np.float64)
                        near |= lb <= h + _TopCandidates.SLACK * h
                    balls.append((qi[near], ti[near] + r0))
                    nballs += int(near.sum())
                    if nballs > budget:
                        decide(*(np.concatenate(x) for x in zip(*balls)), q0, q1 - q0, cand)
                        balls, nballs = [], 0
                bar.update()
            # one exact call for the rest of the block: the radii's pairs and
            # the top's survivors, a pair flagged by both once. The radii
            # decide only their own pairs: a survivor may be a pair a radius
            # flagged and an earlier flush already counted
            bq = np.concatenate([p[0] for p in balls]) if balls else np.empty(0, np.int64)
            bt = np.concatenate([p[1] for p in balls]) if balls else np.empty(0, np.int64)
            if top:
                sq_, st_ = cand.pairs()
                kb = bq * n + bt
                key = np.union1d(kb, sq_ * n + st_)
                decide(key // n, key % n, q0, q1 - q0, cand, ball=np.isin(key, kb))
            else:
                decide(bq, bt, q0, q1 - q0, cand)
            if top:
                best[0][q0:q1], best[1][q0:q1] = cand.bd, cand.bi
    finally:
        bar.close()
    return count, covered, recalled, best


def _copy32(X, a, b, c, scale, f32, out, factor=1.0):
    """Rows a..b of X, centred on c and divided by ``scale``, then multiplied
    by ``factor`` (a power of two), in float32, written into ``out`` by
    blocks. With ``f32`` (every set of the pass is float32) the rows are
    scaled (exact: a power of two, so no overflow) and centred in float32 on
    ``c`` rounded to float32: each coordinate is then ``(x - c') / scale``
    correctly rounded, the copy the bound assumes, about the centre ``c'``
    (distances do not depend on the centre, as long as every set of the pass
    uses the same one: hence one mode per pass). A power-of-two ``factor``
    is exact in both modes, so the doubled query copy is twice that copy."""
    step = max(1, (8 << 20) // (8 * max(X.shape[1], 1)))
    inv = factor / scale  # a power of two: exact
    if f32:
        # 1 / scale as powers of two that float32 holds (it does not hold
        # 2^128 and beyond: subnormal data), each multiplication exact, then
        # the factor
        h = -math.frexp(scale)[1] + 1  # scale = 2^-h
        mults = [np.float32(2.0**h)] if h <= 120 else [np.float32(2.0 ** (h // 2)), np.float32(2.0 ** (h - h // 2))]
        if factor != 1.0:
            mults.append(np.float32(factor))
        cs = c.astype(np.float32)
        for mlt in mults:
            cs = cs * mlt
        for s in range(a, b, step):
            blk = out[s - a : min(s + step, b) - a]
            np.multiply(X[s : min(s + step, b)], mults[0], out=blk)
            for mlt in mults[1:]:
                blk *= mlt
            blk -= cs
        return out
    for s in range(a, b, step):
        blk = np.asarray(X[s : min(s + step, b)], dtype=np.float64) - c
        blk *= inv
        out[s - a : s - a + blk.shape[0]] = blk
    return out


def _frame(X, Y=None):
    """The centre (mean of X, float64) and a power of two above the largest
    centred magnitude of X and Y (bounded as ``max |x| + max |c|``)."""
    from ._search.certify import abs_max, column_mean

    D = X.shape[1]
    c = column_mean(X)
    amax = abs_max(X) if Y is None else abs_max(X, Y)
    amax += float(np.max(np.abs(c))) if D else 0.0
    scale = math.ldexp(1.0, math.frexp(amax)[1]) if amax > 0 else 1.0
    return c, scale


def _augmented(X, a, b, c, scale, side, f32, out=None):
    """float32 rows ``[2x, -|x|^2, -1]`` (queries) or ``[x, 1, |x|^2]``
    (reference) of the centred, scaled copies, and the squared norms: their
    products are ``Z = 2 g.t - |g|^2 - |t|^2``, one matrix product with no pass
    over the tile to add the norms (its error bound is the same, for D + 2
    terms). ``out``: a buffer of at least ``b - a`` rows to write them into
    (the passes reuse one: a fresh array per tile costs its page faults)."""
    D = X.shape[1]
    out = np.empty((b - a, D + 2), dtype=np.float32) if out is None else out[: b - a]
    x = out[:, :D]
    if side == "query":
        # the doubled copy is made directly (an exact power of two), and its
        # squared norms divided by 4 are the copy's own, bit for bit
        _copy32(X, a, b, c, scale, f32, x, 2.0)
        nx = (np.einsum("ij,ij->i", x, x, dtype=np.float64) * 0.25).astype(np.float32)
        out[:, D] = -nx
        out[:, D + 1] = -1.0
    else:
        _copy32(X, a, b, c, scale, f32, x)
        nx = np.einsum("ij,ij->i", x, x, dtype=np.float64).astype(np.float32)
        out[:, D] = 1.0
        out[:, D + 1] = nx
    return out, nx


def _query_form(R, out):
    """The query form ``[2x, -|x|^2, -1]`` of rows already in the reference
    form ``[x, 1, |x|^2]``, and their squared norms: the bits
    :func:`_augmented` gives for the same rows (doubling is exact, so the
    doubled copy is twice the copy and its norms are the copy's), without
    reading the data again."""
    D = R.shape[1] - 2
    out = out[: R.shape[0]]
    np.multiply(R[:, :D], np.float32(2.0), out=out[:, :D])
    nx = R[:, D + 1]
    np.negative(nx, out=out[:, D])
    out[:, D + 1] = -1.0
    return out, nx


#: threads of the compiled readers of a product tile (flags, seeds, merges):
#: one, because the BLAS threads of the product just made keep spinning for a
#: while and starve an OpenMP team of two on two cores (a 2048 x 2048 tile
#: flagged right after its product: 10 ms on one thread, 25 ms on two;
#: ``repgap.evaluate`` at 1e4 x 2048: 7.4 s -> 6.4 s). The exact
#: recomputation is not a tile reader: it runs once per block of rows (after
#: the block's last product) on all the threads (:class:`_TopCandidates`).
_TILE_THREADS = 1
#: rows and columns of the ball pass's tiles (at most): a 2048 x 2048
#: float32 product (16 MiB) is read back by the flags and seeds from the
#: last-level cache, where a 4096 x 4096 one (64 MiB) comes from memory.
#: ``_dense_pass`` alone, 2 threads, relu features of
#: ``bench_evaluate.py`` (medians of 5): n = 2e4, D = 16: 0.52 / 0.35 /
#: 0.40 s for 4096 / 2048 / 1024; D = 64: 0.60 / 0.44 / 0.53 s; n = 1e4,
#: D = 512: 0.46 / 0.44 s (OpenBLAS on its own AVX-512 kernels; on its
#: AVX2 ones 0.61 / 0.46 / 0.62 s and 0.85 / 0.73 / 0.85 s)
_DENSE_TILE = 2048
#: rows of the symmetric pass's blocks (at most): 10 blocks of 1024 rows at
#: n = 1e4 compute 55 % of the full product where 5 blocks of 2048 compute
#: 60 % (``repgap.evaluate`` at n = 1e4, D = 2048: 3.50 -> 3.30 s on
#: AVX-512 kernels, 5.48 -> 5.33 s on AVX2 ones, medians of 4)
_SELF_TILE = 1024


def _tile_kernels():
    """The compiled twins of the three tile readers below (the same results),
    or None where the extension is absent or pure Python is forced."""
    from ._backends import _load_cython

    mod = _load_cython()
    return mod if mod is not None and hasattr(mod, "flag_pairs") else None


def _flag_pairs(Z, rowthr, colthr, col_strict, n_threads=1):
    """``(rows, columns)`` of the entries of the tile Z flagged by a row's
    threshold (``Z >= rowthr[i]``) or a column's (``Z > colthr[j]``, or ``>=``
    unless ``col_strict``), in row-major order; None drops a test."""
    mod = _tile_kernels()
    f32 = all(a is None or a.dtype == np.float32 for a in (Z, rowthr, colthr))  # never rounded here
    if mod is not None and f32 and Z.flags.c_contiguous:
        c = (lambda a: None if a is None else np.ascontiguousarray(a))
        return mod.flag_pairs(Z, c(rowthr), c(colthr), bool(col_strict), n_threads=n_threads)
    return _flag_pairs_numpy(Z, rowthr, colthr, col_strict)


def _flag_pairs_numpy(Z, rowthr, colthr, col_strict):
    flag = None
    if colthr is not None:
        flag = (Z > colthr[None, :]) if col_strict else (Z >= colthr[None, :])
    if rowthr is not None:
        fr = Z >= rowthr[:, None]
        flag = fr if flag is None else np.logical_or(flag, fr, out=flag)
    if flag is None:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.nonzero(flag)


def _seed(Z, rows, top):
    """``(row, column)`` of the ``top`` largest entries of ``Z[rows]`` per row
    (the smallest search values), ties by the smaller column."""
    mod = _tile_kernels()
    if mod is not None and Z.dtype == np.float32:
        return mod.seed_top(Z, np.ascontiguousarray(rows, dtype=np.int64), int(top))
    return _seed_numpy(Z, rows, top)


def _seed_numpy(Z, rows, top):
    """:func:`_seed` by repeated arg-max (on a copy of the rows)."""
    kk = min(top, Z.shape[1])
    Zr = Z[rows]
    cols = np.empty((rows.size, kk), dtype=np.int64)
    ar = np.arange(rows.size)
    for j in range(kk):
        cols[:, j] = np.argmax(Zr, axis=1)
        Zr[ar, cols[:, j]] = -np.inf
    return np.repeat(rows, kk), cols.ravel()


def _merge_top(bd, bi, qi, ti, sq):
    """Merge candidates ``(row qi, column ti, exact sq)`` into each row's best
    ``(bd, bi)`` (in place), sorted by (distance, column), duplicates dropped."""
    mod = _tile_kernels()
    if mod is not None:
        mod.merge_top(bd, bi, np.ascontiguousarray(qi, dtype=np.int64), np.ascontiguousarray(ti, dtype=np.int64),
                      np.ascontiguousarray(sq, dtype=np.float64))
        return
    _merge_top_numpy(bd, bi, qi, ti, sq)


def _merge_top_numpy(bd, bi, qi, ti, sq):
    """:func:`_merge_top` by one lexicographic sort of the union."""
    K = bd.shape[1]
    rows = np.concatenate([np.repeat(np.arange(bd.shape[0]), K), qi])
    cols = np.concatenate([bi.ravel(), ti])
    vals = np.concatenate([bd.ravel(), sq])
    o = np.lexsort((cols, vals, rows))
    rows, cols, vals = rows[o], cols[o], vals[o]
    keep = np.ones(rows.size, dtype=bool)
    keep[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1]) | (cols[1:] < 0)
    rows, cols, vals = rows[keep], cols[keep], vals[keep]
    start = np.searchsorted(rows, np.arange(bd.shape[0]))
    rank = np.arange(rows.size) - start[rows]
    take = rank < K
    bd[rows[take], rank[take]] = vals[take]
    bi[rows[take], rank[take]] = cols[take]


class _TopCandidates:
    """Each row's ``K`` nearest columns, decided in few exact calls.

    The float32 tiles give each pair a search value ``v = -Z`` within ``e``
    of its exact squared distance (tile units): ``lb = v - e`` and ``ub = v +
    e`` bound it. Each row keeps its ``K`` smallest upper bounds (``ubd``:
    the last is an upper bound ``U`` on the row's K-th exact distance, since
    K distinct pairs lie below it) and every pair whose lower bound is not
    above ``U``. A pair of the true top K has ``lb <= exact <= (K-th exact)
    <= U`` for every ``U`` seen, so it is flagged by its tile and never
    pruned. The survivors (about ``K`` a row, plus the near-ties) are
    recomputed by the exact primitive, in one multi-threaded call, and merged
    by (distance, column) into the exact lists ``bd, bi``. Where they
    outgrow the buffer (``budget`` pairs: rows of duplicates, whose pairs no
    bound can separate), they are recomputed and merged then, and the exact
    K-th (``tau``) tightens the threshold too. Deciding per tile instead
    recomputes every pair that beats the row's running K-th (about 4 K a row
    over a pass), one thread at a time.
    """

    #: relative slack on ``U`` and ``tau``: it covers the float64 roundings of
    #: the bounds and of ``tau``'s conversion to tile units (float32 rounding
    #: of a threshold is harmless: ``Z >= x`` is ``Z >= ceil32(x)``)
    SLACK = 1e-6
    #: the smallest buffer, in pairs (the tests lower it)
    MIN_BUDGET = 1 << 12

    def __init__(self, n, K, exact, n_threads, scale, budget):
        self.K = K
        self.ubd = np.full((n, K), np.inf)
        self.ubi = np.full((n, K), -1, dtype=np.int64)
        self.bd = np.full((n, K), np.inf)
        self.bi = np.full((n, K), -1, dtype=np.int64)
        self._exact, self._threads, self._s2 = exact, n_threads, float(scale) ** 2
        self._tau = None  # the exact K-th in tile units, once a flush gave one
        self._parts = []
        self._size = 0
        self._cap = max(int(self.MIN_BUDGET), min(3 * K * n, int(budget)))
        self.peak = 0  # the largest buffer held, in pairs (for the tests)

    def _limit(self, rows=slice(None)):
        """Each row's bound on its K-th exact distance (tile units), slack included."""
        U = self.ubd[rows, -1]
        if self._tau is not None:
            U = np.minimum(U, self._tau[rows])
        with np.errstate(invalid="ignore"):
            return U + self.SLACK * np.abs(U)

    def threshold(self, r0, r1, e):
        """float32 flags ``Z >= thr`` for rows r0..r1: every pair with ``lb <= U``."""
        with np.errstate(over="ignore", invalid="ignore"):
            return (-self._limit(slice(r0, r1)) - float(e)).astype(np.float32)

    def seed(self, Z, r0, c0, e):
        """Rows of Z (rows r0.. of the pass) without K upper bounds yet: their K best of this tile."""
        ubr = self.ubd[r0 : r0 + Z.shape[0]]
        fresh = np.flatnonzero(~np.isfinite(ubr[:, -1]))
        if fresh.size:
            qi, ti = _seed(Z, fresh, self.K)
            _merge_top(ubr, self.ubi[r0 : r0 + Z.shape[0]], qi, ti + c0,
                       -Z[qi, ti].astype(np.float64) + float(e))

    def add(self, Z, qi, ti, r0, c0, e):
        """Flagged entries ``(qi, ti)`` of the tile Z (rows r0.., columns c0..)."""
        if not qi.size:
            return
        v = -Z[qi, ti].astype(np.float64)
        _merge_top(self.ubd[r0 : r0 + Z.shape[0]], self.ubi[r0 : r0 + Z.shape[0]], qi, ti + c0, v + float(e))
        self._parts.append((qi + r0, ti + c0, v - float(e)))
        self._size += qi.size
        self.peak = max(self.peak, self._size)
        if self._size > self._cap:
            self._compact()
            if self._size > self._cap // 2:
                self._flush()

    def _compact(self):
        if not self._parts:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        rows, cols, lb = (np.concatenate(a) for a in zip(*self._parts))
        keep = lb <= self._limit(rows)
        rows, cols, lb = rows[keep], cols[keep], lb[keep]
        self._parts = [(rows, cols, lb)]
        self._size = rows.size
        return rows, cols

    def _flush(self):
        """Recompute the buffered pairs exactly, merge them, empty the buffer."""
        rows, cols = self._compact()
        self._parts, self._size = [], 0
        self.merge(rows, cols, self._exact(rows, cols, self._threads))
        self._tau = self.bd[:, -1] / self._s2

    def merge(self, rows, cols, sq):
        """Merge exact values (squared distances of pairs ``(rows, cols)``) into ``bd, bi``."""
        step = 1 << 20
        for s in range(0, rows.size, step):
            _merge_top(self.bd, self.bi, rows[s : s + step], cols[s : s + step], sq[s : s + step])

    def pairs(self):
        """The surviving ``(rows, columns)`` not yet decided, each pair once (the buffer is emptied)."""
        rows, cols = self._compact()
        self._parts, self._size = [], 0
        return rows, cols

    def decide(self):
        """``(squared distances, columns)`` of every row's K nearest, sorted by
        (distance, column): the survivors' exact values, merged."""
        rows, cols = self.pairs()
        if rows.size:
            self.merge(rows, cols, self._exact(rows, cols, self._threads))
        return self.bd, self.bi


def _exact_chunks(exact, D, threads, max_memory):
    """``exact(qi, ti, threads)`` over chunks of pairs, for mixed precisions,
    which copy the pairs' rows to float64 (16 D bytes a pair): at most a
    quarter of ``max_memory`` (and 64 MiB) a call."""
    step = max(1, min(64 << 20, max(max_memory // 4, 1 << 16)) // (16 * max(D, 1)))

    def run(qi, ti, n_threads=threads):
        if qi.size <= step:
            return exact(qi, ti, n_threads)
        return np.concatenate([exact(qi[s : s + step], ti[s : s + step], n_threads)
                               for s in range(0, qi.size, step)])
    return run


def _ball_pass_tree(G, T, rT, rG, *, n_threads):
    """:func:`_ball_pass` in low dimension, from k-d tree ball queries: the
    candidates of each ball, found with a radius inflated past any rounding of
    the tree's distances, are decided by the exact float64 distances. The work
    is the number of pairs in the balls (about ``k`` per point), not ``m n``."""
    m, n = G.shape[0], T.shape[0]
    count = covered = recalled = None
    if rT is not None:
        count = np.zeros(m, dtype=np.int64)
        covered = np.zeros(n, dtype=bool)
        for qi, ti, inside in _tree_pairs(G, T, rT, n_threads):
            count += np.bincount(qi[inside], minlength=m)
            covered[ti[inside]] = True
    if rG is not None:
        recalled = np.zeros(n, dtype=bool)
        for ti, qi, inside in _tree_pairs(T, G, rG, n_threads):
            recalled[ti[inside]] = True
    return count, covered, recalled


def _tree_pairs(P, C, rC, n_threads, chunk=1 << 15):
    """Yield ``(p, c, inside)``: candidate pairs (rows of P, rows of C) and
    whether ``d(P_p, C_c) < rC_c`` exactly, chunk by chunk of the centres C."""
    from scipy.spatial import cKDTree

    from ._search.exact import sqdist_rows

    tree = cKDTree(np.asarray(P, dtype=np.float64))
    rC = np.asarray(rC, dtype=np.float64)
    same = P.dtype == C.dtype
    for s in range(0, C.shape[0], chunk):
        rows = np.arange(s, min(s + chunk, C.shape[0]))
        rows = rows[rC[rows] > 0]  # an open ball of radius 0 holds nothing
        if rows.size == 0:
            continue
        r = rC[rows] * (1.0 + 1e-9) + 1e-300
        lists = tree.query_ball_point(np.asarray(C[rows], dtype=np.float64), r, workers=n_threads,
                                      return_sorted=False)
        lens = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
        if not lens.sum():
            continue
        p = np.concatenate([np.asarray(x, dtype=np.int64) for x in lists if len(x)])
        c = np.repeat(rows, lens)
        if same:
            sq = sqdist_rows(P, C, p, c[:, None], n_threads=n_threads)[:, 0]
        else:
            a, b = np.asarray(P[p], dtype=np.float64), np.asarray(C[c], dtype=np.float64)
            k = np.arange(p.size)
            sq = sqdist_rows(a, b, k, k[:, None], n_threads=n_threads)[:, 0]
        yield p, c, np.sqrt(sq) < rC[c]


def _settle(inside, unsure, r, G, T, q0, r0, n_threads):
    """Decide the pairs whose search value is within its error bound of the
    radius from the exact float64 distances (the engine's primitive: the
    bits ``knn`` returns)."""
    from ._search.exact import sqdist_rows

    if not unsure.any():
        return
    qi, ti = np.nonzero(unsure)
    if G.dtype == T.dtype:
        sq = sqdist_rows(G, T, qi + q0, (ti + r0)[:, None], n_threads=n_threads)[:, 0]
    else:
        a = np.asarray(G[qi + q0], dtype=np.float64)
        b = np.asarray(T[ti + r0], dtype=np.float64)
        k = np.arange(a.shape[0])
        sq = sqdist_rows(a, b, k, k[:, None], n_threads=n_threads)[:, 0]
    inside[qi, ti] = np.sqrt(sq) < np.broadcast_to(r, inside.shape)[qi, ti]


def _ball_pass_torch(G, T, rT, rG, *, max_memory, progress):
    """:func:`_ball_pass` on a torch device, by the flag-and-recompute rule of
    :func:`_dense_pass`: float32 products (TF32 off) with the same bound, the
    flagged pairs (about ``k`` per sample) recomputed on the device in float64
    from differences, summed in the host primitive's order
    (:func:`repgap._kernels_torch.lanes_sum`): the same bits."""
    from ._kernels_torch import _torch, default_memory, lanes_sum

    torch = _torch()
    dev = (G if is_tensor(G) else T).device
    G = G if is_tensor(G) else torch.as_tensor(G, device=dev)
    T = T if is_tensor(T) else torch.as_tensor(T, device=dev)
    m, D = G.shape
    n = T.shape[0]
    t = _budget_rows(max_memory or min(default_memory(dev), 1 << 30))
    tq, tr = min(t, m), min(t, n)
    f = _bound_factor(D)
    count = torch.zeros(m, dtype=torch.int64, device=dev) if rT is not None else None
    covered = torch.zeros(n, dtype=torch.bool, device=dev) if rT is not None else None
    recalled = torch.zeros(n, dtype=torch.bool, device=dev) if rG is not None else None
    prev = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # the bound is for float32 products, not TF32
    try:
        with torch.no_grad():
            c = T.to(torch.float64).mean(0)
            amax = max(float((G.to(torch.float64) - c).abs().max()), float((T.to(torch.float64) - c).abs().max()))
            scale = math.ldexp(1.0, math.frexp(amax)[1]) if amax > 0 else 1.0
            hiT = hiG = rTt = rGt = None
            if rT is not None:
                hiT = torch.as_tensor(_radius_bound(rT, scale), device=dev)
                rTt = torch.as_tensor(np.asarray(rT, dtype=np.float64), device=dev)
            if rG is not None:
                hiG = torch.as_tensor(_radius_bound(rG, scale), device=dev)
                rGt = torch.as_tensor(np.asarray(rG, dtype=np.float64), device=dev)

            def copy(X, a, b):
                Y = ((X[a:b].to(torch.float64) - c) / scale).to(torch.float32)
                return Y, (Y.to(torch.float64) ** 2).sum(1).to(torch.float32)

            for q0 in range(0, m, tq):
                q1 = min(q0 + tq, m)
                Gq, ng = copy(G, q0, q1)
                Gq2 = 2.0 * Gq
                for r0 in range(0, n, tr):
                    r1 = min(r0 + tr, n)
                    Tr, nt = copy(T, r0, r1)
                    Z = Gq2 @ Tr.T
                    Z -= ng[:, None]
                    Z -= nt[None, :]
                    e = f * (float(ng.max()) + float(nt.max())) + 2.0**-100
                    flag = None
                    if hiT is not None:
                        flag = Z > (-hiT[r0:r1] - e)[None, :]
                    if hiG is not None:
                        fg = Z > (-hiG[q0:q1] - e)[:, None]
                        flag = fg if flag is None else (flag | fg)
                    del Z
                    qi, ti = torch.nonzero(flag, as_tuple=True)
                    if qi.numel():
                        qi, ti = qi + q0, ti + r0
                        diff = G[qi].to(torch.float64) - T[ti].to(torch.float64)
                        diff *= diff
                        d = _tensor_sqrt(lanes_sum(diff))  # the bits of the host primitive and of knn on tensors
                        if rTt is not None:
                            inside = d < rTt[ti]
                            count += torch.bincount(qi[inside], minlength=m)
                            covered[ti[inside]] = True
                        if rGt is not None:
                            recalled[ti[d < rGt[qi]]] = True
    finally:
        torch.backends.cuda.matmul.allow_tf32 = prev
    return tuple(None if v is None else _host(v) for v in (count, covered, recalled))


def _ball_counts_group(G, T, rT, rG, search):
    """The same relations modulo a group, from k-NN searches modulo the group
    (:func:`_reverse_counts`): as exact as the distances modulo the group
    (upper bounds for products of continuous groups, as :func:`repgap.knn`
    says)."""
    count = _reverse_counts(G, T, rT, search)
    dc, _ = search(T, G, 1)
    covered = _host(dc)[:, 0] < rT
    recalled = None
    if rG is not None:
        recalled = _reverse_counts(T, G, rG, search) > 0
    return count, covered, recalled


def _reverse_counts(Q, R, rR, search):
    """For each row of Q, how many balls ``B(R_i, rR_i)`` hold it, exactly.

    The balls are taken in bands of decreasing radius (64, 256, 1024, ...
    rows): within a band, a query's ``K`` nearest centres with the ``K``-th
    farther than the band's largest radius hold every ball of the band that
    can contain it, so a few large balls (outliers, the tails of a density)
    cost a search of their own small band instead of a search of everything.
    """
    m, n = Q.shape[0], R.shape[0]
    count = np.zeros(m, dtype=np.int64)
    order = np.argsort(-np.asarray(rR, dtype=np.float64), kind="stable")
    s, size = 0, 64
    while s < n:
        rows = np.sort(order[s : s + size])
        count += _band_counts(Q, take_rows(R, rows), np.asarray(rR)[rows], search)
        s += size
        size *= 4
    return count


def _band_counts(Q, Rb, rb, search, budget=1 << 26):
    m, nb = Q.shape[0], Rb.shape[0]
    count = np.zeros(m, dtype=np.int64)
    rmax = float(np.max(rb))
    if not rmax > 0:
        return count  # open balls of radius 0 hold nothing
    todo = np.arange(m)
    K = min(nb, 16)
    while todo.size:
        step = max(1, budget // (16 * K))  # (distance, row) pairs per search: bounded
        left = []
        for s in range(0, todo.size, step):
            rows = todo[s : s + step]
            d, i = search(take_rows(Q, rows), Rb, K)
            d, i = _host(d), _host(i)
            count[rows] = np.sum(d < rb[i], axis=1)
            left.append(rows[~((d[:, -1] >= rmax) | (K >= nb))])
        todo = np.concatenate(left)
        K = min(nb, 4 * K)
    return count


# ---------------------------------------------------------------------------
# the data-copying test
# ---------------------------------------------------------------------------
def _z_u(gen, test):
    """Z-scored Mann-Whitney ``U = sum 1[gen > test]`` (ties 1/2), no continuity correction."""
    from scipy.stats import rankdata

    a, b = gen.size, test.size
    ranks = rankdata(np.concatenate([gen, test]))
    U = float(ranks[:a].sum()) - a * (a + 1) / 2.0
    return (U - a * b / 2.0) / math.sqrt(a * b * (a + b + 1) / 12.0)


def _cells(T, n_cells, rng, search):
    """Centroids of a k-means partition of the training rows (fitted on at
    most 20,000 of them), without empty cells."""
    from scipy.cluster.vq import kmeans2

    n = T.shape[0]
    rows = np.sort(rng.choice(n, size=min(n, _KMEANS_ROWS), replace=False))
    X = np.asarray(_host(take_rows(T, rows)), dtype=np.float64)
    n_cells = min(n_cells, X.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # empty clusters are dropped below
        C, _ = kmeans2(X, n_cells, iter=20, minit="++", seed=rng)
    C = C[np.all(np.isfinite(C), axis=1)]
    if is_tensor(T):
        import torch

        C = torch.as_tensor(C, device=T.device, dtype=T.dtype)
    # drop centroids no training row is nearest to
    lab = _assign(T, C, search)
    used = np.unique(lab)
    C = take_rows(C, used)
    return C


def _assign(X, C, search):
    _, i = search(X, C, 1)
    return _host(i)[:, 0]


def _within_cell(X, lab, T, tlab, n_cells, search):
    """Distance from each row of X to its nearest training row in its own cell."""
    out = np.full(X.shape[0], np.nan)
    for cell in range(n_cells):
        rows = np.flatnonzero(lab == cell)
        trows = np.flatnonzero(tlab == cell)
        if rows.size == 0 or trows.size == 0:
            continue
        d, _ = search(take_rows(X, rows), take_rows(T, trows), 1)
        out[rows] = _host(d)[:, 0]
    return out


class _CellIndex:
    """The C_T partition of a training set, fitted once."""

    def __init__(self, T, n_cells, rng, search):
        self.T = T
        self.search = search
        self.C = _cells(T, n_cells, rng, search)
        self.n_cells = int(self.C.shape[0])
        self.tlab = _assign(T, self.C, search)

    def distances(self, X):
        lab = _assign(X, self.C, self.search)
        return lab, _within_cell(X, lab, self.T, self.tlab, self.n_cells, self.search)


def _copying_result(cells, test_lab, test_L, gen_lab, gen_L, min_samples):
    from scipy.stats import norm

    K = cells.n_cells
    nt = np.bincount(cells.tlab, minlength=K)
    nh = np.bincount(test_lab, minlength=K)
    ng = np.bincount(gen_lab, minlength=K)
    z = np.full(K, np.nan)
    for c in range(K):
        if nh[c] and ng[c]:
            z[c] = _z_u(gen_L[gen_lab == c], test_L[test_lab == c])
    used = (ng >= min_samples) & (nh > 0)
    if used.any():
        w = nh[used] / test_lab.size
        stat = float(np.dot(w, z[used]) / w.sum())
        s = math.sqrt(float(np.sum(w * w))) / float(w.sum())
        p = float(norm.cdf(stat / s))
    else:
        stat, p = float("nan"), float("nan")
    return CopyingTest(statistic=stat, p_value=p, z=z, used=used, n_train=nt, n_test=nh, n_generated=ng,
                       n_cells=K, min_samples=int(min_samples))


def default_cells(n_test):
    """The default number of C_T cells: about 50 held-out points per cell on
    average, at most 50 cells (Meehan et al. use tens)."""
    return int(max(1, min(50, n_test // 50)))


def data_copying_test(generated, train, test, *, n_cells=None, min_samples=20, group=None, random_state=None,
                      backend=None, n_jobs=None):
    """The data-copying test ``C_T`` of Meehan, Chaudhuri & Dasgupta (2020).

    Parameters
    ----------
    generated, train, test : array-like or tensor (m, D), (n, D), (h, D)
    n_cells : int, optional
        Cells of the k-means partition of the training set (default
        :func:`default_cells`).
    min_samples : int, default=20
        Cells with fewer generated samples are left out (``tau = min_samples
        / m`` in the paper).
    group : repgap.groups.Group, optional
        Distances and cell assignments modulo the group.
    random_state : int, Generator or None
        Seeds the k-means.

    Returns
    -------
    CopyingTest
    """
    group = check_group(group)
    search = _searcher(group, None, backend, n_jobs)
    G, T, H = _inputs(generated, train, test)
    rng = check_random_state(random_state)
    n_cells = default_cells(H.shape[0]) if n_cells is None else check_int(n_cells, "n_cells", low=1)
    min_samples = check_int(min_samples, "min_samples", low=1)
    cells = _CellIndex(T, n_cells, rng, search)
    hl, hL = cells.distances(H)
    gl, gL = cells.distances(G)
    return _copying_result(cells, hl, hL, gl, gL, min_samples)


# ---------------------------------------------------------------------------
# inputs and searches
# ---------------------------------------------------------------------------
def _inputs(generated, train, test=None):
    out = []
    for X, name in ((generated, "generated"), (train, "train"), (test, "test")):
        if X is None:
            out.append(None)
        elif is_tensor(X):
            from ._kernels_torch import check_tensor

            out.append(check_tensor(X, name))
        else:
            out.append(check_array(X, name))
    D = {X.shape[1] for X in out if X is not None}
    if len(D) > 1:
        shapes = ", ".join(f"{name} {tuple(X.shape)}" for X, name in zip(out, ("generated", "train", "test"))
                           if X is not None)
        raise ValueError(f"the sets must have the same number of features; got {shapes}")
    if any(is_tensor(X) for X in out if X is not None):
        from ._kernels_torch import _torch

        torch = _torch()
        dev = next(X.device for X in out if X is not None and is_tensor(X))
        out = [X if X is None or is_tensor(X) else torch.as_tensor(X, device=dev) for X in out]
    return out


def _searcher(group, progress, backend, n_jobs):
    from .law import _check_backend, _check_n_jobs

    _check_backend(backend)
    _check_n_jobs(n_jobs)

    def search(Q, R, k):
        return knn(Q, R, k=k, group=group, backend=backend, n_jobs=n_jobs, progress=progress)

    return search


def _check_common(k, group, ratio, n_boot, confidence, n_cells, min_samples, max_memory, progress):
    from ._validation import check_bool

    k = check_int(k, "k", low=1)
    group = check_group(group)
    ratio = check_real(ratio, "memorization_ratio", 0.0, 1.0, low_open=True, high_open=True)
    n_boot = check_int(n_boot, "n_boot", low=0)
    confidence = check_real(confidence, "confidence", 0.0, 1.0, low_open=True, high_open=True)
    if n_cells is not None:
        n_cells = check_int(n_cells, "n_cells", low=1)
    min_samples = check_int(min_samples, "min_samples", low=1)
    max_memory = check_real(max_memory, "max_memory", low=1, allow_none=True)
    check_bool(progress, "progress", allow_none=True)
    return k, group, ratio, n_boot, confidence, n_cells, min_samples, max_memory


def _plain(group):
    return group is None or isinstance(group, Identity)


def _self_radii(X, k, search, what, meter=None):
    """``(NND_k, NND_1)`` of every row of X within X (the point itself
    excluded): by the symmetric float32 pass where it is faster (no group,
    arrays, at least :data:`SELF_PASS_MIN_DIM` features), else a k-NN search."""
    n = X.shape[0]
    if n < k + 1:
        raise ValueError(f"{what} has {n} rows: the k-NN radii with k={k} need at least k + 1 = {k + 1}")
    if (meter is not None and _plain(meter.group) and not is_tensor(X) and X.shape[1] >= SELF_PASS_MIN_DIM
            and _dense_ok(X, X)):
        sq, _ = _self_top(X, k + 1, n_threads=meter._threads(), max_memory=meter.max_memory,
                          progress=meter.progress)
        d = np.sqrt(sq)
    else:
        d, _ = search(X, X, k + 1)
        d = _host(d)
    return np.ascontiguousarray(d[:, k]), np.ascontiguousarray(d[:, 1])


def _self_top(X, K, *, n_threads, max_memory, progress):
    """Each row's ``K`` nearest rows of X (itself included), exactly: the
    flag-and-recompute rule of :func:`_dense_pass` over the tiles above the
    diagonal only (``d(x, y) = d(y, x)``, bit for bit in the exact
    primitive), each tile serving its rows and its columns: half the
    products of a k-NN search of X in itself, and the same result
    (``(squared distances, rows)`` sorted by (distance, row)). The flagged
    pairs are decided at the end, or where they outgrow the budget
    (:class:`_TopCandidates`)."""
    from ._progress import Progress
    from ._search.exact import sqdist_rows

    n, D = X.shape
    # smaller tiles than the ball pass's: the diagonal tiles are computed
    # whole, so the saving over a full search is 1 - (B + 1) / (2 B) for B blocks
    t = min(_budget_rows(max_memory or (256 << 20)), _SELF_TILE)
    c, scale = _frame(X)
    f32 = X.dtype == np.float32
    f = _bound_factor(D)
    blocks = [(a, min(a + t, n)) for a in range(0, n, t)]
    # the reference form of every block, made once where the float32 copy of
    # X fits the budget (as the ball pass's copy of T), else once per tile;
    # one buffer for the query form and one for the tile, reused
    Rall = None
    if n * (D + 2) * 4 <= (max_memory or (1 << 30)):
        Rall = _augmented(X, 0, n, c, scale, "reference", f32)
    tb = min(t, n)
    Qbuf = np.empty((tb, D + 2), dtype=np.float32)
    Rbuf = None if Rall is not None else np.empty((tb, D + 2), dtype=np.float32)
    Zbuf = np.empty(tb * tb, dtype=np.float32)
    # one step more for the exact decision at the end
    bar = Progress(len(blocks) * (len(blocks) + 1) // 2 + 1, "k-NN radii", progress)

    def exact(qi, ti, threads):
        return sqdist_rows(X, X, qi, ti[:, None], n_threads=threads)[:, 0]

    # pairs buffered: 24 bytes each, and a copy when merged
    top = _TopCandidates(n, K, exact, n_threads, scale, (max_memory or (256 << 20)) // 48)

    def side(Z, rows0, cols0, e, transposed=False):
        """Flag and keep the candidates of the rows of Z (Z's columns are rows cols0..)."""
        top.seed(Z, rows0, cols0, e)
        thr = top.threshold(rows0, rows0 + Z.shape[0], e)
        if transposed:  # compare on the contiguous tile, then swap the roles
            ti, qi = _flag_pairs(Z.T, None, thr, False, _TILE_THREADS)
        else:
            qi, ti = _flag_pairs(Z, thr, None, False, _TILE_THREADS)
        top.add(Z, qi, ti, rows0, cols0, e)

    try:
        for I, (a0, a1) in enumerate(blocks):
            if Rall is not None:
                Qa, nq = _query_form(Rall[0][a0:a1], Qbuf)
            else:
                Qa, nq = _augmented(X, a0, a1, c, scale, "query", f32, out=Qbuf)
            for b0, b1 in blocks[I:]:
                if Rall is not None:
                    Rj, nj = Rall[0][b0:b1], Rall[1][b0:b1]
                else:
                    Rj, nj = _augmented(X, b0, b1, c, scale, "reference", f32, out=Rbuf)
                Z = np.matmul(Qa, Rj.T, out=Zbuf[: (a1 - a0) * (b1 - b0)].reshape(a1 - a0, b1 - b0))
                e = np.float32(f * (float(nq.max()) + float(nj.max())) + 2.0**-100)
                side(Z, a0, b0, e)
                if b0 != a0:
                    side(Z.T, b0, a0, e, transposed=True)
                bar.update()
        out = top.decide()
        bar.update()
    finally:
        bar.close()
    return out


# ---------------------------------------------------------------------------
# the streaming accumulator and the one-call evaluation
# ---------------------------------------------------------------------------
class EvaluationMeter:
    """Streaming evaluation for sampling loops.

    The training side (its k-NN radii, its nearest-neighbour distances, the
    held-out distances and the C_T partition) is computed once, here.
    ``update(batch)`` searches each batch of generated samples against the
    training set and keeps only per-sample numbers (and the batch, which
    recall and the samples' own radii need at the end); ``compute()``
    returns the :class:`Evaluation` of everything since the last
    ``reset()``. Tensors stay on their device.

    Parameters
    ----------
    train : array-like or tensor (n, D)
    test : array-like or tensor (h, D), optional
        Held-out real data: the Representation Gap of fresh data, the
        distance-to-closest-record baseline and the data-copying test.
    k : int, default=5
        Neighbours of the k-NN balls (``nearest_k`` of ``prdc``).
    group : repgap.groups.Group, optional
    memorization_ratio : float, default=1/3
    n_boot : int, default=1000
        Bootstrap replicates (0: no intervals).
    confidence : float, default=0.95
    n_cells, min_samples : C_T's partition (see :func:`data_copying_test`).
    random_state : int, Generator or None
        Seeds the bootstrap and the k-means of C_T.
    backend, n_jobs, progress, max_memory :
        As for :func:`repgap.knn`; ``max_memory`` (bytes) bounds the tiles of
        the ball-count pass and its float32 copy of the training set
        (default: 256 MiB of tiles, a copy of at most 1 GiB).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> train = rng.random((400, 6))
    >>> meter = EvaluationMeter(train, k=3, random_state=0)
    >>> meter.update(train[:100] + 1e-7)      # copies
    >>> meter.update(rng.random((100, 6)))    # fresh samples
    >>> round(meter.compute().authenticity.value, 2)
    0.5
    """

    def __init__(self, train, *, test=None, k=5, group=None, memorization_ratio=1 / 3, n_boot=1000,
                 confidence=0.95, n_cells=None, min_samples=20, random_state=None, backend=None, n_jobs=None,
                 progress=None, max_memory=None):
        (self.k, self.group, self.ratio, self.n_boot, self.level, self.n_cells, self.min_samples,
         self.max_memory) = _check_common(k, group, memorization_ratio, n_boot, confidence, n_cells, min_samples,
                                          max_memory, progress)
        self.random_state = random_state
        self._rng = check_random_state(random_state)
        self.progress = progress
        self.backend = backend
        self.n_jobs = n_jobs
        self._search = _searcher(self.group, progress, backend, n_jobs)
        _, self.train, self.test = _inputs(None, train, test)
        # data whose squares leave float64 (beyond 2^+-300): every search in a
        # frame scaled by a power of two (exact; the decisions do not depend on
        # it), and the distances scaled back in the result
        self._scale = _frame_scale(self.train, self.test)
        if self._scale != 1.0:
            self.train = self.train / self._scale
            self.test = None if self.test is None else self.test / self._scale
        self.rT, self.nnT = _self_radii(self.train, self.k, self._search, "train", self)
        self._test_d = None
        self._cells = None
        self._test_cells = None
        if self.test is not None:
            if self.test.shape[1] != self.train.shape[1]:
                raise ValueError(f"test has {self.test.shape[1]} features but train has {self.train.shape[1]}")
            d, i = _nearest_two(self.test, self.train, None, self._search)
            self._test_d = d[:, 0].copy()
            self._test_d2, self._test_i = d, i[:, 0].copy()
            n_cells = self.n_cells or default_cells(self.test.shape[0])
            crng = np.random.default_rng(self._rng.integers(1 << 63))
            self._cells = _CellIndex(self.train, n_cells, crng, self._search)
            self._test_cells = self._cells.distances(self.test)
        self.reset()

    def reset(self):
        """Forget the samples seen so far (the training side stays)."""
        self._batches = []
        self._d, self._i, self._count, self._clab, self._cL = [], [], [], [], []
        self._covered = np.zeros(self.train.shape[0], dtype=bool)

    @property
    def n_seen(self):
        return int(sum(len(d) for d in self._d))

    def _threads(self):
        from ._threads import resolve_n_jobs

        return resolve_n_jobs(self.n_jobs)

    def update(self, batch):
        """Search one batch of generated samples (array or tensor (b, D))."""
        (B,) = [X for X in _inputs(batch, None, None) if X is not None]
        if self._scale != 1.0:
            B = B / self._scale
        if B.shape[1] != self.train.shape[1]:
            raise ValueError(f"the batch has {B.shape[1]} features but train has {self.train.shape[1]}")
        if is_tensor(B) != is_tensor(self.train):
            kinds = ("a torch tensor", "a numpy array") if is_tensor(B) else ("a numpy array", "a torch tensor")
            raise TypeError(f"the batch is {kinds[0]} but the training set is {kinds[1]}; give both as tensors "
                            "(on the same device) or both as arrays")
        best = count = covered = None
        if _plain(self.group) and (is_tensor(B) or _dense_ok(B, self.train)):
            # the brute-force pass costs what the batch costs: done now. The
            # k-d tree and group paths search the training set per ball, so
            # they run once over all the samples in compute()
            count, covered, _, best = _ball_pass(B, self.train, self.rT, None, n_threads=self._threads(),
                                                 max_memory=self.max_memory, progress=self.progress, top=2)
        d, i = _nearest_two(B, self.train, best, self._search)
        self._d.append(d)
        self._i.append(i)
        self._count.append(count)
        if covered is not None:
            self._covered |= covered
        self._batches.append(B)

        if self.test is not None and self._cells is not None:
            lab, L = self._cells.distances(B)
            self._clab.append(lab)
            self._cL.append(L)

    def _generated(self):
        if is_tensor(self._batches[0]):
            import torch

            return torch.cat(self._batches, 0)
        return np.concatenate(self._batches, axis=0) if len(self._batches) > 1 else self._batches[0]

    def compute(self):
        """The :class:`Evaluation` of every sample since the last reset."""
        if not self._batches:
            raise ValueError("no samples yet: call update(batch) first")
        G = self._generated()
        rng = np.random.default_rng(self._rng.integers(1 << 63))
        rG, _ = _self_radii(G, self.k, self._search, "the generated samples", self)
        if any(c is None for c in self._count):
            count, covered, recalled = _relations(G, self.train, self.rT, rG, self)
        else:
            count = np.concatenate(self._count)
            _, _, recalled = _recall_only(G, self.train, rG, self)
            covered = self._covered
        copying = None
        if self.test is not None:
            copying = _copying_result(self._cells, self._test_cells[0], self._test_cells[1],
                                      np.concatenate(self._clab), np.concatenate(self._cL), self.min_samples)
        return _assemble(self, np.concatenate(self._d), np.concatenate(self._i), count, covered, recalled, rG,
                         copying, rng)


def _dense_ok(G, T):
    """Pure predicate: do the ball relations of these arrays take the float32
    brute-force pass (else the k-d tree pass, or the searches modulo a group)?"""
    tree = G.shape[1] <= BALL_TREE_MAX_DIM and min(G.shape[0], T.shape[0]) >= 64
    return not tree and _in_range(G, T)


def _relations(G, T, rT, rG, meter, top=0):
    """``(count, covered, recalled[, best])`` by whichever pass fits the problem."""
    if _plain(meter.group):
        out = _ball_pass(G, T, rT, rG, n_threads=meter._threads(), max_memory=meter.max_memory,
                         progress=meter.progress, top=top)
        return out if top else out[:3]
    out = _ball_counts_group(G, T, rT, rG, meter._search)
    return out + (None,) if top else out


def _recall_only(G, T, rG, meter):
    return _ball_pass(G, T, None, rG, n_threads=meter._threads(), max_memory=meter.max_memory,
                      progress=meter.progress)[:3]


def _nearest_two(G, T, best, search):
    """Each sample's distances to its two nearest training rows and their
    rows: from the ball pass when it found them, else a k-NN search (a
    single training row gives an infinite second distance)."""
    if best is not None:
        sq, i = best
        return np.sqrt(sq), i
    d, i = search(G, T, min(2, T.shape[0]))
    d, i = _host(d), _host(i)
    if d.shape[1] < 2:
        d = np.concatenate([d, np.full_like(d, np.inf)], axis=1)
        i = np.concatenate([i, np.full_like(i, -1)], axis=1)
    return d, i


def _assemble(meter, d, i, count, covered, recalled, rG, copying, rng):
    from .diffusion import _ratios

    k, level, B = meter.k, meter.level, meter.n_boot
    m, n = d.shape[0], meter.train.shape[0]
    d1, d2, nearest = d[:, 0].copy(), d[:, 1].copy(), i[:, 0].copy()
    in_support = count > 0
    authentic = d1 > meter.nnT[nearest]
    memorized = _ratios(d) < meter.ratio
    prec, _ = _metric(in_support, B, level, rng, "generated")
    dens, _ = _metric(count / k, B, level, rng, "generated")
    rec, _ = _metric(recalled, B, level, rng, "train")
    cov, _ = _metric(covered, B, level, rng, "train")
    auth, _ = _metric(authentic, B, level, rng, "generated")
    mem, _ = _metric(memorized, B, level, rng, "generated")
    with np.errstate(over="ignore"):
        g2 = d1 * d1
    gap_g, bg = _metric(g2, B, level, rng, "generated")
    gap_t = gap_r = auth_t = mem_t = None
    dcr = {"generated": {q: _quantile_metric(d1, q, level, "generated") for q in DCR_QUANTILES}}
    p_value = None
    if meter._test_d is not None:
        h = meter._test_d
        gap_t, bt = _metric(h * h, B, level, rng, "held-out")
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio_value = gap_g.value / gap_t.value if gap_t.value > 0 else float("nan")
            if bg is not None and bt is not None:
                lo, hi = np.quantile(bg / bt, [(1 - level) / 2, (1 + level) / 2])
            else:
                lo = hi = float("nan")
        gap_r = Metric(float(ratio_value), float(lo), float(hi), level, "generated and held-out")
        dcr["test"] = {q: _quantile_metric(h, q, level, "held-out") for q in DCR_QUANTILES}
        from scipy import stats

        p_value = float(stats.mannwhitneyu(d1, h, alternative="less").pvalue)
        auth_t, _ = _metric(h > meter.nnT[meter._test_i], B, level, rng, "held-out")
        mem_t, _ = _metric(_ratios(meter._test_d2) < meter.ratio, B, level, rng, "held-out")
    sc = meter._scale
    if sc != 1.0:  # back from the scaled frame (inf where a value leaves float64)
        with np.errstate(over="ignore", under="ignore"):
            d1, d2, rG = d1 * sc, d2 * sc, rG * sc
            gap_g = _scaled(gap_g, sc * sc)
            gap_t = None if gap_t is None else _scaled(gap_t, sc * sc)
            dcr = {who: {q: _scaled(v, sc) for q, v in qs.items()} for who, qs in dcr.items()}
    test_d = None if meter._test_d is None else meter._test_d * sc
    return Evaluation(precision=prec, recall=rec, density=dens, coverage=cov, authenticity=auth, memorized=mem,
                      gap_generated=gap_g, gap_test=gap_t, gap_ratio=gap_r, test_authenticity=auth_t,
                      test_memorized=mem_t, dcr=dcr, copying=copying,
                      copying_p_value=p_value, k=k, n_generated=m, n_train=n,
                      n_test=0 if meter.test is None else int(meter.test.shape[0]),
                      group="none" if _plain(meter.group) else repr(meter.group), in_support=in_support,
                      ball_counts=count, authentic=authentic, distances=d1, second_distances=d2, nearest=nearest,
                      recalled=recalled, covered=covered, train_radii=meter.rT * sc, generated_radii=rG,
                      test_distances=test_d, memorization_ratio=meter.ratio, level=level)


def _scaled(m, f):
    return dataclasses.replace(m, value=m.value * f, low=m.low * f, high=m.high * f)


def _frame_scale(*arrays):
    """1, or a power of two that brings the data's largest magnitude near 1
    when it is beyond 2^+-300 (where squared distances over- or underflow)."""
    a = 0.0
    for X in arrays:
        if X is not None and X.shape[0]:
            a = max(a, _max_abs(X))
    if a == 0.0 or 2.0**-300 <= a <= 2.0**300:
        return 1.0
    return math.ldexp(1.0, math.frexp(a)[1])


def evaluate(generated, train, *, test=None, k=5, group=None, memorization_ratio=1 / 3, n_boot=1000,
             confidence=0.95, n_cells=None, min_samples=20, random_state=None, backend=None, n_jobs=None,
             progress=None, max_memory=None):
    """Precision, recall, density, coverage, authenticity, memorization, the
    distance to the closest record, the Representation Gap and the
    data-copying test of generated samples, from one set of exact searches.

    Parameters
    ----------
    generated : array-like or tensor (m, D)
        The model's samples (or their features).
    train : array-like or tensor (n, D)
        The training set (the "real" set of ``prdc``).
    test : array-like or tensor (h, D), optional
        Held-out real data (for ``gap_test``, ``gap_ratio``, the held-out
        distance quantiles and ``C_T``).
    k, group, memorization_ratio, n_boot, confidence, n_cells, min_samples,
    random_state, backend, n_jobs, progress, max_memory :
        As for :class:`EvaluationMeter`.

    Returns
    -------
    Evaluation

    Notes
    -----
    Definitions and sources are in :mod:`repgap.evaluation`. Without a
    group, the numbers are those of ``prdc.compute_prdc(train, generated,
    k)`` wherever prdc's own arithmetic is accurate (its distances come from
    the expansion ``|x|^2 + |y|^2 - 2 x.y``: on data far from the origin
    next to their spread they lose their digits and prdc's numbers with
    them; these are from exact distances). Torch tensors are searched on their device; the per-sample
    results come back as numpy arrays.

    Examples
    --------
    >>> import numpy as np, repgap
    >>> rng = np.random.default_rng(0)
    >>> train = rng.standard_normal((1000, 8))
    >>> ev = repgap.evaluate(rng.standard_normal((500, 8)), train, k=5, random_state=0)
    >>> 0.8 < ev.precision.value <= 1.0 and 0.8 < ev.coverage.value <= 1.0
    True
    """
    meter = EvaluationMeter(train, test=test, k=k, group=group, memorization_ratio=memorization_ratio,
                            n_boot=n_boot, confidence=confidence, n_cells=n_cells, min_samples=min_samples,
                            random_state=random_state, backend=backend, n_jobs=n_jobs, progress=progress,
                            max_memory=max_memory)
    (G,) = [X for X in _inputs(generated, None, None) if X is not None]
    if meter._scale != 1.0:
        G = G / meter._scale
    if G.shape[1] != meter.train.shape[1]:
        raise ValueError(f"generated has {G.shape[1]} features but train has {meter.train.shape[1]}")
    return _evaluate_once(meter, G)


def _evaluate_once(meter, G):
    """One batch: the samples' radii first, so that one pass over G x T
    gives precision, density, coverage and recall together."""
    if is_tensor(G) != is_tensor(meter.train):
        raise TypeError("give generated and train both as torch tensors (on one device) or both as arrays")
    rng = np.random.default_rng(meter._rng.integers(1 << 63))
    rG, _ = _self_radii(G, meter.k, meter._search, "the generated samples", meter)
    count, covered, recalled, best = _relations(G, meter.train, meter.rT, rG, meter, top=2)
    d, i = _nearest_two(G, meter.train, best, meter._search)
    copying = None
    if meter.test is not None:
        gl, gL = meter._cells.distances(G)
        copying = _copying_result(meter._cells, meter._test_cells[0], meter._test_cells[1], gl, gL,
                                  meter.min_samples)
    return _assemble(meter, d, i, count, covered, recalled, rG, copying, rng)
