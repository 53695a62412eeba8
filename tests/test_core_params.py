"""Parameter checks of the core API (issue #15, item 2).

Every public function and group constructor refuses a bad parameter before
any work, with one message that names the parameter (and shows the value);
nothing is silently truncated (``Translation(2.5)``), cast (complex tensors)
or passed on to numpy/torch/the compiled kernels to fail there with their
own wording ("invalid literal for int()", "cannot convert float NaN to
integer", "Got unsupported ScalarType BFloat16").
"""
import math
import warnings

import numpy as np
import pytest

import repgap
from repgap import groups as G
from repgap._threads import resolve_n_jobs

rng = np.random.default_rng(0)
X = rng.random((50, 3))
Y = rng.random((5, 3))
NAN, INF = float("nan"), float("inf")


def knn(**kw):
    return repgap.knn(Y, X, **kw)


def knn_ck(**kw):
    kw.setdefault("checkpoints", [10, 50])
    return repgap.knn_checkpoints(Y, X, kw.pop("checkpoints"), **kw)


def gap(**kw):
    return repgap.representation_gap(X, Y, **kw)


def curve(**kw):
    return repgap.gap_curve(X, Y, **kw)


def numpy_kernel(**kw):
    from repgap._kernels_numpy import knn_prefix

    return knn_prefix(Y, X, 1, None, np.array([50]), **kw)


# the options of every search (knn, knn_checkpoints, representation_gap, gap_curve)
SEARCH = [
    (dict(k=0), ValueError, r"\bk\b.*>= 1"),
    (dict(k=-1), ValueError, r"\bk\b"),
    (dict(k=1.5), TypeError, r"\bk\b.*integer"),
    (dict(k=2.0), TypeError, r"\bk\b.*integer"),
    (dict(k=True), TypeError, r"\bk\b"),
    (dict(k="1"), TypeError, r"\bk\b"),
    (dict(k=NAN), TypeError, r"\bk\b"),
    (dict(k=51), ValueError, r"k=51 is larger"),
    (dict(n_jobs=0), ValueError, r"n_jobs=0"),
    (dict(n_jobs=-2), ValueError, r"n_jobs=-2.*-1"),
    (dict(n_jobs=-100), ValueError, r"n_jobs=-100"),
    (dict(n_jobs=2.5), TypeError, r"n_jobs.*2\.5"),
    (dict(n_jobs=2.0), TypeError, r"n_jobs"),
    (dict(n_jobs="2"), TypeError, r"n_jobs"),
    (dict(n_jobs=True), TypeError, r"n_jobs"),
    (dict(n_jobs=NAN), TypeError, r"n_jobs"),
    (dict(n_jobs=10**12), ValueError, r"n_jobs"),
    (dict(backend="faiss"), ValueError, r"backend 'faiss'.*'numpy'"),
    (dict(backend=3), TypeError, r"backend.*3"),
    (dict(algorithm="ball_tree"), ValueError, r"algorithm 'ball_tree'.*'brute'"),
    (dict(algorithm=3), TypeError, r"algorithm.*3"),
    (dict(algorithm=None), TypeError, r"algorithm"),
    (dict(progress="yes"), TypeError, r"progress.*'yes'"),
    (dict(progress=2), TypeError, r"progress"),
    (dict(group=3), TypeError, r"group must be"),
    (dict(group=G.Rotation), TypeError, r"group must be"),
    (dict(group=G.SignFlip(), algorithm="kd_tree"), ValueError, r"algorithm='kd_tree'.*group"),
    (dict(block_size=0), ValueError, r"block_size"),
    (dict(block_size=2.5), TypeError, r"block_size.*2\.5"),
    (dict(block_size=NAN), TypeError, r"block_size"),
    (dict(block_size="10"), TypeError, r"block_size"),
    (dict(max_memory=NAN), ValueError, r"max_memory.*nan"),
    (dict(max_memory=INF), ValueError, r"max_memory.*inf"),
    (dict(max_memory=0), ValueError, r"max_memory"),
    (dict(max_memory=-5), ValueError, r"max_memory"),
    (dict(max_memory="1GB"), TypeError, r"max_memory"),
]

