"""Data-weight sensitivity through the vittles API: refold vs vittles 0.173.

Run with steady timings as

    OPENBLAS_NUM_THREADS=1 python benchmarks/data_weights_bench.py

One hyperparameter per observation (the weights ``w``, ``M = N``) and few
parameters (``D = 10``, logistic regression with a Gaussian prior): the
research-code pattern of ``HyperparameterSensitivityLinearApproximation(
objective(theta, w), theta_hat, np.ones(N))``. The ``D x N`` cross Hessian
dominates. refold forms it with one recorded gradient and ``D`` reverse
sweeps when ``N > D`` (it used ``N`` forward passes before issue 9); vittles
with ``autograd.jacobian`` (also ``D`` reverse sweeps). Both construct the
object with validation off (vittles' default) and return
``get_dopt_dhyper()``; times are the best of a few interleaved calls in this
one run, with the max relative difference of the two ``D x N``
sensitivities.
"""
import os
import sys
import time
import warnings

import autograd.numpy as anp
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))   # this working tree's refold

from _common import import_vittles  # noqa: E402
from refold.sensitivity.linear_approx import (  # noqa: E402
    HyperparameterSensitivityLinearApproximation)
from refold.sensitivity.refit import refit  # noqa: E402


def weighted_logistic(n_obs, dim=10, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_obs, dim))
    beta = rng.normal(size=dim) / 2
    y = (rng.random(n_obs) < 1 / (1 + np.exp(-x @ beta))).astype(float)

    def objective(theta, w):
        z = anp.dot(x, theta)
        return anp.sum(w * (anp.logaddexp(0.0, z) - y * z)) + \
            0.5 * anp.sum(theta ** 2)

    weights = np.ones(n_obs)
    opt = refit(objective, np.zeros(dim), weights, gtol=1e-10).x
    return objective, opt, weights


def _best(funs, repeats):
    best, outs = [np.inf] * len(funs), [None] * len(funs)
    for _ in range(repeats):
        for i, fun in enumerate(funs):
            start = time.perf_counter()
            outs[i] = fun()
            best[i] = min(best[i], time.perf_counter() - start)
    return best, outs


def run(sizes=(2000, 8000), repeats=5):
    vittles = import_vittles()
    print("Data-weight sensitivity via HyperparameterSensitivityLinear"
          "Approximation, D = 10, one weight per observation")
    print(f"{'N weights':>10} {'refold s':>9} {'vittles s':>10} "
          f"{'vittles/refold':>15} {'max rel diff':>13}")
    rows = []
    for n_obs in sizes:
        objective, opt, weights = weighted_logistic(n_obs)

        def ours():
            return HyperparameterSensitivityLinearApproximation(
                objective, opt, weights,
                validate_optimum=False).get_dopt_dhyper()

        def theirs():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return vittles.HyperparameterSensitivityLinearApproximation(
                    objective, opt, weights).get_dopt_dhyper()

        funs = [ours] + ([theirs] if vittles is not None else [])
        times, outs = _best(funs, repeats)
        if vittles is None:
            print(f"{n_obs:>10} {times[0]:9.3f} {'-':>10} {'-':>15} "
                  f"{'-':>13}")
            continue
        diff = np.max(np.abs(outs[0] - outs[1])) / np.max(np.abs(outs[1]))
        print(f"{n_obs:>10} {times[0]:9.3f} {times[1]:10.3f} "
              f"{times[1] / times[0]:14.2f}x {diff:13.2e}")
        rows.append((n_obs, times[0], times[1], diff))
    print("ratio: vittles / refold (above 1: refold is faster). Before "
          "issue 9 refold made one forward pass per weight (issue 9 "
          "reported N = 2000: 1.7 s vs 0.002 s; N = 8000: 9.6 s vs "
          "0.003 s).")
    return rows


if __name__ == "__main__":
    run()
