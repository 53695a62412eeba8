"""repgap.evaluation against independent computations: the ``prdc`` package,
plain numpy distance matrices, a scipy implementation of Meehan et al.'s C_T,
brute force over finite groups, and the nominal coverage of the intervals."""
import contextlib
import io
import itertools

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import cKDTree

import repgap
from repgap import evaluation
from repgap.evaluation import CopyingTest, Evaluation, EvaluationMeter, Metric, data_copying_test, evaluate
from repgap.groups import CyclicShift, Permutation, Rotation, SignFlip
from conftest import AVAILABLE, REQUIRED


# ---------------------------------------------------------------------------
# the reference: full float64 distance matrices by differences
# ---------------------------------------------------------------------------
def _dist(Q, R):
    """The squared differences are summed in sorted order, so that two pairs
    with the same multiset of coordinate differences (a pair and its image
    under a coordinate permutation) get the same bits: exact ties stay ties."""
    Q = np.asarray(Q, dtype=np.float64)
    R = np.asarray(R, dtype=np.float64)
    return np.sqrt(np.sort((Q[:, None, :] - R[None, :, :]) ** 2, axis=-1).sum(-1))


def _dist_signflip(Q, R):
    return np.minimum(_dist(Q, R), _dist(Q, -np.asarray(R, dtype=np.float64)))


def _dist_cyclic(Q, R):
    R = np.asarray(R, dtype=np.float64)
    return np.min([_dist(Q, np.roll(R, s, axis=1)) for s in range(R.shape[1])], axis=0)


def _dist_perm(m, p):
    def dist(Q, R):
        Rc = np.asarray(R, dtype=np.float64).reshape(len(R), m, p)
        return np.min([_dist(Q, Rc[:, list(s)].reshape(len(R), m * p)) for s in itertools.permutations(range(m))],
                      axis=0)

    return dist


def _reference(G, T, k, H=None, ratio=1 / 3, dist=_dist):
    DTT, DGG, DGT = dist(T, T), dist(G, G), dist(G, T)
    sT, sG = np.sort(DTT, axis=1), np.sort(DGG, axis=1)
    rT, nn1, rG = sT[:, k], sT[:, 1], sG[:, k]  # the point itself is the 0 in column 0
    inside = DGT < rT[None, :]
    s = np.sort(DGT, axis=1)
    d1, d2 = s[:, 0], s[:, 1]
    nearest = np.argmin(DGT, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(d1 == 0, 0.0, d1 / d2)
    out = dict(train_radii=rT, nn1=nn1, generated_radii=rG, in_support=inside.any(1), ball_counts=inside.sum(1),
               covered=inside.any(0), recalled=(DGT < rG[:, None]).any(0), distances=d1, second_distances=d2,
               nearest=nearest, authentic=d1 > nn1[nearest], memorized=ratios < ratio, gap_generated=np.mean(d1**2),
               DGT=DGT)
    out.update(precision=out["in_support"].mean(), recall=out["recalled"].mean(),
               density=out["ball_counts"].mean() / k, coverage=out["covered"].mean())
    if H is not None:
        DHT = dist(H, T)
        sH = np.sort(DHT, axis=1)
        dH = sH[:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            rH = np.where(dH == 0, 0.0, dH / sH[:, 1])
        out.update(test_distances=dH, gap_test=np.mean(dH**2), test_authentic=dH > nn1[np.argmin(DHT, axis=1)],
                   test_memorized=rH < ratio)
    return out


def _assert_matches(ev, ref, k):
    for name in ("in_support", "ball_counts", "covered", "recalled"):
        np.testing.assert_array_equal(getattr(ev, name), ref[name], err_msg=name)
    for name in ("train_radii", "generated_radii", "distances", "second_distances"):
        np.testing.assert_allclose(getattr(ev, name), ref[name], rtol=1e-12, atol=1e-300, err_msg=name)
    # the nearest row is a minimiser, and authenticity follows it
    got = ref["DGT"][np.arange(len(ev.nearest)), ev.nearest]
    np.testing.assert_allclose(got, ref["distances"], rtol=1e-12, atol=1e-300)
    np.testing.assert_array_equal(ev.authentic, ev.distances > ref["nn1"][ev.nearest])
    # ties are broken by the lowest row, as np.argmin does (repgap.knn's rule)
    np.testing.assert_array_equal(ev.nearest, ref["nearest"])
    np.testing.assert_array_equal(ev.authentic, ref["authentic"])
    assert ev.precision.value == ref["precision"]
    assert ev.recall.value == ref["recall"]
    assert ev.coverage.value == ref["coverage"]
    assert ev.density.value == pytest.approx(ref["density"], rel=1e-12, abs=1e-15)
    assert ev.authenticity.value == ref["authentic"].mean()
    assert ev.memorized.value == ref["memorized"].mean()
    assert ev.gap_generated.value == pytest.approx(ref["gap_generated"], rel=1e-12, abs=1e-300)


def _quiet_prdc(T, G, k):
    prdc = pytest.importorskip("prdc")
    with contextlib.redirect_stdout(io.StringIO()):
        return prdc.compute_prdc(T, G, k)


def _per_sample(ev):
    names = ("in_support", "ball_counts", "authentic", "distances", "second_distances", "nearest", "recalled",
             "covered", "train_radii", "generated_radii")
    return {n: np.asarray(getattr(ev, n)) for n in names}


_FLOATS = ("distances", "second_distances", "train_radii", "generated_radii")


def _assert_same(a, b, intervals=True, rtol=0.0):
    """Per-sample results equal (the distances to ``rtol``: 0 means the same
    bits), and the metrics equal (to ``rtol`` for the distance-based ones)."""
    pa, pb = _per_sample(a), _per_sample(b)
    for n in pa:
        if rtol and n in _FLOATS:
            np.testing.assert_allclose(pa[n], pb[n], rtol=rtol, atol=0, err_msg=n)
        else:
            np.testing.assert_array_equal(pa[n], pb[n], err_msg=n)
    for name, m in a.metrics().items():
        o = getattr(b, name)
        if rtol and name.startswith("gap"):
            np.testing.assert_allclose([m.value, m.low, m.high] if intervals else [m.value],
                                       [o.value, o.low, o.high] if intervals else [o.value], rtol=rtol)
            continue
        assert m.value == o.value or (np.isnan(m.value) and np.isnan(o.value)), name
        if intervals:
            np.testing.assert_array_equal([m.low, m.high], [o.low, o.high], err_msg=name)


def _torch():
    if "torch" not in AVAILABLE:
        if "torch" in REQUIRED:
            pytest.fail("torch is required here (REPGAP_REQUIRE_BACKENDS) but not installed")
        pytest.skip("torch is not installed")
    import torch

    return torch


# ---------------------------------------------------------------------------
# 1. prdc
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("n, m, D", [(600, 400, 16), (300, 500, 100)])
def test_equals_prdc(dtype, k, n, m, D):
    rng = np.random.default_rng(k * 1000 + D)
    T = rng.standard_normal((n, D)).astype(dtype)
    G = (1.1 * rng.standard_normal((m, D)) + 0.1).astype(dtype)
    r = _quiet_prdc(T, G, k)
    ev = evaluate(G, T, k=k, n_boot=0)
    assert ev.precision.value == r["precision"]
    assert ev.recall.value == r["recall"]
    assert ev.coverage.value == r["coverage"]
    assert ev.density.value == pytest.approx(r["density"], rel=0, abs=1e-12)
    assert ev.n_train == n and ev.n_generated == m and ev.k == k and ev.group == "none"


@pytest.mark.parametrize("k", [1, 3, 5])
def test_equals_prdc_with_duplicates_and_copies(k):
    rng = np.random.default_rng(7)
    T = rng.standard_normal((300, 8))
    T[100:150] = T[:50]  # exact duplicates in the training set
    T[150:155] = T[0]  # an item repeated many times
    G = np.concatenate([T[:80], T[200:230], rng.standard_normal((200, 8))])  # copies of training rows
    r = _quiet_prdc(T, G, k)
    ev = evaluate(G, T, k=k, n_boot=0)
    assert ev.precision.value == r["precision"]
    assert ev.recall.value == r["recall"]
    assert ev.coverage.value == r["coverage"]
    assert ev.density.value == pytest.approx(r["density"], rel=0, abs=1e-12)
    ref = _reference(G, T, k)
    _assert_matches(ev, ref, k)
    # an exact copy of a duplicated item: distance 0 = NND_1, not authentic
    assert not ev.authentic[:50].any() and np.all(ev.distances[:110] == 0)
    assert ev.memorized.value >= 110 / 310


# ---------------------------------------------------------------------------
# 2. every per-sample number against the plain reference
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 2, 5])
@pytest.mark.parametrize("D", [6, 12])  # the k-d tree ball pass (D <= BALL_TREE_MAX_DIM) and the float32 pass
def test_per_sample_against_reference(dtype, k, D):
    rng = np.random.default_rng(10 + k + D)
    T = rng.standard_normal((250, D)).astype(dtype)
    H = rng.standard_normal((120, D)).astype(dtype)
    G = np.concatenate([T[:40] + dtype(1e-3) * rng.standard_normal((40, D)).astype(dtype),
                        1.2 * rng.standard_normal((160, D))]).astype(dtype)
    ev = evaluate(G, T, test=H, k=k, n_boot=0, n_cells=2, random_state=0)
    ref = _reference(G, T, k, H=H)
    _assert_matches(ev, ref, k)
    assert ev.test_authenticity.value == ref["test_authentic"].mean()
    assert ev.test_memorized.value == ref["test_memorized"].mean()
    assert ev.memorized.value > 0.15 and ev.authenticity.value < 0.85  # the near-copies
    np.testing.assert_allclose(ev.test_distances, ref["test_distances"], rtol=1e-12)
    assert ev.gap_test.value == pytest.approx(ref["gap_test"], rel=1e-12)
    assert ev.gap_ratio.value == pytest.approx(ref["gap_generated"] / ref["gap_test"], rel=1e-12)
    for q in evaluation.DCR_QUANTILES:
        assert ev.dcr["generated"][q].value == pytest.approx(np.quantile(ref["distances"], q), rel=1e-12)
        assert ev.dcr["test"][q].value == pytest.approx(np.quantile(ref["test_distances"], q), rel=1e-12)
    p = stats.mannwhitneyu(ref["distances"], ref["test_distances"], alternative="less").pvalue
    assert ev.copying_p_value == pytest.approx(p, rel=1e-9)
    assert ev.n_test == 120
    # the tables and dictionaries carry the same numbers
    d = ev.to_dict(per_sample=True)
    assert d["metrics"]["precision"]["value"] == ev.precision.value
    assert d["ball_counts"] == ref["ball_counts"].tolist()
    names = [row[0] for row in ev.table()]
    assert "precision" in names and "C_T" in names and "dcr_test_q0.5" in names
    assert "precision=" in repr(ev) and isinstance(ev.precision, Metric)


