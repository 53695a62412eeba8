"""The API reference (docs/, Sphinx + numpydoc) covers every public name.

The cheap tests read the reStructuredText sources under docs/api and need no
Sphinx: every name in ``repgap.__all__``, every public function, class and
constant of each documented module, and every public submodule has its entry,
and every entry names something that exists. The slow test runs the real
build (warnings as errors), as ``.ci/run`` does, when Sphinx, numpydoc and
myst-parser are installed (``pip install ".[docs]"``)."""
import ast
import importlib
import inspect
import os
import pkgutil
import re
import shutil
import subprocess
import sys

import pytest

import repgap

DOCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "docs")
API = os.path.join(DOCS, "api")

# public (no leading underscore) submodules that have no reference page, and why
UNDOCUMENTED_MODULES = {
    "repgap.cli": "the command line: the README and `repgap --help` document it",
}


def _documented():
    """(documented dotted names, documented modules, link-only names) from docs/api/*.rst.

    A name is documented by an autosummary entry with ``:toctree:`` (a page
    of its own), an ``autodata``/``py:data`` directive, or ``automodule``.
    """
    names, modules, links = set(), set(), set()
    for fname in sorted(os.listdir(API)):
        if not fname.endswith(".rst"):
            continue
        current = None
        lines = open(os.path.join(API, fname), encoding="utf-8").read().splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            m = re.match(r"\.\. (?:auto|current)?module:: (\S+)", line)
            if m:
                current = m.group(1)
                if not line.startswith(".. currentmodule::"):
                    modules.add(current)
            m = re.match(r"\.\. (?:autodata|py:data|autofunction|autoclass|autoexception):: (\S+)", line)
            if m:
                names.add(_full(m.group(1), current))
            if line.startswith(".. autosummary::"):
                i += 1
                toctree = False
                while i < len(lines) and (not lines[i].strip() or lines[i].startswith("   ")):
                    entry = lines[i].strip()
                    if entry.startswith(":toctree:"):
                        toctree = True
                    elif entry and not entry.startswith(":"):
                        (names if toctree else links).add(_full(entry.lstrip("~"), current))
                    i += 1
                continue
            i += 1
    return names, modules, links


def _full(name, current):
    if name.startswith("repgap.") or current is None:
        return name
    return f"{current}.{name}"


def _resolve(dotted):
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def public_modules():
    """Every submodule of repgap whose name has no leading underscore."""
    path = os.path.dirname(repgap.__file__)
    return sorted(f"repgap.{m.name}" for m in pkgutil.iter_modules([path]) if not m.name.startswith("_"))


def public_names(modname):
    """The module's ``__all__``, else the functions, classes and UPPER_CASE
    constants its source defines at top level without a leading underscore."""
    mod = importlib.import_module(modname)
    if hasattr(mod, "__all__"):
        return list(mod.__all__)
    tree = ast.parse(inspect.getsource(mod))
    out = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            out += [t.id for t in targets if isinstance(t, ast.Name) and t.id.isupper()]
    return [n for n in dict.fromkeys(out) if not n.startswith("_")]


DOCUMENTED, MODULES, LINKS = _documented()


def test_every_public_module_has_a_page():
    missing = [m for m in public_modules() if m not in MODULES and m not in UNDOCUMENTED_MODULES]
    assert not missing, f"public modules without a page under docs/api: {missing}"
    assert "repgap" in MODULES


@pytest.mark.parametrize("name", repgap.__all__)
def test_top_level_name_documented(name):
    obj = getattr(repgap, name)
    if inspect.ismodule(obj):
        assert obj.__name__ in MODULES, f"repgap.{name}: no page (automodule) under docs/api"
        return
    where = {f"repgap.{name}"}
    if hasattr(obj, "__module__") and hasattr(obj, "__qualname__"):
        where.add(f"{obj.__module__}.{obj.__qualname__}")
    assert where & DOCUMENTED, f"repgap.{name} is not documented under docs/api (looked for {sorted(where)})"


@pytest.mark.parametrize("modname", sorted(MODULES - {"repgap"}))
def test_module_names_documented(modname):
    missing = [n for n in public_names(modname) if f"{modname}.{n}" not in DOCUMENTED]
    assert not missing, f"{modname}: public names without an entry in docs/api: {missing}"


def test_entries_exist():
    stale = []
    for dotted in sorted(DOCUMENTED | LINKS | MODULES):
        if dotted == "repgap.__version__":
            continue
        try:
            _resolve(dotted)
        except (ImportError, AttributeError):
            stale.append(dotted)
    assert not stale, f"docs/api names things that do not exist: {stale}"


@pytest.mark.slow
def test_sphinx_build_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("numpydoc")
    pytest.importorskip("myst_parser")
    # a copy of the sources: the stub pages autosummary writes stay out of the tree
    src = tmp_path / "docs"
    shutil.copytree(DOCS, src, ignore=shutil.ignore_patterns("_build", "generated"))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(repgap.__file__))]
                                        + [p for p in [env.get("PYTHONPATH")] if p])
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(src),
                           str(tmp_path / "html")], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert (tmp_path / "html" / "api" / "index.html").exists()
