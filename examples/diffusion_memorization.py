"""A diffusion evaluation loop with ``MemorizationMeter``.

Two "models" generate samples in batches, as an evaluation job would:

* a perfectly trained diffusion model: deterministic DDIM sampling with the
  empirical optimal denoiser of the training set
  (``repgap.diffusion.empirical_denoiser``, docs/theory.md, section 2). It is the
  minimiser of the training loss, and it reproduces training items;
* a model that generalises, stood in for by fresh draws from the data
  distribution.

Each batch goes through ``MemorizationMeter.update``; ``compute()`` gives the
fraction memorized (``d1/d2 < 1/3``, Gu et al. 2023) and a two-sample test
against held-out real data. The same loop works with torch tensors on a GPU
(the training set stays on the device).

    python examples/diffusion_memorization.py [--quick]     (seconds on 2 cores)
"""
import argparse

import numpy as np

import repgap
from repgap.diffusion import MemorizationMeter, empirical_denoiser


def sample_ddim(train, n, rng, steps=40, sigma_max=3.0, sigma_min=1e-3):
    """Deterministic DDIM (probability-flow Euler) with the empirical optimal denoiser."""
    sigmas = np.geomspace(sigma_max, sigma_min, steps)
    x = sigma_max * rng.standard_normal((n, train.shape[1])) + train.mean(axis=0)
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        d = empirical_denoiser(train, x, s)
        x = d + (s_next / s) * (x - d)
    return empirical_denoiser(train, x, sigmas[-1])


def main(quick=False):
    rng = np.random.default_rng(0)
    D, n_train = 8, (1000 if quick else 5000)
    law = lambda k: repgap.datasets.flat_torus(k, D // 2, random_state=rng).X  # noqa: E731
    train, held_out = law(n_train), law(1000)
    batches, batch_size = (3, 100) if quick else (10, 200)
    for name, model in (("empirical optimal denoiser (DDIM)", lambda b: sample_ddim(train, b, rng)),
                        ("fresh draws from the data law", law)):
        meter = MemorizationMeter(train, test=held_out)
        for _ in range(batches):
            meter.update(model(batch_size))  # one batch of generated samples
        rep = meter.compute()
        print(f"{name}: {meter.n_seen} samples")
        print(f"  memorized (d1/d2 < 1/3): {rep.fraction_memorized:.1%}; held-out real data: "
              f"{rep.test_fraction_memorized:.1%}")
        print(f"  median distance to the training set: generated {np.median(rep.distances):.3g}, "
              f"held-out {np.median(rep.test_distances):.3g}; one-sided Mann-Whitney p = {rep.p_value:.2g}")
    gap = repgap.representation_gap(train, held_out)
    print(f"\nRepresentation Gap of the training set: {gap.value:.4g}: the test denoising error that the "
          "perfectly trained model reaches as sigma -> 0 (docs/theory.md, section 2)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    main(ap.parse_args().quick)
