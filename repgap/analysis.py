"""The main job: from a data set to its gap curve, law, dimension and sample needs.

:func:`analyze` is what ``repgap analyze`` runs, as a library call: the gap
curve over nested training sets (Perera et al., arXiv:2605.21692), the law
``RG_n ~ C n^(-2/d)`` fitted with its finite-size term and an interval, the
point-process estimators of the intrinsic dimension beside it (computed
from one shared k-nearest-neighbour search), the dimension as a function of
scale, the training-set size predicted for a target gap, and the duplicates
found. Every step is timed, so the cost of the command around the library
calls can be measured (``benchmarks/bench_cli.py``).
"""
import contextlib
import dataclasses
import time
import warnings

import numpy as np

from . import local
from ._validation import check_bool, check_int, check_random_state, check_real
from .estimators import (CONSERVATIVE_RATIO, GRIDE, MLE, CalibratedTwoNN, CorrelationDimension, GapLaw,
                         NeighbourStats, TwoNN, WeibullShape, _levina_bickel_inverses, _split_rows, interval_parts)
from .gap import _host, _jsonable

#: The point-process estimators that ``analyze`` runs by default, beside the gap law.
DEFAULT_ESTIMATORS = ("calibrated", "twonn", "mle", "gride", "corr")
#: Also accepted: the Weibull shape of the nearest-neighbour distances (off by
#: default: it assumes one density, and flags itself when that fails).
#: Neighbourhood size of :func:`analyze`'s local dimension.
LOCAL_NEIGHBORS = 50
#: GRIDE's scale for the local dimension of :func:`analyze` (n1 = 1 would repeat TwoNN's).
LOCAL_GRIDE_N1 = 4
_KNOWN = ("calibrated", "twonn", "mle", "gride", "corr", "weibull")
_LABELS = {
    "gap": "gap law (Perera et al.)",
    "calibrated": "TwoNN, ball-calibrated",
    "twonn": "TwoNN (Facco et al.)",
    "mle": "MLE (Levina-Bickel)",
    "gride": "GRIDE (Denti et al.)",
    "corr": "correlation dim. (G-P)",
    "weibull": "Weibull shape of NN dist.",
}


class _Clock:
    def __init__(self):
        self.times = {}

    def __call__(self, name, f, *a, **kw):
        t = time.perf_counter()
        try:
            return f(*a, **kw)
        finally:
            self.times[name] = self.times.get(name, 0.0) + time.perf_counter() - t


