"""Figures: the gap curve and its law, the dimension across scales, neighbour distances,
and the evaluation of generated samples.

matplotlib is an optional dependency (``pip install 'repgap[plot]'``).
Each function draws on a given ``ax`` or makes its own
:class:`matplotlib.figure.Figure` (without pyplot, so it works headless
and never changes the user's backend), and returns the figure.
:func:`save_report_figures` writes the figures of ``repgap analyze``.

Conventions the figures keep (issue #15): every line drawn on an axes is
named in its legend; the scale of an axis is chosen from the estimates and
their intervals, and a curve that leaves that range is clipped rather than
allowed to set it; figure text spells "memorized" the British way.
"""
import os
import textwrap

import numpy as np

#: Colours and markers shared by the figures.
_ORDER_COLOR = "0.35"     # the random-order lines of the gap curve
_LAW_COLOR = "C3"


def _require():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError("repgap.plot needs matplotlib: pip install 'repgap[plot]'") from None


def _axes(ax, size=(6.4, 4.6)):
    _require()
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.add_subplot()


def _finite(*values):
    v = np.concatenate([np.atleast_1d(np.asarray(x, dtype=float)).ravel() for x in values]) if values else np.array([])
    return v[np.isfinite(v)]


def _robust_limits(values, pad=0.15, min_rel_span=0.08, floor=None):
    """Axis limits that hold ``values`` with a margin of ``pad`` of their span
    (the span at least ``min_rel_span`` of their size, so that a tight set
    of estimates is not magnified into noise)."""
    v = _finite(*values) if isinstance(values, (list, tuple)) else _finite(values)
    if v.size == 0:
        return None
    lo, hi = float(v.min()), float(v.max())
    span = hi - lo
    least = min_rel_span * max(abs(lo), abs(hi), 1.0)
    if span < least:
        mid = 0.5 * (lo + hi)
        lo, hi, span = mid - 0.5 * least, mid + 0.5 * least, least
    lo, hi = lo - pad * span, hi + pad * span
    if floor is not None:
        lo = max(lo, floor)
    return lo, hi