CASES = []
for fn in (knn, knn_ck, gap, curve):
    for kw, exc, rx in SEARCH:
        CASES.append((fn, kw, exc, rx))

CASES += [
    # knn_checkpoints: checkpoints and order
    (knn_ck, dict(checkpoints=[10, 5]), ValueError, r"checkpoints must be strictly increasing"),
    (knn_ck, dict(checkpoints=[10, 60]), ValueError, r"checkpoints.*larger"),
    (knn_ck, dict(checkpoints=[10, 10**30]), ValueError, r"checkpoints.*larger"),
    (knn_ck, dict(checkpoints=[]), ValueError, r"checkpoints.*non-empty"),
    (knn_ck, dict(checkpoints=[1.5, 3]), ValueError, r"checkpoints.*integers"),
    (knn_ck, dict(checkpoints=[10, INF]), ValueError, r"checkpoints.*finite"),
    (knn_ck, dict(checkpoints=[NAN, 20]), ValueError, r"checkpoints.*finite"),
    (knn_ck, dict(checkpoints=["a", "b"]), TypeError, r"checkpoints"),
    (knn_ck, dict(checkpoints=[True, 5]), TypeError, r"checkpoints"),
    (knn_ck, dict(checkpoints=None), TypeError, r"checkpoints"),
    (knn_ck, dict(checkpoints=[1, 10], k=2), ValueError, r"checkpoints.*smaller than k=2"),
    (knn_ck, dict(order=np.arange(50.0)), TypeError, r"order.*float64"),
    (knn_ck, dict(order=np.arange(50).reshape(5, 10)), ValueError, r"order.*shape"),
    (knn_ck, dict(order=np.arange(1, 51)), ValueError, r"order.*holds 50"),
    (knn_ck, dict(order=np.zeros(50, dtype=int)), ValueError, r"order must not repeat"),
    (knn_ck, dict(order=np.arange(3)), ValueError, r"order has 3 entries"),
    # the gap: r
    (gap, dict(r=NAN), ValueError, r"\br must be a positive finite number, got nan"),
    (gap, dict(r=INF), ValueError, r"\br must be"),
    (gap, dict(r=-1), ValueError, r"\br must be"),
    (gap, dict(r=0), ValueError, r"\br must be"),
    (gap, dict(r="2"), TypeError, r"\br must be"),
    (gap, dict(r=True), TypeError, r"\br must be"),
    (gap, dict(k=60), ValueError, r"k=60 is larger than the training set"),
    # the curve: sizes, repeats, random_state, train_queries, r
    (curve, dict(sizes=[10, INF]), ValueError, r"sizes must be finite"),
    (curve, dict(sizes=[NAN, 20]), ValueError, r"sizes must be finite"),
    (curve, dict(sizes=[10, 20.5]), ValueError, r"sizes.*non-integral"),
    (curve, dict(sizes=[10, 100]), ValueError, r"sizes.*larger than the training set"),
    (curve, dict(sizes=[40, 30]), ValueError, r"sizes must be strictly increasing"),
    (curve, dict(sizes=[20, 20]), ValueError, r"sizes must be strictly increasing"),
    (curve, dict(sizes=[0, 10]), ValueError, r"sizes.*smaller than k=1"),
    (curve, dict(sizes=10), TypeError, r"sizes"),
    (curve, dict(sizes="10"), TypeError, r"sizes"),
    (curve, dict(sizes=[]), ValueError, r"sizes.*non-empty"),
    (curve, dict(repeats=0), ValueError, r"repeats"),
    (curve, dict(repeats=-1), ValueError, r"repeats"),
    (curve, dict(repeats=2.5), TypeError, r"repeats.*2\.5"),
    (curve, dict(repeats=True), TypeError, r"repeats"),
    (curve, dict(repeats=NAN), TypeError, r"repeats"),
    (curve, dict(random_state=-1), ValueError, r"random_state.*-1"),
    (curve, dict(random_state=2.5), TypeError, r"random_state.*2\.5"),
    (curve, dict(random_state="x"), TypeError, r"random_state"),
    (curve, dict(random_state=True), TypeError, r"random_state"),
    (curve, dict(train_queries=2.5), TypeError, r"train_queries.*2\.5"),
    (curve, dict(train_queries=-3), ValueError, r"train_queries must be"),
    (curve, dict(train_queries="all"), TypeError, r"train_queries"),
    (curve, dict(train_queries="all", block_size=10), TypeError, r"train_queries"),
    (curve, dict(r=NAN), ValueError, r"\br must be"),
    # default_sizes
    (repgap.default_sizes, dict(n=2.5), TypeError, r"\bn\b.*2\.5"),
    (repgap.default_sizes, dict(n=0), ValueError, r"\bn\b"),
    (repgap.default_sizes, dict(n=100, n_sizes=0), ValueError, r"n_sizes"),
    (repgap.default_sizes, dict(n=100, n_sizes=2.5), TypeError, r"n_sizes"),
    (repgap.default_sizes, dict(n=100, smallest=NAN), TypeError, r"smallest"),
    # configuration
    (repgap.set_config, dict(tile_queries="x"), TypeError, r"tile_queries.*'x'"),
    (repgap.set_config, dict(tile_queries=2.5), TypeError, r"tile_queries.*2\.5"),
    (repgap.set_config, dict(tile_queries=True), TypeError, r"tile_queries.*True"),
    (repgap.set_config, dict(tile_queries=NAN), TypeError, r"tile_queries.*nan"),
    (repgap.set_config, dict(tile_queries=0), ValueError, r"tile_queries"),
    (repgap.set_config, dict(tile_queries=-8), ValueError, r"tile_queries"),
    (repgap.set_config, dict(tile_queries=2**40), ValueError, r"tile_queries"),
    (repgap.set_config, dict(tile_reference=1.5), TypeError, r"tile_reference"),
    (repgap.set_config, dict(tile_reference=0), ValueError, r"tile_reference"),
    (repgap.set_config, dict(n_jobs=0), ValueError, r"n_jobs=0"),
    (repgap.set_config, dict(n_jobs=-3), ValueError, r"n_jobs=-3"),
    (repgap.set_config, dict(n_jobs=1.5), TypeError, r"n_jobs"),
    (repgap.set_config, dict(backend=3), TypeError, r"backend"),
    (repgap.set_config, dict(backend="gpu"), ValueError, r"backend 'gpu'"),
    (repgap.set_config, dict(progress=3), TypeError, r"progress"),
    (repgap.set_config, dict(progress="no"), TypeError, r"progress"),
    (repgap.set_config, dict(colour="red"), TypeError, r"colour"),
    (lambda **kw: repgap.config_context(**kw).__enter__(), dict(tile_queries="x"), TypeError, r"tile_queries"),
    (lambda **kw: repgap.config_context(**kw).__enter__(), dict(n_jobs=-3), ValueError, r"n_jobs=-3"),
    (resolve_n_jobs, dict(n_jobs=-2), ValueError, r"n_jobs=-2"),
    (resolve_n_jobs, dict(n_jobs="2"), TypeError, r"n_jobs"),
    # the numpy kernels' arguments
    (numpy_kernel, dict(tile_queries=2.5), TypeError, r"tile_queries"),
    (numpy_kernel, dict(tile_reference=0), ValueError, r"tile_reference"),
    (numpy_kernel, dict(spare=-1), ValueError, r"spare"),
    (numpy_kernel, dict(leafsize=0, algorithm="kd_tree"), ValueError, r"leafsize"),
    (numpy_kernel, dict(n_threads=0), ValueError, r"n_threads"),
    (numpy_kernel, dict(options={"device": "cpu"}), TypeError, r"unknown options"),
    # group constructors
    (G.Translation, dict(p=2.5), TypeError, r"Translation: p\b.*2\.5"),
    (G.Translation, dict(p="a"), TypeError, r"Translation: p\b.*'a'"),
    (G.Translation, dict(p=0), ValueError, r"Translation: p\b"),
    (G.Translation, dict(p=True), TypeError, r"Translation: p\b"),
    (G.Translation, dict(p=None), TypeError, r"Translation: p\b"),
    (G.Translation, dict(p=NAN), TypeError, r"Translation: p\b"),
    (G.Rotation, dict(p=3.7), TypeError, r"Rotation: p\b.*3\.7"),
    (G.Rotation, dict(p=3.0), TypeError, r"Rotation: p\b"),
    (G.Rotation, dict(p=4), ValueError, r"R\^2 and R\^3.*p=4"),
    (G.Rotation, dict(p="3"), TypeError, r"Rotation: p\b"),
    (G.Rotation, dict(p=3, reflections="no"), TypeError, r"Rotation: reflections"),
    (G.Rotation, dict(p=3, reflections=1), TypeError, r"Rotation: reflections"),
    (G.Permutation, dict(m=2.5), TypeError, r"Permutation: m\b.*2\.5"),
    (G.Permutation, dict(m=0), ValueError, r"Permutation: m\b"),
    (G.Permutation, dict(m=3, p=1.5), TypeError, r"Permutation: p\b"),
    (G.Permutation, dict(m=3, p=0), ValueError, r"Permutation: p\b"),
    (G.CyclicShift, dict(shape=5), TypeError, r"CyclicShift: shape"),
    (G.CyclicShift, dict(shape="8x8"), TypeError, r"CyclicShift: shape"),
    (G.CyclicShift, dict(shape=(8,)), ValueError, r"CyclicShift: shape.*length 1"),
    (G.CyclicShift, dict(shape=(2.5, 2)), TypeError, r"CyclicShift: shape\[0\].*2\.5"),
    (G.CyclicShift, dict(shape=(4, 0)), ValueError, r"CyclicShift: shape\[1\]"),
    (G.CyclicShift, dict(shape=(4, NAN)), TypeError, r"CyclicShift: shape\[1\]"),
    (G.CyclicShift, dict(reflections="yes"), TypeError, r"CyclicShift: reflections"),
    (G.FiniteGroup, dict(elements=3), TypeError, r"FiniteGroup: elements"),
    (G.FiniteGroup, dict(elements="ab"), TypeError, r"FiniteGroup: elements"),
    (G.FiniteGroup, dict(elements=[]), ValueError, r"FiniteGroup.*elements"),
    (G.FiniteGroup, dict(elements=[[0.0, 1.0], [1.0, 0.0]]), TypeError, r"elements\[0\].*float64"),
    (G.FiniteGroup, dict(elements=[[0.5, 1.0], [1.0, 0.0]]), TypeError, r"elements\[0\]"),
    (G.FiniteGroup, dict(elements=[[0, 1], [1, 0, 2]]), ValueError, r"elements\[1\].*shape"),
    (G.FiniteGroup, dict(elements=[np.eye(2) * 1j]), TypeError, r"elements\[0\].*complex"),
    (G.FiniteGroup, dict(elements=[np.array([True, False])]), TypeError, r"elements\[0\].*bool"),
    (G.FiniteGroup, dict(elements=[np.zeros((2, 2, 2))]), ValueError, r"elements\[0\].*shape"),
    (G.FiniteGroup, dict(elements=[np.full((2, 2), np.nan)]), ValueError, r"matrix elements must be finite"),
    (lambda **kw: G.Product(G.Translation(3), G.Rotation(3), **kw), dict(n_starts=0), ValueError,
     r"Product: n_starts"),
    (lambda **kw: G.Product(G.Translation(3), G.Rotation(3), **kw), dict(n_starts=2.5), TypeError,
     r"Product: n_starts"),
    (lambda **kw: G.Product(G.Translation(3), G.Rotation(3), **kw), dict(max_iter=0), ValueError,
     r"Product: max_iter"),
    (lambda **kw: G.Product(G.Translation(3), G.Rotation(3), **kw), dict(max_iter="50"), TypeError,
     r"Product: max_iter"),
    (lambda **kw: G.Product(G.Translation(3), *kw["groups"]), dict(groups=[None]), TypeError,
     r"Product: every factor.*None"),
    (lambda **kw: G.Product(G.Translation(3), *kw["groups"]), dict(groups=[3]), TypeError,
     r"Product: every factor.*3"),
    # data that numpy cannot read as a rectangular array of numbers
    (lambda **kw: repgap.knn(**kw), dict(queries=[[1.0, 2.0], [3.0]], reference=X[:, :2]), ValueError,
     r"queries cannot be read as an array"),
    (lambda **kw: repgap.knn(**kw), dict(queries=Y + 1j, reference=X), TypeError, r"queries has dtype complex"),
    # group methods: rows of real numbers
    (lambda **kw: G.Translation(3).distance2(**kw), dict(x=np.zeros(6) + 1j, y=np.zeros(6)), TypeError,
     r"\bx has dtype complex"),
    (lambda **kw: G.Translation(3).distance2(**kw), dict(x=np.zeros(6), y=["a"] * 6), TypeError,
     r"\by has dtype"),
    (lambda **kw: G.SignFlip().invariant(**kw), dict(X=np.zeros((2, 2, 2))), ValueError, r"\bX must be"),
]