def test_memorization_rule_and_ratio():
    rng = np.random.default_rng(3)
    T = rng.standard_normal((100, 4))
    G = np.concatenate([T[:10], T[10:20] + 1e-9, rng.standard_normal((30, 4))])
    for ratio in (1 / 3, 0.5, 0.9):
        ev = evaluate(G, T, k=2, n_boot=0, memorization_ratio=ratio)
        ref = _reference(G, T, 2, ratio=ratio)
        assert ev.memorized.value == ref["memorized"].mean()
        assert ev.memorization_ratio == ratio
    ev = evaluate(G, T, k=2, n_boot=0)
    assert np.all(ev.distances[:10] == 0)
    assert _reference(G, T, 2)["memorized"][:20].all() and ev.memorized.value >= 20 / 50
    assert evaluate(T[:10], T, k=2, n_boot=0).memorized.value == 1.0  # d1 = 0: ratio 0


# ---------------------------------------------------------------------------
# 3. the data-copying test
# ---------------------------------------------------------------------------
def _kdtree_search(Q, R, k):
    d, i = cKDTree(np.asarray(R, dtype=np.float64)).query(np.asarray(Q, dtype=np.float64), k=k)
    return d.reshape(len(Q), k), i.reshape(len(Q), k)


def _reference_ct(G, T, H, n_cells, seed, min_samples):
    """Meehan et al.'s C_T on the k-means partition repgap fits (same seed),
    everything else by cKDTree and scipy.stats.mannwhitneyu."""
    cells = evaluation._CellIndex(T, n_cells, np.random.default_rng(seed), _kdtree_search)
    C = np.asarray(cells.C, dtype=np.float64)
    K = C.shape[0]
    tree = cKDTree(C)
    tl, gl, hl = (tree.query(X)[1] for X in (T, G, H))

    def within(X, lab):
        out = np.full(len(X), np.nan)
        for c in range(K):
            rows = np.flatnonzero(lab == c)
            if rows.size and np.any(tl == c):
                out[rows] = cKDTree(T[tl == c]).query(X[rows])[0]
        return out

    gL, hL = within(G, gl), within(H, hl)
    ng, nh = np.bincount(gl, minlength=K), np.bincount(hl, minlength=K)
    z = np.full(K, np.nan)
    for c in range(K):
        a, b = ng[c], nh[c]
        if a and b:
            U = stats.mannwhitneyu(gL[gl == c], hL[hl == c], method="asymptotic").statistic
            z[c] = (U - a * b / 2) / np.sqrt(a * b * (a + b + 1) / 12)
    used = (ng >= min_samples) & (nh > 0)
    w = nh[used] / len(H)
    ct = np.sum(w * z[used]) / np.sum(w)
    p = stats.norm.cdf(ct / (np.sqrt(np.sum(w**2)) / np.sum(w)))
    return dict(statistic=ct, p_value=p, z=z, used=used, n_train=np.bincount(tl, minlength=K), n_test=nh,
                n_generated=ng, n_cells=K)


