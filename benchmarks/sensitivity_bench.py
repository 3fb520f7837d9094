"""Sensitivity benchmarks: refold vs vittles 0.173 vs the BLAS/autograd floor.

Run with steady timings as

    OPENBLAS_NUM_THREADS=1 python benchmarks/sensitivity_bench.py

Tables (all measured in this one run, best of a few repeats):

1. Taylor series of orders 1-4 at D = 100 and 500 with a 3-dim
   hyperparameter (logistic regression; the hyperparameters enter the
   prior): refold (``optimization_objective`` + ``evaluate_taylor_series``)
   vs vittles (the same calls), ratio, max abs difference of predictions.
2. First-order sensitivity at D = 2000, 3-dim hyperparameter: refold's
   matrix-free path (Hessian-vector products + Jacobi-preconditioned CG)
   vs vittles' ``HyperparameterSensitivityLinearApproximation`` (dense
   autograd Hessian); refold's dense path vs the floor (one
   ``autograd.hessian`` + one ``scipy.linalg.cho_factor``/``cho_solve``).
3. The structured-Hessian and Schur benchmarks, when present.
4. ``ArrowheadHessian.from_sparse`` at the Criteo shape (14 globals, 5000
   groups of 2 locals, 300k nonzeros) vs one CSR-to-CSC pass over the
   nonzeros.
"""
import importlib.util
import inspect
import os
import sys
import time
import warnings

import autograd
import autograd.numpy as anp
import numpy as np
import scipy.linalg

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _common import import_vittles, random_arrowhead  # noqa: E402
from refold.sensitivity.arrowhead import ArrowheadHessian  # noqa: E402
from refold.sensitivity.linear_approx import (  # noqa: E402
    HyperparameterSensitivityLinearApproximation)
from refold.sensitivity.refit import refit  # noqa: E402
from refold.sensitivity.taylor import (  # noqa: E402
    ParametricSensitivityTaylorExpansion)


def _best_interleaved(funs, repeats):
    """Best times and last results of several functions, called in turn
    (so that load from other processes hits them alike)."""
    best = [np.inf] * len(funs)
    outs = [None] * len(funs)
    for _ in range(repeats):
        for i, fun in enumerate(funs):
            start = time.perf_counter()
            outs[i] = fun()
            best[i] = min(best[i], time.perf_counter() - start)
    return best, outs


def logistic_problem(dim, n_obs, seed=0):
    """Logistic regression; hyper = (log prior precision, prior mean,
    weight of a quartic penalty)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_obs, dim)) / np.sqrt(n_obs)
    beta = rng.normal(size=dim)
    y = (rng.random(n_obs) < 1 / (1 + np.exp(-x @ beta))).astype(float)

    def objective(theta, hyper):
        z = anp.dot(x, theta)
        return (anp.sum(anp.logaddexp(0.0, z) - y * z)
                + 0.5 * anp.exp(hyper[0]) * anp.sum((theta - hyper[1]) ** 2)
                + 0.25 * hyper[2] * anp.sum(theta ** 4))

    def hessian_diag(theta, hyper):
        """The Hessian's diagonal, from cheap quantities (for Jacobi)."""
        p = 1 / (1 + np.exp(-x @ theta))
        return ((p * (1 - p)) @ x ** 2 + np.exp(hyper[0])
                + 3 * hyper[2] * theta ** 2)

    hyper0 = np.array([0.0, 0.1, 0.05])
    opt = refit(objective, np.zeros(dim), hyper0, gtol=1e-10).x
    return objective, opt, hyper0, hessian_diag


