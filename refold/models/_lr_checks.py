"""Input checks of :mod:`refold.models.lr_covariance` (private).

Each returns a validated float64 copy, or raises a ``TypeError`` /
``ValueError`` naming the argument (``opt_par_value``, ``hessian_at_opt``,
``moment_jacobian1``, ``local_inds``, ...), what was expected and what came.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import scipy.sparse as sps

from refold.sensitivity._arrowhead_blocks import (_flat, _is_size_class_list,
                                                  _layout, _local_classes)
from refold.sensitivity.arrowhead import ArrowheadHessian
from refold.sensitivity.hvp import make_hvp_at
from refold.sensitivity.sparse_hessian import ArrowheadBlocks
from refold.sensitivity.errors import HessianError

EPS = float(np.finfo(np.float64).eps)


def check_real(dtype, name: str) -> None:
    if dtype == object or dtype == bool or not (
            np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
        raise TypeError(f"{name} must be a real numeric array; got dtype {dtype}")


def first_bad(arr: np.ndarray) -> str:
    where = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
    return f"{list(where)} = {arr[where]}"


def as_opt_par(value: Any, name: str = "opt_par_value") -> np.ndarray:
    """A finite 1-d float64 copy of ``value``."""
    if sps.issparse(value):
        raise TypeError(f"{name} must be a dense 1-d array; got a sparse matrix")
    arr = np.asarray(value)
    check_real(arr.dtype, name)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-d array (the flat free "
                         f"parameter); got shape {arr.shape}")
    arr = np.array(arr, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite; {name}{first_bad(arr)}")
    return arr


def as_moment_jacobian(jac: Any, name: str, dim: int):
    """A validated float64 copy: ndarray or scipy.sparse CSR, shape (K, dim)."""
    hint = (f"a 2-d array of shape (K, {dim}): one row per moment, one column "
            f"per coordinate of opt_par_value")
    if sps.issparse(jac):
        check_real(jac.dtype, name)
        if jac.ndim != 2 or jac.shape[1] != dim:
            raise ValueError(f"{name} must be {hint}; got shape {jac.shape}")
        out = sps.csr_array(jac, dtype=np.float64, copy=True)
        if not np.isfinite(out.data).all():
            coo = out.tocoo()
            k = int(np.flatnonzero(~np.isfinite(coo.data))[0])
            raise ValueError(f"{name} must be finite; {name}[{coo.row[k]}, "
                             f"{coo.col[k]}] = {coo.data[k]}")
        return out
    arr = np.asarray(jac)
    check_real(arr.dtype, name)
    if arr.ndim != 2 or arr.shape[1] != dim:
        extra = (f" (for a single moment pass {name}[None, :])"
                 if arr.ndim == 1 and arr.size == dim else "")
        raise ValueError(f"{name} must be {hint}; got shape {arr.shape}{extra}")
    arr = np.array(arr, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite; {name}{first_bad(arr)}")
    return arr


def given_hessian(h: Any, dim: int, full_check: bool):
    """Validate ``hessian_at_opt``; return a copy (ndarray, CSR or arrowhead).

    The shape is always checked.  With ``full_check`` (paths where no
    factorisation will check it) also finiteness and symmetry.
    """
    name = "hessian_at_opt"
    if isinstance(h, ArrowheadBlocks):
        h = ArrowheadHessian(*h, name=name)
    if isinstance(h, ArrowheadHessian):
        if h.dim != dim:
            raise ValueError(f"{name} must have shape ({dim}, {dim}) to match "
                             f"opt_par_value; got shape {h.shape}")
        return h
    if sps.issparse(h):
        check_real(h.dtype, name)
        out = sps.csr_array(h, dtype=np.float64, copy=True)
    else:
        try:
            out = np.array(h, dtype=None)
        except Exception as err:  # ragged nested lists
            raise TypeError(f"{name} must be a square numeric matrix; got "
                            f"{type(h).__name__} ({err})") from None
        check_real(out.dtype, name)
        out = out.astype(np.float64)
    if out.shape != (dim, dim):
        raise ValueError(f"{name} must have shape ({dim}, {dim}) to match "
                         f"opt_par_value of length {dim}; got shape {out.shape}")
    if full_check:
        data = out.data if sps.issparse(out) else out
        if not np.isfinite(data).all():
            raise ValueError(f"{name} must be finite; it has NaN or inf entries")
        scale = float(np.max(np.abs(data), initial=0.0))
        gap = abs(out - out.T)
        worst = float(gap.max()) if (gap.nnz if sps.issparse(gap) else gap.size) \
            else 0.0
        if worst > np.sqrt(EPS) * scale:
            raise ValueError(f"{name} is not symmetric: max |{name} - {name}.T| ="
                             f" {worst:.3g} exceeds sqrt(eps) * max|{name}| = "
                             f"{np.sqrt(EPS) * scale:.3g}")
    return out


def in_context(err: Exception, what: str) -> ValueError:
    msg = str(err).replace(" (mat_times_vec)", "").replace(
        " (pass verify=False to skip this check)", "")
    if "hessian_at_opt" not in msg:
        msg = f"{what}: {msg}"
    if "on_failure=" in msg:
        msg += " Here, pass it as solver_options={'on_failure': ...}."
    # A HessianError stays one (a LinAlgError, as vittles raised).
    return (HessianError if isinstance(err, HessianError) else
            ValueError)(msg)


def index_array(value: Any, name: str, ndim: int) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must be an integer index array; got dtype "
                        f"{arr.dtype}")
    if arr.ndim != ndim:
        shape = "(g,)" if ndim == 1 else "(T, m)"
        raise ValueError(f"{name} must have shape {shape}; got {arr.shape}")
    return arr.astype(np.intp)


def _in_range(arr: np.ndarray, name: str, dim: int) -> None:
    bad = np.flatnonzero((arr.ravel() < 0) | (arr.ravel() >= dim))
    if bad.size:
        where = np.unravel_index(bad[0], arr.shape)
        raise ValueError(f"{name} must hold indices into opt_par_value, in "
                         f"[0, {dim}); {name}{list(map(int, where))} = "
                         f"{arr.ravel()[bad[0]]}")


def arrowhead_inds(global_inds: Any, local_inds: Any, dim: int):
    """``(gi, li)``: ``li`` a ``(T, m)`` array, or for local blocks of
    unequal sizes a tuple of ``(T_k, m_k)`` arrays (one per size)."""
    if _is_size_class_list(local_inds):
        classes = _local_classes(local_inds, "local_inds")
        for k, c in enumerate(classes):
            _in_range(c, f"local_inds (size class {k}, blocks of "
                         f"{c.shape[1]})", dim)
        li = _layout(classes)
    else:
        li = index_array(local_inds, "local_inds", 2)
        _in_range(li, "local_inds", dim)
        classes = (li,)
    if global_inds is None:
        gi = np.setdiff1d(np.arange(dim), _flat(classes))
    else:
        gi = index_array(global_inds, "global_inds", 1)
        _in_range(gi, "global_inds", dim)
    return gi, li


def hessian_product(objective_fun, par, hess):
    """``v -> H v`` for the optimum check's conditioning estimate: from the
    Hessian when there is one, else a Hessian-vector product."""
    if hess is None:
        return make_hvp_at(objective_fun, par)
    if isinstance(hess, ArrowheadHessian):
        return hess.dot
    return lambda v: np.asarray(hess @ np.ravel(v))


def check_factorize(value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"factorize_hessian must be True or False; got "
                        f"{value!r}")
    return bool(value)


def check_tol(tol: Any):
    if tol is None:
        return None
    if isinstance(tol, (bool, np.bool_)) or not isinstance(
            tol, (int, float, np.integer, np.floating)):
        raise TypeError(f"grad_tol must be a positive number or None; got "
                        f"{type(tol).__name__}")
    if not (np.isfinite(tol) and tol > 0):
        raise ValueError(f"grad_tol must be a positive finite number or None;"
                         f" got {tol!r}")
    return float(tol)


def check_spec(solver: Any, kinds: tuple):
    """``None``, ``'auto'``, a solver kind or a function ``b -> H^-1 b``."""
    if solver is None or callable(solver):
        return solver
    if not isinstance(solver, str):
        raise TypeError(f"solver must be 'auto', a solver kind {kinds} or a "
                        f"function b -> H^-1 b; got {type(solver).__name__}")
    if solver != "auto" and solver not in kinds:
        raise ValueError(f"solver must be one of {('auto',) + kinds} or a "
                         f"function b -> H^-1 b; got {solver!r}")
    return solver


def check_options(options: Any) -> dict:
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise TypeError(f"solver_options must be a dict; got "
                        f"{type(options).__name__}")
    return dict(options)
