"""Build of repgap's optional compiled kernels.

Metadata lives in pyproject.toml; this file only declares the Cython
extension and decides how to build it.

REPGAP_BUILD_EXT selects the policy:
  unset / "auto"  try to build; on a compile or link failure print a banner and
                  install the pure-Python package (numpy backend only);
  "1"             a failure is fatal (wheels, CI);
  "0"             do not build the extension.

OpenMP is detected by compiling *and running* a probe program (as scikit-learn
does); without it the extension is built single-threaded with a loud message.
REPGAP_DISABLE_OPENMP=1 skips the probe and builds without OpenMP.
"""
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import textwrap

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

POLICY = os.environ.get("REPGAP_BUILD_EXT", "auto").strip().lower() or "auto"
if POLICY not in ("auto", "0", "1"):
    raise SystemExit(f"REPGAP_BUILD_EXT must be 'auto', '0' or '1', got {POLICY!r}")


def banner(*lines):
    bar = "*" * 78
    msg = "\n".join([bar, *("* " + line for line in lines), bar])
    print(msg, file=sys.stderr, flush=True)


OPENMP_PROBE = textwrap.dedent(
    """
    #include <omp.h>
    #include <stdio.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        printf("%d\\n", n);
        return n >= 1 ? 0 : 1;
    }
    """
)


def openmp_flags(compiler):
    """Return (compile_args, link_args) for OpenMP, or None when unusable."""
    if os.environ.get("REPGAP_DISABLE_OPENMP", "0") == "1":
        return None
    if sys.platform == "win32" and compiler.compiler_type == "msvc":
        candidates = [(["/openmp"], [])]
    elif sys.platform == "darwin":
        candidates = [(["-Xpreprocessor", "-fopenmp"], ["-lomp"]), (["-fopenmp"], ["-fopenmp"])]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"])]
    for cflags, lflags in candidates:
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "probe.c")
            with open(src, "w") as fh:
                fh.write(OPENMP_PROBE)
            try:
                objs = compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
                exe = os.path.join(tmp, "probe")
                compiler.link_executable(objs, exe, extra_postargs=lflags)
                if sys.platform == "win32":
                    exe += ".exe"
                env = dict(os.environ, OMP_NUM_THREADS="2")
                out = subprocess.run([exe], capture_output=True, text=True, env=env, timeout=60)
                if out.returncode == 0 and int(out.stdout.strip() or 0) >= 1:
                    return cflags, lflags
            except Exception:  # noqa: BLE001 - any failure means "no OpenMP here"
                continue
    return None


class BuildExt(build_ext):
    def build_extensions(self):
        ctype = self.compiler.compiler_type
        flags = openmp_flags(self.compiler)
        if flags is None:
            banner(
                "repgap: OpenMP was NOT found (the probe program did not compile or run).",
                "The compiled kernels are built SINGLE-THREADED.",
                "Install an OpenMP runtime (libgomp / libomp) and rebuild for parallel kernels.",
            )
            cflags, lflags = [], []
        else:
            cflags, lflags = flags
        for ext in self.extensions:
            if ctype == "msvc":
                ext.extra_compile_args += ["/O2", "/std:c++17", *cflags]
            else:
                # no floating-point contraction: the exact float64 primitive must round
                # as numpy does (repgap/_search/exact.py)
                ext.extra_compile_args += ["-O3", "-std=c++17", "-ffp-contract=off", *cflags]
            ext.extra_link_args += lflags
        try:
            super().build_extensions()
        except Exception as exc:  # noqa: BLE001
            self._failed(exc)

    def run(self):
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001
            self._failed(exc)

    def _failed(self, exc):
        if POLICY == "1":
            raise
        banner(
            "repgap: building the compiled extension FAILED:",
            f"  {type(exc).__name__}: {exc}",
            "Installing the pure-Python package: only the numpy backend will be available.",
            "Set REPGAP_BUILD_EXT=1 to make this failure fatal.",
        )


def extensions():
    if POLICY == "0":
        banner("repgap: REPGAP_BUILD_EXT=0: the compiled extension is not built (numpy backend only).")
        return []
    try:
        import numpy
        from Cython.Build import cythonize
    except ImportError as exc:
        if POLICY == "1":
            raise
        banner(f"repgap: cannot build the extension ({exc}); installing pure Python.")
        return []
    ext = Extension(
        "repgap._kernels_cython",
        sources=["csrc/_kernels_cython.pyx"],
        include_dirs=["csrc", numpy.get_include()],
        language="c++",
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
    try:
        return cythonize([ext], compiler_directives={"language_level": "3"}, quiet=True)
    except Exception as exc:  # noqa: BLE001
        if POLICY == "1":
            raise
        banner(f"repgap: Cython could not translate the kernels ({exc}); installing pure Python.")
        return []


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