# --------------------------------------------------------------------------- the gap curve
def plot_gap_curve(curve, law=None, *, ax=None, law_alternative=None, target=None, known_dimension=None,
                   known_volume=1.0, title=None, residuals=None):
    """The gap curve on log-log axes with the fitted law.

    Parameters
    ----------
    curve : GapCurve or Analysis
        An :class:`~repgap.analysis.Analysis` brings its law, target and known answer.
    law : LawFit, optional
        Drawn with its bootstrap confidence band (:meth:`LawFit.predict_band`),
        extended to the target when one is given.
    target : (gap, n), optional
        A target gap and the size predicted for it, marked on the law.
    known_dimension, known_volume : optional
        Draw the asymptotic prediction :func:`repgap.predicted_gap`.
    residuals : bool, optional
        Add a lower panel with the curve relative to the law (``gap / law - 1``,
        in %), where the band, the ±2 s.e. bars and the random orders are
        resolved: on the log-log panel they are narrower than a marker.
        Only when the figure is made here (no ``ax``) and a law is given; the
        default there.
    """
    from .law import predicted_gap

    if hasattr(curve, "curve"):  # an Analysis
        a = curve
        curve, law, law_alternative = a.curve, a.law, a.law_alternative
        if np.isfinite(a.n_for_target):
            target = (a.target_gap, a.n_for_target)
        known_dimension = a.known_dimension if a.group is None else None
        known_volume = a.known_volume if a.known_volume is not None else 1.0
    if residuals is None:
        residuals = ax is None and law is not None
    if residuals and ax is None and law is not None:
        _require()
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6.6, 6.4), layout="constrained")
        gs = fig.add_gridspec(2, 1, height_ratios=[3, 1.35])
        ax = fig.add_subplot(gs[0])
        axr = fig.add_subplot(gs[1], sharex=ax)
    else:
        fig, ax = _axes(ax)
        axr = None
    n = np.asarray(curve.sizes, dtype=float)
    gaps, se = np.asarray(curve.gaps, dtype=float), np.asarray(curve.stderr, dtype=float)
    per = np.asarray(curve.gaps_per_repeat, dtype=float)
    R = per.shape[0]
    t_ok = target is not None and np.isfinite(target[1])
    # the random orders are drawn above the markers of their mean (hollow),
    # so that each line can be followed through them
    order_kw = dict(color=_ORDER_COLOR, lw=0.8, alpha=0.75, zorder=4)
    mean_kw = dict(fmt="o", ms=5, mfc="white", mec="C0", mew=1.3, color="C0", ecolor="C0", elinewidth=1.8,
                   capsize=3.5, capthick=1.5, zorder=3)
    for j, g in enumerate(per):
        ax.plot(n, g, label=f"each random order ({R})" if j == 0 else "_order", **{**order_kw, "lw": 0.7})
    ax.errorbar(n, gaps, yerr=2 * se, label=f"measured gap: mean of {curve.repeats} orders, ±2 s.e.", **mean_kw)
    grid = None
    if law is not None:
        hi_n = n.max()
        if t_ok:
            hi_n = max(hi_n, target[1] * 1.5)
        grid = np.geomspace(min(n.min(), law.sizes.min()), hi_n, 200)
        ax.plot(grid, law.predict(grid), color=_LAW_COLOR, lw=1.6, zorder=2,
                label=f"fitted law ({law.model_name}): d = {law.dimension:.2f}")
        band = law.predict_band(grid)
        if band is not None:
            ax.fill_between(grid, band[0], band[1], color=_LAW_COLOR, alpha=0.25, lw=0, zorder=1,
                            label=f"{int(round(100 * law.confidence))}% band of the fit")
        if law.sizes.min() > n.min():
            ax.axvline(law.sizes.min(), color="0.5", lw=0.9, ls=":", zorder=0,
                       label=f"smallest size in the fit (n = {law.sizes.min():,.0f})")
        if law_alternative is not None:
            ax.plot(grid, law_alternative.predict(grid), color="C1", lw=1.1, ls="--", zorder=2,
                    label=f"{law_alternative.model_name}: d = {law_alternative.dimension:.2f}")
    if known_dimension is not None:
        kgrid = np.geomspace(n.min(), n.max() * 1.5 if grid is None else grid.max(), 100)
        ax.plot(kgrid, predicted_gap(kgrid, known_dimension, volume=known_volume), color="k", lw=1.0, ls=":",
                zorder=2, label=f"asymptotic prediction, true d = {known_dimension}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylabel("Representation Gap (mean squared NN distance)")
    ax.set_title(title or "Representation Gap vs training-set size")
    ax.grid(True, which="both", alpha=0.25)
    if axr is not None:
        _gap_residuals(axr, n, gaps, se, per, law, law_alternative, known_dimension, known_volume, grid,
                       target if t_ok else None, order_kw, mean_kw)
        ax.tick_params(labelbottom=False)
        axr.set_xlabel("training-set size n")
    else:
        ax.set_xlabel("training-set size n")
    if t_ok:
        # one elbow line from the axes to the target and down: a single
        # legend entry for the mark and its guides
        g_t, n_t = target
        ax.autoscale_view()
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        ax.plot([x0, n_t, n_t], [g_t, g_t, y0], color="C2", lw=0.9, ls=":", marker="*", ms=13, markevery=[1],
                zorder=5, scalex=False, scaley=False, label=f"target gap {g_t:.3g} at n ≈ {n_t:,.0f}")
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
    ax.legend(fontsize=8, loc="lower left")
    return fig


def _gap_residuals(axr, n, gaps, se, per, law, alt, known_dimension, known_volume, grid, target, order_kw,
                   mean_kw):
    """The lower panel of :func:`plot_gap_curve`: the curve relative to the law, in %."""
    from .law import predicted_gap

    p = law.predict(n)
    rel = lambda y, base: 100.0 * (np.asarray(y, dtype=float) / base - 1.0)  # noqa: E731
    for g in per:
        axr.plot(n, rel(g, p), **{**order_kw, "label": "_order"})
    m, e = rel(gaps, p), 100.0 * 2 * se / p
    axr.errorbar(n, m, yerr=e, **{**mean_kw, "ms": 4.5, "label": "_mean"})
    pg = law.predict(grid)
    axr.axhline(0.0, color=_LAW_COLOR, lw=1.4, zorder=2)
    band = law.predict_band(grid)
    shown = [m - e, m + e, *(rel(g, p) for g in per)]
    if band is not None:
        axr.fill_between(grid, rel(band[0], pg), rel(band[1], pg), color=_LAW_COLOR, alpha=0.25, lw=0, zorder=1)
        inside = (grid >= n.min()) & (grid <= n.max())
        shown += [rel(band[0], pg)[inside], rel(band[1], pg)[inside]]
    if alt is not None:
        axr.plot(grid, rel(alt.predict(grid), pg), color="C1", lw=1.1, ls="--", zorder=2)
    if known_dimension is not None:
        axr.plot(grid, rel(predicted_gap(grid, known_dimension, volume=known_volume), pg), color="k", lw=1.0,
                 ls=":", zorder=2)
    if target is not None:
        axr.axvline(target[1], color="C2", lw=0.9, ls=":")
    lim = _robust_limits(shown, pad=0.2, min_rel_span=0.5)
    if lim is not None:
        axr.set_ylim(*lim)  # the other models may leave it: clipped
    axr.set_ylabel("gap / fitted law − 1 (%)")
    axr.grid(True, which="both", alpha=0.25)


# --------------------------------------------------------------------------- dimension vs scale
_SCALE_NAMES = {"gap": "gap curve: local slopes (95% CI)", "mle": "MLE at k = 2, 3, ...",
                "gride": "GRIDE at n1 = 1, 2, 4, ...", "corr": "correlation integral"}
_SCALE_STYLES = {"gap": ("C3", "o-"), "mle": ("C0", ".-"), "gride": ("C2", "s-"), "corr": ("C4", "-")}


def _gap_local_intervals(analysis):
    """``(scales, dimensions, (lo, hi))`` of the gap curve's local slopes with
    their bootstrap intervals (:attr:`repgap.regime.Regime.local_cis`), or None."""
    reg, curve, law = getattr(analysis, "regime", None), getattr(analysis, "curve", None), \
        getattr(analysis, "law", None)
    if reg is None or curve is None or law is None:
        return None
    keep = np.isin(np.asarray(curve.sizes, dtype=float), np.asarray(law.sizes, dtype=float))
    lg = np.log(np.asarray(curve.gaps, dtype=float)[keep])
    s = np.sqrt(np.exp(0.5 * (lg[1:] + lg[:-1])))
    d, ci = np.asarray(reg.local_dimensions, dtype=float), np.asarray(reg.local_cis, dtype=float)
    if s.shape != d.shape or ci.shape != (d.size, 2):
        return None
    return s, d, ci


def _second_neighbour_scale(analysis, scale):
    """The scale of TwoNN: the median distance to the second neighbour (the
    first scale of the MLE and GRIDE curves), else the nearest neighbour's."""
    for k in ("mle", "gride"):
        if k in scale and np.size(scale[k][0]):
            v = float(np.asarray(scale[k][0], dtype=float)[0])
            if np.isfinite(v) and v > 0:
                return v
    d = np.asarray(getattr(analysis, "train_nn_distances", []), dtype=float)
    d = d[np.isfinite(d) & (d > 0)]
    return float(np.median(d)) if d.size else float("nan")


def _corr_pieces(s, d, fit_range):
    """The correlation integral's local slope split into its fitted range and the
    rest: down to half its lower end (below, few pairs: noise), and up to
    the first maximum after it (beyond, the integral saturates at the
    diameter of the data and the slope falls to 0: not a dimension).
    Points with no pairs (slope <= 0) are dropped."""
    ok = np.isfinite(s) & np.isfinite(d) & (s > 0) & (d > 0)
    lo, hi = fit_range
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return ok, np.zeros_like(ok)
    fit = ok & (s >= lo) & (s <= hi)
    rest = ok & ~fit & (s >= lo / 2)  # further below, few pairs: noise
    above = np.flatnonzero(ok & (s > hi))
    if above.size:
        j = above[0]
        while j + 1 < s.size and ok[j + 1] and d[j + 1] >= d[j]:
            j += 1
        rest &= s <= s[j]
    # the lighter pieces start at the ends of the fitted range: the curve stays joined
    idx = np.flatnonzero(fit)
    if idx.size:
        for i, j in ((idx[0], idx[0] - 1), (idx[-1], idx[-1] + 1)):
            if 0 <= j < s.size and rest[j]:
                rest[i] = True
    return fit, rest


def _local_range(reg):
    """The range of the gap curve's local slopes: of their values, and of their intervals."""
    d = np.asarray(reg.local_dimensions, dtype=float)
    ci = np.asarray(reg.local_cis, dtype=float).reshape(-1, 2)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return None, None
    lo_ci, hi_ci = _finite(ci[:, 0]), ci[:, 1][~np.isnan(ci[:, 1])]
    return (float(d.min()), float(d.max())), (float(lo_ci.min()) if lo_ci.size else float(d.min()),
                                              float(hi_ci.max()) if hi_ci.size else float(d.max()))


def _headline_note(analysis):
    """The sentence for the figure when the headline is not read off the local
    slopes of the gap curve, else None: the curve is pre-asymptotic or
    extrapolated (:mod:`repgap.regime`), or the law's interval lies outside
    the range of the local slopes and their intervals."""
    reg = getattr(analysis, "regime", None)
    if reg is None:
        return None
    d = float(analysis.dimension)
    law = getattr(analysis, "law", None)
    law_ci = tuple(law.dimension_ci) if law is not None else tuple(analysis.dimension_ci)
    points, spread = _local_range(reg)
    where = ""
    if points is not None:
        side = "above" if d > points[1] else "below" if d < points[0] else None
        if side:
            where = f"the law's d = {d:.2f} lies {side} every local slope of the gap curve " \
                    f"({points[0]:.2f}–{points[1]:.2f})"
    if reg.regime == "pre-asymptotic":
        head = where or f"the law's d = {d:.2f} extrapolates"
        return (f"Pre-asymptotic: {head}; it extrapolates a finite-size model that the data do not determine, "
                f"so the interval spans the local slopes and both models.")
    if reg.regime == "extrapolated":
        head = where or f"the law's d = {d:.2f} extrapolates beyond the local slopes"
        return (f"Extrapolated: {head}; the upper half of the curve alone asks for the same "
                f"({reg.upper_dimension:.2f} [{reg.upper_ci[0]:.2f}, {reg.upper_ci[1]:.2f}]).")
    if spread is not None and (law_ci[0] > spread[1] or law_ci[1] < spread[0]):
        side = "above" if law_ci[0] > spread[1] else "below"
        return (f"The law's interval [{law_ci[0]:.2f}, {law_ci[1]:.2f}] lies {side} the local slopes of the gap "
                f"curve and their intervals ({spread[0]:.2f}–{spread[1]:.2f}).")
    return None


def plot_dimension_vs_scale(analysis, *, ax=None, title=None):
    """The intrinsic dimension as a function of scale (a plateau: a well-defined dimension).

    ``analysis`` is an :class:`~repgap.analysis.Analysis`, or a dict
    ``method -> (scales, dimensions)``.

    The y-axis holds every estimate with its interval (the gap law's, the
    point-process estimators', the true dimension when known) with a
    margin; the curves are clipped to it. The gap curve's local slopes are
    drawn with their bootstrap intervals, the correlation integral's local
    slope solid over its fitted range and lighter beside it (not beyond
    its saturation at the diameter of the data), and TwoNN as a point with
    its interval at its scale (the second-neighbour distance). When the
    headline is not read off the local slopes (a pre-asymptotic or
    extrapolated curve) a note says so.
    """
    is_analysis = hasattr(analysis, "scale")
    scale = analysis.scale if is_analysis else analysis
    est = getattr(analysis, "estimators", {}) if is_analysis else {}
    own = ax is None
    fig, ax = _axes(ax, size=(7.4, 6.0) if is_analysis else (6.4, 4.6))
    # the scale: from the estimates and their intervals (and the central part of
    # the gap curve's local slopes), never from the ends of a curve
    values = []
    for v in est.values():
        values += [v["dimension"], *v["ci"]]
    if hasattr(analysis, "dimension_ci"):
        values += [analysis.dimension, *analysis.dimension_ci]
    if getattr(analysis, "known_dimension", None) is not None:
        values.append(analysis.known_dimension)
    if values and "gap" in scale:
        # the central part of the gap curve's local slopes, whose reading the figure is about
        g = _finite(scale["gap"][1])
        if g.size:
            values += list(np.quantile(g, [0.1, 0.9]))
    if not values:  # a bare dict of curves: their central part sets it
        allv = _finite(*[d for _, d in scale.values()])
        allv = allv[allv > 0]
        if allv.size:
            values = list(np.quantile(allv, [0.1, 0.9]))
    ylim = _robust_limits(values, floor=0.0)
    big = (ylim[1] + 10 * (ylim[1] - ylim[0])) if ylim else 1e6
    local = _gap_local_intervals(analysis) if is_analysis else None
    seen = []  # scales of the points drawn inside the y-range: they set the x-range

    def saw(s, d):
        s, d = np.asarray(s, dtype=float), np.asarray(d, dtype=float)
        inside = np.isfinite(s) & (s > 0) & np.isfinite(d)
        if ylim is not None:
            inside &= (d >= ylim[0]) & (d <= ylim[1])
        seen.append(s[inside])

    for k, (s, d) in scale.items():
        s, d = np.asarray(s, dtype=float), np.asarray(d, dtype=float)
        ok = np.isfinite(s) & np.isfinite(d) & (s > 0)
        c, st = _SCALE_STYLES.get(k, ("C5", "-"))
        name = _SCALE_NAMES.get(k, k)
        if k == "gap" and local is None:
            name = "gap curve: local slopes"
        if k in est and k in ("mle", "gride", "corr"):
            p = est[k].get("params") or {}
            at = {"mle": f"k = {p.get('k1')}–{p.get('k2')}: " if "k1" in p else "",
                  "gride": f"n1 = {p.get('n1')}: " if "n1" in p else "", "corr": ""}[k]
            name += f" ({at}{est[k]['dimension']:.2f})"
        if k == "corr" and "corr" in est and "fit_range" in (est["corr"].get("params") or {}):
            fit, rest = _corr_pieces(s, d, tuple(est["corr"]["params"]["fit_range"]))
            saw(s[fit | rest], d[fit | rest])
            ax.plot(np.where(fit, s, np.nan), np.where(fit, d, np.nan), "-", color=c, lw=1.8, zorder=2,
                    label=name.replace("integral (", "integral, fitted range ("))
            if rest.any():
                ax.plot(np.where(rest, s, np.nan), np.where(rest, d, np.nan), "-", color=c, lw=1.0, alpha=0.4,
                        zorder=1, label="correlation integral, outside the fit")
            continue
        ms = {"o-": 4.5, "s-": 4.5, ".-": 3.5}.get(st, 4)
        saw(s[ok], d[ok])
        ax.plot(s[ok], d[ok], st, color=c, ms=ms, lw=1.2, zorder=3, label=name)
        if k == "gap" and local is not None:
            ls, ld, lci = local
            good = np.isfinite(ls) & np.isfinite(ld)
            lo = np.clip(np.nan_to_num(lci[:, 0], nan=-big, neginf=-big), -big, big)
            hi = np.clip(np.nan_to_num(lci[:, 1], nan=big, posinf=big), -big, big)
            ax.errorbar(ls[good], ld[good], yerr=[np.maximum(ld - lo, 0)[good], np.maximum(hi - ld, 0)[good]],
                        fmt="none", ecolor=c,
                        elinewidth=1.1, capsize=2.5, alpha=0.8, zorder=3, label="_gap local intervals")
    # TwoNN and its ball-calibrated form: points at the second-neighbour scale
    s2 = _second_neighbour_scale(analysis, scale) if is_analysis else float("nan")
    short = {"twonn": "TwoNN", "calibrated": "TwoNN, ball-calibrated"}
    # (drawn just left of that scale, clear of the curves' first points)
    for k, mk, c, dx in (("twonn", "D", "C1", 0.94), ("calibrated", "P", "C5", 0.87)):
        if k in est and np.isfinite(s2):
            v = est[k]
            lo, hi = v["ci"]
            yerr = [[max(v["dimension"] - lo, 0.0)], [max(hi - v["dimension"], 0.0) if np.isfinite(hi) else big]]
            saw([s2 * dx], [v["dimension"]])
            ax.errorbar([s2 * dx], [v["dimension"]], yerr=yerr, fmt=mk, ms=7, color=c, mec="k", mew=0.6,
                        elinewidth=1.8, capsize=4, capthick=1.5, zorder=6,
                        label=f"{short[k]}: {v['dimension']:.2f} [{lo:.2f}, {hi:.2f}]"
                        + (", conservative" if v.get("conservative") else ""))
    note = None
    if hasattr(analysis, "dimension_ci"):
        lo, hi = analysis.dimension_ci
        reg = getattr(analysis, "regime", None)
        pre = reg is not None and not reg.asymptotic
        label = f"gap-law interval [{lo:.2f}, {hi:.2f}]"
        if pre:
            # said where the reader looks for the headline: the band's own label
            label += ",\npre-asymptotic: spans the local slopes and both models"
        ax.axhspan(lo, hi, facecolor=_LAW_COLOR, alpha=0.13, lw=0, hatch="//" if pre else None,
                   edgecolor=(0.84, 0.15, 0.16, 0.35) if pre else "none", zorder=0, label=label)
        ax.axhline(analysis.dimension, color=_LAW_COLOR, lw=1.3, ls="--", zorder=2,
                   label=f"gap law: d = {analysis.dimension:.2f}")
        if analysis.known_dimension is not None:
            ax.axhline(analysis.known_dimension, color="k", ls=":", lw=1.2, zorder=2,
                       label=f"true dimension {analysis.known_dimension}")
        note = _headline_note(analysis)
    if ylim is not None:
        ax.set_ylim(*ylim)
    xs = _finite(*seen) if seen else np.array([])
    xs = xs[xs > 0]
    if xs.size:
        m = max(float(xs.max() / xs.min()), 1.5) ** 0.04  # a margin of 4% of the range, in log
        ax.set_xlim(xs.min() / m, xs.max() * m)
    _log_x(ax)
    ax.set_xlabel("scale (distance)")
    ax.set_ylabel("estimated intrinsic dimension")
    ax.set_title(title or "Intrinsic dimension across scales")
    ax.grid(True, which="both", alpha=0.25)
    if note:
        ax.text(0.015, 0.975, textwrap.fill(note, 70), transform=ax.transAxes, fontsize=7.5, va="top", ha="left",
                color="0.1", zorder=7, bbox=dict(boxstyle="round,pad=0.35", fc="white", ec=_LAW_COLOR, alpha=0.9))
    if own and is_analysis:
        # below the axes: the estimates fill the plot, the legend would hide them
        ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.11), ncol=2, frameon=False)
    else:
        ax.legend(fontsize=7.5, loc="lower right" if note else "best")
    return fig