@dataclasses.dataclass(repr=False)
class Analysis:
    """The result of :func:`analyze`.

    Attributes
    ----------
    n_train, n_test, n_features : int
    curve : GapCurve
        The gap curve (sizes, gaps, per-repeat gaps, standard errors).
    law : LawFit
        The fitted law (:class:`repgap.estimators.GapLaw`'s default: the
        boundary term in the scale or the curvature term), with
        ``law_alternative`` the other finite-size fit (see GapLaw's
        ``interval``); ``dimension_ci`` spans both.
    dimension, dimension_ci : float, (float, float)
        The gap-law estimate of the intrinsic dimension and its interval.
    estimators : dict
        name -> ``{"dimension", "ci", "label", "seconds", "params", "flags"}``
        for the point-process estimators (and ``"gap"``); where ``ci`` is a
        sampling interval widened by the models' spread, also
        ``"sampling_ci"``, ``"model_term"``, ``"model_term_name"``, ``"rule"`` and ``"reference_ci"``
        (:func:`repgap.estimators.interval_parts`).
    scale : dict
        name -> ``(scales, dimensions)``: the dimension as a function of scale.
    target_gap : float
        The gap asked for (default: half the gap at the full training set).
    n_for_target : float
        Training-set size at which the fitted law reaches ``target_gap``;
        ``n_for_target_range`` under the two finite-size models.
    duplicates : dict
        ``train`` (training points that repeat another, within the
        tolerance), ``test_in_train`` (held-out points at distance 0 from the
        training set), ``tolerance``.
    test_nn_distances, train_nn_distances : ndarray
        Nearest-neighbour distances: held-out points to the full training
        set, and training points to the other training points.
    regime : repgap.regime.Regime or None
        Whether the gap curve is in the asymptotic regime of the law
        (:func:`repgap.regime.assess_regime`): ``"asymptotic"``,
        ``"extrapolated"`` (the law's finite-size term moves d beyond the
        local slopes, and the upper half of the curve asks for the same) or
        ``"pre-asymptotic"`` (it does not: ``dimension_ci`` then spans the
        local slopes and both finite-size models, and ``n_for_target``
        extrapolates a model the data do not determine).
    storage_precision : dict or None
        The storage resolution of the training data against their
        nearest-neighbour distances (``limited`` when too coarse; see
        :func:`repgap._precision.check_storage_precision`).
    local_dimension : dict
        name (``"twonn"``, ``"mle"``, ``"gride"``) -> the local dimension of
        every training point (NaN where undefined), neighbourhoods of
        ``local_neighbors`` points (:mod:`repgap.local`; GRIDE at n1 = 4).
    train_rows : ndarray
        The row of the input data of each training point.
    projection : ndarray (n_train, 2) or None
        The training points on their first two principal axes (for the
        local-dimension figure).
    known_dimension, known_volume : optional
        When the data set's answer is known (``repgap demo``): then
        ``predicted_gaps`` holds the asymptotic law at the curve's sizes.
    timings : dict
        Seconds spent in each library call.
    group : str or None
    """

    n_train: int
    n_test: int
    n_features: int
    curve: object
    law: object
    law_alternative: object
    dimension: float
    dimension_ci: tuple
    estimators: dict
    scale: dict
    target_gap: float
    n_for_target: float
    n_for_target_range: tuple
    duplicates: dict
    test_nn_distances: np.ndarray
    train_nn_distances: np.ndarray
    timings: dict
    random_state: object = None
    group: object = None
    known_dimension: object = None
    known_volume: object = None
    predicted_gaps: object = None
    regime: object = None
    storage_precision: object = None
    local_dimension: dict = dataclasses.field(default_factory=dict)
    local_neighbors: object = None
    train_rows: object = None
    projection: object = None

    def __repr__(self):
        lo, hi = self.dimension_ci
        return (f"Analysis(n_train={self.n_train}, n_test={self.n_test}, D={self.n_features}, "
                f"dimension={self.dimension:.3f} [{lo:.3f}, {hi:.3f}], n_for_target={self.n_for_target:.4g})")

    def to_dict(self):
        """A JSON-ready dict (the ``report.json`` of ``repgap analyze``)."""
        c, f = self.curve, self.law
        law = lambda L: None if L is None else {  # noqa: E731
            "dimension": L.dimension, "dimension_ci": list(L.dimension_ci), "exponent": L.exponent,
            "exponent_ci": list(L.exponent_ci), "constant": L.constant, "constant_ci": list(L.constant_ci),
            "correction": list(L.correction) if L.correction else None,
            "correction_powers": list(L.correction_powers), "correction_model": L.correction_model,
            "model": L.model_name, "formula": L.formula, "ci_method": L.ci_method,
            "confidence": L.confidence, "fitted_sizes": L.sizes.tolist(),
            "log_residuals": L.residuals.tolist()}
        out = {
            "data": {"n_train": self.n_train, "n_test": self.n_test, "n_features": self.n_features,
                     "group": self.group, "random_state": self.random_state},
            "gap_curve": {"sizes": c.sizes.tolist(), "gaps": c.gaps.tolist(), "stderr": c.stderr.tolist(),
                          "gaps_per_repeat": c.gaps_per_repeat.tolist(), "repeats": c.repeats,
                          "n_zero": c.n_zero.tolist(), "k": c.k, "r": c.r, "n_test": c.n_test,
                          "n_train_queries": c.n_train_queries},
            "law": law(f),
            "law_alternative": law(self.law_alternative),
            "dimension": self.dimension,
            "dimension_ci": list(self.dimension_ci),
            "regime": None if self.regime is None else self.regime.to_dict(),
            "storage_precision": self.storage_precision,
            "estimators": {k: {**v, "ci": list(v["ci"])} for k, v in self.estimators.items()},
            "dimension_vs_scale": {k: {"scales": np.asarray(s).tolist(), "dimensions": np.asarray(d).tolist()}
                                   for k, (s, d) in self.scale.items()},
            "target": {"gap": self.target_gap, "n_train": self.n_for_target,
                       "n_train_range": list(self.n_for_target_range),
                       "extrapolates_unsupported_model": bool(self.regime is not None and not self.regime.asymptotic)},
            "local_dimension": None if not self.local_dimension else {
                "n_neighbors": self.local_neighbors, "gride_n1": LOCAL_GRIDE_N1,
                "estimators": {k: local.summarize(v) for k, v in self.local_dimension.items()}},
            "duplicates": self.duplicates,
            "nearest_neighbour_distances": {
                "test_to_train": _quantiles(self.test_nn_distances),
                "train_to_train": _quantiles(self.train_nn_distances)},
            "timings_s": self.timings,
        }
        if self.known_dimension is not None:
            out["known"] = {"dimension": self.known_dimension, "volume": self.known_volume,
                            "predicted_gaps": None if self.predicted_gaps is None else
                            np.asarray(self.predicted_gaps).tolist()}
        return _jsonable(out)

    def summary(self):
        """The report as a readable text table."""
        c, f = self.curve, self.law
        lines = [f"data: {self.n_train} training points, {self.n_test} held-out, {self.n_features} features"
                 + (f", modulo {self.group}" if self.group else "")]
        lines.append("")
        lines.append(f"gap curve ({c.repeats} random orders; mean squared distance to the nearest training point)")
        lines.append(f"  {'n_train':>9}  {'gap':>11}  {'stderr':>9}  {'law':>11}")
        pred = f.predict(c.sizes)
        for n, g, s, p in zip(c.sizes, c.gaps, c.stderr, pred):
            lines.append(f"  {int(n):>9}  {g:>11.5g}  {s:>9.2g}  {p:>11.5g}")
        lines.append("")
        lo, hi = self.dimension_ci
        alt = self.law_alternative
        both = alt is not None and tuple(self.dimension_ci) != tuple(f.dimension_ci)
        pre = self.regime is not None and not self.regime.asymptotic
        lines.append(f"law RG_n = {f.formula.replace('L^', 'RG_n^')} ({f.model_name}):  d = {self.dimension:.3f}"
                     f"  [{lo:.3f}, {hi:.3f}]  ({int(round(100 * f.confidence))}% interval"
                     + ((", spanning the local slopes and both finite-size fits)" if alt is not None else
                         ", spanning the local slopes)") if pre else
                        f", spanning the {alt.model_name} fit too)" if both else ")"))
        lines.append(f"  exponent 2/d = {f.exponent:.4f} [{f.exponent_ci[0]:.4f}, {f.exponent_ci[1]:.4f}],"
                     f" constant C = {f.constant:.4g}")
        reg = self.regime
        if reg is not None:
            lines.append(f"  regime: {reg.regime} (local dimension {reg.top_dimension:.3f} [{reg.top_ci[0]:.3f}, "
                         f"{reg.top_ci[1]:.3f}] over n = {reg.top_sizes[0]:,}..{reg.top_sizes[1]:,})")
            if not reg.asymptotic:
                lines.append("  NOT in the asymptotic regime: the law's d extrapolates a finite-size model that the"
                             " data do not determine")
        lines.append(f"  target gap {self.target_gap:.4g}: reached at n = {_fmt_n(self.n_for_target)}"
                     f" (range {_fmt_n(self.n_for_target_range[0])} - {_fmt_n(self.n_for_target_range[1])})"
                     + ("  [extrapolated from a pre-asymptotic curve]" if reg is not None and not reg.asymptotic
                        else ""))
        lines.append("")
        lines.append(f"intrinsic dimension{'':14}{'estimate':>9}  {'interval':>19}  {'time':>7}  parameters")
        for k, v in self.estimators.items():
            ci = v["ci"]
            flags = v.get("flags") or {}
            lines.append(f"  {v['label']:<30} {v['dimension']:>8.3f}  [{ci[0]:>7.3f}, {ci[1]:>7.3f}]"
                         f"  {v['seconds']:>6.2f}s  {_params_text(k, v.get('params') or {})}"
                         + (f"  [{', '.join(flags)}]" if flags else "")
                         + ("  (conservative)" if v.get("conservative") else ""))
        widened = [v["label"].split(" (")[0] for v in self.estimators.values() if "model_term" in v]
        if widened:
            lines.append(f"  ({', '.join(widened)}: the interval carries the models' spread besides the sampling noise, "
                         "both parts in report.json)")
        if any(v.get("conservative") for v in self.estimators.values()):
            lines.append("  (conservative: the models' spread makes the interval at least "
                         f"{CONSERVATIVE_RATIO:g}x the sampling one; where one model holds it covers more than "
                         "the nominal rate)")
        shared = [v["label"].split(" (")[0] for k, v in self.estimators.items() if k in ("twonn", "mle", "gride")]
        if len(shared) > 1 and "neighbours" in self.timings:
            lines.append(f"  ({', '.join(shared)} share one k-NN search, {self.timings['neighbours']:.2f}s, "
                         "counted in each time)")
        if self.local_dimension:
            lines.append(f"  local dimension per point ({self.local_neighbors} neighbours; median, 5-95 % of points):")
            for k, v in self.local_dimension.items():
                q = local.summarize(v)
                if q["n"]:
                    label = _LABELS[k] + (f", n1={LOCAL_GRIDE_N1}" if k == "gride" else "")
                    lines.append(f"    {label:<30} {q['median']:>8.3f}  [{q['p05']:>7.3f}, {q['p95']:>7.3f}]")
        if self.known_dimension is not None:
            err = (self.dimension - self.known_dimension) / self.known_dimension
            lines.append(f"  {'true dimension':<30} {self.known_dimension:>8}   (gap law off by {100 * err:+.1f}%)")
        lines.append("")
        sp = self.storage_precision
        if sp is not None and sp["limited"]:
            lines.append(f"storage precision: LIMITED ({sp['dtype']}: distances rounded by about {sp['resolution']:.3g}"
                         f" against a median nearest-neighbour distance of {sp['median_nn_distance']:.3g}); centre the"
                         " data before storing them, or store them as float64")
        dup = self.duplicates
        lines.append(f"duplicates: {dup['train']} training points repeat another; {dup['test_in_train']} held-out"
                     f" points coincide with a training point (tolerance {dup['tolerance']:.3g})")
        return "\n".join(lines)


