"""The asymptotic law of the Representation Gap and its fit.

For n i.i.d. training points with density q on a d-dimensional set and
independent queries, the k-th nearest-neighbour distance satisfies
``n q V_d R_k^d ~ Gamma(k, 1)`` (Poisson approximation; Penrose & Yukich 2011,
Evans, Jones & Schmidt 2002), hence

    E[R_k^r] ~ Gamma(k + r/d) / Gamma(k) * (n V_d)^(-r/d) * integral q^(1 - r/d),

and the Representation Gap (k = 1, r = 2) follows ``RG_n ~ C n^(-2/d)``
(Perera et al., arXiv:2605.21692). A finite group of order ``|G|`` acting freely
multiplies n by ``|G|``; a continuous group lowers d by its orbit dimension.

The best n-point quantizer has ``D_n* ~ d G_d ||q||_{d/(d+2)} n^(-2/d)``
(Zador 1982), with ``G_d`` the normalized second moment of the best quantizer
(Conway & Sloane 1982; *Sphere Packings, Lattices and Groups*, table 2.3):
random codebooks are worse by ``Gamma(1+2/d) V_d^(-2/d) / (d G_d)``, a factor
that tends to 1 as d grows.
"""
import dataclasses
import math
import numbers
import warnings

import numpy as np
from scipy import optimize, special, stats

from ._validation import check_bool, check_int, check_random_state, check_real, check_seed


class NonDecayingCurveWarning(RuntimeWarning):
    """The curve given to :func:`fit_law` does not decay with n.

    The law ``L ~ C n^(-r/d)`` needs a curve that falls as n grows; on a flat
    or rising curve the fitted exponent is not a decay rate and the
    dimension is not identified (:func:`fit_law` then reports ``+inf`` and
    the flag ``"not decaying"``).
    """


# ---------------------------------------------------------------------------
# Parameter checks shared by the law, the estimators and the diffusion tools
# (one wording: the parameter, the value it got, what is allowed).

def _real_vector(v, name):
    """A 1-D float array of real numbers, or an error naming ``name``."""
    a = np.asarray(v)
    if a.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be an array of real numbers, got dtype {a.dtype} ({v!r:.60})")
    return a.astype(float).ravel()


def _check_seed(value, name="random_state"):
    return check_seed(value, name)


def _check_bool(value, name):
    return check_bool(value, name)


def _check_confidence_level(value, name="confidence"):
    return check_real(value, name, 0.0, 1.0, low_open=True, high_open=True)


def _check_backend(value, name="backend"):
    if value is None:
        return None
    from ._backends import check_backend_name

    return check_backend_name(value)


def _check_n_jobs(value, name="n_jobs"):
    from ._threads import check_n_jobs

    return check_n_jobs(value, name)


def _check_progress(value, name="progress"):
    return check_bool(value, name, allow_none=True)

# Normalized second moments G_d of the best known lattice quantizers
# (Conway & Sloane, Sphere Packings, Lattices and Groups, 3rd ed., table 2.3;
# G_1 and G_2 are optimal among all quantizers: Gersho 1979, Fejes Toth 1959).
BEST_KNOWN_SECOND_MOMENT = {
    1: (1.0 / 12.0, "Z (interval), optimal"),
    2: (5.0 / (36.0 * math.sqrt(3.0)), "A2 (hexagonal), optimal"),
    3: (0.0785433, "A3* (body-centred cubic)"),
    4: (0.0766032, "D4"),
    5: (0.0756254, "D5*"),
    6: (0.0742437, "E6*"),
    7: (0.0731165, "E7*"),
    8: (0.0716821, "E8"),
    12: (0.0701005, "K12 (Coxeter-Todd)"),
    16: (0.0682989, "Lambda16 (Barnes-Wall)"),
    24: (0.0657710, "Lambda24 (Leech)"),
}
#: The limit of G_d as d grows: 1 / (2 pi e) (Zador 1982).
SECOND_MOMENT_LIMIT = 1.0 / (2.0 * math.pi * math.e)


def _check_dim(d):
    if np.asarray(d).dtype.kind not in "iuf" or isinstance(d, (bool, np.bool_)):
        raise TypeError(f"d (the dimension) must be a positive real number, got {d!r}")
    if not np.all(np.isfinite(d)) or np.any(np.asarray(d) <= 0):
        raise ValueError(f"d (the dimension) must be positive and finite, got {d!r}")


def unit_ball_volume(d):
    """Volume ``V_d = pi^(d/2) / Gamma(d/2 + 1)`` of the unit d-ball (real d allowed)."""
    _check_dim(d)
    d = np.asarray(d, dtype=float)
    out = np.exp(0.5 * d * math.log(math.pi) - special.gammaln(0.5 * d + 1.0))
    return float(out) if out.ndim == 0 else out


def random_quantization_constant(d, k=1, r=2):
    """``Gamma(k + r/d) / Gamma(k) * V_d^(-r/d)``: the law's constant for unit volume and density."""
    _check_dim(d)
    d = np.asarray(d, dtype=float)
    out = np.exp(special.gammaln(k + r / d) - special.gammaln(k) - (r / d) * np.log(unit_ball_volume(d)))
    return float(out) if out.ndim == 0 else out


def sphere_bound_second_moment(d):
    """Zador's sphere lower bound ``Gamma(d/2+1)^(2/d) / ((d+2) pi)`` on G_d."""
    _check_dim(d)
    return float(math.exp((2.0 / d) * special.gammaln(d / 2.0 + 1.0)) / ((d + 2.0) * math.pi))


