"""Every example runs (with --quick: small sizes) and prints what it shows."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = {
    "quickstart.py": "intrinsic dimension from the law",
    "law_on_torus.py": "measured",
    "benchmark_manifolds.py": "mean relative error",
    "digits.py": "intrinsic dimension",
    "symmetry_dimension_drop.py": "translations + rotations",
    "diffusion_memorization.py": "memorized",
    "evaluate_generative_model.py": "Permutation(5, 2): memorized 100.0%",
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_runs(name, tmp_path):
    if name == "digits.py":
        pytest.importorskip("sklearn")
    # the installed repgap (the examples import it like a user's script)
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", name), "--quick"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert EXAMPLES[name] in r.stdout
