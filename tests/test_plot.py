"""The figures (issue #15, item 6): scales chosen from the estimates, every line
named in its legend, the random orders visible, TwoNN drawn, the regime said."""
import dataclasses
import warnings

import numpy as np
import pytest

pytest.importorskip("matplotlib")
import matplotlib  # noqa: E402

matplotlib.use("Agg")
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402

import repgap  # noqa: E402
from repgap import datasets  # noqa: E402
from repgap.plot import (plot_dimension_vs_scale, plot_gap_curve, plot_memorization,  # noqa: E402
                         plot_nn_distances, save_report_figures)


@pytest.fixture(scope="module")
def analysis():
    X = datasets.flat_torus(3000, 3, random_state=0).X
    X = np.concatenate([X, X[:20]])  # a few duplicates, for the histogram's bar at 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return repgap.analyze(X, repeats=3, n_boot=30, methods=("twonn", "mle", "gride", "corr"), progress=False,
                              random_state=0, known_dimension=3, known_volume=1.0)


def _legend_texts(ax):
    leg = ax.get_legend()
    assert leg is not None
    return [t.get_text() for t in leg.get_texts()]


def _assert_every_line_named(ax, allowed_unnamed=("_order",)):
    """Every Line2D on ``ax`` is in its legend: by its own label, or as a part
    of an error-bar container that is, or as another random order of the one that is."""
    texts = _legend_texts(ax)
    in_containers = set()
    for c in ax.containers:
        if isinstance(c, ErrorbarContainer):
            data, caps, _ = c.lines
            in_containers.update(id(x) for x in ([data] if data is not None else []) + list(caps))
    for line in ax.lines:
        label = line.get_label()
        if id(line) in in_containers or label in allowed_unnamed:
            continue
        assert not label.startswith("_"), f"a line without a legend entry: {label!r} {line.get_xydata()[:2]}"
        assert label in texts, label
    for art in list(ax.collections) + list(ax.patches) + list(ax.containers):
        label = art.get_label()
        if label and not label.startswith("_") and not isinstance(art, LineCollection):
            assert label in texts, label


# --------------------------------------------------------------------------- dimension vs scale
def _intervals(a):
    vals = [a.dimension, *a.dimension_ci, a.known_dimension]
    for v in a.estimators.values():
        vals += [v["dimension"], *v["ci"]]
    return np.array([v for v in vals if np.isfinite(v)])


def test_dimension_vs_scale_ylim_holds_every_interval_and_stays_close(analysis):
    ax = plot_dimension_vs_scale(analysis).axes[0]
    lo, hi = ax.get_ylim()
    v = _intervals(analysis)
    assert lo <= v.min() and hi >= v.max()
    span = v.max() - v.min()
    # the old figure ran from 0 to 2.5 x the headline: 0 to 7.5 here, for estimates within ~0.5
    assert lo >= v.min() - 0.6 * span and hi <= v.max() + 0.6 * span
    assert hi - lo <= 2.5 * span


def test_dimension_vs_scale_draws_twonn_with_its_interval(analysis):
    ax = plot_dimension_vs_scale(analysis).axes[0]
    texts = _legend_texts(ax)
    tw = analysis.estimators["twonn"]
    assert any(t.startswith("TwoNN") and f"{tw['dimension']:.2f}" in t for t in texts)
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer) and c.get_label().startswith("TwoNN")]
    assert len(bars) == 1
    (seg,) = bars[0].lines[2][0].get_segments()
    assert seg[0][1] == pytest.approx(tw["ci"][0]) and seg[1][1] == pytest.approx(tw["ci"][1])
    # at its scale: the median distance to the second neighbour, where MLE and GRIDE start
    x = bars[0].lines[0].get_xdata()[0]
    assert 0.8 < x / analysis.scale["mle"][0][0] <= 1.0


def test_dimension_vs_scale_names_every_line(analysis):
    _assert_every_line_named(plot_dimension_vs_scale(analysis).axes[0])


