"""Figures: the gap curve and its law, the dimension across scales, neighbour distances.

matplotlib is an optional dependency (``pip install 'repgap[plot]'``).
Each function draws on a given ``ax`` or makes its own
:class:`matplotlib.figure.Figure` (without pyplot, so it works headless
and never changes the user's backend), and returns the figure.
:func:`save_report_figures` writes the figures of ``repgap analyze``.
"""
import os

import numpy as np


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


def plot_gap_curve(curve, law=None, *, ax=None, law_alternative=None, target=None, known_dimension=None,
                   known_volume=1.0, title=None):
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
    """
    from .law import predicted_gap

    if hasattr(curve, "curve"):  # an Analysis
        a = curve
        curve, law, law_alternative = a.curve, a.law, a.law_alternative
        if np.isfinite(a.n_for_target):
            target = (a.target_gap, a.n_for_target)
        known_dimension = a.known_dimension if a.group is None else None
        known_volume = a.known_volume if a.known_volume is not None else 1.0
    fig, ax = _axes(ax)
    n = np.asarray(curve.sizes, dtype=float)
    for j, g in enumerate(curve.gaps_per_repeat):
        ax.plot(n, g, color="0.65", lw=0.8, alpha=0.8, label="each random order" if j == 0 else None, zorder=1)
    ax.errorbar(n, curve.gaps, yerr=2 * np.asarray(curve.stderr), fmt="o", ms=4, color="C0", capsize=2,
                label=f"measured gap (mean of {curve.repeats}, ±2 s.e.)", zorder=3)
    if law is not None:
        hi_n = n.max()
        if target is not None and np.isfinite(target[1]):
            hi_n = max(hi_n, target[1] * 1.5)
        grid = np.geomspace(min(n.min(), law.sizes.min()), hi_n, 200)
        ax.plot(grid, law.predict(grid), color="C3", lw=1.8, zorder=2,
                label=f"fitted law ({law.model_name}): d = {law.dimension:.2f}")
        band = law.predict_band(grid)
        if band is not None:
            ax.fill_between(grid, band[0], band[1], color="C3", alpha=0.18, lw=0,
                            label=f"{int(round(100 * law.confidence))}% band of the fit")
        ax.axvline(law.sizes.min(), color="0.8", lw=0.8, ls=":", zorder=0)
        if law_alternative is not None:
            ax.plot(grid, law_alternative.predict(grid), color="C1", lw=1.0, ls="--", zorder=2,
                    label=f"{law_alternative.model_name}: d = {law_alternative.dimension:.2f}")
    if known_dimension is not None:
        grid = np.geomspace(n.min(), ax.get_xlim()[1] if law is None else grid.max(), 100)
        ax.plot(grid, predicted_gap(grid, known_dimension, volume=known_volume), color="k", lw=1.0, ls=":",
                label=f"asymptotic prediction, true d = {known_dimension}")
    if target is not None and np.isfinite(target[1]):
        g_t, n_t = target
        ax.plot([n_t], [g_t], marker="*", ms=13, color="C2", zorder=4, ls="none",
                label=f"target gap {g_t:.3g} at n ≈ {n_t:,.0f}")
        ax.axhline(g_t, color="C2", lw=0.7, ls=":")
        ax.axvline(n_t, color="C2", lw=0.7, ls=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training-set size n")
    ax.set_ylabel("Representation Gap (mean squared NN distance)")
    ax.set_title(title or "Representation Gap vs training-set size")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="lower left")
    return fig


def plot_dimension_vs_scale(analysis, *, ax=None, title=None):
    """The intrinsic dimension as a function of scale (a plateau: a well-defined dimension).

    ``analysis`` is an :class:`~repgap.analysis.Analysis`, or a dict
    ``method -> (scales, dimensions)``.
    """
    scale = analysis.scale if hasattr(analysis, "scale") else analysis
    fig, ax = _axes(ax)
    names = {"gap": "gap curve (local slope)", "mle": "MLE at k = 2, 3, ...", "gride": "GRIDE at n1 = 1, 2, 4, ...",
             "corr": "correlation integral (local slope)"}
    styles = {"gap": ("C3", "o-"), "mle": ("C0", ".-"), "gride": ("C2", "s-"), "corr": ("C4", "-")}
    for k, (s, d) in scale.items():
        s, d = np.asarray(s, dtype=float), np.asarray(d, dtype=float)
        ok = np.isfinite(s) & np.isfinite(d) & (s > 0)
        c, st = styles.get(k, ("C5", "-"))
        ax.plot(s[ok], d[ok], st, color=c, ms=4, lw=1.2, label=names.get(k, k))
    if hasattr(analysis, "dimension_ci"):
        lo, hi = analysis.dimension_ci
        reg = getattr(analysis, "regime", None)
        pre = reg is not None and not reg.asymptotic
        label = f"gap-law interval [{lo:.2f}, {hi:.2f}]"
        if pre:
            # said where the reader looks for the headline: the band's own label
            label += "\npre-asymptotic: the law extrapolates; the band\nspans the local slopes and both models"
        ax.axhspan(lo, hi, color="C3", alpha=0.12 if not pre else 0.08, lw=0, hatch="//" if pre else None,
                   label=label)
        if analysis.known_dimension is not None:
            ax.axhline(analysis.known_dimension, color="k", ls=":", lw=1.0,
                       label=f"true dimension {analysis.known_dimension}")
        top = max(2.5 * max(hi, 1.0), (analysis.known_dimension or 0) * 2)
        ax.set_ylim(0, top)
    _log_x(ax)
    ax.set_xlabel("scale (distance)")
    ax.set_ylabel("estimated intrinsic dimension")
    ax.set_title(title or "Intrinsic dimension across scales")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8)
    return fig


def _minor_label(x, _pos):
    if x <= 0:
        return ""
    m = x / 10 ** np.floor(np.log10(x) + 1e-9)
    return f"{x:g}" if round(m) in (2, 5) and abs(m - round(m)) < 1e-6 else ""


def _log_x(ax):
    from matplotlib.ticker import FuncFormatter

    ax.set_xscale("log")
    # plain numbers; minor ticks labelled at 2 and 5 only (all of them collide on short log ranges)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(_minor_label))


def _frac(x):
    """Weights that make a histogram show the fraction of ``x`` in each bin (log bins
    have unequal widths, so a density would exaggerate the small distances)."""
    return np.full(np.shape(x), 1.0 / max(np.size(x), 1))


def _log_bins(*arrays, bins=60):
    x = np.concatenate([np.asarray(a, dtype=float).ravel() for a in arrays])
    x = x[np.isfinite(x) & (x > 0)]
    if x.size == 0:
        return np.linspace(0, 1, bins)
    return np.geomspace(x.min(), x.max() * 1.0001, bins)


def plot_nn_distances(analysis, *, ax=None, title=None):
    """Histograms of nearest-neighbour distances: held-out points to the training set,
    and training points to the other training points."""
    fig, ax = _axes(ax)
    a, b = analysis.test_nn_distances, analysis.train_nn_distances
    bins = _log_bins(a, b)
    ax.hist(b[b > 0], bins=bins, weights=_frac(b)[b > 0], histtype="stepfilled", alpha=0.35, color="C0",
            label=f"training point -> other training points (n = {b.size:,})")
    ax.hist(a[a > 0], bins=bins, weights=_frac(a)[a > 0], histtype="step", lw=1.6, color="C3",
            label=f"held-out point -> training set (n = {a.size:,})")
    zeros = int(np.count_nonzero(a <= analysis.duplicates["tolerance"]))
    if zeros:
        ax.text(0.02, 0.95, f"{zeros} held-out points at distance 0 (duplicates)", transform=ax.transAxes,
                fontsize=8, va="top", color="C3")
    _log_x(ax)
    ax.set_xlabel("distance to the nearest neighbour")
    ax.set_ylabel("fraction of points per bin (log-spaced bins)")
    ax.set_title(title or "Nearest-neighbour distances")
    ax.legend(fontsize=8)
    return fig


def plot_memorization(report, *, title=None):
    """Generated samples against held-out data: the ratio ``d1/d2`` with the
    memorisation threshold, and the distance to the nearest training item."""
    _require()
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.2), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    bins = np.linspace(0, 1, 51)
    ax1.hist(report.ratios, bins=bins, density=True, histtype="stepfilled", alpha=0.4, color="C3",
             label=f"generated ({100 * report.fraction_memorized:.1f}% memorised)")
    if report.test_ratios is not None:
        ax1.hist(report.test_ratios, bins=bins, density=True, histtype="step", lw=1.6, color="C0",
                 label=f"held-out real ({100 * report.test_fraction_memorized:.1f}% below threshold)")
    ax1.axvline(report.threshold, color="k", ls="--", lw=1, label=f"threshold d1/d2 = {report.threshold:.3g}")
    ax1.set_xlabel("d1 / d2 (nearest / second-nearest training item)")
    ax1.set_ylabel("density")
    ax1.set_title("Memorisation criterion (Gu et al. 2023)")
    ax1.legend(fontsize=8)
    arrays = [report.distances] + ([report.test_distances] if report.test_distances is not None else [])
    lb = _log_bins(*arrays)
    d = report.distances
    ax2.hist(d[d > 0], bins=lb, weights=_frac(d)[d > 0], histtype="stepfilled", alpha=0.4, color="C3",
             label="generated")
    if report.test_distances is not None:
        td = report.test_distances
        ax2.hist(td[td > 0], bins=lb, weights=_frac(td)[td > 0], histtype="step", lw=1.6, color="C0",
                 label="held-out real")
        ax2.text(0.02, 0.95, f"one-sided Mann-Whitney p = {report.p_value:.3g}", transform=ax2.transAxes,
                 fontsize=8, va="top")
    n0 = int(np.count_nonzero(d == 0))
    if n0:
        ax2.text(0.02, 0.88, f"{n0} generated samples are exact copies", transform=ax2.transAxes, fontsize=8,
                 va="top", color="C3")
    _log_x(ax2)
    ax2.set_xlabel("distance to the nearest training item")
    ax2.set_ylabel("fraction of samples per bin (log-spaced bins)")
    ax2.set_title("Nearest training item")
    ax2.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def save_report_figures(analysis, out_dir, formats=("png",), dpi=130):
    """Write the figures of an :class:`~repgap.analysis.Analysis`; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    figs = {"gap_curve": plot_gap_curve(analysis), "dimension_vs_scale": plot_dimension_vs_scale(analysis),
            "nn_distances": plot_nn_distances(analysis)}
    return _save(figs, out_dir, formats, dpi)


def _save(figs, out_dir, formats, dpi):
    paths = []
    for name, fig in figs.items():
        for fmt in formats:
            p = os.path.join(out_dir, f"{name}.{fmt}")
            fig.savefig(p, dpi=dpi)
            paths.append(p)
    return paths
