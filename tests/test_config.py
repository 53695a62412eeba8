import io
import textwrap
import os

import numpy as np
import pytest

import repgap
from repgap import _backends
from repgap._threads import available_cpus, resolve_n_jobs


def test_resolution_order(monkeypatch):
    monkeypatch.setenv("REPGAP_BACKEND", "numpy")
    assert _backends.resolve_backend(None) == "numpy"
    with repgap.config_context(backend="auto"):
        assert _backends.resolve_backend(None) in ("cython", "numpy")
        assert _backends.resolve_backend("numpy") == "numpy"
    assert _backends.resolve_backend(None) == "numpy"
    monkeypatch.setenv("REPGAP_BACKEND", "bogus")
    with pytest.raises(ValueError, match="unknown backend 'bogus'.*REPGAP_BACKEND"):
        _backends.resolve_backend(None)


def test_auto_falls_back_but_explicit_does_not(monkeypatch):
    monkeypatch.setattr(_backends, "_cython_module", None)
    monkeypatch.setattr(_backends, "_cython_error", "simulated: extension missing")
    assert _backends.resolve_backend("auto") == "numpy"
    with pytest.raises(repgap.BackendUnavailableError, match="'cython' was requested.*simulated"):
        _backends.resolve_backend("cython")
    with pytest.raises(repgap.BackendUnavailableError):
        repgap.knn(np.zeros((2, 2)), np.ones((3, 2)), backend="cython")
    assert "cython" not in repgap.available_backends()


def test_torch_unavailable_is_an_error(monkeypatch):
    from repgap import _kernels_torch

    monkeypatch.setattr(_kernels_torch, "is_available", lambda: False)
    with pytest.raises(repgap.BackendUnavailableError, match="torch is not installed"):
        repgap.knn(np.zeros((2, 2)), np.ones((3, 2)), backend="torch")


def test_set_config_validates():
    with pytest.raises(TypeError, match="unknown configuration"):
        repgap.set_config(colour="red")
    with pytest.raises(ValueError, match="unknown backend"):
        repgap.set_config(backend="gpu")
    with pytest.raises(ValueError, match="n_jobs=0"):
        repgap.set_config(n_jobs=0)
    with pytest.raises(ValueError, match="tile_queries"):
        repgap.set_config(tile_queries=0)


def test_config_context_restores():
    before = repgap.get_config()
    with repgap.config_context(n_jobs=1, tile_queries=16):
        assert repgap.get_config()["n_jobs"] == 1
    assert repgap.get_config() == before


def test_n_jobs(monkeypatch):
    n = available_cpus()
    assert resolve_n_jobs(-1) == n
    assert resolve_n_jobs(3) == 3
    with pytest.raises(ValueError, match=r"n_jobs=-2 .*must be .*-1"):
        resolve_n_jobs(-2)  # README: -1 (all cores) is the one negative value
    monkeypatch.setenv("REPGAP_NUM_THREADS", "1")
    assert resolve_n_jobs(None) == 1
    with repgap.config_context(n_jobs=2):
        assert resolve_n_jobs(None) == 2
    monkeypatch.setenv("REPGAP_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="REPGAP_NUM_THREADS"):
        resolve_n_jobs(None)
    with pytest.raises(TypeError):
        resolve_n_jobs("2")


def test_show_config_reports_backends():
    buf = io.StringIO()
    repgap.show_config(file=buf)
    text = buf.getvalue()
    assert "repgap" in text and "numpy" in text and "cython" in text and "threads:" in text and "BLAS" in text


@pytest.mark.skipif(os.environ.get("REPGAP_EXPECT_OPENMP") != "1", reason="only where the build must have OpenMP (CI)")
def test_compiled_with_openmp():
    from repgap import _kernels_cython

    assert _kernels_cython.openmp_info()[0]


def test_pure_python_switch(monkeypatch):
    monkeypatch.setenv("REPGAP_PURE_PYTHON", "1")
    monkeypatch.setattr(_backends, "_cython_module", None)
    monkeypatch.setattr(_backends, "_cython_error", None)
    assert _backends.resolve_backend("auto") == "numpy"
    assert "disabled by REPGAP_PURE_PYTHON" in _backends.backend_status()["cython"][1]


def test_missing_extension_warns_once_at_import(tmp_path):
    """An installation whose extension is missing imports, warns once, and works on numpy."""
    import subprocess
    import sys

    code = textwrap.dedent("""
        import sys, warnings
        class Block:  # make the compiled extension impossible to import
            def find_spec(self, name, path=None, target=None):
                if name == "repgap._kernels_cython":
                    raise ImportError("simulated: no compiled extension")
        sys.meta_path.insert(0, Block())
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            import numpy as np, repgap
            repgap.available_backends(); repgap.show_config(file=open("/dev/null", "w"))
            d, i = repgap.knn(np.eye(3), np.eye(3), k=1)
        mine = [x for x in w if issubclass(x.category, repgap.PurePythonWarning)]
        assert len(mine) == 1, [str(x.message) for x in w]
        assert "pure-Python backend" in str(mine[0].message)
        assert "cython" not in repgap.available_backends() and d.max() == 0
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                       env={**os.environ, "REPGAP_PURE_PYTHON": "0"})
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
    # asked for: no warning
    r = subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", "import repgap"], capture_output=True,
                       text=True, cwd=tmp_path, env={**os.environ, "REPGAP_PURE_PYTHON": "1"})
    assert r.returncode == 0, r.stderr
