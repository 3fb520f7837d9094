r"""The calls users make, with no solver options, side by side with vittles.

Issue 12's table.  Every row names its call exactly as a user writes it,
on the logistic-GLMM mean-field VB objective of
:mod:`refold.models.logistic_glmm` (14 globals, 2 locals per group) with
the prior variance of ``beta`` as the hyperparameter
(``benchmarks/_glmm_problem.py``).  Rows, in order:

1. the **default** calls (no solver options) at G = 1,500: refold and
   vittles in one process, same answers;
2. Taylor series orders 1-4 with default options at G = 1,500;
3. the Criteo shape (G = 5,000, N = 61,895): each default call **cold in a
   fresh process** (``import refold`` and detection included) and warm;
   the vittles-compatible ``SparseBlockHessian`` + ``hessian_at_opt`` route;
   ``SparseBlockHessian`` itself against vittles'; detection alone;
   ``sparse_hessian(fun, x)`` with and without a given pattern; one
   Hessian-vector product of ``make_hvp_at`` against autograd's own sweep
   of the same recorded graph;
4. LR covariances of beta and every u (``benchmarks/lr_default_paths.py``,
   its own table, printed after this one);
5. dense problems (D = 100, 500, 2,000): ``solver='auto'`` (the default)
   against the explicit dense path;
6. JAX (optional): a hand-written jitted 16-HVP colouring + Schur solve and
   JAX's default lineax CG (``benchmarks/_jax_glmm.py``, own process);
7. ``import refold`` in a fresh process against numpy + scipy + autograd;
8. ``refit`` (vittles has none): the default ``solver='auto'`` (structured
   Newton) against ``solver='trust-ncg'`` (the previous default) in the
   "other" column -- at G = 1,500 from the old optimum with the prior
   variance doubled (``refit(kl, opt, 2 h0)``), cold (structure detection
   included) and warm, and from the model's initial point; and on dense
   logistic regressions at D = 200, well- and ill-conditioned, where
   ``'auto'`` still takes Newton steps on the dense Hessian (its limit).
   The last column is the max abs difference of the two optima;
9. local blocks of unequal sizes (``benchmarks/_ragged_problem.py``: a
   random-effects logistic regression, 14 fixed effects, 3,000 groups with
   2 random effects and 2,000 with 3, D = 12,014): the default call against
   the previous fallback, the sparse route the classification took before it
   accepted blocks of unequal sizes (the same detected pattern, coloured,
   recovered and factorised sparsely).  vittles has no route here (its
   ``SparseBlockHessian`` needs equal blocks; its default forms a dense
   12,014 x 12,014 Hessian).

Run with ``OPENBLAS_NUM_THREADS=1 python benchmarks/default_paths_bench.py``
(``--quick`` skips vittles' dense rows at G = 1,500, which take minutes).
``--refit`` prints only the rows of 8 (about half a minute), ``--mixed``
only those of 9::

    OPENBLAS_NUM_THREADS=1 python benchmarks/default_paths_bench.py --refit
    OPENBLAS_NUM_THREADS=1 python benchmarks/default_paths_bench.py --mixed
"""
import json
import os
import subprocess
import sys
import time
import warnings
from typing import List

import numpy as onp

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _common import best_time, import_vittles, text_table  # noqa: E402
from _glmm_problem import glmm_problem  # noqa: E402

import refold  # noqa: E402
from refold.sensitivity import (SparseBlockHessian,  # noqa: E402
                                hessian_sparsity, sparse_hessian)

H_NEW = 1.5  # the new hyperparameter, as a multiple of the base one


def _rel(a, b) -> float:
    a, b = onp.asarray(a, dtype=float), onp.asarray(b, dtype=float)
    return float(onp.max(onp.abs(a - b)) / max(onp.max(onp.abs(b)), 1e-300))


def _fmt(seconds: float) -> str:
    return "-" if seconds is None else (f"{seconds * 1e3:.0f} ms"
                                        if seconds < 1 else f"{seconds:.2f} s")