def _law(rng, n, D=3):
    return rng.standard_normal((n, D)) * np.array([1.0, 0.7, 0.4])[:D]


@pytest.mark.parametrize("kind", ["fresh", "copies", "dispersed"])
def test_copying_statistic_against_reference(kind):
    rng = np.random.default_rng(20)
    T, H = _law(rng, 1500), _law(rng, 600)
    G = {"fresh": _law(rng, 700),
         "copies": T[rng.integers(0, 1500, 700)] + 1e-3 * rng.standard_normal((700, 3)),
         "dispersed": _law(rng, 700) + 0.5 * rng.standard_normal((700, 3))}[kind]
    for n_cells, min_samples in ((12, 20), (5, 1), (30, 40)):
        ct = data_copying_test(G, T, H, n_cells=n_cells, min_samples=min_samples, random_state=5)
        ref = _reference_ct(G, T, H, n_cells, 5, min_samples)
        assert isinstance(ct, CopyingTest) and ct.n_cells == ref["n_cells"]
        np.testing.assert_array_equal(ct.n_train, ref["n_train"])
        np.testing.assert_array_equal(ct.n_test, ref["n_test"])
        np.testing.assert_array_equal(ct.n_generated, ref["n_generated"])
        np.testing.assert_array_equal(ct.used, ref["used"])
        np.testing.assert_allclose(ct.z, ref["z"], rtol=0, atol=1e-10)
        assert ct.statistic == pytest.approx(ref["statistic"], rel=0, abs=1e-10)
        assert ct.p_value == pytest.approx(ref["p_value"], rel=1e-8, abs=1e-300)
        assert ct.min_samples == min_samples
        assert "C_T=" in repr(ct) and ct.to_dict()["n_cells"] == ct.n_cells


def test_copying_statistic_inside_evaluate_matches_reference():
    rng = np.random.default_rng(21)
    T, H = _law(rng, 1200), _law(rng, 500)
    G = T[rng.integers(0, 1200, 600)] + 1e-2 * rng.standard_normal((600, 3))
    ev = evaluate(G, T, test=H, k=3, n_boot=0, n_cells=8, random_state=11)
    # the meter seeds the k-means from its generator's first draw
    seed = evaluation.check_random_state(11).integers(1 << 63)
    ref = _reference_ct(G, T, H, 8, seed, 20)
    np.testing.assert_array_equal(ev.copying.n_generated, ref["n_generated"])
    np.testing.assert_allclose(ev.copying.z, ref["z"], rtol=0, atol=1e-10)
    assert ev.copying.statistic == pytest.approx(ref["statistic"], rel=0, abs=1e-10)
    assert ev.copying.statistic < -3 and ev.copying_p_value < 1e-6


def test_copying_detects_copies_and_accepts_fresh_samples():
    rng = np.random.default_rng(22)
    T, H = _law(rng, 2000), _law(rng, 1000)
    copies = data_copying_test(T[rng.integers(0, 2000, 1000)] + 1e-4 * rng.standard_normal((1000, 3)), T, H,
                               random_state=0)
    assert copies.statistic < -3 and copies.p_value < 1e-6
    assert copies.used.sum() >= 10
    for seed in range(4):
        fresh = data_copying_test(_law(np.random.default_rng(100 + seed), 1000), T, H, random_state=seed)
        assert abs(fresh.statistic) < 3, seed
        assert fresh.p_value > 1e-3
    dispersed = data_copying_test(_law(rng, 1000) + 0.5 * rng.standard_normal((1000, 3)), T, H, random_state=0)
    assert dispersed.statistic > 0 and dispersed.p_value > 0.5


def test_copying_without_enough_samples_is_nan():
    rng = np.random.default_rng(23)
    T, H, G = _law(rng, 400), _law(rng, 200), _law(rng, 30)
    ct = data_copying_test(G, T, H, n_cells=4, min_samples=50, random_state=0)
    assert not ct.used.any() and np.isnan(ct.statistic) and np.isnan(ct.p_value)


# ---------------------------------------------------------------------------
# 4. modulo a group
# ---------------------------------------------------------------------------
def _clouds(rng, n, m=5, p=3, noise=0.05):
    template = 3.0 * rng.standard_normal((m, p))
    return (template[None] + noise * rng.standard_normal((n, m, p))).reshape(n, m * p)


def test_permuted_copies_are_copies_modulo_the_permutations():
    rng = np.random.default_rng(30)
    T = _clouds(rng, 200)
    shifts = rng.integers(1, 5, 200)  # no fixed point: every particle moves
    perm = (np.arange(5)[None, :] + shifts[:, None]) % 5
    G = np.take_along_axis(T.reshape(200, 5, 3), perm[:, :, None], axis=1).reshape(200, 15)
    plain = evaluate(G, T, k=3, n_boot=0)
    assert plain.authenticity.value == 1.0 and plain.memorized.value == 0.0
    assert plain.precision.value == 0.0
    mod = evaluate(G, T, k=3, n_boot=0, group=Permutation(5, 3))
    assert mod.authenticity.value == 0.0 and mod.memorized.value == 1.0
    assert np.all(mod.distances <= 1e-12)
    assert mod.precision.value == 1.0 and mod.group == repr(Permutation(5, 3))
    np.testing.assert_array_equal(mod.nearest, np.arange(200))


def test_rotated_copies_are_copies_modulo_the_rotations():
    from scipy.spatial.transform import Rotation as SciRotation

    rng = np.random.default_rng(31)
    T = _clouds(rng, 150)
    Rm = SciRotation.random(150, random_state=2).as_matrix()
    G = np.einsum("nij,nkj->nki", Rm, T.reshape(150, 5, 3)).reshape(150, 15)
    plain = evaluate(G, T, k=3, n_boot=0)
    assert plain.authenticity.value > 0.95 and plain.memorized.value < 0.05
    mod = evaluate(G, T, k=3, n_boot=0, group=Rotation(3))
    assert mod.authenticity.value == 0.0 and mod.memorized.value == 1.0
    assert np.all(mod.distances < 1e-9)
    np.testing.assert_array_equal(mod.nearest, np.arange(150))


