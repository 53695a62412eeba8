"""Symmetry groups: exact orbit distances, invariant lower bounds, k-NN modulo a group."""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.optimize import minimize
from scipy.spatial.transform import Rotation as SciRot

import repgap
from repgap import datasets
from repgap.groups import (CyclicShift, FiniteGroup, Identity, Permutation, Product, Rotation, SignFlip,
                           Translation)
from repgap.orbit import compiled_spec, orbit_knn_prefix, refine

from conftest import AVAILABLE


def _rot2(t):
    return np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])


def brute_rotation(x, y, p, reflections=False, centre=False):
    """A fine grid over SO(p) (O(p)) plus local refinement: the reference minimum."""
    C1, C2 = x.reshape(-1, p).copy(), y.reshape(-1, p).copy()
    if centre:
        C1 -= C1.mean(0)
        C2 -= C2.mean(0)
    flips = [np.eye(p)] + ([np.diag([1.0] * (p - 1) + [-1.0])] if reflections else [])
    best = np.inf
    for F in flips:
        Y = C2 @ F.T
        if p == 2:
            f = lambda t: np.sum((C1 - Y @ _rot2(t[0]).T) ** 2)  # noqa: E731
            grid = np.linspace(0, 2 * np.pi, 721)
            starts = [[grid[i]] for i in np.argsort([f([t]) for t in grid])[:3]]
        else:
            f = lambda v: np.sum((C1 - Y @ SciRot.from_rotvec(v).as_matrix().T) ** 2)  # noqa: E731
            Rs = SciRot.random(4000, random_state=0)
            vals = np.einsum("nij,nij->n", C1[None] - np.einsum("rjk,nk->rnj", Rs.as_matrix(), Y), C1[None] - np.einsum("rjk,nk->rnj", Rs.as_matrix(), Y))
            starts = [Rs[i].as_rotvec() for i in np.argsort(vals)[:4]]
        for s0 in starts:
            r = minimize(f, s0, method="BFGS", options={"gtol": 1e-13})
            best = min(best, r.fun)
    return best


@pytest.mark.parametrize("p,reflections,centre", [(2, False, False), (2, True, False), (3, False, False),
                                                  (3, True, False), (3, False, True), (2, False, True)])
def test_rotation_equals_brute_force(p, reflections, centre):
    rng = np.random.default_rng(p + 2 * reflections + 4 * centre)
    G = Rotation(p, reflections=reflections)
    if centre:
        G = Product(Translation(p), G)
    for _ in range(4):
        x, y = rng.standard_normal(5 * p) + 3.0, rng.standard_normal(5 * p)
        assert G.distance2(x, y) == pytest.approx(brute_rotation(x, y, p, reflections, centre), rel=1e-9)


def test_finite_groups_equal_enumeration():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(12), rng.standard_normal(12)
    enum = lambda imgs: min(np.sum((x - g) ** 2) for g in imgs)  # noqa: E731
    assert Permutation(4, 3).distance2(x, y) == pytest.approx(
        enum(y.reshape(4, 3)[list(p)].ravel() for p in itertools.permutations(range(4))), rel=1e-12)
    assert CyclicShift().distance2(x, y) == pytest.approx(enum(np.roll(y, s) for s in range(12)), rel=1e-12)
    yr = np.roll(y[::-1], 1)
    assert CyclicShift(reflections=True).distance2(x, y) == pytest.approx(
        enum([np.roll(y, s) for s in range(12)] + [np.roll(yr, s) for s in range(12)]), rel=1e-12)
    Y2 = y.reshape(3, 4)
    assert CyclicShift(shape=(3, 4)).distance2(x, y) == pytest.approx(
        enum(np.roll(Y2, (a, b), axis=(0, 1)).ravel() for a in range(3) for b in range(4)), rel=1e-12)
    M2 = np.roll(Y2[:, ::-1], 1, axis=1)
    assert CyclicShift(shape=(3, 4), reflections=True).distance2(x, y) == pytest.approx(
        enum([np.roll(Y2, (a, b), axis=(0, 1)).ravel() for a in range(3) for b in range(4)]
             + [np.roll(M2, (a, b), axis=(0, 1)).ravel() for a in range(3) for b in range(4)]), rel=1e-12)
    assert SignFlip().distance2(x, y) == pytest.approx(min(np.sum((x - y) ** 2), np.sum((x + y) ** 2)))
    # Translation x Permutation: centre, then assign
    T = Product(Translation(3), Permutation(4, 3))
    cx, cy = x.reshape(4, 3) - x.reshape(4, 3).mean(0), y.reshape(4, 3) - y.reshape(4, 3).mean(0)
    assert T.distance2(x, y) == pytest.approx(
        min(np.sum((cx - cy[list(p)]) ** 2) for p in itertools.permutations(range(4))), rel=1e-12)


