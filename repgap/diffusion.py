"""Diffusion models and the Representation Gap: the empirical optimal
denoiser, its test error, and memorization of generated samples.

The denoiser that minimises a diffusion model's training loss exactly is the
empirical optimal denoiser of the training set,

    D_n(y, s) = sum_i w_i(y) x_i,   w = softmax_i(-||y - x_i||^2 / (2 s^2))

(for a finite symmetry group the sum runs over every image ``g.x_i``). As
the noise level ``s -> 0``, ``D_n(x + s eps)`` snaps to the training point
nearest to ``x``, so its test denoising error tends to the Representation
Gap: the generalisation error of a perfectly trained diffusion model (Perera
et al., arXiv:2605.21692; docs/theory.md, section 2).

Everything here takes numpy arrays or torch tensors; tensors stay on their
device (the torch backend), with the training set processed in tiles sized
from a memory budget.
"""
import dataclasses
import itertools
import math

import numpy as np

from ._arrays import is_tensor
from ._validation import check_array, check_int, check_pair, check_random_state, check_real, real_values
from .groups import CyclicShift, FiniteGroup, Identity, Permutation, SignFlip, check_group
from .gap import _host
from .neighbors import knn

__all__ = ["empirical_denoiser", "denoising_gap", "DenoisingGap", "memorization", "MemorizationReport",
           "MemorizationMeter"]

_MAX_PERMUTATION_ORDER = 40320  # 8!: beyond, enumerating the orbit is not sensible


# ---------------------------------------------------------------------------
# orbits of finite groups, as whole-tile maps
# ---------------------------------------------------------------------------
def _orbit_maps(group, D):
    """Functions ``T -> g.T`` (rows) for every element of a finite group."""
    if group is None or isinstance(group, Identity):
        return [lambda T: T]
    if isinstance(group, SignFlip):
        return [lambda T: T, lambda T: -T]
    if isinstance(group, CyclicShift):
        shape = group.shape or (D,)
        maps = []
        for flip in (False, True) if group.reflections else (False,):
            for shift in itertools.product(*[range(s) for s in shape]):
                maps.append(_shift_map(shape, shift, flip))
        return maps
    if isinstance(group, Permutation):
        if group.order > _MAX_PERMUTATION_ORDER:
            raise ValueError(f"{group!r} has {group.order} elements: too many to sum over the orbit")
        m, p = group.m, group.p
        return [(lambda T, perm=perm: T.reshape(T.shape[0], m, p)[:, list(perm)].reshape(T.shape))
                for perm in itertools.permutations(range(m))]
    if isinstance(group, FiniteGroup):
        return [(lambda T, e=e: group.apply(e, T)) for e in range(group.order)]
    raise ValueError(f"the empirical denoiser sums over the orbit of a finite group; {group!r} is not one "
                     "(continuous groups would need an integral over the group)")


def _shift_map(shape, shift, flip):
    def f(T):
        n = T.shape[0]
        S = T.reshape((n,) + shape)
        if flip:
            S = _flip_last(S)
        S = _roll(S, shift)
        return S.reshape(T.shape)

    return f


def _flip_last(S):
    if is_tensor(S):
        return S.flip(-1).roll(1, -1)
    return np.roll(np.flip(S, -1), 1, -1)


def _roll(S, shift):
    axes = tuple(range(1, S.ndim))
    if is_tensor(S):
        return S.roll(tuple(shift), axes)
    return np.roll(S, shift, axis=axes)