def test_correlation_curve_loses_its_saturation_tail(analysis):
    ax = plot_dimension_vs_scale(analysis).axes[0]
    s, d = map(np.asarray, analysis.scale["corr"])
    corr = [ln for ln in ax.lines if ln.get_label().startswith("correlation integral")]
    assert corr
    xs = np.concatenate([np.asarray(ln.get_xdata(), float)[np.isfinite(ln.get_ydata())] for ln in corr])
    ys = np.concatenate([np.asarray(ln.get_ydata(), float)[np.isfinite(ln.get_ydata())] for ln in corr])
    assert ys.min() > 0
    # the integral saturates at the diameter of the data: its slope falls to 0, and that is not drawn
    est = analysis.estimators["corr"]["dimension"]
    assert (d < 0.5 * est).any()
    tail = s[(d < 0.5 * est) & (s > analysis.estimators["corr"]["params"]["fit_range"][1])]
    assert xs.max() < tail.min()
    # the fitted range is the solid one
    fitted = [ln for ln in corr if "fitted range" in ln.get_label()]
    assert len(fitted) == 1 and fitted[0].get_alpha() in (None, 1.0)


def test_dimension_vs_scale_notes_a_pre_asymptotic_headline(analysis):
    assert analysis.regime.regime == "asymptotic"
    ax = plot_dimension_vs_scale(analysis).axes[0]
    assert not [t for t in ax.texts if "asymptotic" in t.get_text().lower()]
    # the same curve declared pre-asymptotic, with the law's d above every local slope
    local = np.asarray(analysis.regime.local_dimensions)
    d = float(np.nanmax(local[np.isfinite(local)])) + 1.0
    pre = dataclasses.replace(analysis, dimension=d, dimension_ci=(analysis.dimension_ci[0], d + 1.0),
                              regime=dataclasses.replace(analysis.regime, regime="pre-asymptotic"))
    ax = plot_dimension_vs_scale(pre).axes[0]
    notes = [t.get_text().replace("\n", " ") for t in ax.texts]
    assert any("Pre-asymptotic" in t and "above every local slope" in t for t in notes), notes
    assert any("pre-asymptotic" in t for t in _legend_texts(ax))
    assert ax.get_ylim()[1] >= d + 1.0
    _assert_every_line_named(ax)


def test_dimension_vs_scale_notes_a_law_interval_outside_the_local_slopes(analysis):
    reg = analysis.regime
    hi = float(np.nanmax(np.where(np.isfinite(reg.local_cis[:, 1]), reg.local_cis[:, 1], np.nan)))
    law = dataclasses.replace(analysis.law, dimension_ci=(hi + 0.5, hi + 0.8))
    moved = dataclasses.replace(analysis, law=law, dimension=hi + 0.6,
                                dimension_ci=(analysis.dimension_ci[0], hi + 0.8))
    notes = [t.get_text().replace("\n", " ") for t in plot_dimension_vs_scale(moved).axes[0].texts]
    assert any("lies above the local slopes" in t for t in notes), notes


def test_dimension_vs_scale_of_a_dict_is_not_scaled_by_an_outlying_curve():
    s = np.geomspace(0.1, 1, 30)
    d = np.full(30, 4.0) + 0.05 * np.sin(np.arange(30))
    tail = np.concatenate([np.full(25, 4.0), [8.0, 14.0, 3.0, 1.0, 0.1]])
    ax = plot_dimension_vs_scale({"mle": (s, d), "corr": (s, tail)}).axes[0]
    lo, hi = ax.get_ylim()
    assert lo > 3 and hi < 5