def _ratio(anchor, ours) -> str:
    if anchor is None or ours is None:
        return "-"
    return f"{anchor / ours:.1f}x"


def _cold(code: str) -> dict:
    """Run ``code`` in a fresh Python process; it prints one JSON line."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=os.environ.get(
        "OPENBLAS_NUM_THREADS", "1"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, env=env, cwd=HERE, timeout=900)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------
def g1500_rows(vittles, quick: bool) -> List[list]:
    kl, opt, h0, _ = glmm_problem(1500)
    rows = []

    def ours():
        return refold.HyperparameterSensitivityLinearApproximation(
            kl, opt, h0).get_dopt_dhyper()
    # The first call detects the structure; later ones reuse it.
    t_ours, sens = best_time(ours, 1)
    t_warm, _ = best_time(ours, 2)
    t_vit, diff = None, None
    if vittles is not None and not quick:
        def theirs():
            return vittles.HyperparameterSensitivityLinearApproximation(
                kl, opt, h0).get_dopt_dhyper()
        t_vit, sens_v = best_time(theirs, 1)
        diff = _rel(sens, sens_v)
    rows.append(["HyperparameterSensitivityLinearApproximation(kl, opt, h0)"
                 ".get_dopt_dhyper()  (first call)", "G=1,500", _fmt(t_ours),
                 _fmt(t_vit), _ratio(t_vit, t_ours), "-" if diff is None else
                 f"{diff:.1e}"])
    rows.append(["  the same call again (structure reused)", "G=1,500",
                 _fmt(t_warm), "-", _ratio(t_vit, t_warm), "-"])
    t_cg, sens_cg = best_time(
        lambda: refold.HyperparameterSensitivityLinearApproximation(
            kl, opt, h0, factorize_hessian=False).get_dopt_dhyper(), 1)
    rows.append(["  same, factorize_hessian=False (CG)", "G=1,500",
                 _fmt(t_cg), "-", "-", f"{_rel(sens_cg, sens):.1e}"])
    for order in range(1, 5):
        def ours_t():
            return refold.ParametricSensitivityTaylorExpansion \
                .optimization_objective(kl, opt, h0, order=order) \
                .evaluate_taylor_series(H_NEW * h0)
        t_ours, pred = best_time(ours_t, 1)
        t_vit, diff = None, None
        if vittles is not None and not quick:
            def theirs_t():
                return vittles.ParametricSensitivityTaylorExpansion \
                    .optimization_objective(kl, opt, h0, order=order) \
                    .evaluate_taylor_series(H_NEW * h0)
            t_vit, pred_v = best_time(theirs_t, 1)
            diff = _rel(pred - opt, pred_v - opt)
        rows.append([f"ParametricSensitivityTaylorExpansion.optimization_"
                     f"objective(kl, opt, h0, order={order})"
                     f".evaluate_taylor_series(1.5 h0)", "G=1,500",
                     _fmt(t_ours), _fmt(t_vit), _ratio(t_vit, t_ours),
                     "-" if diff is None else f"{diff:.1e}"])
    return rows


COLD_DEFAULT = r"""
import json, time
t0 = time.perf_counter()
import refold
t1 = time.perf_counter()
from _glmm_problem import glmm_problem
kl, opt, h0, _ = glmm_problem(5000)
t2 = time.perf_counter()
a = refold.HyperparameterSensitivityLinearApproximation(kl, opt, h0)
sens = a.get_dopt_dhyper()
t3 = time.perf_counter()
a = refold.HyperparameterSensitivityLinearApproximation(kl, opt, h0)
t4 = time.perf_counter()
steady = []
for _ in range(5):
    t5 = time.perf_counter()
    refold.HyperparameterSensitivityLinearApproximation(kl, opt, h0)
    steady.append(time.perf_counter() - t5)
print(json.dumps(dict(imp=t1 - t0, cold=t3 - t2, warm=t4 - t3,
                      steady=min(steady), describe=a.describe(),
                      sens=sens.ravel().tolist())))
