r"""Model benchmarks: refold.models against vittles 0.173, in one table.

The table is built from ``ROW_FUNCTIONS``, a list of functions that each
return a list of :class:`Row`; further sections (e.g. the logistic GLMM's
MFVB fit, LR and end-to-end times) are added by appending a function.
``run()`` returns all rows; ``python benchmarks/models_bench.py`` prints them.

Section 1: LR covariances at the Criteo arrowhead shape
-------------------------------------------------------
The Hessian is that of the Criteo-shaped logistic GLMM KL objective of
``benchmarks/structured_hessian_bench.py`` (5,000 groups x 2 locals + 14
globals, D = 10,014), taken at its optimum (found here by Newton steps with
arrowhead solves) with refold's ``SparseBlockHessian``; if that script is not
importable, a random SPD arrowhead matrix of the same shape is used instead.
Both libraries get the SAME scipy.sparse Hessian and the same moment
Jacobians (identity rows selecting the globals, every group's locals, or
both), and each timing covers construction (the factorisation) plus the
covariance:

* refold: ``LinearResponseCovariances(..., hessian_at_opt=H, solver=
  'arrowhead', ...)``; the globals by ``get_lr_covariance_from_jacobians``
  (one multi-RHS Schur solve), the per-group blocks by
  ``get_lr_covariance_blocks`` (Schur complement; H^-1 never formed);
* vittles: ``LinearResponseCovariances(..., hessian_at_opt=H)`` (sparse LU via
  ``scipy.sparse.linalg.factorized``) and ``get_lr_covariance_from_jacobians``
  -- given its fastest inputs: ``moment_jacobian1`` sparse (so ``J1 @ X`` is a
  sparse product) and ``moment_jacobian2`` dense (its LU solve needs a dense
  right-hand side).  It computes the full K x K covariance, from which the
  blocks are read.

Validation of the optimum is off for both (vittles' default); one extra row
shows refold's default (validated) cost.

Run with ``OPENBLAS_NUM_THREADS=1 python benchmarks/models_bench.py``.
"""
import functools
import os
import sys
import time
import warnings
from typing import Callable, List, NamedTuple, Optional

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from refold.models.lr_covariance import LinearResponseCovariances  # noqa: E402


class Row(NamedTuple):
    """One line of the table; ``None`` prints as '-'."""
    label: str
    refold_s: Optional[float]
    anchor_s: Optional[float] = None
    max_diff: Optional[float] = None
    note: str = ""


def best_time(fn: Callable, repeats: int):
    """Best (min) wall time of ``repeats`` calls, and the last result."""
    best, out = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def import_vittles():
    """vittles 0.173 after the numpy-2 shim, or None (with a message)."""
    import autograd.numpy as anp
    np.product = np.prod
    anp.product = anp.prod
    try:
        import vittles
    except Exception as err:  # pragma: no cover - depends on the environment
        print(f"vittles is not importable ({err}); skipping its rows.")
        return None
    return vittles


# ----------------------------------------------------------------------------
# Section 1: LR covariances at the Criteo arrowhead shape
# ----------------------------------------------------------------------------
def _random_arrowhead(num_groups=5000, num_local=2, num_global=14, seed=0):
    """A random SPD arrowhead matrix (globals first) and its indices."""
    rng = np.random.default_rng(seed)
    g, T, m = num_global, num_groups, num_local
    a = rng.normal(size=(T, m, m))
    loc = a @ a.transpose(0, 2, 1) + np.eye(m)
    cross = rng.normal(size=(T, g, m)) / np.sqrt(T)
    b = rng.normal(size=(g, g))
    glob = b @ b.T + np.eye(g) + np.einsum("tgm,tmn,thn->gh", cross,
                                           np.linalg.inv(loc), cross)
    from refold.sensitivity.arrowhead import ArrowheadHessian
    gi = np.arange(g)
    li = g + np.arange(T * m).reshape(T, m)
    return ArrowheadHessian(glob, cross, loc).to_sparse().tocsr(), gi, li