# ---------------------------------------------------------------------------
# the empirical optimal denoiser
# ---------------------------------------------------------------------------
def _budget_rows(b, D, n_sigma, max_memory):
    # per training row: a column of scores, offsets and weights per sigma (float64)
    per_row = 8 * (b * (3 + n_sigma) + D)
    return int(max(64, min(1 << 16, max_memory // max(per_row, 1))))


def _check_sigmas(sigma, name="sigma"):
    """Noise level(s): a positive finite number or a non-empty 1-D sequence of them, as float64."""
    allowed = "a positive finite number or a non-empty 1-D sequence of them"
    sig = np.atleast_1d(real_values(sigma, name, allowed))
    if sig.ndim != 1 or sig.size == 0 or np.any(~np.isfinite(sig)) or np.any(sig <= 0):
        raise ValueError(f"{name} must be {allowed}, got {sigma!r}")
    return sig


def _check_max_memory(max_memory):
    return check_real(max_memory, "max_memory", low=1, allow_none=True)  # bytes, as knn's (4e9 is fine)


def _pow2_scale(m):
    """A power of two near ``m`` (> 0): dividing by it is exact and brings m near 1 (1 for m = 0)."""
    m = float(m)
    if not m > 0 or not math.isfinite(m):
        return 1.0
    # 2^(e-1) <= m < 2^e: the lower power, which exists up to the largest float
    return math.ldexp(1.0, math.frexp(m)[1] - 1)


def _softmax_weights(delta, den, xp=np):
    """``exp(-delta / den)`` for ``delta >= 0``, with ``delta = 0`` weighing exactly 1.

    ``den = 2 sigma^2`` may have underflowed to 0 (sigma tiny next to the
    distances): the weights are then one-hot on the nearest point(s), ties
    weighing the same.
    """
    if xp is np:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            w = np.exp(-(delta / den))
        return np.where(delta == 0, 1.0, np.where(np.isinf(delta), 0.0, w))
    w = xp.exp(-(delta / den))
    return xp.where(delta == 0, xp.ones_like(w), xp.where(xp.isinf(delta), xp.zeros_like(w), w))


def empirical_denoiser(train, y, sigma, *, group=None, max_memory=None):
    """The closed-form optimal denoiser of the training set at noise level(s) sigma.

    ``D(y, s) = sum_i softmax_i(-||y - x_i||^2 / (2 s^2)) x_i``, computed as a
    running log-sum-exp over tiles of the training set (no n x b matrix), in
    float64, in a frame scaled by a power of two (exact) and centred, with
    each query's smallest squared distance subtracted before
    exponentiating: small noise levels stay exact, and so do data of any
    magnitude. When ``2 s^2`` underflows next to the distances (the
    ``s -> 0`` limit), the weights are one-hot on the nearest training
    point (ties averaged): the result is that point exactly.

    Parameters
    ----------
    train : array or tensor (n, D)
    y : array or tensor (b, D)
        Noisy inputs.
    sigma : float or 1-D sequence of floats
        Noise level(s), > 0.
    group : repgap.groups.Group, optional
        A finite group (SignFlip, CyclicShift, Permutation, FiniteGroup): the
        sum runs over every image ``g.x_i``.
    max_memory : int, optional
        Bytes for the tiles (default 256 MiB, or a quarter of the free GPU
        memory for tensors on a GPU).

    Returns
    -------
    array or tensor
        Of shape (b, D) for a scalar sigma, (S, b, D) for S levels (float64;
        a tensor on the inputs' device for tensor inputs).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0, 0.0], [1.0, 0.0]])
    >>> empirical_denoiser(X, np.array([[0.1, 0.0]]), 1e-3).round(6).tolist()
    [[0.0, 0.0]]
    """
    sig = _check_sigmas(sigma)
    group = check_group(group)
    max_memory = _check_max_memory(max_memory)
    if is_tensor(train) or is_tensor(y):
        out = _denoise_torch(train, y, sig, group, max_memory)
    else:
        Y, T = check_pair(y, train, "y", "train")
        maps = _orbit_maps(group, T.shape[1])
        out = _denoise_numpy(T, Y, sig, maps, max_memory or (256 << 20))
    return out[0] if np.ndim(sigma) == 0 else out


def _denoise_numpy(T, Y, sig, maps, max_memory):
    b, D = Y.shape
    S = sig.size
    n = T.shape[0]
    step = _budget_rows(b, D, S, max_memory)
    # the frame: a power of two brings the data near 1 (exact), then centred
    scale = _pow2_scale(max(float(np.max(T)), -float(np.min(T)), float(np.max(Y)), -float(np.min(Y))))
    inv = 1.0 / scale
    c = np.zeros(D)
    for s in range(0, n, step):
        c += np.sum(np.asarray(T[s : s + step], dtype=np.float64) * inv, axis=0)
    c /= n
    Yc = np.asarray(Y, dtype=np.float64) * inv - c
    sig_s = sig * inv
    with np.errstate(under="ignore", over="ignore"):
        den = 2.0 * sig_s * sig_s  # may underflow to 0: the one-hot limit
    # e_i = ||x_i||^2 - 2 y.x_i (centred): ||y - x_i||^2 up to the query's own term
    run_min = np.full(b, np.inf)
    run_sum = np.zeros((S, b))
    acc = np.zeros((S, b, D))
    for s in range(0, n, step):
        raw = np.asarray(T[s : s + step], dtype=np.float64) * inv
        for g in maps:
            G = g(raw)
            Tc = G - c
            e = np.einsum("ij,ij->i", Tc, Tc)[None, :] - 2.0 * (Yc @ Tc.T)
            new_min = np.minimum(run_min, e.min(axis=1))
            shift = run_min - new_min  # >= 0 (inf on the first tile)
            delta = np.maximum(e - new_min[:, None], 0.0)
            for k in range(S):
                f = _softmax_weights(shift, den[k])
                w = _softmax_weights(delta, den[k])
                run_sum[k] = run_sum[k] * f + w.sum(axis=1)
                acc[k] = acc[k] * f[:, None] + w @ G
            run_min = new_min
    return acc / run_sum[:, :, None] * scale


def _denoise_torch(train, y, sig, group, max_memory):
    from ._kernels_torch import _torch, check_tensor_pair, default_memory

    torch = _torch()
    Y, T = check_tensor_pair(y, train, "y", "train")
    dev = Y.device
    maps = _orbit_maps(group, T.shape[1])
    b, D = Y.shape
    S = sig.size
    n = T.shape[0]
    budget = int(max_memory) if max_memory else min(default_memory(dev), 1 << 30)
    step = _budget_rows(b, D, S, budget)
    with torch.no_grad():
        m = max(float(T.max()), -float(T.min()), float(Y.max()), -float(Y.min()))
        scale = _pow2_scale(m)
        inv = 1.0 / scale
        c = torch.zeros(D, dtype=torch.float64, device=dev)
        for s in range(0, n, step):
            c += (T[s : s + step].to(torch.float64) * inv).sum(0)
        c /= n
        Yc = Y.to(torch.float64) * inv - c
        sig_s = sig * inv
        with np.errstate(under="ignore", over="ignore"):
            den = torch.as_tensor(2.0 * sig_s * sig_s, dtype=torch.float64, device=dev)
        run_min = torch.full((b,), math.inf, dtype=torch.float64, device=dev)
        run_sum = torch.zeros((S, b), dtype=torch.float64, device=dev)
        acc = torch.zeros((S, b, D), dtype=torch.float64, device=dev)
        for s in range(0, n, step):
            raw = T[s : s + step].to(torch.float64) * inv
            for g in maps:
                G = g(raw)
                Tc = G - c
                e = (Tc * Tc).sum(1)[None, :] - 2.0 * (Yc @ Tc.T)
                new_min = torch.minimum(run_min, e.amin(1))
                shift = run_min - new_min
                delta = (e - new_min[:, None]).clamp_min(0.0)
                f = _softmax_weights(shift[None, :], den[:, None], torch)  # (S, b)
                w = _softmax_weights(delta[None, :, :], den[:, None, None], torch)  # (S, b, t)
                run_sum = run_sum * f + w.sum(2)
                acc = acc * f[:, :, None] + w @ G
                run_min = new_min
        return acc / run_sum[:, :, None] * scale


# ---------------------------------------------------------------------------
@dataclasses.dataclass(repr=False)
class DenoisingGap:
    """Test denoising error of the empirical optimal denoiser across noise levels.

    Attributes
    ----------
    sigmas : ndarray (S,)
    errors : ndarray (S,)
        ``E ||D(x + s eps) - x||^2`` over test points and noise draws.
    stderr : ndarray (S,)
    gap : float
        The Representation Gap of the training set on the test points: the
        limit of ``errors`` as ``s -> 0``.
    ratio : ndarray (S,)
        ``errors / gap``.
    """

    sigmas: np.ndarray
    errors: np.ndarray
    stderr: np.ndarray
    gap: float
    ratio: np.ndarray

    def __repr__(self):
        return (f"DenoisingGap(sigmas={len(self.sigmas)} levels from {self.sigmas.min():.3g} to "
                f"{self.sigmas.max():.3g}, gap={self.gap:.4g}, ratio at the smallest sigma="
                f"{self.ratio[np.argmin(self.sigmas)]:.4f})")


def denoising_gap(train, test, sigmas, *, n_noise=4, group=None, random_state=None, max_memory=None,
                  backend=None):
    """The test denoising error of the empirical optimal denoiser, next to the
    Representation Gap it tends to as the noise level goes to 0.

    Parameters
    ----------
    train : array or tensor (n, D)
    test : array or tensor (m, D)
        Held-out points.
    sigmas : positive float or sequence of positive floats
    n_noise : int, default=4
        Noise draws per test point and level.
    group : finite repgap.groups.Group, optional
    random_state : int, Generator or None
        Seeds the noise (drawn with numpy, then moved to the data's device).
    max_memory : int, optional
        Bytes for the denoiser's tiles (:func:`empirical_denoiser`).
    backend : str, optional
        The nearest-neighbour backend of the Representation Gap.

    Returns
    -------
    DenoisingGap

    Notes
    -----
    Data whose magnitude is far from 1 (beyond ``2^(+-100)``) are measured
    in a frame scaled by a power of two (exact), so that squared distances
    neither overflow nor underflow; ``ratio`` is then exact, and the errors
    and the gap are scaled back (``inf``, with a RuntimeWarning, where they
    exceed float64). A zero gap (every test point a training point) gives
    a NaN ratio with a RuntimeWarning.
    """
    from .gap import representation_gap
    from .law import _check_backend, _check_seed

    sig = _check_sigmas(sigmas, "sigmas")
    n_noise = check_int(n_noise, "n_noise", low=1)
    group = check_group(group)
    _check_seed(random_state)
    max_memory = _check_max_memory(max_memory)
    _check_backend(backend)
    rng = check_random_state(random_state)
    tensors = is_tensor(train) or is_tensor(test)
    if tensors and not (is_tensor(train) and is_tensor(test)):
        # one tensor, one array: both on the tensor's device, as torch tensors
        from ._kernels_torch import _torch

        torch = _torch()
        ref = train if is_tensor(train) else test
        train, test = (v if is_tensor(v) else torch.as_tensor(check_array(v, name), device=ref.device)
                       for v, name in ((train, "train"), (test, "test")))
    if not tensors:
        test_np = check_array(test, "test")
        train = check_array(train, "train")
    # squared errors of data far from 1 in magnitude over- or underflow
    # float64: work in a frame scaled by a power of two (exact; the ratio
    # to the gap does not depend on it) and scale the errors back
    m = max(_max_abs(train), _max_abs(test if tensors else test_np))
    scale = _pow2_scale(m) if not 2.0**-100 <= m <= 2.0**100 else 1.0
    if scale != 1.0:
        train = train * (1.0 / scale)
        if tensors:
            test = test * (1.0 / scale)
        else:
            test_np = test_np * (1.0 / scale)
    gap = representation_gap(train, test if tensors else test_np, group=group, backend=backend).value
    errors, stderr = np.empty(sig.size), np.empty(sig.size)
    for j, s in enumerate(sig / scale):
        if tensors:
            from ._kernels_torch import _torch

            torch = _torch()
            x = test.to(torch.float64)
            eps = torch.from_numpy(rng.standard_normal((n_noise,) + tuple(x.shape))).to(x.device)
            y = (x[None] + s * eps).reshape(-1, x.shape[1])
            den = empirical_denoiser(train, y, s, group=group, max_memory=max_memory)
            err = ((den.reshape(eps.shape) - x[None]) ** 2).sum(-1).mean(0).cpu().numpy()
        else:
            x = np.asarray(test_np, dtype=np.float64)
            eps = rng.standard_normal((n_noise,) + x.shape)
            y = (x[None] + s * eps).reshape(-1, x.shape[1])
            den = empirical_denoiser(train, y, s, group=group, max_memory=max_memory)
            err = np.sum((den.reshape(eps.shape) - x[None]) ** 2, axis=-1).mean(axis=0)
        errors[j] = float(err.mean())
        stderr[j] = float(err.std(ddof=1) / math.sqrt(err.size)) if err.size > 1 else float("nan")
    gap = float(gap)
    if gap > 0:
        ratio = errors / gap
    else:
        import warnings

        warnings.warn("denoising_gap: the Representation Gap is 0 (every test point duplicates a training point), "
                      "so the ratio of the errors to it is undefined (NaN); hold out points that are not in the "
                      "training set", RuntimeWarning, stacklevel=2)
        ratio = np.full(sig.size, np.nan)
    if scale != 1.0:
        s2 = scale * scale
        before = np.concatenate([errors, [gap]])
        with np.errstate(over="ignore", under="ignore"):
            errors, stderr, gap = errors * s2, stderr * s2, gap * s2
        after = np.concatenate([errors, [gap]])
        if np.any(~np.isfinite(after)) or np.any((after == 0) & (before > 0)):
            import warnings

            warnings.warn(f"denoising_gap: the squared errors of data of magnitude {m:.3g} are outside the range "
                          "of float64 (inf or 0 in errors, stderr and gap); the ratio was computed in a scaled "
                          "frame and is exact. Rescale the data to read the errors", RuntimeWarning, stacklevel=2)
    return DenoisingGap(sigmas=sig, errors=errors, stderr=stderr, gap=float(gap), ratio=ratio)


def _max_abs(X):
    """The largest magnitude in an array or tensor (no temporary copy)."""
    if is_tensor(X):
        return max(float(X.max()), -float(X.min()))
    return max(float(np.max(X)), -float(np.min(X)))


# ---------------------------------------------------------------------------
# memorization
# ---------------------------------------------------------------------------
@dataclasses.dataclass(repr=False)
class MemorizationReport:
    """Nearest-neighbour evidence of memorization (Gu et al. 2023: a sample is
    memorized when ``d1 / d2 < ratio``, d1 and d2 its distances to the nearest
    and second-nearest training items).

    Attributes
    ----------
    fraction_memorized : float
    memorized : ndarray of bool (n_samples,)
    ratios : ndarray (n_samples,)
        ``d1 / d2`` (0 when the sample coincides with a training item).
    distances, second_distances : ndarray (n_samples,)
    indices : ndarray (n_samples,)
        The nearest training item of each sample.
    threshold : float
    test_distances, test_ratios : ndarray or None
        The same for held-out real data, when given.
    test_fraction_memorized : float or None
    p_value : float or None
        One-sided Mann-Whitney U test that the generated samples' nearest
        distances are stochastically smaller than held-out data's (small: the
        samples sit closer to the training set than fresh data does).
    statistic : float or None
    """

    fraction_memorized: float
    memorized: np.ndarray
    ratios: np.ndarray
    distances: np.ndarray
    second_distances: np.ndarray
    indices: np.ndarray
    threshold: float
    test_distances: object = None
    test_ratios: object = None
    test_fraction_memorized: object = None
    p_value: object = None
    statistic: object = None

    @property
    def n_samples(self):
        return int(self.ratios.size)

    def __repr__(self):
        s = (f"MemorizationReport(n_samples={self.n_samples}, fraction_memorized={self.fraction_memorized:.4f}, "
             f"threshold={self.threshold:.3g}")
        if self.p_value is not None:
            s += f", test_fraction_memorized={self.test_fraction_memorized:.4f}, p_value={self.p_value:.3g}"
        return s + ")"

    def to_dict(self):
        from .gap import _to_dict

        return _to_dict(self)


def _ratios(d):
    d1, d2 = d[:, 0], d[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(d1 == 0, 0.0, d1 / d2)
    return r


def _report(d, idx, threshold, test_d=None):
    d = _host(d)
    ratios = _ratios(d)
    mem = ratios < threshold
    kw = {}
    if test_d is not None:
        from scipy import stats

        test_d = _host(test_d)
        tr = _ratios(test_d)
        res = stats.mannwhitneyu(d[:, 0], test_d[:, 0], alternative="less")
        kw = dict(test_distances=test_d[:, 0].copy(), test_ratios=tr,
                  test_fraction_memorized=float(np.mean(tr < threshold)), p_value=float(res.pvalue),
                  statistic=float(res.statistic))
    return MemorizationReport(fraction_memorized=float(mem.mean()), memorized=mem, ratios=ratios,
                              distances=d[:, 0].copy(), second_distances=d[:, 1].copy(),
                              indices=_host(idx)[:, 0].copy(), threshold=float(threshold), **kw)


def _check_threshold(ratio):
    return check_real(ratio, "ratio", 0.0, 1.0, low_open=True, high_open=True)


def _check_search_params(group, backend, n_jobs):
    from .law import _check_backend, _check_n_jobs

    group = check_group(group)
    _check_backend(backend)
    _check_n_jobs(n_jobs)
    return group


def memorization(samples, train, *, test=None, group=None, ratio=1 / 3, backend=None, n_jobs=None):
    """Which generated samples are copies of training items.

    For each sample: the distances to its nearest and second-nearest
    training items (modulo ``group``), the ratio criterion ``d1 / d2 <
    ratio`` (Gu et al. 2023, "On memorization in diffusion models"), and the
    fraction memorized. With held-out real data ``test``, the same
    distances for it and a one-sided Mann-Whitney test of whether the
    generated samples sit closer to the training set than fresh data does.

    Returns
    -------
    MemorizationReport
    """
    threshold = _check_threshold(ratio)
    group = _check_search_params(group, backend, n_jobs)
    d, i = knn(samples, train, k=2, group=group, backend=backend, n_jobs=n_jobs)
    td = None
    if test is not None:
        td, _ = knn(test, train, k=2, group=group, backend=backend, n_jobs=n_jobs)
    return _report(d, i, threshold, td)


class MemorizationMeter:
    """Streaming memorization for evaluation loops.

    The training set is validated once and kept where it is (a tensor stays
    on its GPU); ``update(batch)`` searches each batch of generated samples
    against it and keeps only the per-sample distances on the host;
    ``compute()`` returns the :class:`MemorizationReport` of everything seen
    since the last ``reset()``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> train = rng.random((500, 8))
    >>> meter = MemorizationMeter(train)
    >>> meter.update(train[:50] + 1e-6)
    >>> meter.update(rng.random((50, 8)))
    >>> round(meter.compute().fraction_memorized, 2)
    0.5
    """

    def __init__(self, train, *, test=None, group=None, ratio=1 / 3, backend=None, n_jobs=None):
        self.threshold = _check_threshold(ratio)
        self.group = _check_search_params(group, backend, n_jobs)
        self.backend = backend
        self.n_jobs = n_jobs
        if is_tensor(train):
            from ._kernels_torch import check_tensor

            self.train = check_tensor(train, "train")
        else:
            self.train = check_array(train, "train")
        self._test_d = None
        if test is not None:
            td, _ = knn(test, self.train, k=2, group=self.group, backend=backend, n_jobs=n_jobs)
            self._test_d = _host(td)
        self.reset()

    def reset(self):
        """Forget the samples seen so far (the training set stays indexed)."""
        self._d, self._i = [], []

    def update(self, batch):
        """Search one batch of generated samples (array or tensor (b, D))."""
        d, i = knn(batch, self.train, k=2, group=self.group, backend=self.backend, n_jobs=self.n_jobs)
        self._d.append(_host(d))
        self._i.append(_host(i))

    @property
    def n_seen(self):
        return int(sum(len(d) for d in self._d))

    def compute(self):
        """The report over every sample since the last reset."""
        if not self._d:
            raise ValueError("no samples yet: call update(batch) first")
        return _report(np.concatenate(self._d), np.concatenate(self._i), self.threshold, self._test_d)
