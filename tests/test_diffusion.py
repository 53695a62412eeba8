"""The empirical optimal denoiser, the denoising gap and memorization (numpy path)."""
import numpy as np
import pytest
from scipy.special import logsumexp

import repgap
from repgap import datasets, diffusion
from repgap.groups import CyclicShift, Permutation, Rotation, SignFlip


def _direct_denoiser(T, Y, s, images=None):
    imgs = [T] if images is None else images
    A = np.concatenate(imgs)
    d2 = ((Y[:, None, :] - A[None, :, :]) ** 2).sum(-1)
    logw = -d2 / (2 * s * s)
    w = np.exp(logw - logsumexp(logw, axis=1, keepdims=True))
    return w @ A


def test_denoiser_equals_the_direct_softmax_for_any_tile():
    rng = np.random.default_rng(0)
    T = rng.standard_normal((700, 5)) + 50.0
    Y = rng.standard_normal((30, 5)) + 50.0
    for s in (0.01, 0.3, 3.0, 300.0):
        ref = _direct_denoiser(T, Y, s)
        for mem in (20_000, 10**8):
            np.testing.assert_allclose(diffusion.empirical_denoiser(T, Y, s, max_memory=mem), ref, rtol=1e-10,
                                       atol=1e-10)
    many = diffusion.empirical_denoiser(T, Y, [0.3, 3.0])
    assert many.shape == (2, 30, 5)
    np.testing.assert_allclose(many[1], _direct_denoiser(T, Y, 3.0), rtol=1e-10)


def test_denoiser_limits():
    rng = np.random.default_rng(1)
    T = rng.random((300, 3))
    Y = rng.random((20, 3))
    # tiny sigma: the nearest training point; huge sigma: the training mean
    _, idx = repgap.knn(Y, T, k=1)
    np.testing.assert_allclose(diffusion.empirical_denoiser(T, Y, 1e-6), T[idx[:, 0]], atol=1e-12)
    np.testing.assert_allclose(diffusion.empirical_denoiser(T, Y, 1e6), np.broadcast_to(T.mean(0), Y.shape),
                               atol=1e-9)


def test_denoiser_sums_over_finite_orbits():
    rng = np.random.default_rng(2)
    T = rng.standard_normal((60, 6))
    Y = rng.standard_normal((10, 6))
    for G, images in [(SignFlip(), [T, -T]), (CyclicShift(), [np.roll(T, s, axis=1) for s in range(6)]),
                      (Permutation(3, 2), [T.reshape(60, 3, 2)[:, list(p)].reshape(60, 6)
                                           for p in __import__("itertools").permutations(range(3))])]:
        np.testing.assert_allclose(diffusion.empirical_denoiser(T, Y, 0.7, group=G),
                                   _direct_denoiser(T, Y, 0.7, images), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="finite group"):
        diffusion.empirical_denoiser(T, Y, 0.7, group=Rotation(2))
    with pytest.raises(ValueError, match="sigma"):
        diffusion.empirical_denoiser(T, Y, 0.0)


def test_denoising_gap_tends_to_the_representation_gap():
    tr = datasets.flat_torus(20000, 5, random_state=0).X
    te = datasets.flat_torus(600, 5, random_state=1).X
    rg = repgap.representation_gap(tr, te).value
    res = diffusion.denoising_gap(tr, te, [1e-3 * np.sqrt(rg), 0.02, 0.2], n_noise=2, random_state=0)
    assert res.gap == pytest.approx(rg)
    assert res.ratio[0] == pytest.approx(1.0, abs=0.02)
    assert res.errors[0] < res.errors[1] < res.errors[2]      # noise hides the training set
    assert "DenoisingGap" in repr(res)


def test_memorization_report_tells_copies_from_fresh_samples():
    tr = datasets.flat_torus(10000, 4, random_state=0).X
    te = datasets.flat_torus(1000, 4, random_state=1).X
    rng = np.random.default_rng(3)
    copies = tr[rng.integers(0, 10000, 1000)] + 1e-3 * rng.standard_normal((1000, tr.shape[1]))
    fresh = datasets.flat_torus(1000, 4, random_state=2).X
    mem = diffusion.memorization(copies, tr, test=te)
    new = diffusion.memorization(fresh, tr, test=te)
    assert mem.fraction_memorized > 0.95 and new.fraction_memorized < 0.05
    assert mem.p_value < 1e-10 and new.p_value > 0.01
    assert mem.ratios.shape == (1000,) and np.all(mem.distances <= mem.second_distances)
    assert "fraction_memorized" in repr(mem) and mem.to_dict()["threshold"] == pytest.approx(1 / 3)
    # exact copies: ratio 0, memorized
    exact = diffusion.memorization(tr[:5], tr)
    assert np.all(exact.ratios == 0) and exact.fraction_memorized == 1.0
    with pytest.raises(ValueError, match="ratio"):
        diffusion.memorization(fresh, tr, ratio=1.5)


def test_memorization_meter_streams_and_resets():
    tr = datasets.flat_torus(3000, 3, random_state=0).X
    rng = np.random.default_rng(4)
    copies = tr[:200] + 1e-5
    meter = diffusion.MemorizationMeter(tr)
    with pytest.raises(ValueError, match="no samples"):
        meter.compute()
    meter.update(copies[:120])
    meter.update(copies[120:])
    assert meter.n_seen == 200
    batch = diffusion.memorization(copies, tr)
    rep = meter.compute()
    np.testing.assert_array_equal(rep.indices, batch.indices)
    assert rep.fraction_memorized == batch.fraction_memorized == 1.0
    meter.reset()
    meter.update(rng.random((50, tr.shape[1])))
    assert meter.n_seen == 50
    # modulo a group: a sign-flipped copy is still a copy
    rep_g = diffusion.memorization(-copies[:50], tr, group=SignFlip())
    assert rep_g.fraction_memorized == 1.0