def _estimator_params(name, e):
    """The parameters that decide an estimate, for the table and report.json."""
    if name == "gap":
        c = e.curve_
        return {"model": e.law_.model_name, "correction": e.correction, "interval": e.interval,
                "sizes": [int(c.sizes[0]), int(c.sizes[-1])], "n_sizes": int(len(c.sizes)), "repeats": int(c.repeats),
                "train_queries": int(c.n_train_queries)}
    if name in ("twonn", "calibrated"):
        p = {"method": e.method, "ties_left_out": int(getattr(e, "n_ties_", 0))}
        if name == "calibrated":
            p.update(reference="uniform d-ball", calibration_size=int(e.calibration_size))
        return p
    if name == "mle":
        return {"k1": int(e.k1), "k2": int(e.k2), "interval": e.interval}
    if name == "gride":
        return {"n1": int(e.n1), "n2": int(2 * e.n1), "max_n1": int(e.max_n1)}
    if name == "corr":
        return {"c_range": [float(v) for v in e.c_range], "n_bins": int(e.n_bins),
                "fit_range": [float(v) for v in e.fit_range_], "n_pairs_fit": int(e.n_pairs_fit_)}
    if name == "weibull":
        return {"test_size": e.test_size, "density_spread": float(e.density_spread_)}
    return {}