def test_finite_group_from_elements_and_errors():
    D = 6
    shifts = [np.roll(np.arange(D), s) for s in range(D)]
    G = FiniteGroup(shifts)
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal(D), rng.standard_normal(D)
    assert G.order == 6 and G.distance2(x, y) == pytest.approx(min(np.sum((x - y[p]) ** 2) for p in shifts))
    mats = [np.eye(2), -np.eye(2)]
    assert FiniteGroup(mats).distance2(x[:2], y[:2]) == pytest.approx(SignFlip().distance2(x[:2], y[:2]))
    with pytest.raises(ValueError, match="identity"):
        FiniteGroup([np.roll(np.arange(3), 1), np.roll(np.arange(3), 2)])
    with pytest.raises(ValueError, match="closed"):
        FiniteGroup([np.arange(3), np.array([1, 0, 2]), np.array([0, 2, 1])])
    with pytest.raises(ValueError, match="orthogonal"):
        FiniteGroup([np.eye(2), 2 * np.eye(2)])
    with pytest.raises(ValueError, match="R\\^2 and R\\^3"):
        Rotation(4)
    with pytest.raises(ValueError, match="no orbit distance"):
        Product(Rotation(3), SignFlip())
    with pytest.raises(ValueError, match="multiple of 3"):
        Rotation(3).distance2(np.zeros(4), np.zeros(4))
    with pytest.raises(TypeError, match="group must be"):
        repgap.knn(np.zeros((3, 2)), np.zeros((3, 2)), group="rotation")


def test_align_returns_the_minimiser():
    rng = np.random.default_rng(2)
    for G, D in [(Rotation(3), 12), (Rotation(2, reflections=True), 8), (Permutation(4, 2), 8),
                 (CyclicShift(), 10), (SignFlip(), 5), (Translation(2), 8)]:
        x, y = rng.standard_normal(D), rng.standard_normal(D)
        a = G.align(x, y)
        assert a.distance2 == pytest.approx(np.sum((x - a.aligned) ** 2), rel=1e-12)
        assert a.distance2 == pytest.approx(G.distance2(x, y), rel=1e-12)
        np.testing.assert_allclose(G.apply(a.element, y), a.aligned, atol=1e-12)
        assert G.distance2(x, x) == pytest.approx(0, abs=1e-20)


GROUPS = [
    (Identity(), 12), (Translation(3), 12), (Rotation(2), 12), (Rotation(3), 12),
    (Rotation(3, reflections=True), 12), (CyclicShift(), 12), (CyclicShift(shape=(3, 4), reflections=True), 12),
    (Permutation(4, 3), 12), (SignFlip(), 12), (Product(Translation(3), Rotation(3)), 12),
    (Product(Translation(2), Permutation(6, 2)), 12), (FiniteGroup([np.roll(np.arange(12), s) for s in range(12)]), 12),
]