def _newton_fit(fun, x0, local_inds, max_iter=50):
    """Damped Newton with arrowhead (Schur) solves, to a tight optimum."""
    import autograd
    from refold.sensitivity.sparse_hessian import SparseBlockHessian
    value_and_grad = autograd.value_and_grad(fun)
    sbh = SparseBlockHessian(fun, local_inds)
    x = np.array(x0, dtype=float)
    for iteration in range(max_iter):
        value, grad = value_and_grad(x)
        hess = sbh.get_arrowhead_hessian(x, verify=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            step = hess.solver(on_failure="regularize")(grad)
        if np.max(np.abs(step)) < 1e-11 * max(1.0, np.max(np.abs(x))):
            return x, iteration
        if np.max(np.abs(step)) < 1e-3:   # local quadratic convergence:
            x = x - step                    # f changes below its rounding
            continue
        size = 1.0
        while size > 1e-10:
            trial = x - size * step
            new = fun(trial)
            if np.isfinite(new) and new <= value - 1e-4 * size * (grad @ step):
                break
            size *= 0.5
        x = trial
    return x, max_iter


@functools.lru_cache(maxsize=None)
def criteo_lr_problem():
    """The shared problem of section 1 (built once per process)."""
    start = time.perf_counter()
    try:
        from structured_hessian_bench import build_objective
    except ImportError:
        build_objective = None
    if build_objective is not None:
        from refold.sensitivity.sparse_hessian import SparseBlockHessian
        fun, x0, gi, li = build_objective()
        opt, iterations = _newton_fit(fun, x0, li)
        hessian = SparseBlockHessian(fun, li).get_hessian(opt)
        source = (f"GLMM KL Hessian at its optimum ({iterations} Newton "
                  f"steps)")
    else:
        hessian, gi, li = _random_arrowhead()
        fun, opt = None, np.zeros(hessian.shape[0])
        source = "random SPD arrowhead (structured_hessian_bench not found)"
    return dict(fun=fun, opt=opt, hessian=sp.csr_matrix(hessian),
                global_inds=gi, local_inds=li, source=source,
                setup_s=time.perf_counter() - start)


def _selector(inds: np.ndarray, dim: int) -> sp.csr_array:
    inds = np.ravel(inds)
    return sp.csr_array((np.ones(inds.size), (np.arange(inds.size), inds)),
                        shape=(inds.size, dim))


def _diag_blocks(cov: np.ndarray, offset: int, T: int, m: int) -> np.ndarray:
    """The T diagonal m x m blocks of ``cov[offset:, offset:]``."""
    sub = cov[offset:offset + T * m, offset:offset + T * m].reshape(T, m, T, m)
    return sub[np.arange(T), :, np.arange(T), :]


def lr_vs_vittles_rows(repeats: int = 5) -> List[Row]:
    """LR covariances of the globals and of every group's locals."""
    prob = criteo_lr_problem()
    hess, opt = prob["hessian"], prob["opt"]
    gi, li = prob["global_inds"], prob["local_inds"]
    (T, m), g, dim = li.shape, gi.size, hess.shape[0]
    fun = prob["fun"] if prob["fun"] is not None else (lambda x: 0.0)
    j_glob, j_loc = _selector(gi, dim), _selector(li, dim)
    j_all = sp.vstack([j_glob, j_loc]).tocsr()
    rows = [Row(f"setup: {prob['source']}, D = {dim} = {g} + {T} x {m}",
                prob["setup_s"], note="not a comparison")]

    def refold_lr(validate=False):
        return LinearResponseCovariances(
            fun, opt, validate_optimum=validate, hessian_at_opt=hess,
            solver="arrowhead",
            solver_options={"global_inds": gi, "local_inds": li})

    t_rg, cov_rg = best_time(lambda: refold_lr().get_lr_covariance_from_jacobians(
        j_glob, j_glob), repeats)
    t_rl, blk_rl = best_time(lambda: refold_lr().get_lr_covariance_blocks(j_loc),
                             repeats)
    t_ra, blk_ra = best_time(lambda: refold_lr().get_lr_covariance_blocks(j_all),
                             repeats)
    t_rv = None
    if prob["fun"] is not None:
        t_rv, _ = best_time(lambda: refold_lr(True).get_lr_covariance_blocks(j_all),
                            repeats)

    vittles = import_vittles()
    if vittles is None:
        return rows + [
            Row(f"LR cov of the {g} globals", t_rg),
            Row(f"LR cov blocks of every group's locals ({T} x {m}x{m})", t_rl),
            Row("LR cov, globals + every group's locals (goal >= 50x)", t_ra),
            Row("  refold, same with validate_optimum=True (default)", t_rv)]
    hess_csc = sp.csc_matrix(hess)

    def vittles_lr(j_sparse):
        lr = vittles.LinearResponseCovariances(fun, opt, validate_optimum=False,
                                               hessian_at_opt=hess_csc)
        return lr.get_lr_covariance_from_jacobians(j_sparse, j_sparse.toarray())

    t_vg, cov_vg = best_time(lambda: vittles_lr(j_glob), repeats)
    t_vl, cov_vl = best_time(lambda: vittles_lr(j_loc), 1)
    t_va, cov_va = best_time(lambda: vittles_lr(j_all), 1)
    diff_g = float(np.max(np.abs(cov_rg - cov_vg)))
    diff_l = float(np.max(np.abs(blk_rl.local_covs - _diag_blocks(cov_vl, 0, T, m))))
    diff_a = max(float(np.max(np.abs(blk_ra.global_cov - cov_va[:g, :g]))),
                 float(np.max(np.abs(blk_ra.local_covs
                                     - _diag_blocks(cov_va, g, T, m)))),
                 float(np.max(np.abs(blk_ra.cross_covs
                                     - cov_va[:g, g:].reshape(g, T, m)
                                     .transpose(1, 0, 2)))))
    scale = float(np.max(np.abs(cov_va)))
    return rows + [
        Row(f"LR cov of the {g} globals", t_rg, t_vg, diff_g,
            "refold: one multi-RHS Schur solve"),
        Row(f"LR cov blocks of every group's locals ({T} x {m}x{m})", t_rl,
            t_vl, diff_l, "vittles: 1 repeat"),
        Row("LR cov, globals + every group's locals (goal >= 50x)", t_ra, t_va,
            diff_a, f"max |cov| = {scale:.3g}; vittles: 1 repeat"),
        Row("  refold, same with validate_optimum=True (default)", t_rv, t_va,
            None, "adds one gradient + Newton-step check")]


# ----------------------------------------------------------------------------
# The table
# ----------------------------------------------------------------------------
ROW_FUNCTIONS: List[Callable[[], List[Row]]] = [lr_vs_vittles_rows]


def run(row_functions: Optional[List[Callable[[], List[Row]]]] = None
        ) -> List[Row]:
    """All rows of the table, section by section."""
    rows: List[Row] = []
    for fn in (ROW_FUNCTIONS if row_functions is None else row_functions):
        rows.extend(fn())
    return rows


def format_table(rows: List[Row]) -> str:
    """Plain-text table: refold [s], vittles [s], ratio, max |diff|, note."""
    def num(value, fmt):
        return "-" if value is None else format(value, fmt)
    head = ("benchmark", "refold [s]", "vittles [s]", "ratio", "max |diff|",
            "note")
    body = []
    for row in rows:
        ratio = (row.anchor_s / row.refold_s
                 if row.anchor_s is not None and row.refold_s else None)
        body.append((row.label, num(row.refold_s, ".4f"),
                     num(row.anchor_s, ".4f"), num(ratio, ".1f") +
                     ("x" if ratio is not None else ""),
                     num(row.max_diff, ".2g"), row.note))
    widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) if i in (0, 5) else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(r, widths)))
             for r in [head] + body]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def main() -> None:
    print("refold.models benchmarks (ratio = vittles / refold; "
          "OPENBLAS_NUM_THREADS=" f"{os.environ.get('OPENBLAS_NUM_THREADS', 'unset')})")
    print(format_table(run()))


if __name__ == "__main__":
    main()