def _estimator_flags(e):
    """The validity flags an estimator raised (:attr:`repgap.estimators.TwoNN.flags_` and the like)."""
    return {name: True for name in e.flags_}


def _params_text(name, p):
    if name == "gap":
        return f"n={p['sizes'][0]}..{p['sizes'][1]}"
    if name == "mle":
        return f"k={p['k1']}..{p['k2']}"
    if name == "gride":
        return f"n1={p['n1']}, n2={p['n2']}"
    if name in ("twonn", "calibrated"):
        return p["method"] + (f", {p['ties_left_out']} ties out" if p.get("ties_left_out") else "")
    if name == "corr":
        return f"C in [{p['c_range'][0]:g}, {p['c_range'][1]:g}]"
    return ""


def _fmt_n(n):
    if not np.isfinite(n):
        return "inf"
    return f"{n:,.0f}" if n < 1e7 else f"{n:.3g}"


def _quantiles(x):
    x = np.asarray(x, dtype=float)
    if x.size == 0:
        return {}
    q = np.quantile(x, [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0])
    return dict(zip(["min", "q05", "q25", "median", "q75", "q95", "max"], q.tolist()))


def _check_methods(methods):
    if methods is not None and (isinstance(methods, str) or not hasattr(methods, "__iter__")):
        raise TypeError(f"methods must be a sequence of estimator names from {', '.join(_KNOWN)} (or None), "
                        f"got {methods!r}")
    methods = tuple(DEFAULT_ESTIMATORS if methods is None else methods)
    bad = [m for m in methods if not isinstance(m, str) or m not in _KNOWN]
    if bad:
        raise ValueError(f"methods: unknown estimator(s) {', '.join(map(repr, bad))}; choose from {', '.join(_KNOWN)}")
    return methods


