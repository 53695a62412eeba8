"""The torch backend on tensors (CPU here; CUDA tests are marked gpu and skip without a device)."""
import subprocess
import sys

import numpy as np
import pytest

import repgap
from repgap import datasets, diffusion
from conftest import AVAILABLE, REQUIRED, assert_knn_equal, reference_knn

if "torch" not in AVAILABLE:
    if "torch" in REQUIRED:
        pytest.fail("torch is required here (REPGAP_REQUIRE_BACKENDS) but not installed", pytrace=False)
    pytest.skip("torch is not installed", allow_module_level=True)

import torch  # noqa: E402

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _dev(name):
    if name == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return torch.device(name)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request):
    return _dev(request.param)


def test_importing_repgap_does_not_import_torch(tmp_path):
    code = "import sys, repgap, repgap.diffusion, repgap.groups; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


@pytest.fixture(autouse=True)
def _auto_backend(monkeypatch):
    # these tests are about what "auto" does with tensors: ignore a
    # REPGAP_BACKEND set for the whole run (CI's numpy pass)
    monkeypatch.delenv("REPGAP_BACKEND", raising=False)


@pytest.mark.parametrize("matmul", ["float32", "tf32", "bfloat16"])
def test_tensors_stay_tensors_and_match_the_reference(device, matmul):
    rng = np.random.default_rng(0)
    R = (rng.random((6000, 64)) + 1e3).astype(np.float32)
    Q = (rng.random((500, 64)) + 1e3).astype(np.float32)
    rd, ri = reference_knn(Q, R, 3)
    Rt, Qt = torch.from_numpy(R).to(device), torch.from_numpy(Q).to(device)
    from repgap._kernels_torch import knn_prefix

    sq, idx = knn_prefix(Qt, Rt, 3, None, np.array([6000]), options={"matmul": matmul})
    assert sq.device.type == device.type and idx.device.type == device.type
    np.testing.assert_allclose(np.sqrt(sq[0].cpu().numpy()), rd, rtol=1e-6)
    d, i = repgap.knn(Qt, Rt, k=3)
    assert isinstance(d, torch.Tensor) and d.device.type == device.type
    np.testing.assert_allclose(d.cpu().numpy(), rd, rtol=1e-6)
    assert np.mean(i.cpu().numpy() == ri) > 0.999


def test_cdist_trap_does_not_reach_the_user():
    # float32 data offset by 1e3: torch.cdist (the expansion, uncentred) is off
    # by percents on nearest-neighbour distances; repgap is exact
    rng = np.random.default_rng(1)
    R = (rng.random((20000, 8)) + 1e3).astype(np.float32)
    Q = (rng.random((1000, 8)) + 1e3).astype(np.float32)
    rd, _ = reference_knn(Q, R, 1)
    cd = torch.cdist(torch.from_numpy(Q), torch.from_numpy(R)).min(dim=1).values.numpy().astype(np.float64)
    assert np.median(np.abs(cd - rd[:, 0]) / rd[:, 0]) > 0.01
    d, _ = repgap.knn(torch.from_numpy(Q), torch.from_numpy(R), k=1)
    np.testing.assert_allclose(d.numpy(), rd, rtol=1e-6)


def test_gap_functions_on_tensors_equal_numpy(device):
    rng = np.random.default_rng(2)
    R = (rng.random((8000, 5)) + 10).astype(np.float32)
    Q = (rng.random((800, 5)) + 10).astype(np.float32)
    a = repgap.representation_gap(R, Q, backend="numpy")
    b = repgap.representation_gap(torch.from_numpy(R).to(device), torch.from_numpy(Q).to(device))
    assert b.value == pytest.approx(a.value, rel=1e-9)
    np.testing.assert_array_equal(a.indices, b.indices)
    c1 = repgap.gap_curve(R, Q, random_state=3, backend="numpy")
    c2 = repgap.gap_curve(torch.from_numpy(R).to(device), torch.from_numpy(Q).to(device), random_state=3)
    np.testing.assert_allclose(c2.gaps, c1.gaps, rtol=1e-9)


def test_memory_budget_tiles_do_not_change_results(device):
    rng = np.random.default_rng(4)
    R = torch.from_numpy(rng.random((3000, 32)).astype(np.float32)).to(device)
    Q = torch.from_numpy(rng.random((700, 32)).astype(np.float32)).to(device)
    from repgap._kernels_torch import knn_prefix

    ck = np.array([1000, 3000])
    order = rng.permutation(3000)
    a = knn_prefix(Q, R, 4, order, ck)
    b = knn_prefix(Q, R, 4, order, ck, options={"max_memory": 200_000})  # tiny tiles
    c = knn_prefix(Q, R, 4, order, ck, tile_queries=33, tile_reference=257)
    for x in (b, c):
        torch.testing.assert_close(x[0], a[0], rtol=0, atol=0)
        assert torch.equal(x[1], a[1])