@pytest.mark.parametrize("group, dist", [(SignFlip(), _dist_signflip), (CyclicShift(), _dist_cyclic),
                                         (Permutation(3, 2), _dist_perm(3, 2))], ids=["signflip", "cyclic", "perm"])
@pytest.mark.parametrize("k", [1, 4])
def test_group_results_against_brute_force(group, dist, k):
    rng = np.random.default_rng(40 + k)
    T = rng.standard_normal((120, 6))
    H = rng.standard_normal((50, 6))
    # group images of training rows, slightly moved (exact images: see the xfail test below)
    G = np.concatenate([rng.standard_normal((70, 6)), -T[:10] + 1e-6, np.roll(T[10:20], 2, axis=1) - 1e-6])
    ev = evaluate(G, T, test=H, k=k, n_boot=0, group=group, n_cells=2, random_state=0)
    ref = _reference(G, T, k, H=H, dist=dist)
    _assert_matches(ev, ref, k)
    np.testing.assert_allclose(ev.test_distances, ref["test_distances"], rtol=1e-10)
    assert ev.gap_test.value == pytest.approx(ref["gap_test"], rel=1e-10)
    images = slice(70, 80) if isinstance(group, SignFlip) else slice(80, 90)  # rolling by 2 is in the group
    assert ev.distances[images].max() < 1e-5 and not ev.authentic[images].any()


@pytest.mark.parametrize("group", [SignFlip(), CyclicShift(), Permutation(3, 2)], ids=["signflip", "cyclic", "perm"])
def test_group_results_agree_across_backends(backend, group):
    rng = np.random.default_rng(45)
    T = rng.standard_normal((150, 6))
    G = np.concatenate([rng.standard_normal((80, 6)), -T[:10] + 1e-6])
    ref = evaluate(G, T, k=3, n_boot=20, random_state=0, group=group, backend="numpy")
    _assert_same(ref, evaluate(G, T, k=3, n_boot=20, random_state=0, group=group, backend=backend), rtol=1e-13)


def test_exact_group_images_on_a_radius_are_outside_the_open_ball():
    """A particle-permuted copy ``g = s.t`` of a training item ``t`` lies at
    exactly ``d_G(t, t')`` from every ``t'``: when ``t`` is ``t'``'s nearest
    neighbour, exactly on the radius ``NND_1(t')``, so outside the open ball."""
    rng = np.random.default_rng(41)
    T = rng.standard_normal((120, 6))
    G = np.roll(T[10:20], 2, axis=1)  # each cloud's 3 particles in R^2 shifted cyclically
    ref = _reference(G, T, 1, dist=_dist_perm(3, 2))
    assert ref["DGT"][5, 111] == ref["train_radii"][111]  # T[15] is T[111]'s nearest neighbour
    ev = evaluate(G, T, k=1, n_boot=0, group=Permutation(3, 2), backend="numpy")
    _assert_matches(ev, ref, 1)


def test_exact_group_images_on_a_radius_every_backend(backend):
    # d_G is summed in a canonical order (repgap.groups.canonical_sum): the
    # image's distance to T[111] and T[111]'s radius are the same bits, on
    # every backend, so the tie is outside the open ball everywhere
    rng = np.random.default_rng(41)
    T = rng.standard_normal((120, 6))
    G = np.roll(T[10:20], 2, axis=1)
    ref = _reference(G, T, 1, dist=_dist_perm(3, 2))
    ev = evaluate(G, T, k=1, n_boot=0, group=Permutation(3, 2), backend=backend)
    np.testing.assert_array_equal(ev.ball_counts, ref["ball_counts"])
    d, _ = repgap.knn(G[5:6], T[111:112], k=1, group=Permutation(3, 2), backend=backend)
    assert d[0, 0] == ev.train_radii[111]


# ---------------------------------------------------------------------------
# 5. streaming
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("group, D", [(None, 5), (None, 12), (SignFlip(), 5)], ids=["tree", "dense", "signflip"])
def test_meter_equals_one_call(group, D):
    # D <= 6: the ball counts wait for compute(); above, each batch is counted on arrival
    rng = np.random.default_rng(50)
    T, H = rng.standard_normal((400, D)), rng.standard_normal((300, D))
    G = np.concatenate([T[:50] + 1e-4, rng.standard_normal((250, D))])
    kw = dict(test=H, k=4, n_boot=200, random_state=3, n_cells=4, min_samples=10, group=group)
    one = evaluate(G, T, **kw)
    meter = EvaluationMeter(T, **kw)
    with pytest.raises(ValueError, match="no samples"):
        meter.compute()
    for s, e in ((0, 7), (7, 130), (130, 131), (131, 300)):
        meter.update(G[s:e])
    assert meter.n_seen == 300
    many = meter.compute()
    assert isinstance(many, Evaluation)
    _assert_same(one, many)
    _assert_matches(many, _reference(G, T, 4, dist=_dist if group is None else _dist_signflip), 4)
    np.testing.assert_array_equal(one.copying.z, many.copying.z)
    assert one.copying.statistic == many.copying.statistic
    # reset: only what comes after counts
    meter.reset()
    assert meter.n_seen == 0
    with pytest.raises(ValueError, match="no samples"):
        meter.compute()
    meter.update(G[200:])
    after = meter.compute()
    _assert_same(after, evaluate(G[200:], T, **kw), intervals=False)
    _assert_matches(after, _reference(G[200:], T, 4, dist=_dist if group is None else _dist_signflip), 4)
    assert after.n_generated == 100
    with pytest.raises(ValueError, match="features"):
        meter.update(G[:5, :4])


# ---------------------------------------------------------------------------
# 6. backends, tensors, tiles, threads
# ---------------------------------------------------------------------------
def test_backends_give_identical_results(backend):
    rng = np.random.default_rng(60)
    for D, dtype in ((3, np.float64), (24, np.float32), (40, np.float64)):
        T = rng.standard_normal((500, D)).astype(dtype)
        G = np.concatenate([T[:30], rng.standard_normal((300, D))]).astype(dtype)
        H = rng.standard_normal((200, D)).astype(dtype)
        kw = dict(test=H, k=3, n_boot=50, random_state=0, n_cells=3)
        ref = evaluate(G, T, backend="numpy", **kw)
        ev = evaluate(G, T, backend=backend, **kw)
        _assert_same(ref, ev)
        np.testing.assert_array_equal(ref.test_distances, ev.test_distances)
        assert ref.copying.statistic == ev.copying.statistic
        _assert_matches(ev, _reference(G, T, 3), 3)