def _minor_label(x, _pos, marks=(2, 5)):
    if x <= 0:
        return ""
    m = x / 10 ** np.floor(np.log10(x) + 1e-9)
    return f"{x:g}" if round(m) in marks and abs(m - round(m)) < 1e-6 else ""


def _log_x(ax):
    from matplotlib.ticker import FuncFormatter

    ax.set_xscale("log")

    def minor(x, pos):
        # minor ticks labelled at 2 and 5 (all of them collide on long log
        # ranges); at 2, 3 and 5 when less than a decade is shown
        lo, hi = sorted(ax.get_xlim())
        short = lo > 0 and hi / lo < 12
        return _minor_label(x, pos, (2, 3, 5) if short else (2, 5))

    # plain numbers
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(minor))


# --------------------------------------------------------------------------- distance histograms
def _frac(x):
    """Weights that make a histogram show the fraction of ``x`` in each bin (log bins
    have unequal widths, so a density would exaggerate the small distances)."""
    return np.full(np.shape(x), 1.0 / max(np.size(x), 1))


def _n_bins(*arrays, most=60, least=15):
    """Bins for histograms compared on one set of bins: about 2 sqrt(n) for the
    smallest sample (60 bins for 180 points is mostly noise)."""
    m = min(max(int(np.count_nonzero(np.asarray(a) > 0)), 1) for a in arrays)
    return int(np.clip(round(2 * np.sqrt(m)), least, most))