@pytest.mark.parametrize("G,D", GROUPS, ids=lambda g: repr(g) if not isinstance(g, int) else "")
def test_invariant_lower_bound_on_10000_pairs(G, D):
    rng = np.random.default_rng(3)
    # near pairs (perturbed images) and far pairs
    X = rng.standard_normal((10000, D))
    Y = rng.standard_normal((10000, D))
    Y[:5000] = X[:5000] + 0.05 * rng.standard_normal((5000, D))
    lo, up = G.bounds(X, Y)
    inv_gap = np.sum((G.invariant(X) - G.invariant(Y)) ** 2, axis=1)
    assert np.all(inv_gap <= up * (1 + 1e-10) + 1e-12)
    if G.invariant_is_isometry:
        np.testing.assert_allclose(inv_gap, up, rtol=1e-9)


def test_rotation_times_permutation_bounds_meet_often():
    # no closed form: an upper bound by alternating alignment, the invariant
    # lower bound beside it; on rotated and relabelled copies they meet at 0
    rng = np.random.default_rng(4)
    G = Product(Translation(3), Rotation(3), Permutation(6, 3))
    assert not G.exact
    X = rng.standard_normal((200, 18))
    R = SciRot.random(200, random_state=1).as_matrix()
    Y = np.einsum("nij,nkj->nki", R, X.reshape(200, 6, 3))
    Y = np.take_along_axis(Y, np.argsort(rng.random((200, 6)), axis=1)[:, :, None], axis=1).reshape(200, 18)
    Yn = Y + 0.02 * rng.standard_normal(Y.shape)
    lo, up = G.bounds(X, Yn)
    assert np.all(lo <= up + 1e-12)
    # the exact value is at most the noise energy; the bound finds it in most cases
    noise = np.sum((Yn - Y) ** 2, axis=1)
    assert np.mean(up <= noise * (1 + 1e-9)) > 0.9


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from(range(len(GROUPS))), st.floats(1e-3, 1e3))
def test_lower_bound_property_random_scales(seed, gi, scale):
    G, D = GROUPS[gi]
    rng = np.random.default_rng(seed)
    x, y = scale * rng.standard_normal(D), scale * rng.standard_normal(D)
    lo, up = G.bounds(x, y)
    assert np.sum((G.invariant(x) - G.invariant(y)) ** 2) <= up * (1 + 1e-9) + 1e-300


@pytest.mark.skipif("cython" not in AVAILABLE, reason="compiled backend not available")
@pytest.mark.parametrize("G,D", GROUPS + [(Product(Translation(2), Rotation(2, reflections=True)), 12),
                                          (Product(Translation(3), Permutation(4, 3)), 12)],
                         ids=lambda g: repr(g) if not isinstance(g, int) else "")
def test_compiled_refinement_matches_numpy(G, D):
    assert compiled_spec(G, D) is not None
    rng = np.random.default_rng(5)
    Q = rng.standard_normal((50, D)).astype(np.float32) + 100.0
    R = rng.standard_normal((300, D)).astype(np.float32) + 100.0
    cand = rng.integers(-1, 300, (50, 20))
    a = refine(Q, R, cand, G, backend="cython", n_threads=2)
    b = refine(Q, R, cand, G, backend="numpy", n_threads=1)
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)
    assert np.all(np.isinf(a[cand < 0]))


@pytest.mark.parametrize("G", [CyclicShift(), SignFlip(), Permutation(3, 2),
                               FiniteGroup([np.roll(np.arange(6), s) for s in range(6)])])