def test_cpu_tensors_equal_arrays():
    torch = _torch()
    rng = np.random.default_rng(61)
    for dtype in (np.float32, np.float64):
        T = rng.standard_normal((400, 10)).astype(dtype)
        G = np.concatenate([T[:20], rng.standard_normal((200, 10))]).astype(dtype)
        H = rng.standard_normal((150, 10)).astype(dtype)
        kw = dict(k=3, n_boot=50, random_state=0, n_cells=3)
        ref = evaluate(G, T, test=H, backend="numpy", **kw)
        ev = evaluate(torch.from_numpy(G), torch.from_numpy(T), test=torch.from_numpy(H), backend="torch", **kw)
        for name, v in _per_sample(ev).items():
            assert isinstance(v, np.ndarray), name
        # every decision identical; the distances of tensors are computed on
        # their device, equal to a few ulps (the same bits are promised for
        # host arrays only: repgap/_search/exact.py)
        _assert_same(ref, ev, rtol=1e-14)
        np.testing.assert_allclose(ev.test_distances, ref.test_distances, rtol=1e-14)
        assert ref.copying.statistic == pytest.approx(ev.copying.statistic, abs=1e-12)
        meter = EvaluationMeter(torch.from_numpy(T), backend="torch", **kw)
        meter.update(torch.from_numpy(G[:100]))
        meter.update(torch.from_numpy(G[100:]))
        _assert_same(evaluate(G, T, backend="numpy", **kw), meter.compute(), rtol=1e-14)
    with pytest.raises(TypeError, match="tensor"):
        EvaluationMeter(T, k=3).update(torch.from_numpy(G))


def test_tiles_and_threads_do_not_change_results():
    rng = np.random.default_rng(62)
    T = rng.standard_normal((700, 12))
    G = np.concatenate([T[:40] + 1e-9, rng.standard_normal((660, 12))])
    ref = evaluate(G, T, k=5, n_boot=50, random_state=1)
    assert evaluation._budget_rows(1 << 20) < 700 / 2  # several tiles each way
    for kw in (dict(max_memory=1 << 20), dict(n_jobs=1), dict(n_jobs=2), dict(max_memory=1 << 20, n_jobs=2)):
        _assert_same(ref, evaluate(G, T, k=5, n_boot=50, random_state=1, **kw))
    meter = EvaluationMeter(T, k=5, n_boot=50, random_state=1, max_memory=1 << 20)
    meter.update(G[:333])
    meter.update(G[333:])
    _assert_same(ref, meter.compute())


# ---------------------------------------------------------------------------
# 7. exactness at the edges
# ---------------------------------------------------------------------------
def _pad(X, D):
    return np.concatenate([X, np.zeros((len(X), D - X.shape[1]))], axis=1)  # the same distances


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shift", [0.0, 1e6])
@pytest.mark.parametrize("D", [2, 12])  # the k-d tree and the float32 brute-force ball passes
def test_grid_ties_are_decided_exactly(dtype, shift, D):
    # integer data: every distance and radius is exact, ties everywhere
    rng = np.random.default_rng(70)
    grid = _pad(np.array(list(itertools.product(range(0, 25, 5), repeat=2)), dtype=np.float64), D)  # spacing 5
    T = np.concatenate([grid, _pad(rng.integers(0, 21, (40, 2)).astype(np.float64), D)])
    G = _pad(np.concatenate([grid[:10, :2] + [3, 4], [[-3.0, -4.0], [23.0, 24.0], [-3.0, 4.0]],
                             rng.integers(-3, 24, (60, 2)).astype(np.float64)]), D)
    ref = _reference(G, T, 3)
    ev = evaluate((G + shift).astype(dtype), (T + shift).astype(dtype), k=3, n_boot=0)
    _assert_matches(ev, ref, 3)
    # a sample exactly on the grid's ball of radius 5 around a corner is outside the (open) ball
    ev1 = evaluate((G + shift).astype(dtype), (grid + shift).astype(dtype), k=1, n_boot=0)
    ref1 = _reference(G, grid, 1)
    assert np.all(ref1["train_radii"] == 5.0)
    assert not ev1.in_support[10] and ev1.ball_counts[10] == 0  # (-3, -4): distance 5 from (0, 0)
    _assert_matches(ev1, ref1, 1)


def test_translation_by_1e6_keeps_every_decision():
    rng = np.random.default_rng(71)
    # dyadic values: x + 1e6 is exact, so the exact distances are unchanged
    T = np.round(rng.standard_normal((300, 4)) * 2**12) / 2**12
    G = np.round(rng.standard_normal((200, 4)) * 2**12) / 2**12
    G[:20] = T[:20]
    a = evaluate(G, T, k=4, n_boot=0)
    b = evaluate(G + 1e6, T + 1e6, k=4, n_boot=0)
    _assert_same(a, b)
    _assert_matches(b, _reference(G, T, 4), 4)


# ---------------------------------------------------------------------------
# 8. intervals
# ---------------------------------------------------------------------------
def test_precision_interval_covers_the_conditional_expectation():
    rng = np.random.default_rng(80)
    T = rng.standard_normal((300, 2))
    k = 5

    def sampler(r, m):
        return 2.5 * r.standard_normal((m, 2)) + 1.5

    radii = evaluate(T[:10], T, k=k, n_boot=0).train_radii
    big = sampler(np.random.default_rng(81), 400_000)
    hit = np.zeros(len(big), dtype=bool)
    tree = cKDTree(big)
    for t, r in zip(T, radii):
        hit[tree.query_ball_point(t, r)] = True  # closed balls: ties have probability 0
    p = hit.mean()
    assert 0.4 < p < 0.8
    inside = 0
    n_seeds = 100
    for s in range(n_seeds):
        ev = evaluate(sampler(np.random.default_rng(1000 + s), 400), T, k=k, n_boot=300, random_state=s)
        m = ev.precision
        assert m.low <= m.value <= m.high and m.level == 0.95 and m.over == "generated"
        inside += m.low <= p <= m.high
    print(f"coverage of p = {p:.4f}: {inside} / {n_seeds}")
    assert 0.88 <= inside / n_seeds <= 0.99, inside