def test_tensor_input_errors():
    bad = torch.zeros((10, 3))
    bad[4, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite values in 1 row"):
        repgap.knn(bad, torch.zeros((10, 3)))
    with pytest.raises(ValueError, match="features"):
        repgap.knn(torch.zeros((5, 3)), torch.zeros((10, 4)))
    with pytest.raises(ValueError, match="2-D"):
        repgap.knn(torch.zeros(5), torch.zeros((10, 4)))
    from repgap._kernels_torch import knn_prefix

    with pytest.raises(ValueError, match="matmul"):
        knn_prefix(torch.zeros((5, 3)), torch.zeros((10, 3)), 1, None, [10], options={"matmul": "fp8"})
    # an explicit numpy backend on tensors: computed on the host, numpy out
    d, _ = repgap.knn(torch.zeros((5, 3)), torch.ones((10, 3)), backend="numpy")
    assert isinstance(d, np.ndarray)


def test_denoiser_on_tensors_matches_numpy(device):
    rng = np.random.default_rng(5)
    T = rng.standard_normal((900, 6))
    Y = rng.standard_normal((40, 6))
    for group in (None, repgap.groups.SignFlip(), repgap.groups.CyclicShift()):
        a = diffusion.empirical_denoiser(T, Y, [0.05, 0.5, 5.0], group=group, max_memory=50_000)
        b = diffusion.empirical_denoiser(torch.from_numpy(T).to(device), torch.from_numpy(Y).to(device),
                                         [0.05, 0.5, 5.0], group=group, max_memory=50_000)
        np.testing.assert_allclose(b.cpu().numpy(), a, rtol=1e-9, atol=1e-12)


def test_memorization_meter_on_device(device):
    tr = datasets.flat_torus(5000, 4, random_state=0).X
    rng = np.random.default_rng(6)
    copies = tr[rng.integers(0, 5000, 400)] + 1e-4 * rng.standard_normal((400, tr.shape[1]))
    meter = diffusion.MemorizationMeter(torch.from_numpy(tr).to(device),
                                        test=torch.from_numpy(datasets.flat_torus(400, 4, random_state=1).X).to(device))
    for s in range(0, 400, 100):
        meter.update(torch.from_numpy(copies[s : s + 100]).to(device))
    rep = meter.compute()
    ref = diffusion.memorization(copies, tr, test=datasets.flat_torus(400, 4, random_state=1).X)
    assert rep.fraction_memorized == ref.fraction_memorized > 0.95
    np.testing.assert_allclose(rep.distances, ref.distances, rtol=1e-9)
    assert rep.p_value < 1e-6


@pytest.mark.parametrize("gname", ["T", "TR", "R3refl", "sign", "cyc", "cyc2d", "perm", "finite"])
def test_knn_modulo_groups_on_tensors(device, gname):
    from repgap.groups import (CyclicShift, FiniteGroup, Permutation, Product, Rotation, SignFlip,
                               Translation)

    G = {"T": Translation(3), "TR": Product(Translation(3), Rotation(3)), "R3refl": Rotation(3, reflections=True),
         "sign": SignFlip(), "cyc": CyclicShift(), "cyc2d": CyclicShift(shape=(4, 6), reflections=True),
         "perm": Permutation(8, 3),
         "finite": FiniteGroup([np.roll(np.arange(24), s) for s in range(0, 24, 3)])}[gname]
    M = datasets.molecule_chains(2150, 8, latent_dim=3, permute=False, random_state=0).X
    R, Q = M[:2000], M[2000:]
    d0, i0 = repgap.knn(Q, R, k=2, group=G, backend="numpy")
    d1, i1 = repgap.knn(torch.from_numpy(Q).to(device), torch.from_numpy(R).to(device), k=2, group=G)
    assert isinstance(d1, torch.Tensor) and d1.device.type == device.type
    np.testing.assert_array_equal(i1.cpu().numpy(), i0)
    np.testing.assert_allclose(d1.cpu().numpy(), d0, rtol=1e-10)
    if gname == "TR":
        c0 = repgap.gap_curve(R, Q, sizes=[500, 2000], repeats=2, group=G, random_state=0, backend="numpy")
        c1 = repgap.gap_curve(torch.from_numpy(R).to(device), torch.from_numpy(Q).to(device), sizes=[500, 2000],
                              repeats=2, group=G, random_state=0)
        np.testing.assert_allclose(c1.gaps, c0.gaps, rtol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cpu_path_exact_for_any_tiles_and_threads(dtype):
    # the CPU search (numpy BLAS tiles, block and sub-block maxima, pending
    # merges): exact against the reference, and the same candidates for any
    # query/reference tiling (short tiles below K blocks, ragged ends,
    # queries not a multiple of 16) and any thread count
    from repgap._kernels_torch import knn_prefix

    rng = np.random.default_rng(7)
    R = (rng.random((9000, 24)) + 1e3).astype(dtype)
    R[4000:4010] = R[10:20]  # exact duplicates: ties by index
    Q = (rng.random((517, 24)) + 1e3).astype(dtype)
    Q[:5] = R[[3, 4000, 7, 8999, 12]]
    order = rng.permutation(9000)
    ck = np.array([700, 5000, 9000])
    ref = [reference_knn(Q, R[order[:c]], 5) for c in ck]
    base = None
    for tq, tr, nt in [(None, None, 1), (None, None, 2), (16, 1030, 2), (33, 257, 3), (512, 8192, 2), (7, 100, 1)]:
        sq, idx = knn_prefix(Q, R, 5, order, ck, n_threads=nt, tile_queries=tq, tile_reference=tr)
        for j, (rd, ri) in enumerate(ref):
            # ties (the duplicates) by reference row, not by rank in the order
            assert_knn_equal(np.sqrt(sq[j]), idx[j], rd, order[: ck[j]][ri])
        if base is None:
            base = (sq, idx)
        np.testing.assert_array_equal(sq, base[0])
        np.testing.assert_array_equal(idx, base[1])


def test_cpu_path_k_beyond_the_first_tiles():
    # k + spare larger than a reference prefix, and than the blocks of a tile
    from repgap._kernels_torch import knn_prefix

    rng = np.random.default_rng(8)
    R = rng.standard_normal((300, 6)).astype(np.float32)
    Q = rng.standard_normal((40, 6)).astype(np.float32)
    ck = np.array([3, 20, 300])
    sq, idx = knn_prefix(Q, R, 3, None, ck, n_threads=2, tile_reference=128)
    for j, c in enumerate(ck):
        rd, ri = reference_knn(Q, R[:c], 3)
        np.testing.assert_allclose(np.sqrt(sq[j]), rd, rtol=1e-12)
        np.testing.assert_array_equal(idx[j], ri)
    sq2, idx2 = knn_prefix(Q, R, 3, None, ck, n_threads=1)
    np.testing.assert_array_equal(sq2, sq)
    np.testing.assert_array_equal(idx2, idx)


def test_cpu_path_restores_thread_settings():
    from repgap._kernels_torch import knn_prefix

    before = torch.get_num_threads()
    rng = np.random.default_rng(9)
    R = rng.standard_normal((5000, 16)).astype(np.float32)
    knn_prefix(R[:600], R, 1, None, np.array([5000]), n_threads=2)
    assert torch.get_num_threads() == before


# ---------------------------------------------------------------------------
# the certified search on tensors: the arrays' answer, bit for bit
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tensor_ties_come_out_by_row_as_on_arrays(device, dtype):
    # an integer grid: each query has dozens of rows at exactly its k-th
    # distance, more than the kernel's spare candidates, so the certificate
    # fails on the first round and the rows tied at the k-th come from a re-search
    rng = np.random.default_rng(3)
    T = rng.integers(0, 3, (400, 4)).astype(dtype)
    Q = rng.integers(0, 3, (60, 4)).astype(dtype)
    d, i = repgap.knn(Q, T, k=5, backend="numpy")
    dt, it = repgap.knn(torch.from_numpy(Q).to(device), torch.from_numpy(T).to(device), k=5)
    np.testing.assert_array_equal(it.cpu().numpy(), i)
    np.testing.assert_array_equal(dt.cpu().numpy(), d)
    z = torch.zeros((1, 8), dtype=torch.float64, device=device)
    _, iz = repgap.knn(z, torch.zeros((20, 8), dtype=torch.float64, device=device), k=3)
    assert iz.cpu().tolist() == [[0, 1, 2]]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tensor_near_ties_are_exact(device, dtype):
    # 40 rows within 1e-7 (relative) of one point: their order is decided
    # below the float32 scores' resolution, by the float64 recomputation
    rng = np.random.default_rng(4)
    base = rng.standard_normal(8) * 10
    T = np.concatenate([base + 1e-6 * rng.standard_normal((40, 8)), rng.standard_normal((600, 8)) * 10])
    Q = np.concatenate([base[None], base[None] + 1e-6 * rng.standard_normal((5, 8))])
    T, Q = T.astype(dtype), Q.astype(dtype)
    d, i = repgap.knn(Q, T, k=7, backend="numpy")
    dt, it = repgap.knn(torch.from_numpy(Q).to(device), torch.from_numpy(T).to(device), k=7)
    np.testing.assert_array_equal(it.cpu().numpy(), i)
    np.testing.assert_array_equal(dt.cpu().numpy(), d)


def test_tensor_distances_have_the_arrays_bits():
    # the square root on the host: torch's CPU sqrt is not correctly rounded
    rng = np.random.default_rng(5)
    x = np.abs(rng.standard_normal(100_000)) * 10
    assert np.array_equal(repgap.neighbors._tensor_sqrt(torch.from_numpy(x)).numpy(), np.sqrt(x))
    X = rng.standard_normal((3000, 16))
    for dtype in (np.float32, np.float64):
        A = X.astype(dtype)
        d, i = repgap.knn(A[:800], A, k=10, backend="numpy")
        dt, it = repgap.knn(torch.from_numpy(A[:800]), torch.from_numpy(A), k=10)
        np.testing.assert_array_equal(it.numpy(), i)
        np.testing.assert_array_equal(dt.numpy(), d)


def test_tensor_search_is_certified_per_prefix():
    # the gap curve's prefixes through tensors: every checkpoint certified on its own
    from repgap._search.plan import knn_prefix

    rng = np.random.default_rng(6)
    R = rng.integers(0, 4, (900, 3)).astype(np.float64)
    Q = rng.integers(0, 4, (70, 3)).astype(np.float64)
    order = rng.permutation(900)
    ck = np.array([12, 50, 300, 900])
    d, i = knn_prefix(Q, R, 4, order, ck, backend="numpy", n_threads=1)
    dt, it = knn_prefix(torch.from_numpy(Q), torch.from_numpy(R), 4, order, ck, backend="torch", n_threads=1)
    np.testing.assert_array_equal(it.numpy(), i)
    np.testing.assert_array_equal(dt.numpy(), d)


def test_tensors_that_require_grad_are_searched_as_values():
    X = torch.randn(500, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    d, i = repgap.knn(X[:10], X, k=2)
    dn, inn = repgap.knn(X.detach().numpy()[:10], X.detach().numpy(), k=2, backend="numpy")
    np.testing.assert_array_equal(i.numpy(), inn)
    np.testing.assert_array_equal(d.numpy(), dn)
    from repgap.groups import Permutation

    _, ig = repgap.knn(X[:10], X, k=2, group=Permutation(2, 2))
    _, ign = repgap.knn(X.detach().numpy()[:10], X.detach().numpy(), k=2, group=Permutation(2, 2), backend="numpy")
    np.testing.assert_array_equal(ig.numpy(), ign)


@pytest.mark.parametrize("dtype,scale", [(np.float32, 1e19), (np.float32, 3e37), (np.float32, 3e-41),
                                         (np.float64, 1e160), (np.float64, 1e300), (np.float64, 1e-300)])
def test_tensors_exact_over_the_whole_floating_point_range(device, dtype, scale):
    # squared norms that overflow (or whose differences are subnormal) in the
    # data's precision: the tensor path searches rescaled copies and
    # recomputes on the stored rows, as the arrays' path does; before, float32
    # at 1e19 and float64 at 1e160 gave other neighbours than the arrays
    rng = np.random.default_rng(11)
    X = (rng.standard_normal((300, 8)) * scale).astype(dtype)
    Q = (rng.standard_normal((40, 8)) * scale).astype(dtype)
    d, i = repgap.knn(Q, X, k=3, backend="numpy")
    s = 2.0 ** -np.frexp(scale)[1]  # exact: the truth in float64 at unit scale
    truth = np.argsort(((Q.astype(np.float64)[:, None] * s - X.astype(np.float64)[None] * s) ** 2).sum(-1),
                       axis=1, kind="stable")[:, :3]
    np.testing.assert_array_equal(i, truth)
    dt, it = repgap.knn(torch.from_numpy(Q).to(device), torch.from_numpy(X).to(device), k=3)
    np.testing.assert_array_equal(it.cpu().numpy(), i)
    np.testing.assert_array_equal(dt.cpu().numpy(), d)
