"""repgap: the Representation Gap of a task, exactly and fast.

The Representation Gap (Perera, Moura, Santos, Haddad, Figueiredo,
arXiv:2605.21692) is the mean squared distance from a fresh data point to its
nearest training point, modulo the symmetries of the model. It follows the
law ``RG_n ~ C n^(-2/d)`` whose exponent gives the intrinsic dimension ``d``.

Public API
----------
knn, knn_checkpoints
    Exact k nearest neighbours (and within prefixes of an ordering).
representation_gap, gap_curve
    The gap and its curve over training-set sizes.
set_config, get_config, config_context, available_backends, show_config
    Backends (numpy reference, cython + OpenMP, torch) and threads.
fit_law, predicted_gap, law
    The asymptotic law RG_n ~ C n^(-2/d), its constants and its fit.
TwoNN, CalibratedTwoNN, MLE, GRIDE, GapLaw, CorrelationDimension, WeibullShape
    Intrinsic-dimension estimators (scikit-learn estimators: ``fit(X)`` sets
    ``dimension_`` and ``dimension_ci_``; ``fit_pointwise(X)`` of TwoNN, MLE
    and GRIDE sets the local ``dimension_pw_``); also in
    :mod:`repgap.estimators`.
intrinsic_dimension, id_vs_scale, estimators, local
    One-call estimates, the dimension as a function of scale, the
    estimators' module; per-point (local) dimension.
datasets, pointprocess
    Samplers with known dimension; pair counts, G, F and J functions.
analyze
    The main job (what ``repgap analyze`` runs): gap curve, law, estimators.
evaluate, EvaluationMeter, evaluation
    Generative models: precision, recall, density, coverage, authenticity,
    the data-copying test, memorization and the gap of generated samples,
    from one set of exact searches (modulo a group; streaming).
groups, diffusion, io, plot
    Symmetry groups; the empirical denoiser and memorization; reading data
    files; figures (matplotlib, optional).
"""
from ._version import __version__
from ._backends import BackendUnavailableError, PurePythonWarning, _load_cython, available_backends
from ._config import config_context, get_config, set_config
from ._show_config import show_config
from .gap import GapCurve, GapResult, default_sizes, gap_curve, representation_gap
from .neighbors import knn, knn_checkpoints
from . import datasets, diffusion, estimators, groups, law, local, pointprocess
from .estimators import (GRIDE, MLE, CalibratedTwoNN, CorrelationDimension, GapLaw, IDResult, NeighbourStats, TwoNN,
                         WeibullShape, id_vs_scale, intrinsic_dimension)
from .law import LawFit, NonDecayingCurveWarning, fit_law, predicted_gap
from ._precision import StoragePrecisionWarning
from .analysis import Analysis, analyze
from . import evaluation
from .evaluation import Evaluation, EvaluationMeter, evaluate

# Import the compiled kernels now, so that an installation without them says
# so once, at import (PurePythonWarning), rather than at the first computation.
_load_cython()

__all__ = [
    "__version__",
    "Analysis",
    "BackendUnavailableError",
    "CalibratedTwoNN",
    "CorrelationDimension",
    "GRIDE",
    "GapLaw",
    "MLE",
    "NeighbourStats",
    "TwoNN",
    "WeibullShape",
    "PurePythonWarning",
    "NonDecayingCurveWarning",
    "StoragePrecisionWarning",
    "GapCurve",
    "GapResult",
    "IDResult",
    "LawFit",
    "analyze",
    "available_backends",
    "datasets",
    "estimators",
    "evaluate",
    "evaluation",
    "Evaluation",
    "EvaluationMeter",
    "fit_law",
    "id_vs_scale",
    "intrinsic_dimension",
    "law",
    "local",
    "pointprocess",
    "predicted_gap",
    "config_context",
    "default_sizes",
    "gap_curve",
    "get_config",
    "knn",
    "knn_checkpoints",
    "representation_gap",
    "set_config",
    "show_config",
]