def test_intervals_bracket_and_are_reproducible():
    rng = np.random.default_rng(82)
    T, H = rng.standard_normal((300, 3)), rng.standard_normal((200, 3))
    G = np.concatenate([T[:30] + 1e-3, rng.standard_normal((270, 3))])
    a = evaluate(G, T, test=H, k=3, n_boot=300, random_state=4, confidence=0.9)
    b = evaluate(G, T, test=H, k=3, n_boot=300, random_state=4, confidence=0.9)
    c = evaluate(G, T, test=H, k=3, n_boot=300, random_state=5, confidence=0.9)
    _assert_same(a, b)
    assert any(getattr(a, n).low != getattr(c, n).low for n in ("precision", "density", "gap_generated"))
    for name, m in a.metrics().items():
        assert m.low <= m.value <= m.high, name
        assert m.level == 0.9
    assert a.recall.over == "train" and a.coverage.over == "train" and a.gap_test.over == "held-out"
    for who in ("generated", "test"):
        for q, m in a.dcr[who].items():
            assert not (m.low > m.value) and not (m.high < m.value), (who, q)
    wide = evaluate(G, T, test=H, k=3, n_boot=300, random_state=4, confidence=0.99)
    assert wide.precision.high - wide.precision.low >= a.precision.high - a.precision.low
    none = evaluate(G, T, test=H, k=3, n_boot=0, random_state=4)
    for name, m in none.metrics().items():
        assert np.isnan(m.low) and np.isnan(m.high), name
        assert m.value == getattr(a, name).value


# ---------------------------------------------------------------------------
# 9. errors
# ---------------------------------------------------------------------------
def test_errors_name_the_problem():
    rng = np.random.default_rng(90)
    T, G = rng.standard_normal((50, 4)), rng.standard_normal((40, 4))
    with pytest.raises(ValueError, match="features"):
        evaluate(G[:, :3], T)
    with pytest.raises(ValueError, match="features"):
        evaluate(G, T, test=rng.standard_normal((20, 5)))
    with pytest.raises(ValueError, match="features"):
        data_copying_test(G, T, rng.standard_normal((20, 3)))
    bad = G.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        evaluate(bad, T)
    with pytest.raises(ValueError, match="NaN"):
        evaluate(G, np.where(np.arange(50)[:, None] == 7, np.inf, T))
    with pytest.raises(ValueError, match="train has 50 rows"):
        evaluate(G, T, k=50)
    evaluate(G, T, k=39, n_boot=0)  # k = n_train - 1 and m - 1 is allowed
    with pytest.raises(ValueError, match="generated samples has 40 rows"):
        evaluate(G, T, k=40)
    with pytest.raises(ValueError, match="k"):
        evaluate(G, T, k=0)
    with pytest.raises(ValueError, match="confidence"):
        evaluate(G, T, confidence=1.5)
    with pytest.raises(ValueError, match="memorization_ratio"):
        evaluate(G, T, memorization_ratio=0.0)
    with pytest.raises(ValueError, match="n_boot"):
        evaluate(G, T, n_boot=-1)
    with pytest.raises(ValueError, match="backend"):
        evaluate(G, T, backend="cuda-magic")
    with pytest.raises(ValueError, match="backend"):
        EvaluationMeter(T, backend="nope")


# ---------------------------------------------------------------------------
# 10. the passes themselves
# ---------------------------------------------------------------------------
def test_paths_are_the_ones_the_tests_name():
    rng = np.random.default_rng(0)
    low, high = rng.standard_normal((100, 6)), rng.standard_normal((100, 12))
    assert not evaluation._dense_ok(low, low)
    assert evaluation._dense_ok(high, high)
    assert not evaluation._dense_ok(high * 2.0**400, high)  # out of range: the tree pass


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("max_memory", [1 << 20, None])
def test_dense_pass_nearest_two_are_knn_bits(dtype, max_memory):
    """The float32 pass's two nearest training rows are knn's, bit for bit,
    with duplicates, copies and a translation, in several tiles."""
    rng = np.random.default_rng(3)
    T = rng.standard_normal((1300, 40)).astype(dtype)
    G = rng.standard_normal((900, 40)).astype(dtype)
    G[:50] = T[100:150]
    T[5:10] = T[0]
    G[60] = T[0]
    T, G = T + dtype(1e3), G + dtype(1e3)
    d, i = repgap.knn(G, T, k=2)
    rT = repgap.knn(T, T, k=6)[0][:, 5]
    rG = repgap.knn(G, G, k=6)[0][:, 5]
    c, cov, rec, best = evaluation._dense_pass(G, T, rT, rG, n_threads=1, max_memory=max_memory, progress=False,
                                               top=2)
    assert np.array_equal(np.sqrt(best[0]), d) and np.array_equal(best[1], i)
    c2, cov2, rec2 = evaluation._ball_pass_tree(G, T, rT, rG, n_threads=1)
    assert np.array_equal(c, c2) and np.array_equal(cov, cov2) and np.array_equal(rec, rec2)


@pytest.mark.parametrize("e", [700, -700])
def test_data_beyond_the_float64_squares(e):
    """Data at 2^+-700 (their squares leave float64): the same decisions as the
    data near 1, the distances scaled back exactly."""
    rng = np.random.default_rng(5)
    T = rng.standard_normal((300, 12))
    G = np.concatenate([T[:30] + 1e-6, rng.standard_normal((170, 12))])
    H = rng.standard_normal((150, 12))
    ref = evaluate(G, T, test=H, k=3, n_boot=0, random_state=0)
    f = 2.0**e
    out = evaluate(G * f, T * f, test=H * f, k=3, n_boot=0, random_state=0)
    for name in ("in_support", "ball_counts", "authentic", "nearest", "recalled", "covered"):
        assert np.array_equal(getattr(out, name), getattr(ref, name)), name
    assert np.array_equal(out.distances, ref.distances * f)
    assert np.array_equal(out.test_distances, ref.test_distances * f)
    assert out.copying.statistic == ref.copying.statistic


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("max_memory", [1 << 17, 1 << 20, None])
def test_symmetric_self_search_is_knn(dtype, max_memory):
    """The radii's search over the tiles above the diagonal returns knn(X, X)
    bit for bit (duplicates, a translation, one tile or many; at 128 KiB the
    float32 copy of X does not fit the budget and is made tile by tile)."""
    rng = np.random.default_rng(7)
    X = rng.standard_normal((1500, 24)).astype(dtype)
    X[10:20] = X[0]
    X += dtype(1e3)
    d, i = repgap.knn(X, X, k=6)
    sq, ii = evaluation._self_top(X, 6, n_threads=1, max_memory=max_memory, progress=False)
    assert np.array_equal(np.sqrt(sq), d) and np.array_equal(ii, i)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("offset,spread", [(0.0, 1.0), (1e3, 1.0), (0.0, 1e-30), (-1e5, 1e20)])