# ----------------------------------------------------------------------------
# 1. Taylor series.
# ----------------------------------------------------------------------------
def _timed_taylor(cls, objective, opt, hyper0, order, new_hyper):
    """(build time, evaluate time, prediction) of one Taylor expansion."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # vittles' experimental warnings
        start = time.perf_counter()
        taylor = cls.optimization_objective(objective, opt, hyper0, order)
        mid = time.perf_counter()
        pred = taylor.evaluate_taylor_series(new_hyper)
        end = time.perf_counter()
    return mid - start, end - mid, pred


def taylor_table(vittles, dims=(100, 500), orders=(1, 2, 3, 4), repeats=9):
    print("\n1. Taylor series, 3-dim hyperparameter: build "
          "(optimization_objective: Hessian + Cholesky) and evaluate "
          "(evaluate_taylor_series), best of", repeats)
    print(f"{'D':>5} {'order':>5} | {'refold':>8} {'vittles':>8} "
          f"{'ratio':>6} | {'build r':>8} {'build v':>8} | {'eval r':>8} "
          f"{'eval v':>8} {'ratio':>6} | {'max|diff|':>9}")
    classes = [ParametricSensitivityTaylorExpansion]
    if vittles is not None:
        classes.append(vittles.ParametricSensitivityTaylorExpansion)
    for dim in dims:
        objective, opt, hyper0, _ = logistic_problem(dim, n_obs=2 * dim)
        new_hyper = hyper0 + np.array([0.2, 0.05, 0.02])
        for order in orders:
            total = [np.inf] * len(classes)
            build = [np.inf] * len(classes)
            evals = [np.inf] * len(classes)
            preds = [None] * len(classes)
            for _ in range(repeats):      # interleaved: load hits both alike
                for i, cls in enumerate(classes):
                    b, e, preds[i] = _timed_taylor(cls, objective, opt,
                                                   hyper0, order, new_hyper)
                    total[i] = min(total[i], b + e)
                    build[i] = min(build[i], b)
                    evals[i] = min(evals[i], e)
            if vittles is None:
                print(f"{dim:5d} {order:5d} | {total[0]:8.4f} {'-':>8} "
                      f"{'-':>6} | {build[0]:8.4f} {'-':>8} | "
                      f"{evals[0]:8.4f} {'-':>8} {'-':>6} | {'-':>9}")
                continue
            print(f"{dim:5d} {order:5d} | {total[0]:8.4f} {total[1]:8.4f} "
                  f"{total[1] / total[0]:5.2f}x | {build[0]:8.4f} "
                  f"{build[1]:8.4f} | {evals[0]:8.4f} {evals[1]:8.4f} "
                  f"{evals[1] / evals[0]:5.2f}x | "
                  f"{np.max(np.abs(preds[0] - preds[1])):9.2e}")
    print("(times in s; ratio = vittles / refold; 'refold'/'vittles' = "
          "build + evaluate)")


# ----------------------------------------------------------------------------
# 2. First-order sensitivity at D = 2000.
# ----------------------------------------------------------------------------
def _matrix_free(objective, opt, hyper0, hessian_diag):
    """refold's matrix-free first-order sensitivity."""
    diag = hessian_diag(opt, hyper0)
    options = {"preconditioner": lambda v: v / diag}
    return HyperparameterSensitivityLinearApproximation(
        objective, opt, hyper0, factorize_hessian=False, solver="cg",
        solver_options=options).get_dopt_dhyper()