def _id(case):
    fn, kw, _, _ = case
    name = getattr(fn, "__name__", "call")
    if name == "<lambda>":
        name = "call"
    return f"{name}-" + ",".join(f"{k}={v!r}"[:30] for k, v in kw.items())


@pytest.fixture(autouse=True)
def _restore_config():
    before = repgap.get_config()
    yield
    repgap.set_config(**before)


@pytest.mark.parametrize("fn, kw, exc, regex", CASES, ids=[_id(c) for c in CASES])
def test_bad_parameter(fn, kw, exc, regex):
    before = repgap.get_config()
    with pytest.raises(exc, match=regex):
        fn(**kw)
    assert repgap.get_config() == before  # a refused setting changes nothing


# parameters that do not depend on the data are refused before the data are read
EARLY = [kw for kw, _, _ in SEARCH if "k" not in kw or kw["k"] != 51]


@pytest.mark.parametrize("kw", EARLY, ids=[",".join(f"{k}={v!r}"[:30] for k, v in kw.items()) for kw in EARLY])
def test_checked_before_any_work(kw, monkeypatch):
    import repgap._validation as V

    def no_scan(*a, **k):
        raise AssertionError("the data were scanned before the parameters were checked")

    monkeypatch.setattr(V, "check_finite", no_scan)
    for fn in (knn, knn_ck, gap, curve):
        with pytest.raises((TypeError, ValueError)):
            fn(**kw)