def test_query_form_from_the_reference_form(dtype, offset, spread):
    # the symmetric pass doubles its reference copy for its query blocks:
    # the same bits as the query copy made from the data
    rng = np.random.default_rng(5)
    X = (rng.standard_normal((300, 21)) * spread + offset).astype(dtype)
    c, scale = evaluation._frame(X)
    f32 = dtype == np.float32
    R, nr = evaluation._augmented(X, 0, 300, c, scale, "reference", f32)
    Q, nq = evaluation._augmented(X, 40, 240, c, scale, "query", f32)
    out = np.full((256, 23), np.nan, dtype=np.float32)
    Q2, nq2 = evaluation._query_form(R[40:240], out)
    assert np.array_equal(Q2, Q) and np.array_equal(nq2, nq) and np.array_equal(nr[40:240], nq)


def _star(rng, dtype, n_other=1200, D=24):
    """Rows 0 and 1: two centres; rows 2..: 2 D points at distance 1 + eps
    from row 0 along +-e_i (|eps| <= 1e-9: below float32's resolution, so
    the float32 search sees 48 ties where float64 orders them; a quarter
    exactly tied), then noise far away, all offset by 1e3."""
    D2 = 2 * D
    eps = rng.uniform(-1e-9, 1e-9, D2)
    eps[::4] = 0.0
    star = np.concatenate([np.eye(D), -np.eye(D)]) * (1.0 + eps)[:, None]
    X = np.concatenate([np.zeros((1, D)), np.full((1, D), 0.01), star, 5.0 + rng.standard_normal((n_other, D))])
    return (X + 1e3).astype(dtype)


def _exact_top(G, T, K):
    Gd, Td = np.asarray(G, dtype=np.float64), np.asarray(T, dtype=np.float64)
    sq = np.stack([((g - Td) ** 2).sum(1) for g in Gd])
    order = np.lexsort((np.broadcast_to(np.arange(Td.shape[0]), sq.shape), sq), axis=1)[:, :K]
    return np.take_along_axis(sq, order, 1), order


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("max_memory", [1 << 17, None])
@pytest.mark.parametrize("K", [3, 20])
def test_passes_order_near_ties_below_float32_resolution(dtype, max_memory, K):
    """More than K points within float32 rounding of a row's K-th distance:
    the passes keep every candidate the bounds cannot exclude and decide
    them exactly at the end, so their top K is the exact order by
    (distance, row), as knn's (the float64 values; float32 storage rounds
    the eps away and leaves exact ties, broken by index)."""
    rng = np.random.default_rng(11)
    X = _star(rng, dtype)
    ref_sq, ref_i = _exact_top(X[:2], X, K)
    sq, ii = evaluation._self_top(X, K, n_threads=2, max_memory=max_memory, progress=False)
    assert np.array_equal(ii[:2], ref_i) and np.allclose(sq[:2], ref_sq, rtol=1e-14, atol=0)
    d, i = repgap.knn(X, X, k=K)
    assert np.array_equal(np.sqrt(sq), d) and np.array_equal(ii, i)
    G = X[:40] + dtype(0)
    _, _, _, best = evaluation._dense_pass(G, X, None, None, n_threads=2, max_memory=max_memory, progress=False,
                                           top=K)
    assert np.array_equal(best[1], i[:40]) and np.array_equal(np.sqrt(best[0]), d[:40])


@pytest.mark.parametrize("mixed", [False, True])
def test_passes_flush_their_candidates_within_the_budget(monkeypatch, mixed):
    """Rows of exact duplicates flag every pair of copies (no bound separates
    distances of 0): with a small budget the passes decide the buffered pairs
    exactly as they go (the buffer never holds much more than its budget),
    and the answers stay knn's, with the reference copied tile by tile and
    with mixed precisions (float32 samples, float64 training rows)."""
    made = []
    real_init = evaluation._TopCandidates.__init__

    def init(self, *a, **kw):
        real_init(self, *a, **kw)
        made.append(self)

    monkeypatch.setattr(evaluation._TopCandidates, "MIN_BUDGET", 64)
    monkeypatch.setattr(evaluation._TopCandidates, "__init__", init)
    rng = np.random.default_rng(5)
    X = rng.standard_normal((1400, 40))
    X[:600] = X[0]  # 600 copies of one row
    X += 1e3
    T = X.astype(np.float64 if mixed else np.float32)
    # samples in the copies and samples near other training rows (inside
    # their balls, and among the top survivors: decided once, not per flush)
    G = np.concatenate([X[:300], X[700:900] + 1e-3 * rng.standard_normal((200, 40))]).astype(np.float32)
    K, mm = 4, 1 << 17  # 2730 pairs buffered; T's float32 copy (225 KB) is made tile by tile
    d, i = repgap.knn(G, T, k=K)
    rT = repgap.knn(T, T, k=6)[0][:, 5]
    c, cov, rec, best = evaluation._dense_pass(G, T, rT, None, n_threads=2, max_memory=mm, progress=False, top=K)
    assert np.array_equal(best[1], i) and np.array_equal(np.sqrt(best[0]), d)
    c2, cov2, _ = evaluation._ball_pass_tree(G, T, rT, None, n_threads=1)
    assert np.array_equal(c, c2) and np.array_equal(cov, cov2) and c[300:].min() >= 1
    # balls that hold everything: every pair is a radius's, flushed tile by
    # tile, while the top's survivors stay buffered; each pair counted once
    big = np.full(T.shape[0], 1e9)
    c3, cov3, _, best3 = evaluation._dense_pass(G, T, big, None, n_threads=2, max_memory=mm, progress=False, top=K)
    assert (c3 == T.shape[0]).all() and cov3.all() and np.array_equal(best3[1], i)
    if not mixed:
        sd, si = repgap.knn(T, T, k=K)
        sq, ii = evaluation._self_top(T, K, n_threads=2, max_memory=mm, progress=False)
        assert np.array_equal(ii, si) and np.array_equal(np.sqrt(sq), sd)
    # tiles of 256 rows at this budget: the buffer exceeds its cap by at most
    # one tile's flags, where the copies alone give 600^2 = 3.6e5 pairs
    assert evaluation._budget_rows(mm) == 256
    assert made and all(t.peak <= t._cap + 256 * 256 for t in made)
    assert max(t.peak for t in made) > 64
    assert any(t._tau is not None for t in made)  # flushed mid-pass


def test_subnormal_float32_features():
    """float32 features near 2^-140 (subnormal): the copies are scaled up by
    powers of two that float32 holds (1 / scale itself overflows), so the
    ball counts and the radii are the exact ones."""
    rng = np.random.default_rng(9)
    T = (rng.standard_normal((400, 24)) * 2.0**-140).astype(np.float32)
    G = np.concatenate([T[:40], (rng.standard_normal((160, 24)) * 2.0**-140).astype(np.float32)])
    assert evaluation._dense_ok(G, T)
    with np.errstate(over="raise", invalid="raise"):  # no inf, no 0 * inf (underflow is the data's own)
        ev = evaluate(G, T, k=3, n_boot=0)
    assert np.array_equal(ev.ball_counts, _ref_counts(G, T, 3))
    sq, ii = evaluation._self_top(T, 4, n_threads=1, max_memory=None, progress=False)
    d, i = repgap.knn(T, T, k=4)
    assert np.array_equal(ii, i) and np.array_equal(np.sqrt(sq), d)