def _log_bins(*arrays, bins=60):
    x = np.concatenate([np.asarray(a, dtype=float).ravel() for a in arrays])
    x = x[np.isfinite(x) & (x > 0)]
    if x.size == 0:
        return np.linspace(0, 1, bins)
    if x.min() == x.max():
        return np.geomspace(x.min() / 1.5, x.max() * 1.5, bins)
    return np.geomspace(x.min(), x.max() * 1.0001, bins)


def _distance_hist(ax, x, bins, *, filled, color, label, short, zero_tol=0.0, zero_label="at distance 0",
                   slot=0, median_ls="--"):
    """One log-binned histogram of distances as fractions of all of ``x``, its
    median as a vertical line, and the points at distance 0 (which a log axis
    cannot show) as a hatched bar left of the first bin. Returns that bar's
    ``(left, right, height)``, or None."""
    x = np.asarray(x, dtype=float)
    pos = x > zero_tol
    kw = dict(histtype="stepfilled", alpha=0.35) if filled else dict(histtype="step", lw=1.6)
    ax.hist(x[pos], bins=bins, weights=_frac(x)[pos], color=color, label=label, **kw)
    if x.size:
        med = float(np.median(x))
        ax.axvline(med, color=color, lw=1.2, ls=median_ls, label=f"median, {short}: {med:.3g}")
    n0 = int(np.count_nonzero(~pos))
    if n0 and len(bins) > 1 and bins[0] > 0:
        q = bins[1] / bins[0]
        right = bins[0] / q ** (1 + 1.2 * slot)
        left = right / q
        h = n0 / max(x.size, 1)
        ax.bar([left], [h], width=[right - left], align="edge", color=color, alpha=0.55, hatch="xx",
               edgecolor=color, lw=0.8, label=f"{zero_label}: {n0} (hatched bar, left)")
        return left, right, h
    return None