def test_curve_parameters_checked_before_any_work(monkeypatch):
    import repgap._validation as V

    monkeypatch.setattr(V, "check_finite", lambda *a: pytest.fail("data scanned first"))
    for kw in (dict(repeats=0), dict(random_state=-1), dict(train_queries=2.5), dict(r=NAN), dict(sizes=5)):
        with pytest.raises((TypeError, ValueError)):
            curve(**kw)
    with pytest.raises(ValueError):
        gap(r=-2)


def test_good_parameters_still_work():
    d, i = repgap.knn(Y, X, k=np.int64(2), n_jobs=-1, progress=False, backend="numpy")
    assert d.shape == (5, 2)
    d2, _ = repgap.knn(Y, X, k=2, n_jobs=1, max_memory=1 << 20)
    np.testing.assert_array_equal(d, d2)
    c = repgap.gap_curve(X, Y, sizes=np.array([10.0, 50.0]), repeats=np.int64(2), random_state=np.int64(3),
                         train_queries=np.int64(5))
    assert list(c.sizes) == [10, 50]
    assert G.CyclicShift(np.array([2, 3])).shape == (2, 3)
    assert G.Rotation(np.int64(2), reflections=np.True_).reflections is True
    with repgap.config_context(tile_queries=np.int64(16), progress=np.False_):
        assert repgap.get_config()["tile_queries"] == 16