# --------------------------------------------------------------------------- the gap curve
def test_gap_curve_random_orders_are_above_the_markers_and_named(analysis):
    fig = plot_gap_curve(analysis)
    ax = fig.axes[0]
    (mean,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    marker_z = mean.lines[0].get_zorder()
    orders = [ln for ln in ax.lines if "random order" in ln.get_label() or ln.get_label() == "_order"]
    assert len(orders) == analysis.curve.repeats
    assert all(ln.get_zorder() > marker_z for ln in orders)
    assert mean.lines[0].get_markerfacecolor() in ("white", "w", (1.0, 1.0, 1.0, 1.0))
    _assert_every_line_named(ax)


def test_gap_curve_residual_panel_resolves_the_band_and_the_bars(analysis):
    fig = plot_gap_curve(analysis)
    assert len(fig.axes) == 2
    axr = fig.axes[1]
    lo, hi = axr.get_ylim()
    (mean,) = [c for c in axr.containers if isinstance(c, ErrorbarContainer)]
    lengths = [abs(seg[1][1] - seg[0][1]) for seg in mean.lines[2][0].get_segments()]
    # the ±2 s.e. bars are a visible part of the panel (on the log-log panel: under a marker)
    assert np.median(lengths) > 0.1 * (hi - lo)
    assert len(axr.collections) >= 2  # the band and the bars
    # the random orders are above the markers there too
    marker_z = mean.lines[0].get_zorder()
    assert all(ln.get_zorder() > marker_z for ln in axr.lines if ln.get_label() == "_order")


def test_gap_curve_marks_the_smallest_fitted_size_only_with_a_legend_entry(analysis):
    ax = plot_gap_curve(analysis).axes[0]
    n0 = analysis.curve.sizes.min()
    vertical = [ln for ln in ax.lines if len(set(np.asarray(ln.get_xdata(), float))) == 1
                and np.asarray(ln.get_xdata(), float)[0] == pytest.approx(n0)]
    assert vertical == []  # the law fits every size: nothing to mark at the smallest
    law = dataclasses.replace(analysis.law, sizes=analysis.law.sizes[2:])
    ax = plot_gap_curve(analysis.curve, law).axes[0]
    texts = _legend_texts(ax)
    assert any("smallest size in the fit" in t for t in texts)
    _assert_every_line_named(ax)


def test_gap_curve_on_a_given_axes_and_without_a_law(analysis):
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    assert plot_gap_curve(analysis, ax=ax) is fig and len(fig.axes) == 1
    fig = plot_gap_curve(analysis.curve)
    assert len(fig.axes) == 1
    _assert_every_line_named(fig.axes[0])


# --------------------------------------------------------------------------- distances
def test_nn_distances_shows_duplicates_and_medians(analysis):
    ax = plot_nn_distances(analysis).axes[0]
    texts = _legend_texts(ax)
    assert any(t.startswith("median, held-out") for t in texts)
    assert analysis.duplicates["train"] > 0
    assert any("training points with a duplicate" in t for t in texts)
    _assert_every_line_named(ax)


def test_memorization_figure_says_memorized_and_names_every_line():
    rng = np.random.default_rng(0)
    train = rng.random((1500, 6))
    gen = np.concatenate([train[:60] + 1e-3 * rng.standard_normal((60, 6)), train[60:80], rng.random((220, 6))])
    from repgap.diffusion import memorization

    rep = memorization(gen, train, test=rng.random((300, 6)))
    fig = plot_memorization(rep)
    words = [fig.get_suptitle()] + [t.get_text() for ax in fig.axes for t in
                                    [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts, *(
                                        ax.get_legend().get_texts() if ax.get_legend() else [])]]
    text = " ".join(words).lower()
    assert "memorized" in text and "memoris" not in text  # one spelling, as the CSV column
    assert "exact copies: 20" in text
    for ax in fig.axes:
        _assert_every_line_named(ax)


def test_report_figures_are_written(analysis, tmp_path):
    paths = save_report_figures(analysis, tmp_path)
    n = 4 if analysis.local_dimension else 3  # the local-dimension figure when there is one
    assert len(paths) == n and all((tmp_path / p).stat().st_size > 1000 for p in paths)


def test_local_dimension_figure(analysis):
    from repgap.plot import plot_local_dimension

    assert analysis.local_dimension, "analyze computes the local dimension by default"
    fig = plot_local_dimension(analysis, title="t")
    ax1, ax2 = fig.axes[:2]
    labels = [t.get_text() for t in ax1.get_legend().get_texts()]
    assert len(labels) == len(analysis.local_dimension) and all("median" in x for x in labels)
    assert "principal axis" in ax2.get_xlabel()
    empty = dataclasses.replace(analysis, local_dimension={})
    with pytest.raises(ValueError, match="no local dimension"):
        plot_local_dimension(empty)


def test_dimension_vs_scale_says_which_interval_is_conservative(analysis):
    # an interval that the models' spread dominates says so in the legend
    # (conservative_: it covers more than its nominal rate where one model holds)
    ests = {k: dict(v) for k, v in analysis.estimators.items()}
    ests["twonn"]["conservative"] = True
    ests["calibrated"] = dict(ests["twonn"], conservative=False)
    ax = plot_dimension_vs_scale(dataclasses.replace(analysis, estimators=ests)).axes[0]
    texts = _legend_texts(ax)
    assert any(t.startswith("TwoNN:") and t.endswith(", conservative") for t in texts), texts
    assert any(t.startswith("TwoNN, ball-calibrated") and "conservative" not in t for t in texts), texts
