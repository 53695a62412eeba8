import os

import numpy as np
import pytest

import repgap
from repgap._backends import BACKENDS

AVAILABLE = repgap.available_backends()
# CI sets REPGAP_REQUIRE_BACKENDS=cython,torch in the main run, so that a
# backend that failed to build or install fails the suite instead of skipping.
REQUIRED = [b for b in os.environ.get("REPGAP_REQUIRE_BACKENDS", "").split(",") if b]


def pytest_report_header(config):
    return f"repgap backends available: {', '.join(AVAILABLE)}; REPGAP_BACKEND={os.environ.get('REPGAP_BACKEND', '')}"


@pytest.fixture(params=BACKENDS)
def backend(request):
    name = request.param
    if name not in AVAILABLE:
        if name in REQUIRED:
            pytest.fail(f"backend {name!r} is required here (REPGAP_REQUIRE_BACKENDS) but not available")
        pytest.skip(f"backend {name!r} not available in this installation")
    return name


# (backend, algorithm) pairs: every kernel each backend has
def _backend_algorithms():
    out = []
    for b in BACKENDS:
        algos = {"numpy": ["auto", "brute", "kd_tree"], "cython": ["auto", "direct", "fused", "gemm", "kd_tree"],
                 "torch": ["auto", "brute"]}[b]
        out += [(b, a) for a in algos]
    return out


@pytest.fixture(params=_backend_algorithms(), ids=lambda p: f"{p[0]}-{p[1]}")
def backend_algorithm(request):
    name, algo = request.param
    if name not in AVAILABLE:
        if name in REQUIRED:
            pytest.fail(f"backend {name!r} is required here (REPGAP_REQUIRE_BACKENDS) but not available")
        pytest.skip(f"backend {name!r} not available in this installation")
    return name, algo


def reference_knn(Q, R, k):
    """cdist in float64 + sort by (distance, index): the ground truth."""
    from scipy.spatial.distance import cdist

    d2 = cdist(np.asarray(Q, dtype=np.float64), np.asarray(R, dtype=np.float64), "sqeuclidean")
    idx = np.lexsort((np.broadcast_to(np.arange(d2.shape[1]), d2.shape), d2), axis=1)[:, :k]
    return np.sqrt(np.take_along_axis(d2, idx, 1)), idx


def assert_knn_equal(d, i, rd, ri, rtol=1e-12):
    """Distances equal to rounding; indices equal except swaps among equal distances."""
    np.testing.assert_allclose(d, rd, rtol=rtol, atol=1e-300)
    diff = i != ri
    if diff.any():
        # a different index is allowed only where the reference distance ties
        np.testing.assert_allclose(d[diff], rd[diff], rtol=rtol)
        assert diff.mean() < 0.01, f"{diff.sum()} index mismatches"
