r"""Model benchmarks: refold.models against vittles 0.173, in one table.

The table is built from ``ROW_FUNCTIONS``, a list of functions that each
return a list of :class:`Row`; further sections are added by appending a
function.  ``run()`` returns all rows; ``python benchmarks/models_bench.py``
prints them: section 1 (LR covariances, refold vs vittles) and section 2
(the logistic GLMM's MFVB fit, LR time and end to end, from
``benchmarks/glmm_bench.py``).  The "anchor" column is vittles 0.173 unless
a row's note names another anchor (e.g. a published figure).

Section 1: LR covariances at the Criteo arrowhead shape
-------------------------------------------------------
The Hessian is that of the Criteo-shaped logistic GLMM KL objective of
``benchmarks/structured_hessian_bench.py`` (5,000 groups x 2 locals + 14
globals, D = 10,014), taken at its optimum (found here by
``refold.sensitivity.newton.arrowhead_newton``, damped Newton steps with
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

Section 2: the logistic GLMM at the Criteo shape
------------------------------------------------
The rows of ``glmm_bench.run()``: MFVB fit (against the published VB time),
LR covariances of ``beta`` and every ``u`` after the fit, end to end
(against the published VB + LR time), and the LR step against vittles fed
the same sparse Hessian and moment Jacobian.

Run with ``OPENBLAS_NUM_THREADS=1 python benchmarks/models_bench.py``.
"""
import functools
import os
import sys
import time
from typing import Callable, List, NamedTuple, Optional

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (best_time, import_vittles,  # noqa: E402
                     random_arrowhead, text_table)
from refold.models.lr_covariance import LinearResponseCovariances  # noqa: E402
from refold.sensitivity.newton import arrowhead_newton  # noqa: E402


class Row(NamedTuple):
    """One line of the table; ``None`` prints as '-'."""
    label: str
    refold_s: Optional[float]
    anchor_s: Optional[float] = None
    max_diff: Optional[float] = None
    note: str = ""


# ----------------------------------------------------------------------------
# Section 1: LR covariances at the Criteo arrowhead shape
# ----------------------------------------------------------------------------
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
        opt, report = arrowhead_newton(fun, x0, li, tol=1e-11)
        hessian = SparseBlockHessian(fun, li).get_hessian(opt)
        source = (f"GLMM KL Hessian at its optimum ({report.iterations} "
                  f"Newton steps"
                  f"{'' if report.converged else ', NOT converged'})")
    else:
        hessian, gi, li = random_arrowhead()
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
# Section 2: the logistic GLMM at the Criteo shape (benchmarks/glmm_bench.py)
# ----------------------------------------------------------------------------
def glmm_rows() -> List[Row]:
    """MFVB fit, LR covariances after the fit and end to end, from
    ``glmm_bench.run()`` (its anchors and goals go into the note)."""
    import glmm_bench
    rows = [Row("Logistic GLMM (N = 61895, T = 5000, K = 5): MFVB + LR",
                None, note="section header")]
    for row in glmm_bench.run():
        extra = []
        if row["anchor"] and row["anchor"] != "vittles":
            extra.append(f"anchor: {row['anchor']}")
        if row["goal"]:
            extra.append(f"goal {row['goal']}")
        if row["note"]:
            extra.append(row["note"])
        rows.append(Row(row["task"], row["refold_s"], row["anchor_s"],
                        row["max_diff"], "; ".join(extra)))
    return rows


# ----------------------------------------------------------------------------
# The table
# ----------------------------------------------------------------------------
ROW_FUNCTIONS: List[Callable[[], List[Row]]] = [lr_vs_vittles_rows,
                                                glmm_rows]


def run(row_functions: Optional[List[Callable[[], List[Row]]]] = None
        ) -> List[Row]:
    """All rows of the table, section by section."""
    rows: List[Row] = []
    for fn in (ROW_FUNCTIONS if row_functions is None else row_functions):
        rows.extend(fn())
    return rows


def format_table(rows: List[Row]) -> str:
    """Plain-text table: refold [s], anchor [s], ratio, max |diff|, note."""
    def num(value, fmt):
        return "-" if value is None else format(value, fmt)
    head = ("benchmark", "refold [s]", "anchor [s]", "ratio", "max |diff|",
            "note")
    body = []
    for row in rows:
        ratio = (row.anchor_s / row.refold_s
                 if row.anchor_s is not None and row.refold_s else None)
        body.append((row.label, num(row.refold_s, ".4f"),
                     num(row.anchor_s, ".4f"), num(ratio, ".1f") +
                     ("x" if ratio is not None else ""),
                     num(row.max_diff, ".2g"), row.note))
    return text_table(head, body, left=(0, 5))


def main() -> None:
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "unset")
    print(f"refold.models benchmarks (ratio = anchor / refold; the anchor is "
          f"vittles 0.173 unless the note names another; "
          f"OPENBLAS_NUM_THREADS={threads})")
    print(format_table(run()))


if __name__ == "__main__":
    main()