"""


def criteo_rows(vittles) -> List[list]:
    rows = []
    cold = _cold(COLD_DEFAULT)
    rows.append(["HyperparameterSensitivityLinearApproximation(kl, opt, h0)"
                 ".get_dopt_dhyper(), cold in a fresh process", "Criteo",
                 _fmt(cold["cold"]), "> 2 min (dense)", "-", "-"])
    rows.append(["  the same call again in that process (structure reused)",
                 "Criteo", _fmt(cold["warm"]), "-", "-", "-"])
    rows.append(["  steady: best of 5 more calls in that process", "Criteo",
                 _fmt(cold["steady"]), "-", "-", "-"])
    rows.append(["  import refold in that process", "Criteo",
                 _fmt(cold["imp"]), "-", "-", "-"])
    kl, opt, h0, objective = glmm_problem(5000)

    def fixed(x):
        return kl(x, h0)
    local = objective.local_inds
    t_det, pattern = best_time(lambda: hessian_sparsity(kl, opt, h0), 3)
    rows.append(["hessian_sparsity(kl, opt, h0)  (detection alone)",
                 "Criteo", _fmt(t_det), "-", "-",
                 f"nnz {pattern.nnz:,}"])
    t_auto, (hess, info) = best_time(
        lambda: sparse_hessian(fixed, opt, return_info=True), 3)
    t_given, hess_g = best_time(lambda: sparse_hessian(fixed, opt, pattern),
                                3)
    rows.append(["sparse_hessian(f, x)  (pattern detected)", "Criteo",
                 _fmt(t_auto), "-", f"{t_auto / t_given:.2f}x given",
                 f"{info['num_colours']} colours"])
    rows.append(["sparse_hessian(f, x, pattern)", "Criteo", _fmt(t_given),
                 "-", "-", f"{abs(hess - hess_g).max():.0e}"])
    # One Hessian-vector product of a recorded graph: refold's compiled
    # sweep against autograd's own sweep of the same graph.
    import autograd
    from refold.sensitivity import make_hvp_at
    direction = onp.random.default_rng(0).standard_normal(opt.size)
    hvp_at = make_hvp_at(kl, opt, h0)
    hvp_at(direction)                     # compiles the record
    t_hvp, ours_hv = best_time(lambda: hvp_at(direction), 10)
    sweep, _ = autograd.make_vjp(autograd.grad(fixed))(opt)
    t_ag, theirs_hv = best_time(lambda: sweep(direction), 10)
    t_rec, _ = best_time(lambda: make_hvp_at(kl, opt, h0)(direction), 3)
    rows.append(["make_hvp_at(kl, opt, h0)(v): one product of the recorded "
                 "graph", "Criteo", _fmt(t_hvp),
                 _fmt(t_ag) + " (autograd's own sweep)",
                 _ratio(t_ag, t_hvp), f"{_rel(ours_hv, theirs_hv):.0e}"])
    rows.append(["  recording + compiling + the first product", "Criteo",
                 _fmt(t_rec), "-", "-", "-"])
    t_sbh, h_sbh = best_time(
        lambda: SparseBlockHessian(fixed, local).get_hessian(opt), 3)
    t_vsbh = None
    if vittles is not None:
        t_vsbh, h_v = best_time(
            lambda: vittles.SparseBlockHessian(fixed, local).get_hessian(
                opt), 1)
    rows.append(["SparseBlockHessian(f, sparsity).get_hessian(opt)",
                 "Criteo", _fmt(t_sbh), _fmt(t_vsbh),
                 _ratio(t_vsbh, t_sbh), "-"])

    def route():
        h_sparse = SparseBlockHessian(fixed, local).get_hessian(opt)
        return refold.HyperparameterSensitivityLinearApproximation(
            kl, opt, h0, hessian_at_opt=h_sparse).get_dopt_dhyper()
    t_route, sens_route = best_time(route, 3)
    t_vroute, diff = None, None
    if vittles is not None:
        def vroute():
            h_sparse = vittles.SparseBlockHessian(fixed, local).get_hessian(
                opt)
            return vittles.HyperparameterSensitivityLinearApproximation(
                kl, opt, h0, hessian_at_opt=h_sparse).get_dopt_dhyper()
        t_vroute, sens_v = best_time(vroute, 1)
        diff = _rel(sens_route, sens_v)
    rows.append(["SparseBlockHessian(...).get_hessian(opt), then "
                 "HyperparameterSensitivityLinearApproximation(kl, opt, h0, "
                 "hessian_at_opt=H).get_dopt_dhyper()", "Criteo",
                 _fmt(t_route), _fmt(t_vroute), _ratio(t_vroute, t_route),
                 "-" if diff is None else f"{diff:.1e}"])
    rows.append(["  default (cold) against that route: same answer", "Criteo",
                 "-", "-", "-",
                 f"{_rel(onp.array(cold['sens']), sens_route.ravel()):.1e}"])
    return rows, cold


def jax_rows(cold) -> List[list]:
    try:
        import jax  # noqa: F401
        import lineax  # noqa: F401
    except ImportError:
        return [["JAX rows", "Criteo", "skipped (pip install jax lineax)",
                 "-", "-", "-"]]
    env = dict(os.environ)
    out = subprocess.run([sys.executable, os.path.join(HERE, "_jax_glmm.py"),
                          "5000"], capture_output=True, text=True, env=env,
                         cwd=HERE, timeout=900)
    if out.returncode:
        return [["JAX rows", "Criteo", "failed: " + out.stderr[-200:], "-",
                 "-", "-"]]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    ours = onp.array(cold["sens"])
    return [
        ["JAX jit: 16 HVPs (linearize + vmap) + Schur, steady (best of 5)",
         "Criteo", _fmt(res["structured_steady"]), "-",
         f"refold steady {cold['steady'] / res['structured_steady']:.1f}x "
         f"slower", f"{_rel(res['structured'], ours):.1e}"],
        ["  its first call (compile included)", "Criteo",
         _fmt(res["structured_first"]), "-",
         f"refold cold {cold['cold'] / res['structured_first']:.2f}x",
         "-"],
        ["JAX default: lineax.linear_solve(..., lineax.CG), steady",
         "Criteo", _fmt(res["lineax_steady"]), "-", "-",
         f"{_rel(res['lineax'], ours):.1e}"],
        ["  its first call (compile included)", "Criteo",
         _fmt(res["lineax_first"]), "-", "-", "-"]]


def dense_rows() -> List[list]:
    import autograd.numpy as np
    import scipy.optimize
    rows = []
    for dim in (100, 500, 2000):
        rng = onp.random.default_rng(dim)
        n_obs = dim + 200
        design = rng.standard_normal((n_obs, dim)) / onp.sqrt(dim)
        y = (rng.uniform(size=n_obs) < 0.5).astype(float)

        def f(theta, h):
            z = np.dot(design, theta)
            return (np.sum(np.logaddexp(0.0, z) - y * z)
                    + 0.5 * h[0] * np.sum(theta ** 2))
        h0 = onp.array([1.0])
        res = scipy.optimize.minimize(
            lambda t: f(t, h0), onp.zeros(dim), method="Newton-CG",
            jac=lambda t: refold.sensitivity.hvp.autograd.grad(f)(t, h0),
            hessp=lambda t, v: refold.get_hvp(f)(t, v, h0),
            options=dict(xtol=1e-14, maxiter=200))
        opt = res.x
        reps = 3 if dim < 2000 else 2
        def first_call():
            # Every call detects the structure (no reuse between repeats).
            refold.sensitivity.structure._CACHE.clear()
            return refold.HyperparameterSensitivityLinearApproximation(
                f, opt, h0).get_dopt_dhyper()
        t_auto, s_auto = best_time(first_call, reps)
        t_dense, s_dense = best_time(
            lambda: refold.HyperparameterSensitivityLinearApproximation(
                f, opt, h0, solver="cholesky").get_dopt_dhyper(), reps)
        rows.append([f"HyperparameterSensitivityLinearApproximation(f, opt, "
                     f"h0) vs solver='cholesky', dense D={dim}", f"D={dim}",
                     _fmt(t_auto), _fmt(t_dense) + " (explicit dense)",
                     f"{100 * (t_auto / t_dense - 1):+.1f}%",
                     f"{_rel(s_auto, s_dense):.1e}"])
    return rows


def _refit_row(call, shape, auto, trust) -> list:
    """A row: 'auto' time (and result), 'trust-ncg' time (and result)."""
    (t_auto, r_auto), (t_trust, r_trust) = auto, trust
    diff = float(onp.max(onp.abs(r_auto.x - r_trust.x)))
    note = (f"abs {diff:.1e}; {r_auto.solver} {r_auto.nit} it. vs "
            f"{r_trust.nit} it.")
    return [call, shape, _fmt(t_auto), _fmt(t_trust) + " (trust-ncg)",
            _ratio(t_trust, t_auto), note]


def refit_rows() -> List[list]:
    import autograd.numpy as np
    from refold.sensitivity.refit import refit
    from refold.sensitivity.structure import _CACHE
    kl, opt, h0, objective = glmm_problem(1500)
    h_new = 2.0 * h0

    def cold():
        _CACHE.clear()      # detection included
        return refit(kl, opt, h_new)
    auto_cold = best_time(cold, 2)
    auto_warm = best_time(lambda: refit(kl, opt, h_new), 2)
    trust = best_time(lambda: refit(kl, opt, h_new, solver="trust-ncg"), 2)
    rows = [_refit_row("refit(kl, opt, 2 h0) vs solver='trust-ncg'  "
                       "(first call: detection included)", "G=1,500",
                       auto_cold, trust),
            _refit_row("  the same call again (structure reused)",
                       "G=1,500", auto_warm, trust)]
    start = objective.initial_free_par()
    rows.append(_refit_row(
        "refit(kl, x_init, 2 h0) from the model's initial point", "G=1,500",
        best_time(lambda: refit(kl, start, h_new), 1),
        best_time(lambda: refit(kl, start, h_new, solver="trust-ncg"), 1)))
    dim = 200
    rng = onp.random.default_rng(dim)
    design = rng.standard_normal((dim + 200, dim)) / onp.sqrt(dim)
    y = (rng.uniform(size=dim + 200) < 0.5).astype(float)
    for label, scales, prec in (("well-conditioned", onp.ones(dim), 1.0),
                                ("ill-conditioned (column scales 1..1e3)",
                                 onp.logspace(0, 3, dim), 1e-3)):
        x_design = design * scales

        def f(theta, h):
            z = np.dot(x_design, theta)
            return (np.sum(np.logaddexp(0.0, z) - y * z)
                    + 0.5 * h[0] * np.sum(theta ** 2))
        hp = onp.array([prec])
        opt_d = refit(f, onp.zeros(dim), hp).x
        reps = 2 if prec == 1.0 else 1
        rows.append(_refit_row(
            f"refit(f, opt, 2 h0), dense logistic, {label}", f"D={dim}",
            best_time(lambda: refit(f, opt_d, 2 * hp), reps),
            best_time(lambda: refit(f, opt_d, 2 * hp, solver="trust-ncg"),
                      reps)))
    return rows


IMPORT_CODE = r"""
import json, sys, time
t = time.perf_counter()
if sys.argv[-1] == 'floor':
    import numpy, scipy, scipy.sparse, scipy.linalg, autograd, autograd.numpy
