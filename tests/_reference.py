"""Reference computations that do not use repgap, shared by tests/test_fuzz.py and benchmarks/fuzz_matrix.py."""
import numpy as np


def ref_distances(Q, R):
    """All Euclidean distances (m, n) in float64, scaled per pair so that nothing overflows or underflows."""
    diff = Q[:, None, :] - R[None, :, :]
    with np.errstate(all="ignore"):
        m = np.abs(diff).max(axis=2)
        safe = np.where(m > 0, m, 1.0)
        return np.where(m > 0, safe * np.sqrt(((diff / safe[..., None]) ** 2).sum(axis=2)), 0.0)