def _zero_note(ax, bars):
    """Says "d = 0" once over the bars of :func:`_distance_hist`."""
    bars = [b for b in bars if b is not None]
    if bars:
        x = np.sqrt(min(b[0] for b in bars) * max(b[1] for b in bars))
        ax.annotate("d = 0", (x, max(b[2] for b in bars)), xytext=(0, 3), textcoords="offset points",
                    ha="center", va="bottom", fontsize=7, color="0.2")


def plot_nn_distances(analysis, *, ax=None, title=None):
    """Histograms of nearest-neighbour distances: held-out points to the training set,
    and training points to the other training points (with their medians, and
    the points at distance 0, the duplicates, as a bar at the left)."""
    fig, ax = _axes(ax)
    a, b = np.asarray(analysis.test_nn_distances), np.asarray(analysis.train_nn_distances)
    bins = _log_bins(a, b, bins=_n_bins(a, b) + 1)
    tol = analysis.duplicates["tolerance"]
    z1 = _distance_hist(ax, b, bins, filled=True, color="C0", zero_tol=tol, slot=1, short="training",
                        label=f"training point → other training points (n = {b.size:,})",
                        zero_label="training points with a duplicate")
    z2 = _distance_hist(ax, a, bins, filled=False, color="C3", zero_tol=tol, short="held-out", median_ls=":",
                        label=f"held-out point → training set (n = {a.size:,})",
                        zero_label="held-out points at distance 0 (duplicates)")
    _zero_note(ax, [z1, z2])
    _log_x(ax)
    ax.set_xlabel("distance to the nearest neighbour")
    ax.set_ylabel("fraction of points per bin (log-spaced bins)")
    ax.set_title(title or "Nearest-neighbour distances")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.3)  # room for the legend
    return fig


