"""The models' union rule (session 13) evaluated on the rows of an earlier zoo run.

TwoNN's, MLE's and the correlation dimension's intervals are the union of
their sampling interval and the default's (``CalibratedTwoNN``) interval on
the same neighbours. Both parts can be recovered from a ``bench_zoo.py``
CSV of session 12, where every run of those methods stands beside the
``calibrated`` run on the same sample:

* the default's interval is the ``calibrated`` row's (the same points, the
  same neighbours: repgap's reference interval is that interval bit for
  bit below ``calibration_size`` points);
* session 12 reported ``d +- sqrt(h^2 + z^2 b^2)``, with ``b`` the models'
  spread (``|d_ball - d|`` for TwoNN; ``max(|d - d_TwoNN|, |d - d_ball|,
  se_TwoNN)`` for MLE and the correlation dimension), computed from the
  rows' estimates, so each half-width ``h`` of the sampling interval is
  ``sqrt((d - low)^2 - z^2 b^2)``.

Rerunning ``bench_zoo.py`` at n = 1000 and 2500 with the union gives the same
coverage and widths to three decimals (``results/zoo_session13.csv``); this
script gives them where a rerun would take an hour (n = 1e4, ``corr``).

    python benchmarks/zoo_union.py benchmarks/results/zoo_session12n1e4.csv
    python benchmarks/zoo_union.py benchmarks/results/zoo_session12corr.csv \\
        --reference benchmarks/results/zoo_session12.csv
"""
import argparse
import sys

import numpy as np
import pandas as pd

Z = 1.959963984540054
KEY = ["family", "n", "seed_set", "seed"]


def _rows(df, method):
    return df[df.method == method].set_index(KEY)[["estimate", "ci_low", "ci_high", "d"]]


def _half(e, b):
    """Sampling half-widths below and above the estimate, given the spread b."""
    lo = np.sqrt(np.maximum((e.estimate - e.ci_low) ** 2 - (Z * b) ** 2, 0.0))
    hi = np.sqrt(np.maximum((e.ci_high - e.estimate) ** 2 - (Z * b) ** 2, 0.0))
    return e.estimate - lo, e.estimate + hi


def union_rows(rows, reference=None):
    """Per run: the union interval and whether it covers, for twonn, mle and corr."""
    ref = pd.concat([rows, reference]) if reference is not None else rows
    cal, tw = _rows(ref, "calibrated"), _rows(ref, "twonn")
    tw_lo, tw_hi = _half(tw, (cal.estimate - tw.estimate).abs())
    se_tw = (tw_hi - tw_lo) / (2 * Z)
    out = []
    for m in ("twonn", "mle", "corr"):
        e = _rows(rows, m)
        if e.empty:
            continue
        if m == "twonn":
            lo, hi = tw_lo.reindex(e.index), tw_hi.reindex(e.index)
        else:
            t, c, s = (v.reindex(e.index) for v in (tw.estimate, cal.estimate, se_tw))
            b = np.maximum(np.maximum((e.estimate - t).abs(), (e.estimate - c).abs()), s)
            lo, hi = _half(e, b)
        lo = np.minimum(lo, cal.ci_low.reindex(e.index))
        hi = np.maximum(hi, cal.ci_high.reindex(e.index))
        r = pd.DataFrame({"method": m, "d": e.d, "low": lo, "high": hi,
                          "covered": (lo <= e.d) & (e.d <= hi), "width": (hi - lo) / e.d,
                          "covered_before": (e.ci_low <= e.d) & (e.d <= e.ci_high),
                          "width_before": (e.ci_high - e.ci_low) / e.d})
        out.append(r.reset_index())
    return pd.concat(out)


def summary(u):
    g = u.groupby(["method", "n", "seed_set"])
    t = g.agg(coverage=("covered", "mean"), before=("covered_before", "mean"), width=("width", "median"),
              width_before=("width_before", "median"), runs=("covered", "size"))
    fam = u.groupby(["method", "n", "seed_set", "family"]).covered.mean()
    t["families_under_0.90"] = (fam < 0.9).groupby(level=[0, 1, 2]).sum()
    t["families_over_0.98"] = (fam > 0.98).groupby(level=[0, 1, 2]).mean()
    return t.round(3)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", help="a bench_zoo.py CSV of session 12")
    ap.add_argument("--reference", help="the CSV holding the calibrated and twonn rows, if not in csv")
    args = ap.parse_args(argv)
    rows = pd.read_csv(args.csv)
    ref = pd.read_csv(args.reference) if args.reference else None
    print(summary(union_rows(rows, ref)).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