def _check_not_constant(X, name, block=1 << 16):
    """Identical rows everywhere make every gap 0: say so, instead of a failing fit."""
    X = np.asarray(X) if not hasattr(X, "shape") else X
    if getattr(X, "ndim", 0) != 2 or X.shape[0] < 2:
        return
    first = np.asarray(X[:1])
    for s in range(0, X.shape[0], block):
        if np.any(np.asarray(X[s:s + block]) != first):
            return
    raise ValueError(f"{name}: all {X.shape[0]} rows are identical, so the gap is 0 at every size and no "
                     "dimension can be estimated; check that the right array was passed")


def analyze(X, test=None, *, group=None, sizes=None, repeats=5, methods=None, target_gap=None, test_size=0.1,
            confidence=0.95, n_boot=200, random_state=0, backend=None, n_jobs=None, known_dimension=None,
            known_volume=None, progress=None, train_queries="auto", local_neighbors=LOCAL_NEIGHBORS):
    """Run the main job on a data set.

    Parameters
    ----------
    X : array (n, D)
        The data; when ``test`` is None a random ``test_size`` part of it is
        held out.
    test : array (m, D), optional
        Held-out points (the queries of the gap).
    group : repgap.groups.Group, optional
        Measure everything modulo this symmetry group.
    sizes : sequence of int, optional
        Training sizes of the curve; default 12 log-spaced sizes from n/30 to
        n (as :class:`repgap.estimators.GapLaw`).
    repeats : int, default=5
        Random orders of the training set.
    train_queries : bool, int or "auto", default="auto"
        Training points also used as queries of the gap curve (as
        :class:`repgap.estimators.GapLaw`: all of them for in-memory data).
        They cut the noise of the law's finite-size fit about threefold at
        about ``1 + n / m`` times the cost of the curve (at 1e5 x 64 on 2
        cores, 42 s of a 55 s analysis); ``False`` or a number trade that
        back.
    methods : sequence of str, optional
        Point-process estimators run beside the gap law, from
        ``"calibrated", "twonn", "mle", "gride", "corr"`` (default all) and
        ``"weibull"``.
    target_gap : float, optional
        The gap for which to predict the training-set size (default: half
        the gap measured at the full training set).
    test_size : float or int, default=0.1
    confidence, n_boot : interval level and bootstrap replicates.
    random_state : int, Generator or None, default=0
    backend, n_jobs : as in :func:`repgap.knn`.
    known_dimension, known_volume : optional
        The true answer, for data with a known one: the report then shows
        the error and the asymptotic prediction :func:`repgap.predicted_gap`.
    progress : bool, optional
    local_neighbors : int or None, default=50
        Neighbourhood size of the local (per-point) dimension of TwoNN, MLE
        and GRIDE at ``n1 = 4`` (those of them in ``methods``), from the
        same neighbour search (:mod:`repgap.local`); None or 0 skips them.

    Returns
    -------
    Analysis
    """
    # Warnings raised deep in the job would point at this module's internals
    # (Python prints the source line of the frame that warned); they are
    # collected and raised again once each, pointing at the caller's line.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = _analyze(X, test, group=group, sizes=sizes, repeats=repeats, methods=methods,
                            target_gap=target_gap, test_size=test_size, confidence=confidence, n_boot=n_boot,
                            random_state=random_state, backend=backend, n_jobs=n_jobs,
                            known_dimension=known_dimension, known_volume=known_volume, progress=progress,
                            train_queries=train_queries, local_neighbors=local_neighbors)
        finally:
            pending = list(dict.fromkeys((w.category, str(w.message)) for w in caught))
    for category, message in pending:
        warnings.warn(message, category, stacklevel=2)
    return result