def _generated_vs_heldout(ax, d, td):
    """Histograms of the generated samples' (filled) and held-out points'
    (outline) distances to the training set, on shared log-spaced bins:
    ``(bins, the _distance_hist results)``."""
    arrays = [d] + ([td] if td is not None else [])
    lb = _log_bins(*arrays, bins=_n_bins(*arrays) + 1)
    zs = [_distance_hist(ax, d, lb, filled=True, color="C3", label=f"generated (n = {d.size:,})",
                         short="generated", zero_label="exact copies", slot=1 if td is not None else 0)]
    if td is not None:
        zs.append(_distance_hist(ax, td, lb, filled=False, color="C0", label=f"held-out real (n = {td.size:,})",
                                 short="held-out", median_ls=":", zero_label="held-out items in the training set"))
    return lb, zs


def plot_memorization(report, *, title=None):
    """Generated samples against held-out data: the ratio ``d1/d2`` with the
    memorization threshold, and the distance to the nearest training item."""
    _require()
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    bins = np.linspace(0, 1, 51)
    ax1.axvspan(0, report.threshold, color="0.5", alpha=0.1, lw=0, label="memorized region")
    ax1.hist(report.ratios, bins=bins, density=True, histtype="stepfilled", alpha=0.4, color="C3",
             label=f"generated ({100 * report.fraction_memorized:.1f}% memorized)")
    if report.test_ratios is not None:
        ax1.hist(report.test_ratios, bins=bins, density=True, histtype="step", lw=1.6, color="C0",
                 label=f"held-out real ({100 * report.test_fraction_memorized:.1f}% below the threshold)")
    ax1.axvline(report.threshold, color="k", ls="--", lw=1, label=f"threshold d1/d2 = {report.threshold:.3g}")
    ax1.set_xlim(0, 1)
    ax1.set_xlabel("d1 / d2 (nearest / second-nearest training item)")
    ax1.set_ylabel("density")
    ax1.set_title("Memorization criterion (Gu et al. 2023)")
    ax1.legend(fontsize=8, loc="upper left")
    ax1.set_ylim(0, ax1.get_ylim()[1] * 1.3)
    d = np.asarray(report.distances, dtype=float)
    td = None if report.test_distances is None else np.asarray(report.test_distances, dtype=float)
    _, zs = _generated_vs_heldout(ax2, d, td)
    _zero_note(ax2, zs)
    _log_x(ax2)
    ax2.set_xlabel("distance to the nearest training item")
    ax2.set_ylabel("fraction of samples per bin (log-spaced bins)")
    ax2.set_title("Nearest training item")
    ax2.legend(fontsize=8, loc="upper left", title_fontsize=8, alignment="left",
               title=None if td is None else f"one-sided Mann-Whitney p = {report.p_value:.3g}")
    ax2.set_ylim(0, ax2.get_ylim()[1] * 1.45)
    if title:
        fig.suptitle(title)
    return fig


def plot_local_dimension(analysis, *, title=None, most_points=20000):
    """The local (per-point) intrinsic dimension: its distribution per estimator, and where it varies.

    Left: histograms of the local dimension of the training points
    (:attr:`repgap.analysis.Analysis.local_dimension`), with the global
    estimates as vertical lines. Right: the training points on their first
    two principal axes, coloured by the first local estimator (TwoNN when
    present; at most ``most_points`` points, a fixed random subset).
    """
    _require()
    from matplotlib.figure import Figure

    loc = analysis.local_dimension
    if not loc:
        raise ValueError("the analysis has no local dimension (analyze(..., local_neighbors=0) or no TwoNN, MLE or "
                         "GRIDE in methods)")
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    vals = [np.asarray(v, dtype=float) for v in loc.values()]
    fin = np.concatenate([v[np.isfinite(v)] for v in vals])
    lo, hi = _robust_limits([np.quantile(fin, 0.005), np.quantile(fin, 0.995)], pad=0.05, floor=0.0)
    bins = np.linspace(lo, hi, 61)
    for j, (name, v) in enumerate(loc.items()):
        c = f"C{j}"
        label = name if name != "gride" else "gride (n1 = 4)"
        ax1.hist(v[np.isfinite(v)], bins=bins, histtype="step", lw=1.6, color=c, density=True,
                 label=f"{label}: median {np.nanmedian(v):.2f}")
        g = analysis.estimators.get(name)
        if g is not None and name != "gride":
            ax1.axvline(g["dimension"], color=c, ls=":", lw=1)
    ax1.set_xlim(lo, hi)
    ax1.set_xlabel(f"local intrinsic dimension ({analysis.local_neighbors} neighbours)")
    ax1.set_ylabel("density of points")
    ax1.set_title("Local dimension (dotted: the global estimates)")
    ax1.legend(fontsize=8, loc="upper right")
    name, v = next(iter(loc.items()))
    P = np.asarray(analysis.projection)
    keep = np.arange(P.shape[0])
    if keep.size > most_points:
        keep = np.sort(np.random.default_rng(0).choice(keep.size, most_points, replace=False))
    vv = v[keep]
    ok = np.isfinite(vv)
    sc = ax2.scatter(P[keep][ok, 0], P[keep][ok, 1], c=np.clip(vv[ok], lo, hi), s=4, cmap="viridis",
                     rasterized=True, linewidths=0)
    fig.colorbar(sc, ax=ax2, label=f"local dimension ({name})")
    ax2.set_xlabel("first principal axis")
    ax2.set_ylabel("second principal axis")
    ax2.set_title(f"Training points ({keep.size:,} of {P.shape[0]:,} shown)" if keep.size < P.shape[0]
                  else "Training points")
    if title:
        fig.suptitle(title)
    return fig