def test_single_test_point_warns_about_nan_stderr():
    with pytest.warns(RuntimeWarning, match="stderr is NaN"):
        res = repgap.representation_gap(X, Y[:1])
    assert math.isnan(res.stderr) and math.isfinite(res.value)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isfinite(repgap.representation_gap(X, Y).stderr)


# ----------------------------------------------------------------------------- torch


def _torch():
    return pytest.importorskip("torch")


def _backends():
    return [b for b in ("numpy", "cython", "torch") if b in repgap.available_backends()]


@pytest.mark.parametrize("half", ["bfloat16", "float16"])
def test_half_precision_tensors_match_float32(half):
    torch = _torch()
    dt = getattr(torch, half)
    q = torch.from_numpy(Y.astype(np.float32)).to(dt)
    r = torch.from_numpy(X.astype(np.float32)).to(dt)
    for b in _backends():
        d, i = repgap.knn(q, r, k=3, backend=b)
        d32, i32 = repgap.knn(q.float(), r.float(), k=3, backend=b)
        if hasattr(d, "numpy"):
            d, i, d32, i32 = d.numpy(), i.numpy(), d32.numpy(), i32.numpy()
        np.testing.assert_array_equal(d, d32, err_msg=b)
        np.testing.assert_array_equal(i, i32, err_msg=b)
        g = repgap.representation_gap(r, q, backend=b)
        g32 = repgap.representation_gap(r.float(), q.float(), backend=b)
        assert g.value == g32.value, b
    a = G.Translation(3).distance2(q[0, :3].repeat(2), r[0, :3].repeat(2))
    b32 = G.Translation(3).distance2(q[0, :3].float().repeat(2), r[0, :3].float().repeat(2))
    assert a == b32