def _ref_counts(G, T, k):
    Gd, Td = np.asarray(G, dtype=np.float64), np.asarray(T, dtype=np.float64)
    D = np.sqrt(((Gd[:, None, :] - Td[None]) ** 2).sum(-1))
    rT = np.sort(np.sqrt(((Td[:, None] - Td[None]) ** 2).sum(-1)), 1)[:, k]
    return (D < rT[None]).sum(1)


def test_mixed_precisions_share_one_frame():
    """float32 training rows and float64 samples at an offset of 1e6: both
    sets are copied about the same centre (a float32 centring of one and a
    float64 centring of the other missed pairs)."""
    rng = np.random.default_rng(0)
    T = (rng.standard_normal((150, 16)) + 1e6).astype(np.float32)
    G = np.concatenate([T[:50], rng.standard_normal((100, 16)) + 1e6]).astype(np.float32).astype(np.float64)
    ref = _ref_counts(G, T, 3)
    assert np.array_equal(evaluate(G, T, k=3, n_boot=0).ball_counts, ref)
    assert np.array_equal(evaluate(G.astype(np.float32), T, k=3, n_boot=0).ball_counts, ref)


def test_float32_at_the_end_of_its_range():
    """float32 values near +-3e38: the copies are scaled before they are
    centred, so nothing overflows."""
    rng = np.random.default_rng(0)
    T = (-3e38 + 1e37 * rng.random((200, 12))).astype(np.float32)
    T[:20] = (3e38 - 1e37 * rng.random((20, 12))).astype(np.float32)
    G = np.concatenate([T[:10], T[100:110], (-3e38 + 1e37 * rng.random((30, 12)))]).astype(np.float32)
    with np.errstate(over="raise", invalid="raise"):  # no inf, no 0 * inf (underflow is the data's own)
        ev = evaluate(G, T, k=3, n_boot=0)
    assert np.array_equal(ev.ball_counts, _ref_counts(G, T, 3))


def test_group_counts_do_not_search_everything(monkeypatch):
    """Modulo a group, one training item with a huge ball costs a search of
    its own band, not a search of the whole training set per sample."""
    rng = np.random.default_rng(1)
    T = rng.standard_normal((1200, 6))
    T[0] = 1e3  # its k-NN ball holds everything
    G = rng.standard_normal((800, 6))
    seen = []
    real = evaluation.knn

    def spy(Q, R, k=1, **kw):
        seen.append(Q.shape[0] * k)
        return real(Q, R, k=k, **kw)

    monkeypatch.setattr(evaluation, "knn", spy)
    ev = evaluate(G, T, k=1, n_boot=0, group=SignFlip())
    assert max(seen) <= G.shape[0] * T.shape[0] // 8, max(seen)
    flip = np.minimum(_ref_dist_pairs(G, T), _ref_dist_pairs(-G, T))
    tt = np.minimum(_ref_dist_pairs(T, T), _ref_dist_pairs(-T, T))
    rT = np.sort(tt, 1)[:, 1]
    assert np.array_equal(ev.ball_counts, (flip < rT[None]).sum(1))


def _ref_dist_pairs(A, B):
    return np.sqrt(((A[:, None, :] - B[None]) ** 2).sum(-1))


def test_high_dimension_takes_the_symmetric_pass():
    rng = np.random.default_rng(8)
    D = evaluation.SELF_PASS_MIN_DIM
    T = rng.standard_normal((120, D)).astype(np.float32)
    G = np.concatenate([T[:10], rng.standard_normal((60, D)).astype(np.float32)])
    ev = evaluate(G, T, k=3, n_boot=0)
    assert np.array_equal(ev.train_radii, repgap.knn(T, T, k=4)[0][:, 3])
    assert np.array_equal(ev.generated_radii, repgap.knn(G, G, k=4)[0][:, 3])
    assert np.array_equal(ev.ball_counts, _ref_counts(G, T, 3))


@pytest.mark.skipif("cython" not in AVAILABLE, reason="compiled kernels not built")
def test_compiled_tile_readers_match_their_numpy_twins():
    # flag, seed and merge of the dense passes: the compiled twins give the
    # numpy forms' results, on tiles with many equal values, on transposed
    # views, with either threshold absent, and with repeated candidates
    from repgap import evaluation as ev
    from repgap._backends import kernels

    mod = kernels("cython")
    rng = np.random.default_rng(5)
    Z = rng.integers(-20, 0, size=(70, 90)).astype(np.float32)   # ties everywhere
    rowthr = rng.integers(-8, 0, size=70).astype(np.float32)
    colthr = rng.integers(-8, 0, size=90).astype(np.float32)
    ZT = np.ascontiguousarray(Z.T)
    for A, rt, ct in [(Z, rowthr, colthr), (Z, None, colthr), (Z, rowthr, None), (ZT, colthr, rowthr),
                      (ZT, None, rowthr)]:
        for strict in (True, False):
            a = mod.flag_pairs(A, rt, ct, strict, n_threads=2)
            b = ev._flag_pairs_numpy(A, rt, ct, strict)
            np.testing.assert_array_equal(a[0], b[0])
            np.testing.assert_array_equal(a[1], b[1])
    rows = np.array([0, 3, 3, 10, 69])
    for A, r in [(Z, rows), (Z.T, np.array([1, 89, 40]))]:
        for top in (1, 4, 200):
            a = mod.seed_top(A, r, top)
            b = ev._seed_numpy(A, r, top)
            np.testing.assert_array_equal(a[0], b[0])
            np.testing.assert_array_equal(a[1], b[1])
    K = 5
    bd = np.full((30, K), np.inf)
    bi = np.full((30, K), -1, dtype=np.int64)
    bd2, bi2 = bd.copy(), bi.copy()
    for _ in range(4):
        qi = rng.integers(0, 30, size=200)
        ti = rng.integers(0, 12, size=200)
        sq = (ti % 4).astype(np.float64) + qi   # the same (row, column), the same value
        mod.merge_top(bd, bi, qi, ti, sq)
        ev._merge_top_numpy(bd2, bi2, qi, ti, sq)
        np.testing.assert_array_equal(bd, bd2)
        np.testing.assert_array_equal(bi, bi2)