# --------------------------------------------------------------------------- evaluation of generated samples
#: The bars of :func:`plot_evaluation`: name, label, group (colour).
_EVAL_BARS = (("precision", "precision", "fidelity"), ("density", "density", "fidelity"),
              ("recall", "recall", "diversity"), ("coverage", "coverage", "diversity"),
              ("authenticity", "authenticity", "novelty"), ("memorized", "memorized (d1/d2 < {r})", "copying"))
_EVAL_GROUPS = {"fidelity": ("C0", "fidelity (Kynkäänniemi et al. 2019; Naeem et al. 2020)"),
                "diversity": ("C2", "diversity (Kynkäänniemi et al. 2019; Naeem et al. 2020)"),
                "novelty": ("C4", "novelty (Alaa et al. 2022)"),
                "copying": ("C3", "memorization (Gu et al. 2023)")}


def _ratio_text(r):
    return "1/3" if abs(r - 1 / 3) < 1e-12 else f"{r:.3g}"


def plot_evaluation(ev, *, ax=None, title=None):
    """The metrics of an :class:`~repgap.evaluation.Evaluation` as horizontal
    bars with their intervals: precision, density, recall, coverage,
    authenticity and the memorized fraction. Density is a mean ball count
    over ``k`` and may exceed 1: the axis extends past 1 to hold it."""
    from matplotlib.patches import Patch

    fig, ax = _axes(ax, size=(7.6, 5.2))
    names = [b for b in _EVAL_BARS if getattr(ev, b[0], None) is not None]
    y = np.arange(len(names))[::-1]
    his, texts = [1.0], []
    for yi, (name, label, grp) in zip(y, names):
        m = getattr(ev, name)
        c = _EVAL_GROUPS[grp][0]
        ax.barh([yi], [m.value], height=0.62, color=c, alpha=0.75, edgecolor=c, zorder=2)
        lo, hi = m.low, m.high
        if np.isfinite(lo) and np.isfinite(hi):
            ax.errorbar([m.value], [yi], xerr=[[max(m.value - lo, 0.0)], [max(hi - m.value, 0.0)]], fmt="none",
                        ecolor="k", elinewidth=1.3, capsize=4, capthick=1.2, zorder=3)
            text = f"{m.value:.3f}  [{lo:.3f}, {hi:.3f}]"
        else:
            hi = m.value
            text = f"{m.value:.3f}"
        his.append(hi if np.isfinite(hi) else m.value)
        texts.append((yi, text))
    right = max(_finite(his).max(), 1.0) * 1.04
    for yi, text in texts:  # one column right of every bar and interval
        ax.text(right, yi, text, va="center", ha="left", fontsize=8.5, color="0.1", zorder=4,
                fontfamily="monospace")
    ax.set_xlim(0, right * 1.36)
    ax.set_xticks([t for t in ax.get_xticks() if 0 <= t <= right])  # none under the numbers
    ax.axvline(1.0, color="0.35", lw=1.0, ls=":", zorder=1)
    ax.set_yticks(y, [label.format(r=_ratio_text(ev.memorization_ratio)) for _, label, _ in names])
    ax.set_ylim(y.min() - 0.6, y.max() + 0.6)
    ax.set_xlabel("fraction (density: mean number of training k-NN balls holding a sample, / k)")
    ax.grid(True, axis="x", alpha=0.25)
    handles = [Patch(color=_EVAL_GROUPS[g][0], alpha=0.75, label=_EVAL_GROUPS[g][1])
               for g in dict.fromkeys(grp for _, _, grp in names)]
    from matplotlib.lines import Line2D

    if any(np.isfinite(getattr(ev, n).low) for n, _, _ in names):
        handles.append(Line2D([], [], color="k", lw=1.3, marker="|", ms=8,
                              label=f"{100 * ev.level:g}% bootstrap interval"))
    handles.append(Line2D([], [], color="0.35", lw=1.0, ls=":", label="1 (density of matching data ≈ 1)"))
    # below the axes: inside, it would hide bars or numbers
    ax.legend(handles=handles, fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2,
              frameon=False)
    sub = f"{ev.n_generated:,} generated vs {ev.n_train:,} training items, k = {ev.k}"
    if ev.group != "none":
        sub += f", modulo {ev.group}"
    if ev.copying is not None and np.isfinite(ev.copying.statistic):
        sub += f"; C_T = {ev.copying.statistic:.3g} (p = {ev.copying.p_value:.2g})"
    ax.set_title((title or "Generated samples against the training set") + "\n" + sub, fontsize=10)
    return fig