def test_knn_modulo_finite_group_equals_augmented_set(backend, G):
    rng = np.random.default_rng(6)
    Rr = rng.standard_normal((400, 6))
    Q = rng.standard_normal((60, 6))
    # all images g.x_i explicitly
    if isinstance(G, CyclicShift):
        imgs = [np.roll(Rr, s, axis=1) for s in range(6)]
    elif isinstance(G, SignFlip):
        imgs = [Rr, -Rr]
    elif isinstance(G, Permutation):
        imgs = [Rr.reshape(400, 3, 2)[:, list(p)].reshape(400, 6) for p in itertools.permutations(range(3))]
    else:
        imgs = [Rr[:, np.roll(np.arange(6), s)] for s in range(6)]
    aug = np.concatenate(imgs)
    d_aug, i_aug = repgap.knn(Q, aug, k=12, backend="numpy")
    d, i = repgap.knn(Q, Rr, k=3, group=G, backend=backend)
    # the nearest images, one per training point: first three distinct originals
    for q in range(60):
        orig = i_aug[q] % 400
        _, first = np.unique(orig, return_index=True)
        keep = np.sort(first)[:3]
        np.testing.assert_allclose(d[q], d_aug[q, keep], rtol=1e-10)
        np.testing.assert_array_equal(i[q], orig[keep])


def test_knn_modulo_rigid_motions_equals_exhaustive_alignment(backend):
    M = datasets.molecule_chains(3200, 8, latent_dim=3, permute=False, random_state=0).X
    R, Q = M[:3000], M[3000:]
    G = Product(Translation(3), Rotation(3))
    stats = {}
    sq, idx = orbit_knn_prefix(Q, R, 2, None, np.array([1000, 3000]), G, backend=backend, n_threads=2,
                               stats=stats)
    full = refine(Q, R, np.tile(np.arange(3000), (200, 1)), G, backend="numpy", n_threads=1)
    for j, c in enumerate([1000, 3000]):
        o = np.lexsort((np.broadcast_to(np.arange(c), (200, c)), full[:, :c]), axis=1)[:, :2]
        np.testing.assert_array_equal(idx[j], o)
        np.testing.assert_allclose(sq[j], np.take_along_axis(full[:, :c], o, 1), rtol=1e-9)
    assert stats["refined"] < 0.2 * 200 * 4000  # the filter pruned most pairs


def test_gap_and_estimators_accept_group():
    X = datasets.point_clouds(3000, 3, 2, random_state=0).X
    test = datasets.point_clouds(300, 3, 2, random_state=1).X
    g0 = repgap.representation_gap(X, test).value
    gT = repgap.representation_gap(X, test, group=Translation(2)).value
    gTR = repgap.representation_gap(X, test, group=Product(Translation(2), Rotation(2))).value
    assert g0 > gT > gTR > 0
    curve = repgap.gap_curve(X, test, sizes=[300, 3000], repeats=2, group=Translation(2), random_state=0)
    assert curve.gaps[-1] == pytest.approx(gT, rel=0.2)
    r = repgap.intrinsic_dimension(X, method="twonn", group=Product(Translation(2), Rotation(2)))
    assert 2.5 < r.dimension < 4
    # the correlation dimension modulo translations: 6 - 2 = 4 for 3 planar points
    c0 = repgap.intrinsic_dimension(X, method="corr", random_state=0).dimension
    cT = repgap.intrinsic_dimension(X, method="corr", group=Translation(2), random_state=0).dimension
    assert cT < c0 - 1.0 and abs(cT - 4) < 0.8


def test_dimension_drop_of_planar_point_clouds():
    # m = 4 points in the plane: 8, 6 (translations), 5 (rigid motions)
    from repgap.estimators import GapLaw

    data = datasets.point_clouds(22000, 4, 2, random_state=0)
    for key, G in (("none", None), ("translations", Translation(2)),
                   ("translations+rotations", Product(Translation(2), Rotation(2)))):
        est = GapLaw(test_size=2000, group=G, repeats=3, n_boot=0, random_state=0, train_queries=False).fit(data.X)
        assert abs(est.dimension_ - data.task_dims[key]) < 0.5, (key, est.dimension_)


