r"""Matrix-free conjugate gradients (private; the factory is
:func:`refold.sensitivity.solvers.get_cg_solver`).

The options (``cg_opts``) and the preconditioner are validated here, and the
solve checks every Hessian-vector product for positive curvature
:math:`p^T H p > 0` along the search direction :math:`p`, which is how an
indefinite Hessian shows itself in CG.

CG alone does not see every negative direction: it explores only the Krylov
space of the right-hand side, so at a stationary saddle whose cross
derivatives lie in the positive eigenspace it returns an answer.  Before
the first solve a *curvature probe* therefore runs a few Lanczos steps
(``cg_opts['curvature_probe']``, default 8; 0 turns it off) from a fixed
random start vector (seed 0): every Ritz value is a Rayleigh quotient
:math:`v^T H v / v^T v` of an actual vector, so a negative one proves the
Hessian indefinite, and Lanczos converges to the extreme eigenvalues first,
so a clearly negative eigenvalue is found in a few steps.  It costs that
many Hessian-vector products once per solver; it is a probe, not a
certificate (an eigenvalue tiny against the spread of the spectrum can hide).
"""
from __future__ import annotations

import numbers
import warnings
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from refold.sensitivity._hessian_checks import (
    _as_dense_square, _as_sparse_square, _check_dim)
from refold.sensitivity._solver_base import RefoldWarning

_CG_DEFAULTS = {'rtol': 1e-10, 'atol': 0.0, 'maxiter': None,
                'curvature_probe': 8}


def _cg_options(cg_opts: Any, dim: int) -> dict:
    if cg_opts is None:
        cg_opts = {}
    if not isinstance(cg_opts, Mapping):
        raise TypeError(f"cg_opts must be a dict; got {type(cg_opts).__name__}")
    opts = dict(_CG_DEFAULTS)
    for key, value in cg_opts.items():
        if key == 'tol':
            warnings.warn("cg_opts['tol'] is the old scipy name; using it as "
                          "cg_opts['rtol']", RefoldWarning, stacklevel=4)
            key = 'rtol'
        if key == 'M':
            raise TypeError("cg_opts['M'] is not accepted; pass preconditioner=")
        if key not in _CG_DEFAULTS:
            raise TypeError(f"cg_opts has unknown key {key!r}; allowed keys are "
                            f"{tuple(_CG_DEFAULTS)}")
        if key == 'maxiter':
            if value is not None:
                value = _check_dim(value, "cg_opts['maxiter']")
        elif key == 'curvature_probe':
            if isinstance(value, (bool, np.bool_)) or not isinstance(
                    value, numbers.Integral) or value < 0:
                raise ValueError(f"cg_opts['curvature_probe'] must be a "
                                 f"non-negative integer (Lanczos steps; 0 "
                                 f"turns the probe off); got {value!r}")
            value = int(value)
        elif (isinstance(value, bool) or not isinstance(value, numbers.Real)
              or not np.isfinite(value) or value < 0):
            raise ValueError(f"cg_opts[{key!r}] must be a finite number >= 0; "
                             f"got {value!r}")
        opts[key] = value
    if opts['maxiter'] is None:
        opts['maxiter'] = 10 * dim
    return opts


def _checked_vector_fn(fn: Callable, dim: int, name: str) -> Callable:
    def apply(v):
        out = fn(v)
        if scipy.sparse.issparse(out):
            out = out.toarray()
        out = np.asarray(out, dtype=np.float64)
        if out.size != dim:
            raise ValueError(f"{name} must return a vector of length {dim}; got "
                             f"shape {out.shape}")
        out = out.reshape(dim)
        if not np.isfinite(out).all():
            raise ValueError(f"{name} returned non-finite values")
        return out
    return apply


def _as_preconditioner(preconditioner: Any, dim: int):
    """Return a function r -> M^{-1} r that checks r^T M^{-1} r > 0."""
    if preconditioner is None:
        return None
    if isinstance(preconditioner, scipy.sparse.linalg.LinearOperator):
        shape = preconditioner.shape
        apply = _checked_vector_fn(preconditioner.matvec, dim, 'preconditioner')
    elif (scipy.sparse.issparse(preconditioner)
          or isinstance(preconditioner, np.ndarray)):
        as_square = (_as_sparse_square if scipy.sparse.issparse(preconditioner)
                     else _as_dense_square)
        m, _ = as_square(preconditioner, 'preconditioner')
        shape = m.shape

        def apply(r):
            return m @ r
    elif callable(preconditioner):
        shape = (dim, dim)
        apply = _checked_vector_fn(preconditioner, dim, 'preconditioner')
    else:
        raise TypeError("preconditioner must be a callable v -> M^{-1} v, a "
                        "LinearOperator or a dense/sparse matrix approximating "
                        f"the inverse Hessian; got {type(preconditioner).__name__}")
    if shape != (dim, dim):
        raise ValueError(f"preconditioner must have shape ({dim}, {dim}); "
                         f"got {shape}")

    def psolve(r):
        z = apply(r)
        if not r @ z > 0:
            raise ValueError("preconditioner is not positive definite: "
                             f"r^T M^-1 r = {r @ z:.3g} <= 0 for a CG residual r")
        return z
    return scipy.sparse.linalg.LinearOperator((dim, dim), matvec=psolve,
                                              dtype=np.float64)