def plot_evaluation_distances(ev, *, title=None, most_points=20000):
    """The distances of an :class:`~repgap.evaluation.Evaluation` to the
    closest training record.

    Left: histograms (log-spaced bins) of the distance from each generated
    sample, and from each held-out point when there are some, to its nearest
    training item, with their medians; the memorized samples (``d1/d2 <
    ratio``) as a line of their own. Right: each sample's nearest ``d1``
    against its second-nearest ``d2`` distance, with the memorized side of
    ``d1 = ratio * d2`` shaded (at most ``most_points`` samples, a fixed
    random subset).
    """
    _require()
    from matplotlib.figure import Figure

    from .diffusion import _ratios

    fig = Figure(figsize=(11, 4.6), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    d1 = np.asarray(ev.distances, dtype=float)
    d2 = np.asarray(ev.second_distances, dtype=float)
    td = None if ev.test_distances is None else np.asarray(ev.test_distances, dtype=float)
    mem = _ratios(np.column_stack([d1, d2])) < ev.memorization_ratio
    r = ev.memorization_ratio
    lb, zs = _generated_vs_heldout(ax1, d1, td)
    pos = mem & (d1 > 0)
    if np.any(mem):
        ax1.hist(d1[pos], bins=lb, weights=_frac(d1)[pos], histtype="step", lw=1.4, color="k",
                 label=f"of which memorized, d1/d2 < {_ratio_text(r)} ({100 * mem.mean():.1f}%)")
    _zero_note(ax1, zs)
    _log_x(ax1)
    lo1, hi1 = ax1.get_xlim()
    if lo1 > 0 and hi1 / lo1 > 2e3:  # over many decades the labels at 2 and 5 collide
        from matplotlib.ticker import NullFormatter

        ax1.xaxis.set_minor_formatter(NullFormatter())
    ax1.set_xlabel("distance to the closest training record")
    ax1.set_ylabel("fraction of points per bin (log-spaced bins)")
    ax1.set_title("Distance to the closest record")
    lines = []
    if ev.copying_p_value is not None:
        lines.append(f"one-sided Mann-Whitney p = {ev.copying_p_value:.3g}")
    if ev.gap_ratio is not None and np.isfinite(ev.gap_ratio.value):
        g = ev.gap_ratio
        lines.append(f"mean d² generated / held-out = {g.value:.3g}"
                     + (f" [{g.low:.3g}, {g.high:.3g}]" if np.isfinite(g.low) and np.isfinite(g.high) else ""))
    ax1.legend(fontsize=7.5, loc="upper left", title_fontsize=7.5, alignment="left",
               title="\n".join(lines) if lines else None)
    ax1.set_ylim(0, ax1.get_ylim()[1] * (1.6 if td is not None else 1.4))
    # d1 against d2: the memorized side of the line d1 = r d2
    keep = np.arange(d1.size)
    if keep.size > most_points:
        keep = np.sort(np.random.default_rng(0).choice(keep.size, most_points, replace=False))
    a, b, mm = d1[keep], d2[keep], mem[keep]
    ok = np.isfinite(b) & (b > 0)
    posd = np.concatenate([a[ok & (a > 0)], b[ok]])
    lo_v, hi_v = (float(posd.min()), float(posd.max())) if posd.size else (1e-3, 1.0)
    floor = lo_v / 2.5
    lo_ax, hi_ax = floor / 1.6, hi_v * 1.6
    zero = ok & (a <= 0)
    s = 9 if keep.size < 3000 else 4
    for sel, c, lab in ((ok & ~mm & ~zero, "C0", "not memorized"), (ok & mm & ~zero, "C3", "memorized")):
        if np.any(sel):
            ax2.scatter(a[sel], b[sel], s=s, color=c, alpha=0.55, linewidths=0, rasterized=True,
                        label=f"{lab} ({int(np.count_nonzero(sel)):,})")
    if np.any(zero):
        ax2.scatter(np.full(int(zero.sum()), floor), b[zero], s=22, marker="x", color="C3", lw=1,
                    label=f"exact copies, d1 = 0 ({int(zero.sum()):,}; drawn at the left)")
    grid = np.geomspace(lo_ax, hi_ax, 50)
    ax2.plot(grid, grid / r, color="k", lw=1.1, ls="--", label=f"d1 = {_ratio_text(r)} · d2 (threshold)")
    ax2.fill_between(grid, grid / r, hi_ax, color="C3", alpha=0.08, lw=0, label="memorized side (d1/d2 < ratio)")
    ax2.plot(grid, grid, color="0.5", lw=0.9, ls=":", label="d1 = d2")
    ax2.set_xlim(lo_ax, hi_ax)
    ax2.set_ylim(lo_ax, hi_ax)
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("d1: distance to the nearest training item")
    ax2.set_ylabel("d2: distance to the second nearest")
    shown = f" ({keep.size:,} of {d1.size:,} shown)" if keep.size < d1.size else ""
    ax2.set_title(f"Memorization criterion (Gu et al. 2023){shown}")
    ax2.grid(True, which="major", alpha=0.25)
    ax2.legend(fontsize=7.5, loc="lower right", markerscale=1.5)
    if title:
        fig.suptitle(title)
    return fig


def save_evaluation_figures(ev, out_dir, formats=("png",), dpi=130):
    """Write the figures of ``repgap evaluate`` (``evaluation_metrics`` and
    ``evaluation_distances``); returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    figs = {"evaluation_metrics": plot_evaluation(ev), "evaluation_distances": plot_evaluation_distances(ev)}
    return _save(figs, out_dir, formats, dpi)


def save_report_figures(analysis, out_dir, formats=("png",), dpi=130):
    """Write the figures of an :class:`~repgap.analysis.Analysis`; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    figs = {"gap_curve": plot_gap_curve(analysis), "dimension_vs_scale": plot_dimension_vs_scale(analysis),
            "nn_distances": plot_nn_distances(analysis)}
    if getattr(analysis, "local_dimension", None):
        figs["local_dimension"] = plot_local_dimension(analysis)
    return _save(figs, out_dir, formats, dpi)


def _save(figs, out_dir, formats, dpi):
    paths = []
    for name, fig in figs.items():
        for fmt in formats:
            p = os.path.join(out_dir, f"{name}.{fmt}")
            fig.savefig(p, dpi=dpi)
            paths.append(p)
    return paths