def best_known_second_moment(d):
    """``(G_d, source)`` of the best known quantizer in dimension d.

    Dimensions absent from :data:`BEST_KNOWN_SECOND_MOMENT` raise a KeyError
    naming the ones present; :func:`sphere_bound_second_moment` gives a lower
    bound for any d.
    """
    if d not in BEST_KNOWN_SECOND_MOMENT:
        raise KeyError(f"no tabulated G_d for d={d}; known: {sorted(BEST_KNOWN_SECOND_MOMENT)}")
    return BEST_KNOWN_SECOND_MOMENT[d]


def random_to_optimal_ratio(d):
    """How much worse a random codebook is than the best known quantizer.

    ``Gamma(1 + 2/d) V_d^(-2/d) / (d G_d)``: 6.0 (d=1), 1.98 (d=2), 1.47 (d=3),
    1.14 (d=8). For d without a tabulated G_d, the sphere bound is used, which
    gives an upper bound on the ratio to the (unknown) optimum.
    """
    g = BEST_KNOWN_SECOND_MOMENT[d][0] if d in BEST_KNOWN_SECOND_MOMENT else sphere_bound_second_moment(d)
    return float(random_quantization_constant(d) / (d * g))


def predicted_gap(n, d, *, volume=1.0, density_integral=None, group_order=1, k=1, r=2):
    """The asymptotic equivalent of ``E[R_k^r]`` with n training points.

    Parameters
    ----------
    n : int or array
        Training-set size(s).
    d : float
        Intrinsic dimension (of the quotient by the symmetry group).
    volume : float, default=1
        d-volume of the support, for uniform data.
    density_integral : float, optional
        ``integral q^(1 - r/d)`` for non-uniform data (overrides ``volume``).
    group_order : int, default=1
        Order of a finite symmetry group acting freely: n becomes ``n |G|``.
    k, r : int and float, default=1 and 2
        The neighbour rank and the power (k=1, r=2: the Representation Gap).
    """
    _check_dim(d)
    try:
        n = np.asarray(n, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"n must be a positive training-set size or an array of them, got {n!r}") from None
    if not np.all(np.isfinite(n)) or np.any(n <= 0):
        raise ValueError(f"n must be positive and finite training-set size(s), got {n.tolist()}")
    k = check_int(k, "k", low=1)
    r = check_real(r, "r", low=0, low_open=True)
    group_order = check_int(group_order, "group_order", low=1)
    if density_integral is None:
        volume = check_real(volume, "volume", low=0, low_open=True)
        density_integral = volume ** (r / d)
    else:
        density_integral = check_real(density_integral, "density_integral", low=0, low_open=True)
    n_eff = n * group_order
    # in logs: (n V_d)^(-r/d) under- or overflows for small d long before the gap does
    log_out = (special.gammaln(k + r / d) - special.gammaln(k) - (r / d) * np.log(n_eff * unit_ball_volume(d))
               + math.log(density_integral))
    with np.errstate(over="ignore", under="ignore"):
        out = np.exp(log_out)
    if not np.all(np.isfinite(out)):
        warnings.warn(f"predicted_gap: the predicted gap exceeds float64 (d = {d!r} is tiny next to r = {r:g}): "
                      "returned inf", RuntimeWarning, stacklevel=2)
    return float(out) if np.ndim(out) == 0 else out


# ---------------------------------------------------------------------------
# Fitting the law