def test_free_finite_group_multiplies_n_by_its_order():
    # x -> -x on the embedded flat torus is the shift by 1/2 in every angle:
    # free, so the gap modulo the group at n is the plain gap at 2n
    d = 3
    tr = datasets.flat_torus(40000, d, random_state=0).X
    te = datasets.flat_torus(4000, d, random_state=1).X
    g_mod = repgap.representation_gap(tr[:20000], te, group=SignFlip()).value
    g = repgap.representation_gap(tr[:20000], te).value
    assert g_mod / g == pytest.approx(2 ** (-2 / d), rel=0.05)
    assert g_mod == pytest.approx(repgap.representation_gap(tr, te).value, rel=0.05)


def test_symmetric_datasets():
    s = datasets.shifted_signals(300, 24, 3, random_state=0)
    assert s.X.shape == (300, 24) and s.d == 3 and s.task_dims["cyclic shifts"] == 3
    # a signal and any roll of it are one orbit; the invariant ignores the shift
    G = CyclicShift()
    rolled = np.roll(s.X[:20], 7, axis=1)
    np.testing.assert_allclose(G.distance2(s.X[:20], rolled), 0.0, atol=1e-18)
    np.testing.assert_allclose(G.invariant(rolled), G.invariant(s.X[:20]), atol=1e-12)
    # the signals are not all one orbit: a 3-D family
    assert np.median(G.distance2(s.X[:20], s.X[20:40])) > 1e-3
    c = datasets.point_clouds(100, 5, 3, law="gaussian", random_state=1)
    assert c.X.shape == (100, 15) and c.task_dims["translations+rotations"] == 15 - 3 - 3
    mol = datasets.molecule_chains(50, 10, latent_dim=3, random_state=2)
    assert mol.task_dims["rigid motions"] == 3 and mol.d == 9
    # bond lengths are 1 in the chain order (atoms are listed permuted)
    unperm = datasets.molecule_chains(50, 10, latent_dim=3, permute=False, random_state=2).X.reshape(50, 10, 3)
    np.testing.assert_allclose(np.linalg.norm(np.diff(unperm, axis=1), axis=2), 1.0, rtol=1e-12)
    # permuted and unpermuted are the same clouds modulo permutations
    G = Product(Translation(3), Permutation(10, 3))
    assert np.max(G.distance2(mol.X, unperm.reshape(50, 30))) < 1e-20
    with pytest.raises(ValueError, match="at least 4 atoms"):
        datasets.molecule_chains(5, 3)


# ----------------------------------------------------------------------------- search against images (issue #14)


def _finite_groups():
    from repgap.groups import CyclicShift, FiniteGroup, SignFlip

    D = 12
    swaps = [np.arange(D), np.r_[np.arange(6, 12), np.arange(6)]]
    c, s = np.cos(np.pi / 2), np.sin(np.pi / 2)
    rot = np.eye(D)
    rot[:2, :2] = [[c, -s], [s, c]]
    mats = [np.linalg.matrix_power(rot, p) for p in range(4)]
    return {"shift2d+mirror": CyclicShift((3, 4), reflections=True), "shift1d": CyclicShift(),
            "signflip": SignFlip(), "perms": FiniteGroup(swaps), "matrices": FiniteGroup(mats)}


@pytest.mark.parametrize("name", list(_finite_groups()))
def test_images_search_equals_filter_and_refine(name, monkeypatch):
    import repgap.orbit as O

    g = _finite_groups()[name]
    rng = np.random.default_rng(5)
    R = rng.standard_normal((300, 12))
    R[100:150] = R[:50]  # exact duplicates: ties broken by row
    Q = np.concatenate([R[:20] + 0.01 * rng.standard_normal((20, 12)), rng.standard_normal((20, 12))])
    order = rng.permutation(300)
    ck = [25, 120, 300]
    assert O.use_images(g, Q.shape[0], 300, 12)
    got = repgap.knn_checkpoints(Q, R, ck, k=4, order=order, group=g)
    plain = repgap.knn(Q, R, k=4, group=g)
    monkeypatch.setattr(O, "use_images", lambda *a: False)
    want = repgap.knn_checkpoints(Q, R, ck, k=4, order=order, group=g)
    want_plain = repgap.knn(Q, R, k=4, group=g)
    assert np.array_equal(got[1], want[1])
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12, atol=1e-12)
    assert np.array_equal(plain[1], want_plain[1])
    # a transformed copy of a training row is at distance zero from it
    x = g.images(R[7:8])[0, -1]
    d, i = repgap.knn(x[None], R, k=1, group=g)
    assert i[0, 0] == 7 and d[0, 0] < 1e-12