@pytest.mark.parametrize("backend", [None, "numpy", "cython", "torch"])
def test_complex_tensors_refused(backend):
    torch = _torch()
    if backend is not None and backend not in repgap.available_backends():
        pytest.skip(f"{backend} not available")
    c = torch.zeros((5, 3), dtype=torch.complex64)
    real = torch.zeros((10, 3))
    with pytest.raises(TypeError, match=r"queries has dtype .*complex"):
        repgap.knn(c, real, backend=backend)
    with pytest.raises(TypeError, match=r"reference has dtype .*complex"):
        repgap.knn(real, c.repeat(2, 1), backend=backend)
    with pytest.raises(TypeError, match=r"train has dtype .*complex"):
        repgap.representation_gap(c, real, backend=backend)
    with pytest.raises(TypeError, match=r"\bx has dtype .*complex"):
        G.SignFlip().distance2(c[0], real[0])


def test_complex_numpy_reference_refused_next_to_a_tensor():
    torch = _torch()
    with pytest.raises(TypeError, match=r"reference has dtype complex"):
        repgap.knn(torch.zeros((2, 3)), np.zeros((4, 3), dtype=complex))


def test_explicit_auto_wins_over_the_configuration_for_tensors():
    torch = _torch()
    with repgap.config_context(backend="numpy"):
        d, _ = repgap.knn(torch.zeros((2, 3)), torch.ones((4, 3)))
        assert isinstance(d, np.ndarray)  # the configured numpy backend
        d, _ = repgap.knn(torch.zeros((2, 3)), torch.ones((4, 3)), backend="auto")
        assert isinstance(d, torch.Tensor)  # auto picks torch for tensors


def _torch_kernel(**kw):
    torch = _torch()
    from repgap._kernels_torch import knn_prefix

    return knn_prefix(torch.rand(3, 3), torch.rand(5, 3), 1, None, [5], **kw)


@pytest.mark.parametrize("kw, exc, regex", [
    (dict(options={"max_memory": NAN}), ValueError, r"options\['max_memory'\].*nan"),
    (dict(options={"max_memory": INF}), ValueError, r"options\['max_memory'\].*inf"),
    (dict(options={"max_memory": 0}), ValueError, r"options\['max_memory'\]"),
    (dict(options={"max_memory": "1GB"}), TypeError, r"options\['max_memory'\]"),
    (dict(options={"matmul": "fp8"}), ValueError, r"options\['matmul'\].*'fp8'"),
    (dict(options={"device": "gpu"}), ValueError, r"options\['device'\].*'gpu'"),
    (dict(options={"colour": 1}), TypeError, r"unknown options.*colour"),
    (dict(options=3), TypeError, r"options must be a dict"),
    (dict(tile_queries=2.5), TypeError, r"tile_queries"),
    (dict(tile_reference=0), ValueError, r"tile_reference"),
    (dict(spare=-1), ValueError, r"spare"),
    (dict(n_threads=0), ValueError, r"n_threads"),
])
def test_torch_kernel_options(kw, exc, regex):
    with pytest.raises(exc, match=regex):
        _torch_kernel(**kw)


def test_torch_kernel_max_memory_accepted():
    torch = _torch()
    d1, i1 = _torch_kernel(options={"max_memory": 1 << 20})
    assert d1.shape == (1, 3, 1) and torch.isfinite(d1).all()
