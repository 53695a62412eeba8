"""Sphinx configuration: the API reference (autodoc + autosummary + numpydoc
from the docstrings) and the Markdown pages (guide, theory, dask; myst).

Build (offline; CI runs it with -W in .ci/run):

    pip install ".[docs]"
    python -m sphinx -W --keep-going -b html docs docs/_build/html
"""
import os
import sys

# the package as installed, else this checkout (an editable or in-place build)
try:
    import repgap
except ImportError:  # pragma: no cover - docs built from a bare checkout
    sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir)))
    import repgap

project = "repgap"
author = "repgap developers"
copyright = "repgap developers"
release = repgap.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "images"]
templates_path = ["_templates"]

# autodoc / autosummary: stub pages under api/generated (not in git)
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"  # the numpydoc Parameters sections say the types

# numpydoc: methods are documented by autodoc (the class template), the
# Attributes sections as parameter lists; no autosummary tables of members
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# myst: the Markdown pages; headings get anchors for links within a page
myst_heading_anchors = 3

html_theme = "alabaster"
html_title = f"repgap {release}"
html_static_path = []


# ``repgap.knn``, ``repgap.fit_law``, ...: the docstrings cite the top-level
# names, which are documented where they are defined (repgap.neighbors.knn,
# repgap.law.fit_law); a reference to a top-level name links to that page.
def _resolve_top_level(app, env, node, contnode):
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    if target.startswith("repgap."):
        name = target[len("repgap."):]
    elif node.get("py:module") == "repgap":
        name = target
    else:
        return None
    if not name or "." in name:
        return None
    obj = getattr(repgap, name, None)
    module = getattr(obj, "__module__", None)
    if module is None or module == "repgap" or module.split(".")[-1].startswith("_"):
        return None
    canonical = f"{module}.{getattr(obj, '__name__', name)}"
    return env.get_domain("py").resolve_xref(env, node["refdoc"], app.builder, node["reftype"], canonical,
                                             node, contnode)


# "Bases:" names public classes only: a private base (_Estimator) is replaced
# by its own bases, up to object
def _public_bases(app, name, obj, options, bases):
    public, todo = [], list(bases)
    while todo:
        b = todo.pop(0)
        if getattr(b, "__name__", "").startswith("_") and getattr(b, "__bases__", None):
            todo[:0] = b.__bases__
        elif b not in public:
            public.append(b)
    bases[:] = public


def setup(app):
    app.connect("missing-reference", _resolve_top_level)
    app.connect("autodoc-process-bases", _public_bases)