def first_order_table(vittles, dim=2000, repeats=2):
    Lin = HyperparameterSensitivityLinearApproximation
    print(f"\n2. First-order sensitivity, D = {dim}, 3-dim hyperparameter "
          f"(N = {dim} observations)")
    objective, opt, hyper0, hessian_diag = logistic_problem(dim, n_obs=dim)

    def free():
        return _matrix_free(objective, opt, hyper0, hessian_diag)

    def dense_refold():
        return Lin(objective, opt, hyper0).get_dopt_dhyper()

    def floor():      # the floor as first defined: autograd.hessian + Cholesky
        hess = autograd.hessian(objective)(opt, hyper0)
        chol = scipy.linalg.cho_factor(hess)
        grad = autograd.grad(objective)
        jvp = autograd.make_jvp(lambda h: grad(opt, h))(hyper0)
        cross = np.stack([jvp(e)[1] for e in np.eye(hyper0.size)], axis=1)
        return -scipy.linalg.cho_solve(chol, cross)

    def theirs():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return vittles.HyperparameterSensitivityLinearApproximation(
                objective, opt, hyper0).get_dopt_dhyper()

    funs = [free, dense_refold, floor] + ([theirs] if vittles else [])
    times, vals = _best_interleaved(funs, repeats)
    scale = np.max(np.abs(vals[2]))
    print(f"{'path':<42} {'refold s':>9} {'anchor s':>9} {'ratio':>8} "
          f"{'max rel diff':>13}")
    if vittles is not None:
        print(f"{'matrix-free (HVP + Jacobi CG) vs vittles':<42} "
              f"{times[0]:9.3f} {times[3]:9.3f} {times[3] / times[0]:7.1f}x "
              f"{np.max(np.abs(vals[0] - vals[3])) / scale:13.2e}")
    print(f"{'dense (hessian + Cholesky) vs floor':<42} {times[1]:9.3f} "
          f"{times[2]:9.3f} {times[1] / times[2]:7.2f}x "
          f"{np.max(np.abs(vals[1] - vals[2])) / scale:13.2e}")
    print("ratio: vittles / refold (goal >= 5) in the first row; refold / "
          "floor (goal <= 1.2) in the second.")


# ----------------------------------------------------------------------------
# 3. Other sensitivity benchmarks.
# ----------------------------------------------------------------------------
def other_tables():
    for name in ("structured_hessian_bench", "schur_bench"):
        path = os.path.join(HERE, name + ".py")
        if not os.path.exists(path):
            print(f"\n({name}.py is not present; skipped)")
            continue
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        print(f"\n3. benchmarks/{name}.py")
        main = getattr(module, "main", None)
        if callable(main):          # main() runs run() and prints its table
            takes_args = bool(inspect.signature(main).parameters)
            main([]) if takes_args else main()
        else:
            _print_rows(module.run())


def _print_rows(rows):
    """Print rows returned by another benchmark's run(): (label, value)
    pairs or dicts."""
    for row in rows or []:
        if isinstance(row, dict):
            print("  ".join(f"{k}={v}" for k, v in row.items()))
        else:
            print("  ".join(str(v) for v in row))


# ----------------------------------------------------------------------------
# 4. Arrowhead block extraction.
# ----------------------------------------------------------------------------
def arrowhead_extraction_table(repeats=20):
    """``ArrowheadHessian.from_sparse`` (blocks and every check) at the
    Criteo shape vs the floor of one pass over the nonzeros in C (scipy's
    CSR to CSC conversion)."""
    hessian, gi, li = random_arrowhead()
    (T, m), g = li.shape, gi.size
    print(f"\n4. ArrowheadHessian.from_sparse, D = {hessian.shape[0]} = {g} + "
          f"{T} x {m}, {hessian.nnz} nonzeros (CSR), best of {repeats}")
    times, outs = _best_interleaved(
        [lambda: ArrowheadHessian.from_sparse(hessian, gi, li),
         hessian.tocsc], repeats)
    diff = abs(outs[0].to_sparse() - hessian).max()
    print(f"{'task':<42} {'refold s':>9} {'floor s':>9} {'ratio':>8} "
          f"{'max |diff|':>13}")
    print(f"{'blocks + checks vs one CSR->CSC pass':<42} {times[0]:9.5f} "
          f"{times[1]:9.5f} {times[0] / times[1]:7.2f}x {diff:13.2e}")
    print("ratio: refold / floor; max |diff| of the blocks re-assembled vs "
          "the input.")


def run():
    vittles = import_vittles()
    taylor_table(vittles)
    first_order_table(vittles)
    other_tables()
    arrowhead_extraction_table()


if __name__ == "__main__":
    run()