def test_images_search_in_blocks(monkeypatch):
    import repgap.orbit as O
    from repgap.groups import CyclicShift

    g = CyclicShift((4, 4))
    rng = np.random.default_rng(2)
    R = rng.random((500, 16))
    Q = rng.random((30, 16))
    monkeypatch.setattr(O, "images_side", lambda *a: False)  # the rows' side (the queries': the test below)
    whole = repgap.knn_checkpoints(Q, R, [100, 500], k=3, group=g)
    monkeypatch.setattr(O, "_IMAGES_BLOCK_BYTES", 8 * 16 * 16 * 37)  # blocks of 37 rows
    blocks = repgap.knn_checkpoints(Q, R, [100, 500], k=3, group=g)
    assert np.array_equal(whole[1], blocks[1]) and np.array_equal(whole[0], blocks[0])


@pytest.mark.parametrize("name", ["shift2d+mirror", "shift1d", "signflip", "perms"])
def test_images_of_the_queries_equal_images_of_the_rows(name, monkeypatch):
    """The images search on the queries' side (every g.q against the rows)
    and on the rows' side (q against every g.r) give the same bits, with an
    order, prefixes shorter than k (the canonical layer asks for more
    candidates than the first prefix holds), duplicated rows and blocks of
    queries."""
    import repgap.orbit as O

    g = _finite_groups()[name]
    rng = np.random.default_rng(11)
    R = rng.standard_normal((200, 12))
    R[60:90] = R[:30]  # exact duplicates: ties broken by row
    Q = np.concatenate([g.images(R[:15])[:, -1] + 1e-9 * rng.standard_normal((15, 12)),
                        rng.standard_normal((10, 12))])
    order = rng.permutation(200)
    ck = np.array([3, 40, 200])
    assert O.images_side(g, Q.shape[0], 200) and not O.images_side(g, 40, 200)
    out = {}
    for side in ("queries", "rows"):
        monkeypatch.setattr(O, "images_side", lambda *a, side=side: side == "queries")
        for be in [b for b in ("numpy", "cython") if b in AVAILABLE]:
            out[side, be] = O.images_knn_prefix(Q, R, 6, order, ck, g, backend=be, n_threads=2)
            # blocks of 4 queries on the queries' side, of 7 rows on the rows'
            n_img = g.n_images(12)
            monkeypatch.setattr(O, "_IMAGES_BLOCK_BYTES", 8 * 12 * n_img * (4 if side == "queries" else 7))
            blocks = O.images_knn_prefix(Q, R, 6, order, ck, g, backend=be, n_threads=2)
            monkeypatch.setattr(O, "_IMAGES_BLOCK_BYTES", 1 << 27)
            assert np.array_equal(blocks[0], out[side, be][0]) and np.array_equal(blocks[1], out[side, be][1])
    first = next(iter(out.values()))
    assert np.all(first[1][0, :, 3:] == -1) and np.all(np.isinf(first[0][0, :, 3:]))  # 3 rows in the first prefix
    for d, i in out.values():
        assert np.array_equal(i, first[1])
        np.testing.assert_allclose(d, first[0], rtol=1e-12, atol=1e-300)
    # the canonical distances on top: the same bits on both sides
    res = {}
    for side in ("queries", "rows"):
        monkeypatch.setattr(O, "images_side", lambda *a, side=side: side == "queries")
        res[side] = repgap.knn_checkpoints(Q, R, [6, 40, 200], k=6, order=order, group=g)
    assert np.array_equal(res["queries"][0], res["rows"][0]) and np.array_equal(res["queries"][1], res["rows"][1])