@dataclasses.dataclass(repr=False)
class LawFit:
    """A fit of ``L(n) = L_inf + C n^(-alpha) (1 + a n^(-alpha/r) + b n^(-2 alpha/r))``
    or of the scale model ``L(n) = C n^(-alpha) exp(a L(n)^(1/r))``.

    ``alpha = r/d`` (2/d for the Representation Gap), so ``dimension = r / alpha``.

    Attributes
    ----------
    dimension, dimension_ci : float, (float, float)
    exponent, exponent_ci : float, (float, float)
        alpha and its interval.
    constant, constant_ci : float, (float, float)
        C.
    correction : tuple or None
        The finite-size coefficients ``a_j`` of ``1 + sum_j a_j n^(-k_j/d)``,
        when fitted; for ``correction_model == "scale"``, the one coefficient
        ``a`` of ``exp(a L^(1/r))``.
    correction_powers : tuple
        The powers ``k_j`` (1: boundary, 2: curvature); empty for the scale
        model.
    correction_model : {"power", "scale"}
        ``"power"``: ``L = C n^(-alpha) (1 + sum_j a_j n^(-k_j alpha/r))``;
        ``"scale"``: ``L = C n^(-alpha) exp(a L^(1/r))``, the finite-size term
        in the observed neighbour scale (see :func:`fit_law`).
    offset : float
        L_inf (0 unless fitted).
    residuals : ndarray
        log(observed) - log(fitted), per size.
    sizes, values : ndarray
    confidence : float
    ci_method : str
        "bootstrap (test points and repeats)" or "asymptotic (least squares)".
    r : float
    regime : str or None
        ``"asymptotic"``, ``"extrapolated"`` or ``"pre-asymptotic"`` when
        assessed (:func:`repgap.regime.assess_regime`, through GapLaw).
    flags : tuple of str
        Validity flags of the fit (empty: none). ``"not decaying"``: the
        curve does not fall with n, so the exponent is not a decay rate and
        ``dimension`` is ``+inf`` (see :func:`fit_law`).
    """

    dimension: float
    dimension_ci: tuple
    exponent: float
    exponent_ci: tuple
    constant: float
    constant_ci: tuple
    correction: object
    offset: float
    residuals: np.ndarray
    sizes: np.ndarray
    values: np.ndarray
    confidence: float
    ci_method: str
    r: float = 2.0
    correction_powers: tuple = ()
    bootstrap_params: np.ndarray = None
    correction_model: str = "power"
    regime: str = None
    flags: tuple = ()

    def _powers(self):
        return self.correction_powers or tuple(range(1, len(self.correction or ()) + 1))

    @property
    def formula(self):
        """The fitted law's form, e.g. ``C n^(-2/d) exp(a L^(1/2))``."""
        r = f"{self.r:g}"
        head = f"C n^(-{r}/d)"
        if self.offset:
            head = "L_inf + " + head
        if self.correction_model == "scale":
            return f"{head} exp(a L^(1/{r}))"
        if not self.correction:
            return head
        terms = " + ".join(f"{'abcdefgh'[k - 1]} n^(-{k}/d)" for k in self._powers())
        return f"{head} (1 + {terms})"

    @property
    def model_name(self):
        """The finite-size model in words (for labels and reports)."""
        if self.correction_model == "scale":
            return "boundary term in the scale"
        names = {(): "no finite-size term", (1,): "boundary term in n", (2,): "curvature term",
                 (1, 2): "boundary and curvature terms"}
        return names.get(tuple(self._powers()) if self.correction else (), "finite-size terms")

    def _evaluate(self, n, constant, exponent, correction, offset):
        if self.correction_model == "scale":
            return offset + _solve_scale_law(constant * n ** (-exponent), correction[0], self.r)
        u = n ** (-exponent / self.r)  # n^(-1/d)
        poly = sum(c * u**k for c, k in zip(correction or (), self._powers()))
        return offset + constant * n ** (-exponent) * (1.0 + poly)

    def predict(self, n):
        """The fitted law at size(s) n."""
        n = np.asarray(n, dtype=float)
        out = self._evaluate(n, self.constant, self.exponent, self.correction, self.offset)
        return float(out) if out.ndim == 0 else out

    def predict_band(self, n, confidence=None):
        """Pointwise confidence band ``(lower, upper)`` of the fitted law at size(s) n.

        The quantiles, at each n, of the laws refitted on the bootstrap
        replicates (test points and repeats resampled; see :func:`fit_law`).
        None when the fit has no bootstrap (plain arrays of sizes and values).
        """
        if self.bootstrap_params is None or len(self.bootstrap_params) == 0:
            return None
        confidence = self.confidence if confidence is None else confidence
        n = np.atleast_1d(np.asarray(n, dtype=float))
        npow = len(self.correction or ())
        preds = []
        for p in self.bootstrap_params:
            off = p[-1] if len(p) > 2 + npow else 0.0
            preds.append(self._evaluate(n, math.exp(p[0]), p[1], tuple(p[2:2 + npow]), off))
        q = (1 - confidence) / 2
        preds = np.array(preds)
        # the scale law has no solution far below the fitted sizes (NaN there)
        with np.errstate(all="ignore"):
            ok = np.isfinite(preds).sum(axis=0) >= max(2, preds.shape[0] // 2)
            lo, hi = np.full(n.shape, np.nan), np.full(n.shape, np.nan)
            if ok.any():
                lo[ok], hi[ok] = np.nanquantile(preds[:, ok], [q, 1 - q], axis=0)
        return lo, hi

    def n_for_gap(self, target):
        """Training-set size at which the fitted law reaches ``target``.

        Warns (RuntimeWarning) when the fit was judged pre-asymptotic
        (``regime``, set by :class:`repgap.estimators.GapLaw`): the answer
        then extrapolates a finite-size model that the data do not
        determine.
        """
        if self.regime == "pre-asymptotic":
            import warnings

            warnings.warn("n_for_gap: the gap curve is not in the asymptotic regime of this law (see "
                          "GapLaw.regime_); the size extrapolates a finite-size model the data do not determine",
                          RuntimeWarning, stacklevel=2)
        if target <= self.offset:
            raise ValueError(f"target {target} is not above the fitted floor L_inf = {self.offset}")
        n0 = (self.constant / (target - self.offset)) ** (1.0 / self.exponent)
        if not self.correction:
            return float(n0)
        if self.correction_model == "scale":
            # explicit: L = C n^(-alpha) exp(a L^(1/r)) solved for n, on the
            # branch where L falls with n (r log s - a s rises with s = L^(1/r)
            # up to s = r / a)
            L = target - self.offset
            a = self.correction[0]
            if a > 0 and L ** (1.0 / self.r) >= self.r / a:
                raise ValueError(f"the target {target:g} lies above the range of the fitted law (its scale "
                                 f"term peaks at L = {(self.r / a) ** self.r:.4g})")
            return float((self.constant * math.exp(self.correction[0] * L ** (1.0 / self.r)) / L)
                         ** (1.0 / self.exponent))
        # The finite-size factor can turn negative far below the fitted sizes,
        # so search on a grid of log n from below the smallest fitted size
        # up, and take the last crossing of the target (the law decreases
        # for large n), refined by bisection.
        smallest = float(np.min(self.sizes)) if self.sizes is not None and len(self.sizes) else n0
        grid = np.linspace(math.log(min(smallest, n0)) - 2.0, math.log(max(smallest, n0)) + 25.0, 800)
        with np.errstate(all="ignore"):
            g = self.predict(np.exp(grid)) - target
        ok = np.isfinite(g)
        above = ok & (g > 0)
        cross = np.nonzero(above[:-1] & ok[1:] & (g[1:] <= 0))[0]
        if cross.size == 0:
            raise ValueError(f"the fitted law does not reach the target {target:g} (its finite-size term "
                             f"keeps it above); the pure power law would need n = {n0:.4g}")
        i = cross[-1]
        f = lambda logn: float(self.predict(math.exp(logn))) - target  # noqa: E731
        return float(math.exp(optimize.brentq(f, grid[i], grid[i + 1])))

    def __repr__(self):
        lo, hi = self.dimension_ci
        return (
            f"LawFit(dimension={self.dimension:.4g} [{lo:.4g}, {hi:.4g}], exponent={self.exponent:.4g}, "
            f"constant={self.constant:.4g}, correction={self.correction}, offset={self.offset:.4g}, "
            f"confidence={self.confidence})"
        )

    def to_dict(self):
        from .gap import _to_dict

        return _to_dict(self)


_CORRECTIONS = {False: (), True: (1,), 0: (), 1: (1,), 2: (1, 2), "boundary": (1,), "curvature": (2,),
                "both": (1, 2)}
#: The finite-size models that are not a polynomial in n^(-1/d).
_SPECIAL = ("auto", "scale")


def _check_correction(correction, name="correction"):
    """A known finite-size model (see :func:`fit_law`); its powers as :func:`correction_powers` gives them."""
    if not isinstance(correction, (str, bool, np.bool_, numbers.Integral)):
        raise TypeError(f"{name} must be one of False, True, 1, 2, 'boundary', 'curvature', 'both', 'scale' or "
                        f"'auto', got {correction!r} ({type(correction).__name__})")
    return correction_powers(correction)


def correction_powers(correction):
    """The powers k of the finite-size terms ``n^(-k/d)`` a ``correction`` fits.

    None for the models that are not a polynomial in ``n^(-1/d)``
    (``"scale"``) or that choose between models (``"auto"``).
    """
    if isinstance(correction, str) and correction in _SPECIAL:
        return None
    try:
        return _CORRECTIONS[correction]
    except (KeyError, TypeError):
        raise ValueError(f"correction must be one of False, True, 1, 2, 'boundary', 'curvature', 'both', "
                         f"'scale' or 'auto', got {correction!r}") from None


def _solve_scale_law(K, a, r):
    """``L`` with ``L = K exp(a L^(1/r))``: the scale-model law at ``K = C n^(-alpha)``.

    With ``s = L^(1/r)``, ``s = -(r/a) W0(-(a/r) K^(1/r))`` (Lambert W, the
    branch continuous with ``s = K^(1/r)`` at a = 0). Where a > 0 and the
    argument is below -1/e the law has no solution (sizes far below the
    fitted ones, where the finite-size term would exceed its range): NaN.
    """
    K = np.asarray(K, dtype=float)
    k = K ** (1.0 / r)
    if a == 0:
        return K
    z = -(a / r) * k
    with np.errstate(invalid="ignore"):
        w = special.lambertw(np.where(z >= -1.0 / math.e, z, np.nan), 0).real
        s = np.where(np.abs(z) < 1e-12, k, -(r / a) * w)
    return s**r


def _fit_model(logn, logy, w, r, model, offset, x0=None):
    """One weighted fit of the law with finite-size ``model`` (a tuple of powers, or "scale")."""
    if model == "scale":
        return _fit_scale(logn, logy, w, r)
    return _fit_once(logn, logy, w, r, model, offset, x0=x0)


def _fit_scale(logn, logy, w, r):
    """``log L = log C - alpha log n + a L^(1/r)``: weighted linear least squares.

    The finite-size term is written in the observed neighbour scale
    ``rho_n = L_n^(1/r)`` (the root-mean-square neighbour distance for the
    gap) rather than in ``n^(-1/d)``: a boundary removes from the ball of
    radius rho a fraction of its volume that grows with rho (first order),
    so ``log(L / C n^(-alpha))`` is about ``a rho_n``. Because rho_n is
    observed, the model is linear in ``(log C, alpha, a)``. (The regressor
    shares the noise of ``log L``, an errors-in-variables bias of second
    order in that noise: ~1e-3 relative for a gap curve, negligible beside
    the model's.)
    """
    rho = np.exp(logy / r)
    A = np.stack([np.ones_like(logn), -logn, rho], axis=1)
    Aw, yw = A * w[:, None], logy * w
    p, *_ = np.linalg.lstsq(Aw, yw, rcond=None)
    fitted = A @ p
    dof = max(len(logn) - 3, 1)
    s2 = float(np.sum(((fitted - logy) * w) ** 2) / dof)
    cov = np.linalg.pinv(Aw.T @ Aw) * s2
    return p, cov, fitted


#: The largest finite-size factor ``exp(a rho_n)`` over the fitted sizes for
#: which ``correction="auto"`` trusts the scale model. On the unit cube
#: (d = 5, 8, 12) ``log(L_n / C n^(-2/d)) / rho_n`` was constant within 2.5 %
#: up to factors of 1.59 (d = 12, n = 90); beyond, a boundary cuts most of
#: the neighbourhood ball and the model extrapolates (on M10d, a 70-cube
#: with n = 2500, factors near 5 and d_hat = 163).
SCALE_MODEL_MAX_FACTOR = math.exp(0.5)


def auto_model(scale_coefficient, max_scale=0.0):
    """The finite-size model ``correction="auto"`` keeps, given the scale model's fit.

    A boundary removes volume from the neighbourhood balls, so it raises
    the gap at small n: the scale model's coefficient comes out positive.
    Curvature of an embedded support adds volume to chordal balls (a chord
    is shorter than the arc), so it lowers the gap, at second order in
    ``n^(-1/d)``: the coefficient comes out negative, and the curvature term
    ``(1 + b n^(-2/d))`` describes the curve. Measured at n = 1e5
    (``benchmarks/bench_id.py``), the sign picks the scale model on every
    cube and the curvature model on every embedded torus; a support with
    neither (a flat torus) has a coefficient near 0, where both models
    agree. A positive coefficient whose factor ``exp(a max_scale)`` (at the
    largest neighbour scale fitted, ``max_scale = L^(1/r)`` at the smallest
    size) exceeds :data:`SCALE_MODEL_MAX_FACTOR` leaves the range where the
    scale model was checked: the curvature model is kept then.

    Returns ``"scale"`` or ``"curvature"``.
    """
    if scale_coefficient > 0 and math.exp(scale_coefficient * max_scale) <= SCALE_MODEL_MAX_FACTOR:
        return "scale"
    return "curvature"


def _auto_model(logn, logy, w, r):
    scale = _fit_scale(logn, logy, w, r)
    if auto_model(scale[0][2], math.exp(logy.max() / r)) == "scale":
        return scale, "scale"
    return _fit_once(logn, logy, w, r, (2,), False), (2,)


def _power_log_model(P, logn, r, powers):
    """``log C - alpha log n + log(1 + sum_j a_j n^(-k_j alpha/r))`` and its Jacobian.

    ``P`` is (B, 2 + len(powers)): B parameter vectors at once. Returns the
    model (B, J), the Jacobian (B, J, P) and the smallest ``1 + poly`` per
    row (the factor must stay positive for the logarithm).
    """
    logC, alpha = P[:, :1], P[:, 1:2]
    B, J = P.shape[0], logn.size
    val = logC - alpha * logn
    jac = np.empty((B, J, P.shape[1]))
    jac[:, :, 0] = 1.0
    jac[:, :, 1] = -logn
    factor = np.ones((B, J))
    if powers:
        u = np.exp(-alpha / r * logn)  # n^(-1/d)
        poly = np.zeros((B, J))
        dpoly = np.zeros((B, J))  # d poly / d alpha
        for j, kp in enumerate(powers):
            uk = u**kp
            poly += P[:, 2 + j:3 + j] * uk
            dpoly += P[:, 2 + j:3 + j] * uk * (-kp / r * logn)
            jac[:, :, 2 + j] = uk
        factor = 1.0 + poly
        safe = np.maximum(factor, 1e-300)
        val = val + np.log(safe)
        jac[:, :, 1] += dpoly / safe
        jac[:, :, 2:] /= safe[:, :, None]
    return val, jac, factor.min(axis=1)


#: The bounds of the exponent alpha in the fits (alpha = r/d).
_ALPHA_BOUNDS = (1e-6, 50.0)


def _lm_power(logn, logy, w, r, powers, P0, max_iter=3000):
    """Weighted least squares in log space for B curves at once (Levenberg-Marquardt).

    Minimises ``sum_j w_j^2 (model_log(p) - logy_bj)^2`` for each row b of
    ``logy`` (B, J) from the start ``P0`` (B, P), with the analytic
    Jacobian, a Marquardt-scaled damping per row, and steps that leave the
    feasible set (alpha within :data:`_ALPHA_BOUNDS`, a positive
    finite-size factor) rejected like steps that raise the cost. Every
    evaluation is one vectorised pass over all B rows, so a bootstrap of
    200 refits costs about as much as a few single fits (the rows start at
    the full-data solution and need few steps).

    Returns the parameters (B, P), the weighted residuals (B, J) and the
    weighted Jacobian (B, J, P) at the solution.
    """
    P = np.array(P0, dtype=float)
    B, npar = P.shape
    W = w[None, :]

    def evaluate(Q, rows):
        with np.errstate(all="ignore"):
            val, jac, fmin = _power_log_model(Q, logn, r, powers)
            res = (val - logy[rows]) * W
            cost = np.sum(res * res, axis=1)
        ok = (fmin > 1e-3) & (Q[:, 1] >= _ALPHA_BOUNDS[0]) & (Q[:, 1] <= _ALPHA_BOUNDS[1]) & np.isfinite(cost)
        return res, jac * W[:, :, None], np.where(ok, cost, np.inf)

    res, jac, cost = evaluate(P, slice(None))
    lam = np.full(B, 1e-3)
    active = np.isfinite(cost)
    eye = np.eye(npar)
    for _ in range(max_iter):
        if not active.any():
            break
        A = np.einsum("bjp,bjq->bpq", jac[active], jac[active])
        g = np.einsum("bjp,bj->bp", jac[active], res[active])
        diag = np.maximum(np.einsum("bpp->bp", A), 1e-12)
        M = A + lam[active, None, None] * diag[:, :, None] * eye
        try:
            step = -np.linalg.solve(M, g[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            step = -np.einsum("bpq,bq->bp", np.linalg.pinv(M), g)
        idx = np.flatnonzero(active)
        trial = P[idx] + step
        r_t, j_t, c_t = evaluate(trial, idx)
        c_old = cost[idx]
        better = c_t < c_old
        acc = idx[better]
        P[acc], res[acc], jac[acc], cost[acc] = trial[better], r_t[better], j_t[better], c_t[better]
        lam[acc] = np.maximum(lam[acc] / 3.0, 1e-12)
        rej = idx[~better]
        lam[rej] *= 4.0
        # converged: a relative cost change below 1e-12 on an accepted step,
        # a step negligible against the parameters, or damping so strong
        # that no step can move
        small = np.max(np.abs(step) / (np.abs(P[idx]) + 1e-8), axis=1) < 1e-10
        tiny_gain = better & ((c_old - c_t) <= 1e-12 * np.maximum(c_old, 1e-300))
        done = small | tiny_gain | (lam[idx] > 1e12)
        active[idx[done]] = False
    return P, res, jac


def _power_start(logn, logy, w, powers, offset):
    slope, icpt = np.polyfit(logn, logy, 1, w=w)
    p0 = [icpt, min(max(-slope, 1e-3), _ALPHA_BOUNDS[1] * 0.999)] + [0.0] * len(powers)
    if offset:
        p0.append(0.0)
    return np.array(p0)


def _fit_once(logn, logy, w, r, correction, offset, x0=None):
    """Weighted least squares in log space; returns (params, covariance, fitted log values).

    ``correction`` is a tuple of powers k: the model multiplies the power law
    by ``1 + sum_j a_j n^(-k_j/d)``. Without a floor the fit is
    :func:`_lm_power` (analytic Jacobian, a bounded number of steps); with
    one, scipy's bounded trust-region solver.

    The fit starts from the plain power law (the weighted log-log slope, no
    finite-size term) and descends to the nearest minimum: the finite-size
    term is a perturbation of the power law, and a model with a term in
    ``n^(-k/d)`` can have other minima far away (on a 6-d Gaussian with the
    curvature term, one near d = 11 with a slightly lower cost than the
    one near 7.4 that this start reaches). Bootstrap refits start from the
    full-data solution (:func:`_refit_bootstrap`).
    """
    powers = tuple(correction)
    p0 = _power_start(logn, logy, w, powers, offset) if x0 is None else np.asarray(x0, dtype=float)
    if not offset:
        P, res, J = _lm_power(logn, logy[None, :], w, r, powers, p0[None, :])
        p, res, J = P[0], res[0], J[0]
        fitted = res / w + logy
    else:
        p, res, J, fitted = _fit_offset(logn, logy, w, r, powers, p0)
    dof = max(len(logn) - len(p), 1)
    s2 = float(np.sum(res**2) / dof)
    try:
        cov = np.linalg.pinv(J.T @ J) * s2
    except np.linalg.LinAlgError:
        cov = np.full((len(p), len(p)), np.nan)
    return p, cov, fitted


def _fit_offset(logn, logy, w, r, powers, p0):
    """The law with a floor L_inf (learning curves of other learners)."""
    y = np.exp(logy)

    def model_log(p):
        val, _, fmin = _power_log_model(np.asarray(p[:-1])[None, :], logn, r, powers)
        val = val[0] if fmin[0] > 1e-3 else np.full(logn.size, np.nan)
        return np.log(np.exp(val) + p[-1])

    def resid(p):
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            res = (model_log(p) - logy) * w
        return np.where(np.isfinite(res), res, 1e6)

    lb = [-np.inf, _ALPHA_BOUNDS[0]] + [-np.inf] * len(powers) + [-np.inf]
    ub = [np.inf, _ALPHA_BOUNDS[1]] + [np.inf] * len(powers) + [float(y.min()) * 0.999]
    p0 = np.clip(p0, np.array(lb) + 1e-9, np.array(ub) - 1e-9)
    sol = optimize.least_squares(resid, p0, bounds=(lb, ub), method="trf", x_scale="jac", max_nfev=2000)
    with np.errstate(all="ignore"):
        fitted = model_log(sol.x)
    return sol.x, sol.fun, sol.jac, fitted


def bootstrap_curves(curve, keep=None, n_boot=200, random_state=None, progress=None):
    """Bootstrap replicates of a gap curve: (n_boot', J') mean values.

    Each replicate resamples the repeats and the queries with replacement
    (the same draws as indexing, as multiplicities, without copying the
    distances); replicates with a zero value at some size are dropped.
    ``keep`` selects sizes (a boolean mask over ``curve.sizes``).
    """
    from ._progress import Progress

    rng = check_random_state(random_state)
    vals = curve.distances ** curve.r
    R_, J_, m = vals.shape
    keep = np.ones(J_, dtype=bool) if keep is None else np.asarray(keep, dtype=bool)
    flat = vals[:, keep, :].reshape(-1, m)
    G = []
    with Progress(int(n_boot), "law bootstrap", progress) as bar:
        for _ in range(int(n_boot)):
            bar.update()
            ri = rng.integers(0, R_, R_)
            ti = rng.integers(0, m, m)
            wt = np.bincount(ti, minlength=m).astype(float)
            wr = np.bincount(ri, minlength=R_).astype(float)
            g = wr @ (flat @ wt).reshape(R_, -1) / (R_ * m)
            if np.all(g > 0):
                G.append(g)
    return np.array(G).reshape(len(G), int(keep.sum()))


def _refit_bootstrap(logn, LOGY, w, r, model, offset, p):
    """The fit redone on each bootstrap curve (rows of ``LOGY``), started at ``p``.

    The scale model is a linear least squares per row; the power models
    without a floor are one batched Levenberg-Marquardt run over all rows
    (:func:`_lm_power`); with a floor, one bounded fit per row.
    """
    if LOGY.shape[0] == 0:
        return np.empty((0, len(p)))
    if model == "scale":
        return np.array([_fit_scale(logn, ly, w, r)[0] for ly in LOGY])
    if not offset:
        P, _, _ = _lm_power(logn, LOGY, w, r, tuple(model), np.tile(np.asarray(p, dtype=float), (LOGY.shape[0], 1)))
        return P
    return np.array([_fit_model(logn, ly, w, r, model, offset, x0=p)[0] for ly in LOGY])


def fit_law(curve_or_sizes, gaps=None, *, correction=False, offset=False, r=None, min_size=None,
            confidence=0.95, n_boot=200, random_state=None, progress=None):
    """Fit ``L(n) = L_inf + C n^(-alpha) F(n)`` and read off d = r / alpha.

    ``F`` is a finite-size factor (``correction``): 1, ``1 + a n^(-alpha/r)
    + ...``, or ``exp(a L(n)^(1/r))`` (the scale model).

    Parameters
    ----------
    curve_or_sizes : GapCurve or array-like of sizes
        A :class:`~repgap.GapCurve` (then ``gaps`` must be None), or the sizes
        of any learning curve.
    gaps : array-like, optional
        The values at those sizes (test errors, gaps, ...).
    correction : bool, int or str, default=False
        The finite-size term (the supports of real data have boundaries and
        curvature, which bend the log-log curve at the sizes a data set
        affords; a plain slope is then biased, by -9 % on a cube and +18 % on
        a curved torus at d = 8 and 12, n = 1e5):

        - ``"scale"``: ``L = C n^(-alpha) exp(a L^(1/r))``, the boundary term
          written in the observed neighbour scale ``rho_n = L_n^(1/r)``: a
          boundary cuts from a neighbourhood ball of radius rho a volume
          fraction that grows with rho, and ``log(L_n / C n^(-alpha))`` is
          then close to linear in rho_n (on the cube, ``a`` constant within
          1 % from n = 90 to 1e5 for d = 8 and 12, 2.5 % for d = 5). Linear in
          its parameters.
        - ``"curvature"``: ``(1 + b n^(-2/d))``, the order at which curvature
          of an embedded support enters (a chord is shorter than the arc by
          a relative O(R^2)).
        - ``"auto"``: the scale model when its coefficient is positive (a
          boundary raises the gap) and its factor stays within the range
          where it was checked, else the curvature model; see
          :func:`auto_model`. With ``offset=True``: the better fit of k = 1
          and k = 2.
        - ``True``, ``1`` or ``"boundary"``: ``(1 + a n^(-1/d))``, the leading
          boundary term in n (docs/theory.md, section 3); it over-corrects
          polytopes, whose edges and corners add terms of every order.
        - ``2`` or ``"both"``: ``(1 + a n^(-1/d) + b n^(-2/d))``, rarely
          identifiable from one curve.

        Use one when the support may have a boundary (cubes, pixel values,
        data with hard constraints) or curvature at the scale of the small
        training sets; ``"auto"`` is :class:`repgap.estimators.GapLaw`'s
        default. For a flat support without boundary keep it off: it costs
        a wider interval.
    offset : bool, default=False
        Fit an irreducible floor ``L_inf`` (learning curves of other learners;
        a Representation Gap has none).
    r : float, optional
        The power in the exponent model ``alpha = r/d``; defaults to the
        curve's r, else 2.
    min_size : int, optional
        Ignore sizes below this (pre-asymptotic regime).
    confidence : float, default=0.95
    n_boot : int, default=200
        Bootstrap replicates for a GapCurve: the test points and the repeats
        are resampled (not the points of the curve), and the fit is redone.
        Plain arrays get the asymptotic least-squares interval instead.
    random_state : int, Generator or None
    progress : bool, optional
        A progress bar over the bootstrap replicates (default: when tqdm is
        installed and stderr is a terminal; see :func:`repgap.set_config`).

    Returns
    -------
    LawFit

    Notes
    -----
    A curve that does not decay (its weighted log-log slope over the sizes
    fitted is >= 0, or the best fit's exponent sits at its lower bound
    ``1e-6``) has no decay rate to read d from: the fit then reports
    ``dimension = +inf`` (the limit of ``r / alpha`` as alpha falls to 0,
    the convention of :mod:`repgap.regime` for a flat or rising stretch),
    an interval whose upper end is ``+inf``, the flag ``"not decaying"``
    in ``flags``, and a :class:`NonDecayingCurveWarning`. More generally an
    interval end whose exponent is 0 or below (a bootstrap replicate or a
    least-squares bound without decay) is ``+inf``: the data do not bound d
    from above. ``exponent`` and ``exponent_ci`` are the fitted values as
    they are (possibly 0 or negative).
    """
    from .gap import GapCurve

    confidence = _check_confidence_level(confidence)
    offset = _check_bool(offset, "offset")
    if r is not None:
        r = check_real(r, "r", 0.0, low_open=True)
    if min_size is not None:
        min_size = check_real(min_size, "min_size", 0.0)
    n_boot = check_int(n_boot, "n_boot", low=0)
    _check_seed(random_state)
    _check_progress(progress)
    powers = _check_correction(correction)
    if correction == "scale" and offset:
        raise ValueError("correction='scale' measures the scale by the observed values and cannot be "
                         "combined with offset=True")
    curve = curve_or_sizes if isinstance(curve_or_sizes, GapCurve) else None
    if curve is not None:
        if gaps is not None:
            raise ValueError("pass either a GapCurve or (sizes, gaps), not both")
        sizes = np.asarray(curve.sizes, dtype=float)
        values = np.asarray(curve.gaps, dtype=float)
        r = curve.r if r is None else r
        stderr = np.asarray(curve.stderr, dtype=float)
    else:
        if gaps is None:
            raise ValueError("gaps is required when the first argument is an array of sizes")
        sizes, values = (_real_vector(v, name) for v, name in ((curve_or_sizes, "sizes"), (gaps, "gaps")))
        if sizes.shape != values.shape:
            raise ValueError(f"sizes and gaps differ in length: {sizes.size} and {values.size}")
        r = 2.0 if r is None else r
        stderr = None
    if not np.all(np.isfinite(sizes)) or not np.all(np.isfinite(values)):
        raise ValueError("sizes and values must be finite")
    if np.any(sizes <= 0) or np.any(values <= 0):
        raise ValueError("sizes and values must be positive (a zero gap: duplicates between train and test?)")
    keep = np.ones(sizes.size, dtype=bool) if min_size is None else sizes >= min_size
    n_par = 2 + (1 if powers is None else len(powers)) + int(offset)
    if keep.sum() < n_par + 1:
        hint = "" if min_size is None else f" (min_size={min_size:g} keeps {int(keep.sum())} of {sizes.size})"
        raise ValueError(f"need at least {n_par + 1} sizes to fit {n_par} parameters, got {int(keep.sum())}{hint}")
    logn, logy = np.log(sizes[keep]), np.log(values[keep])
    # weights: relative standard errors where known (log-space residuals)
    if stderr is not None and np.all(stderr[keep] > 0):
        rel = stderr[keep] / values[keep]
        w = 1.0 / np.maximum(rel, 1e-3 * np.median(rel))
        w = w / w.mean()
    else:
        w = np.ones(keep.sum())
    model = "scale" if correction == "scale" else powers
    if model is None and not offset:
        (p, cov, fitted_log), model = _auto_model(logn, logy, w, r)
    elif model is None:
        # "auto" with a floor: the boundary term (k = 1) or the curvature
        # term (k = 2), whichever fits the curve better (same number of
        # parameters); the scale model measures the scale by L itself
        fits = [(_fit_model(logn, logy, w, r, pw, offset), pw) for pw in ((1,), (2,))]
        rss = [float(np.sum(((f[2] - logy) * w) ** 2)) for f, _ in fits]
        (p, cov, fitted_log), model = fits[int(np.argmin(rss))]
    else:
        p, cov, fitted_log = _fit_model(logn, logy, w, r, model, offset)
    n_corr = 1 if model == "scale" else len(model)
    alpha = p[1]
    alpha_samples = None
    logC_samples = None
    boot_params = None
    if curve is not None and n_boot:
        G = bootstrap_curves(curve, keep, int(n_boot), random_state, progress=progress)
        params = _refit_bootstrap(logn, np.log(G), w, r, model, offset, p)
        alphas, logCs = params[:, 1], params[:, 0]
        alpha_samples, logC_samples = np.array(alphas), np.array(logCs)
        boot_params = params if len(params) else None
    q = (1 - confidence) / 2
    if alpha_samples is not None and alpha_samples.size >= 20:
        a_lo, a_hi = np.quantile(alpha_samples, [q, 1 - q])
        c_lo, c_hi = np.exp(np.quantile(logC_samples, [q, 1 - q]))
        method = "bootstrap (test points and repeats)"
    else:
        dof = max(logn.size - n_par, 1)
        t = stats.t.ppf(1 - q, dof)
        sa, sc = math.sqrt(max(cov[1, 1], 0)), math.sqrt(max(cov[0, 0], 0))
        a_lo, a_hi = alpha - t * sa, alpha + t * sa
        c_lo, c_hi = math.exp(p[0] - t * sc), math.exp(p[0] + t * sc)
        method = "asymptotic (least squares)"
    # the curve does not decay: no dimension to read off (see Notes)
    slope = float(np.polyfit(logn, logy, 1, w=w)[0]) if logn.size >= 2 else -1.0
    flags = ()
    dimension = _dimension_of_exponent(alpha, r)
    if slope >= 0 or not math.isfinite(dimension):
        flags = ("not decaying",)
        dimension = math.inf
        how = "rises" if slope > 0 else ("is flat" if slope == 0 else "does not decay in the best fit")
        warnings.warn(f"fit_law: the curve {how} with n (log-log slope {slope:.3g} over n = {sizes[keep][0]:g}.."
                      f"{sizes[keep][-1]:g}; fitted exponent {alpha:.3g}): the exponent is not a decay rate and the "
                      "dimension is not identified, so it is reported as +inf with the flag 'not decaying'. "
                      "Check that the values fall with n (a gap or an error, not an accuracy or a score), or "
                      "use larger sizes", NonDecayingCurveWarning, stacklevel=2)
    return LawFit(
        dimension=float(dimension),
        dimension_ci=(_dimension_of_exponent(a_hi, r), _dimension_of_exponent(a_lo, r)),
        exponent=float(alpha),
        exponent_ci=(float(a_lo), float(a_hi)),
        constant=float(math.exp(p[0])),
        constant_ci=(float(c_lo), float(c_hi)),
        correction=tuple(float(c) for c in p[2 : 2 + n_corr]) if n_corr else None,
        correction_powers=() if model == "scale" else tuple(model),
        correction_model="scale" if model == "scale" else "power",
        offset=float(p[-1]) if offset else 0.0,
        residuals=logy - fitted_log,
        sizes=sizes[keep],
        values=values[keep],
        confidence=float(confidence),
        ci_method=method,
        r=float(r),
        bootstrap_params=boot_params,
        flags=flags,
    )


def _dimension_of_exponent(alpha, r):
    """``r / alpha``, or +inf when alpha shows no decay (at its lower bound, or 0 and below)."""
    alpha = float(alpha)
    if not alpha > _ALPHA_BOUNDS[0] * (1.0 + 1e-3):
        return math.inf
    return float(r / alpha)