def lanczos_extremes(hvp: Callable, dim: int, steps: int,
                     seed: int = 0) -> tuple:
    """Smallest and largest Ritz values of ``steps`` Lanczos steps (full
    reorthogonalisation) from a seeded random start, and the Ritz vector of
    the smallest."""
    rng = np.random.default_rng(seed)
    q = rng.standard_normal(dim)
    basis = [q / np.linalg.norm(q)]
    alphas, betas = [], []
    for _ in range(min(steps, dim)):
        w = np.asarray(hvp(basis[-1]), dtype=float)
        alphas.append(float(basis[-1] @ w))
        stack = np.array(basis)
        w = w - stack.T @ (stack @ w)
        w = w - stack.T @ (stack @ w)          # twice is enough
        beta = float(np.linalg.norm(w))
        if len(alphas) == min(steps, dim) or \
                beta <= 1e-12 * max(abs(a) for a in alphas):
            break
        betas.append(beta)
        basis.append(w / beta)
    k = len(alphas)
    tri = np.diag(alphas) + np.diag(betas[:k - 1], 1) + \
        np.diag(betas[:k - 1], -1)
    ritz, vecs = np.linalg.eigh(tri)
    return float(ritz[0]), float(ritz[-1]), np.array(basis[:k]).T @ vecs[:, 0]


def curvature_probe(hvp: Callable, dim: int, steps: int) -> None:
    """Raise ``ValueError`` when a few Lanczos steps find a negative
    Rayleigh quotient (see the module notes)."""
    if steps <= 0:
        return
    low, high, vec = lanczos_extremes(hvp, dim, steps)
    if low < -1e-10 * max(abs(high), abs(low)):
        k = int(np.argmax(np.abs(vec)))
        raise ValueError(
            "the Hessian (mat_times_vec) is not positive definite: a "
            f"{steps}-step Lanczos curvature probe found a direction v with "
            f"v^T H v / v^T v = {low:.6g} < 0 (largest Ritz value "
            f"{high:.6g}), so the point is not a minimum (a saddle, or a "
            f"maximum); v is largest at coordinate {k}. Re-optimise, or use "
            "a factorising solver with on_failure='pinv' or 'regularize' to "
            "solve anyway (cg_opts={'curvature_probe': 0} skips the probe).")


def _cg_solve(hvp: Callable, dim: int, opts: dict, M) -> Callable:
    """``B -> X`` with ``H X = B`` column by column, where ``H`` is given by
    ``hvp`` (a checked product), each product checked for positive
    curvature."""
    state = {'iterations': 0}

    def matvec(p):
        q = hvp(p)
        curvature = float(p @ q)
        if not curvature > 0:
            pp = float(p @ p)
            k = int(np.argmax(np.abs(p)))
            raise ValueError(
                "the Hessian (mat_times_vec) is not positive definite along a "
                "conjugate-gradient "
                f"search direction p (iteration {state['iterations'] + 1}): "
                f"p^T H p / p^T p = {curvature / pp:.6g} <= 0, so its smallest "
                f"eigenvalue is at most that; p is largest at coordinate {k}. "
                "Use a factorising solver with on_failure='pinv' or "
                "'regularize' to solve anyway.")
        return q
    op = scipy.sparse.linalg.LinearOperator((dim, dim), matvec=matvec,
                                            dtype=np.float64)

    def count(_):
        state['iterations'] += 1

    def solve(B):
        if not state.get('probed'):
            curvature_probe(hvp, dim, opts['curvature_probe'])
            state['probed'] = True
        X = np.empty_like(B)
        for j in range(B.shape[1]):
            state['iterations'] = 0
            x, status = scipy.sparse.linalg.cg(
                op, B[:, j], rtol=opts['rtol'], atol=opts['atol'],
                maxiter=opts['maxiter'], M=M, callback=count)
            if status != 0:
                res = np.linalg.norm(B[:, j] - hvp(x)) / np.linalg.norm(B[:, j])
                raise ValueError(
                    f"conjugate gradient did not converge for column {j} of b "
                    f"after {state['iterations']} iterations: relative residual "
                    f"||b - H x|| / ||b|| = {res:.3g} > cg_opts['rtol'] = "
                    f"{opts['rtol']:.3g}. Raise cg_opts['maxiter'], loosen "
                    "cg_opts['rtol'] or pass a preconditioner.")
            X[:, j] = x
        return X
    return solve