def test_images_side_rule():
    import repgap.orbit as O

    mats = _finite_groups()["matrices"]
    assert not mats.canonical and not O.images_side(mats, 10, 10_000)  # rounding of g.q and g.r differs
    g = CyclicShift((8, 8))
    assert O.images_side(g, 300, 300 * O.QUERY_IMAGES_RATIO) and not O.images_side(g, 300, 300 * 5)


@pytest.mark.parametrize("name", ["shift2d+mirror", "shift1d", "signflip", "perms", "particles",
                                  "particles_assignment"])
def test_orbit_distances_are_symmetric_to_the_last_bit(name, monkeypatch):
    """d_G(x, y) == d_G(y, x) bit for bit, on every backend, by the images
    search and by filter and refine alike (the canonical summation order)."""
    import repgap.orbit as O

    # particles: 4! x 12 terms are enumerated, 6! x 12 go through the optimal assignment
    g = {"particles": Permutation(4, 3), "particles_assignment": Permutation(6, 2)}.get(name) \
        or _finite_groups()[name]
    assert g.canonical
    rng = np.random.default_rng(8)
    X = rng.standard_normal((150, 12))
    # images of X's rows, slightly moved: d_G(Y[i], X[j]) holds many reorderings of the same terms
    if isinstance(g, Permutation):
        moved = X[:40].reshape(40, g.m, g.p)[:, rng.permutation(g.m)].reshape(40, 12)
    else:
        moved = g.images(X[:40])[:, -1]
    Y = np.concatenate([moved, rng.standard_normal((40, 12))]) + 1e-3 * rng.standard_normal((80, 12))
    results = []
    for images in (True, False):
        monkeypatch.setattr(O, "use_images", (lambda *a: True) if images else (lambda *a: False))
        for be in [b for b in ("numpy", "cython") if b in AVAILABLE]:
            if images and isinstance(g, Permutation):
                continue  # Permutation does not list its elements
            dxy, ixy = repgap.knn(X, Y, k=80, group=g, backend=be)
            dyx, iyx = repgap.knn(Y, X, k=150, group=g, backend=be)
            A = np.empty((150, 80))
            np.put_along_axis(A, ixy, dxy, axis=1)
            B = np.empty((80, 150))
            np.put_along_axis(B, iyx, dyx, axis=1)
            assert np.array_equal(A, B.T), (be, images)
            results.append(A)
    for A in results[1:]:
        assert np.array_equal(A, results[0])


def test_canonical_sum_depends_on_the_multiset_only():
    from repgap.groups import canonical_sum

    rng = np.random.default_rng(9)
    t = rng.random((200, 37)) ** 4
    perm = np.argsort(rng.random((200, 37)), axis=1)
    assert np.array_equal(canonical_sum(t), canonical_sum(np.take_along_axis(t, perm, 1)))
    with pytest.raises(NotImplementedError, match="coordinate permutations"):
        Rotation(2).canonical_distance2(t[:, :4], t[:, 4:8])
    assert not FiniteGroup([np.eye(2), -np.eye(2)]).canonical and not Rotation(2).canonical