else:
    import refold
print(json.dumps(dict(t=time.perf_counter() - t)))
"""


def import_rows() -> List[list]:
    # As a user imports it: with the bytecode cache that the first import
    # writes (an environment with PYTHONDONTWRITEBYTECODE set would compile
    # refold's sources at every import, while numpy, scipy and autograd come
    # with their caches installed).
    env = {k: v for k, v in os.environ.items()
           if k != "PYTHONDONTWRITEBYTECODE"}

    def best(arg):
        times = []
        for _ in range(6):          # the first run writes the caches
            out = subprocess.run([sys.executable, "-c", IMPORT_CODE, arg],
                                 capture_output=True, text=True, env=env)
            times.append(json.loads(out.stdout)["t"])
        return min(times[1:])
    ours, floor = best("refold"), best("floor")
    return [["import refold (fresh process)", "-", _fmt(ours),
             _fmt(floor) + " (numpy+scipy+autograd)",
             f"+{(ours - floor) * 1e3:.0f} ms over floor", "-"]]


def mixed_rows() -> List[list]:
    """Local blocks of 2 and 3: the default against the previous fallback."""
    from _ragged_problem import ragged_problem
    from refold.sensitivity.solvers import get_sparse_cholesky_solver
    from refold.sensitivity.structure import _CACHE, HessianStructure
    fun, opt, h0 = ragged_problem()
    dim, shape = opt.size, f"D={opt.size:,}"

    def default():
        return refold.HyperparameterSensitivityLinearApproximation(
            fun, opt, h0)

    def fallback(structure=None):
        if structure is None:       # detection, then the old 'sparse' kind
            structure = HessianStructure(
                "sparse", dim, hessian_sparsity(fun, opt, h0),
                reason="the previous fallback", source="detected")
        return refold.HyperparameterSensitivityLinearApproximation(
            fun, opt, h0, solver_options={"structure": structure})

    def first(make):
        _CACHE.clear()
        return make().get_dopt_dhyper()
    t_new, sens = best_time(lambda: first(default), 2)
    t_old, sens_old = best_time(lambda: first(fallback), 2)
    approx = default()
    old_structure = fallback().structure
    t_new_w, _ = best_time(lambda: default().get_dopt_dhyper(), 3)
    t_old_w, _ = best_time(lambda: fallback(old_structure).get_dopt_dhyper(),
                           3)
    hess = approx.get_hessian_at_opt()
    arrow = approx.structure
    b = onp.random.default_rng(0).normal(size=dim)
    t_fac, x_new = best_time(lambda: refold.ArrowheadHessian.from_sparse(
        hess, arrow.global_inds, arrow.local_inds).solve(b), 3)
    t_fac_old, x_old = best_time(
        lambda: get_sparse_cholesky_solver(hess)(b), 3)
    print(f"Blocks of unequal sizes, default chose: {approx.describe()}")
    print(f"  previous fallback: {old_structure.describe()}")
    return [
        ["HyperparameterSensitivityLinearApproximation(f, opt, h0)"
         ".get_dopt_dhyper(), blocks of 2 and 3 (first call, detection "
         "included)", shape, _fmt(t_new), _fmt(t_old) + " (prev. fallback)",
         _ratio(t_old, t_new), f"{_rel(sens, sens_old):.1e}"],
        ["  the same call again (structure reused)", shape, _fmt(t_new_w),
         _fmt(t_old_w) + " (prev. fallback)", _ratio(t_old_w, t_new_w), "-"],
        ["  factorise the Hessian and solve once (Schur vs sparse Cholesky)",
         shape, _fmt(t_fac), _fmt(t_fac_old) + " (sparse)",
         _ratio(t_fac_old, t_fac), f"{_rel(x_new, x_old):.1e}"]]


def main(argv: List[str]) -> None:
    quick = "--quick" in argv
    warnings.simplefilter("ignore")
    head = ["call (no solver options unless said)", "shape", "refold",
            "vittles / other", "ratio", "max rel diff / note"]
    if "--refit" in argv:
        print("refit: solver='auto' (default) against solver='trust-ncg' "
              "in one run")
        print(text_table(head, refit_rows()))
        return
    if "--mixed" in argv:
        print(text_table(head, mixed_rows()))
        return
    vittles = import_vittles()
    body = g1500_rows(vittles, quick)
    crit, cold = criteo_rows(vittles)
    body += crit
    body += dense_rows()
    body += jax_rows(cold)
    body += import_rows()
    body += refit_rows()
    body += mixed_rows()
    print("Default call paths (issue 12): refold and the anchor in one run")
    print(f"Criteo default chose: {cold['describe']}")
    print(text_table(head, body))
    print()
    from lr_default_paths import lr_default_rows, print_rows
    print_rows(lr_default_rows(print_table=False))


if __name__ == "__main__":
    main(sys.argv[1:])