def _analyze(X, test=None, *, group=None, sizes=None, repeats=5, methods=None, target_gap=None, test_size=0.1,
            confidence=0.95, n_boot=200, random_state=0, backend=None, n_jobs=None, known_dimension=None,
            known_volume=None, progress=None, train_queries="auto", local_neighbors=LOCAL_NEIGHBORS):
    """The job of :func:`analyze`, warnings raised where they arise."""
    from ._config import config_context
    from .law import predicted_gap

    methods = _check_methods(methods)
    rng = check_random_state(random_state)
    check_real(target_gap, "target_gap", low=0, low_open=True, allow_none=True)
    check_real(known_dimension, "known_dimension", low=0, low_open=True, allow_none=True)
    check_real(known_volume, "known_volume", low=0, low_open=True, allow_none=True)
    check_bool(progress, "progress", allow_none=True)
    local_neighbors = 0 if local_neighbors is None else check_int(local_neighbors, "local_neighbors", low=0)
    if 0 < local_neighbors < 3:
        raise ValueError(f"local_neighbors must be 0 (none) or an integer >= 3, got {local_neighbors}")
    _check_not_constant(X, "X")
    if test is not None:
        _check_not_constant(np.concatenate([np.asarray(X[:1]), np.asarray(test)]), "X and test together")
    clock = _Clock()
    with config_context(progress=progress) if progress is not None else contextlib.nullcontext():
        if test is None:
            train_rows, test_rows = clock("split", _split_rows, np.asarray(X).shape[0], test_size, rng)
            train, test = np.asarray(X)[train_rows], np.asarray(X)[test_rows]
        else:
            train = X
            train_rows = np.arange(np.shape(X)[0])
        gl = GapLaw(sizes=sizes, repeats=repeats, confidence=confidence, n_boot=n_boot, duplicates="keep",
                    train_queries=train_queries,
                    random_state=rng, group=group, backend=backend, n_jobs=n_jobs)
        clock("gap law", gl.fit, train, test=test)
        curve, law, alt = gl.curve_, gl.law_, gl.law_alternative_
        train = np.asarray(train)
        common = dict(group=group, backend=backend, n_jobs=n_jobs)
        # one k-NN search of the training set serves TwoNN, MLE and GRIDE
        ks = {"twonn": 2, "mle": MLE().k2, "gride": 2 * GRIDE().max_n1, "calibrated": 2}
        local_methods = [m for m in ("twonn", "mle", "gride") if m in methods] if local_neighbors else []
        # the local estimates need n_neighbors - 1 neighbours, when the data allow
        local_neighbors = min(local_neighbors, np.shape(train)[0] - 1)
        k = max([ks[m] for m in methods if m in ks] + [1] + ([local_neighbors - 1] if local_methods else []))
        st = clock("neighbours", NeighbourStats, train, k, duplicates="keep", **common)
        est = {"gap": {"dimension": gl.dimension_, "ci": gl.dimension_ci_, "label": _LABELS["gap"],
                       "seconds": clock.times["gap law"], "params": _estimator_params("gap", gl),
                       "flags": _estimator_flags(gl)}}
        scale = {}
        fitted = {}
        for m in methods:
            t0 = time.perf_counter()
            if m == "calibrated":
                e = clock(m, CalibratedTwoNN(duplicates="keep", random_state=rng, confidence=confidence,
                                             **common).fit, train)
            elif m == "twonn":
                e = clock(m, TwoNN(duplicates="keep", confidence=confidence, **common).fit, st)
            elif m == "mle":
                e = clock(m, MLE(duplicates="keep", confidence=confidence, **common).fit, st)
            elif m == "gride":
                e = clock(m, GRIDE(duplicates="keep", confidence=confidence, **common).fit, st)
            elif m == "weibull":
                e = clock(m, WeibullShape(duplicates="keep", random_state=rng, confidence=confidence,
                                          **common).fit, train)
            else:
                e = clock(m, CorrelationDimension(random_state=rng, confidence=confidence, **common).fit, train)
            fitted[m] = e
            secs = time.perf_counter() - t0 + (clock.times["neighbours"] if m in ("twonn", "mle", "gride") else 0)
            est[m] = {"dimension": float(e.dimension_), "ci": tuple(float(c) for c in e.dimension_ci_),
                      "label": _LABELS[m], "seconds": secs, "params": _estimator_params(m, e),
                      "flags": _estimator_flags(e), **interval_parts(e)}
        local_dims = clock("local dimension", _local_dimensions, st, local_methods, local_neighbors, confidence,
                           common) if local_methods and local_neighbors >= 3 else {}
        t0 = time.perf_counter()
        # dimension vs scale, from what was fitted (no new neighbour search)
        ln, lg = np.log(curve.sizes), np.log(curve.gaps)
        scale["gap"] = (np.sqrt(np.exp(0.5 * (lg[1:] + lg[:-1]))), -2.0 / (np.diff(lg) / np.diff(ln)))
        R = st.distances[st.valid]
        if R.shape[1] >= 3 and R.shape[0]:
            scale["mle"] = (np.median(R[:, 1:], axis=0), 1.0 / _levina_bickel_inverses(R).mean(axis=0))
        if "gride" in fitted:
            scale["gride"] = (fitted["gride"].scales_, fitted["gride"].dimensions_)
        if "corr" in fitted:
            # below the fitted range the correlation integral counts few pairs
            # and its local slope is noise
            c = fitted["corr"]
            s_, d_ = np.asarray(c.scales_), np.asarray(c.local_dimensions_)
            lo_r = c.fit_range_[0] / 4 if np.isfinite(c.fit_range_[0]) else 0.0
            scale["corr"] = (s_[s_ >= lo_r], d_[s_ >= lo_r])
        full = curve.gaps[-1]
        target = 0.5 * full if target_gap is None else float(target_gap)
        if not target > 0:
            raise ValueError(f"target_gap must be positive, got {target_gap!r}")
        with warnings.catch_warnings():
            # the regime is reported in the table: no second warning from n_for_gap
            warnings.simplefilter("ignore", RuntimeWarning)
            n_t = _n_for(law, target)
            rng_n = sorted([n_t] + ([_n_for(alt, target)] if alt is not None else [n_t]))
        clock.times["report"] = time.perf_counter() - t0
    tol = st.tol
    test_nn = curve.distances[0, -1, :curve.n_test]  # the held-out queries come first
    duplicates = {"train": int(st.n_duplicates), "test_in_train": int(np.count_nonzero(test_nn <= tol)),
                  "tolerance": float(tol)}
    pred = None
    if known_dimension is not None and group is None:
        pred = predicted_gap(curve.sizes, known_dimension, volume=1.0 if known_volume is None else known_volume)
    return Analysis(
        n_train=int(train.shape[0]), n_test=int(np.shape(test)[0]), n_features=int(train.shape[1]),
        curve=curve, law=law, law_alternative=alt, dimension=float(gl.dimension_),
        dimension_ci=tuple(float(c) for c in gl.dimension_ci_), estimators=est, scale=scale,
        target_gap=float(target), n_for_target=float(n_t), n_for_target_range=(float(rng_n[0]), float(rng_n[-1])),
        duplicates=duplicates, test_nn_distances=_host(test_nn), train_nn_distances=st.distances[:, 0].copy(),
        timings=dict(clock.times), random_state=random_state if isinstance(random_state, (int, type(None))) else None,
        group=None if group is None else repr(group), known_dimension=known_dimension, known_volume=known_volume,
        predicted_gaps=pred, regime=gl.regime_, storage_precision=gl.storage_precision_,
        local_dimension=local_dims, local_neighbors=local_neighbors if local_dims else None, train_rows=train_rows,
        projection=_projection(train, random_state=0) if local_dims else None)