def test_groups_describe_themselves_to_the_kernel():
    # the kinds of Group.kernel_spec are the compiled kernel's enum
    from repgap.groups import KERNEL_KINDS

    if "cython" in AVAILABLE:
        from repgap._backends import kernels

        assert kernels("cython").ORBIT_KINDS == KERNEL_KINDS
    specs = {g: g.kernel_spec(6) for g in (Identity(), Translation(2), Rotation(3), CyclicShift(), SignFlip(),
                                           Permutation(3, 2), Product(Translation(3), Rotation(3)),
                                           Product(Translation(2), Permutation(3, 2)),
                                           FiniteGroup([np.roll(np.arange(6), s) for s in range(6)]))}
    assert all(spec is not None and spec["kind"] in KERNEL_KINDS for spec in specs.values())
    assert Product(Rotation(3), Permutation(2, 3)).kernel_spec(6) is None  # no closed form: numpy aligns
    assert compiled_spec(Product(Translation(3), Rotation(3)), 6) == {
        "kind": KERNEL_KINDS["rotation"], "p": 3, "reflections": 0, "centre": 1}


def test_a_product_of_one_group_is_canonical_as_that_group():
    g = Product(Permutation(4, 3))
    assert g.canonical
    rng = np.random.default_rng(10)
    X, Y = rng.standard_normal((60, 12)), rng.standard_normal((50, 12))
    a = repgap.knn(X, Y, k=50, group=g)
    b = repgap.knn(X, Y, k=50, group=Permutation(4, 3))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_canonical_images_compiled_and_numpy_give_the_same_bits():
    # one small boundary per kernel: the compiled canonical minimum over
    # signed coordinate permutations and its numpy twin, on data with exact
    # ties between images (repeated values, symmetric rows) and D not a
    # multiple of 4
    from repgap._search import exact
    from repgap._search.exact import canonical_images_min, canonical_images_min_numpy
    from repgap.groups import canonical_sum

    rng = np.random.default_rng(11)
    for D in (1, 3, 7, 16):
        X = np.round(rng.standard_normal((300, D)), 1)
        Y = np.round(rng.standard_normal((300, D)), 1)
        Y[:50] = X[:50][:, ::-1]  # images at distance 0 and exact ties
        perms = np.array([rng.permutation(D) for _ in range(9)] + [np.arange(D)])
        signs = rng.choice([-1.0, 1.0], size=perms.shape[0])
        a = canonical_images_min(X, Y, perms, signs, n_threads=2)
        b = canonical_images_min_numpy(X, Y, perms, signs)
        assert np.array_equal(a, b)
        if signs[-1] == 1:  # the identity is among the images: the minimum is at most its sum
            assert np.all(a <= canonical_sum((X - Y) ** 2))
    if exact._compiled() is None or not hasattr(exact._compiled(), "canonical_images_min"):
        pytest.skip("compiled kernels not built: only the numpy twin ran")
    # every group that acts by signed permutations goes through it
    Z = rng.standard_normal((40, 16))
    W = rng.standard_normal((40, 16))
    for g in (CyclicShift((4, 4)), SignFlip(), Permutation(4, 4)):
        d = g.canonical_distance2(Z, W)
        assert np.array_equal(d, g.canonical_distance2(W, Z))  # symmetric to the last bit
        assert np.all(np.isfinite(d))


@pytest.mark.parametrize("reflections", [False, True])
@pytest.mark.parametrize("D", [5, 7])
def test_cyclic_maps_refuse_rows_of_another_length(D, reflections):
    # a 2 x 3 grid acts on rows of 6 values; its maps on rows of 5 read past
    # them in the compiled minimum (a crash with reflections) and on rows of 7
    # gave wrong distances, once the maps were kept between calls
    g = CyclicShift((2, 3), reflections=reflections)
    g.canonical_distance2(np.ones((2, 6)), np.ones((2, 6)))   # the maps of the 6-value grid are now cached
    X = np.ones((2, D))
    with pytest.raises(ValueError, match="rows of length 6"):
        g.canonical_distance2(X, X)
    with pytest.raises(ValueError, match="cannot act on rows"):
        from repgap._search.exact import canonical_images_min
        canonical_images_min(X, X, g.index_permutations(6), np.ones(g.group_order(6)))