def _local_dimensions(st, methods, n_neighbors, confidence, common):
    """name -> per-point local dimension of the training points, from the shared neighbours."""
    make = {"twonn": lambda: TwoNN(duplicates="keep", confidence=confidence, **common),
            "mle": lambda: MLE(duplicates="keep", confidence=confidence, **common),
            "gride": lambda: GRIDE(n1=LOCAL_GRIDE_N1, duplicates="keep", confidence=confidence, **common)}
    out = {}
    for m in methods:
        e = make[m]()
        if st.distances.shape[1] >= max(n_neighbors - 1, e._pointwise_k()):
            out[m] = e.fit_pointwise(st, n_neighbors=n_neighbors).dimension_pw_
    return out


def _projection(X, random_state=0, most=4096):
    """The first two principal components of X (rows of X projected), for the local-dimension figure.

    The axes come from at most ``most`` random rows (the covariance when D
    is small, their Gram matrix otherwise), so the cost stays bounded.
    """
    X = np.asarray(X)
    rng = check_random_state(random_state)
    sub = X[np.sort(rng.choice(X.shape[0], min(most, X.shape[0]), replace=False))].astype(np.float64)
    mu = sub.mean(axis=0)
    S = sub - mu
    if S.shape[1] <= S.shape[0]:
        w, V = np.linalg.eigh(S.T @ S)
        axes = V[:, ::-1][:, :2]
    else:
        w, U = np.linalg.eigh(S @ S.T)
        axes = S.T @ U[:, ::-1][:, :2]
        axes /= np.maximum(np.linalg.norm(axes, axis=0), 1e-300)
    P = np.empty((X.shape[0], 2), dtype=np.float32)
    for s in range(0, X.shape[0], 1 << 16):
        P[s : s + (1 << 16), : axes.shape[1]] = (X[s : s + (1 << 16)] - mu) @ axes
    if axes.shape[1] < 2:
        P[:, 1] = 0
    return P


def _n_for(law, target):
    try:
        return float(law.n_for_gap(target))
    except (ValueError, OverflowError, ZeroDivisionError):
        return float("nan")
