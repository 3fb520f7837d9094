r"""Moment Jacobians, dense or coloured (sparse, by forward mode).

The moment Jacobian is :math:`J = \partial \mathbb{E}_q[g(\theta)] /
\partial\eta` at the optimum.

Linear-response covariances :math:`J H^{-1} J^\top`
(:mod:`refold.models.lr_covariance`) need the Jacobian of the variational
moments with respect to the free parameter.

Reverse versus forward mode
---------------------------
``autograd.jacobian`` (reverse mode) costs one backward sweep per moment
(row of :math:`J`); forward mode costs one forward pass per input direction.
With ``K`` moments and ``D`` parameters the dense path uses whichever is
fewer.  When each moment depends on few parameters (a block-local moment
map, e.g. :math:`\mathbb{E}_q[u_t^2]` depends only on group ``t``'s mean and
scale) the columns of :math:`J` can be *coloured*: columns that never share
a row get one colour, the forward derivative along the sum of their unit
vectors gives them all at once, and a handful of forward passes recover all
``K`` rows -- :func:`colour_moment_jacobian` and
``get_moment_jacobian(..., colouring=...)``.  The result is checked against
one forward pass in a random direction, so a wrong sparsity pattern raises
instead of returning a wrong Jacobian.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Optional

import autograd
import numpy as np
import scipy.sparse as sps

from refold.sensitivity._checks import user_call
from refold.sensitivity.colouring import colour_columns

__all__ = ["MomentJacobianColouring", "colour_moment_jacobian"]

_EPS = float(np.finfo(np.float64).eps)


class MomentJacobianColouring:
    r"""A column colouring of a moment Jacobian's sparsity pattern.

    Columns of one colour never share a row, so one forward-mode pass along
    the sum of their unit vectors gives all of them.  Build with
    :func:`colour_moment_jacobian` and reuse across evaluations.

    Attributes
    ----------
    pattern : scipy.sparse.csr_array of bool, shape (K, D)
        The possible nonzeros of :math:`J`.
    colours : numpy.ndarray of int, shape (D,)
    num_colours : int
        The number of forward passes (plus one verification probe).
    """

    def __init__(self, pattern: sps.csr_array, colours: np.ndarray):
        self.pattern = pattern
        self.colours = np.asarray(colours, dtype=np.intp)
        self.num_colours = int(self.colours.max()) + 1 if self.colours.size else 0

    @property
    def shape(self) -> tuple:
        """``(K, D)``."""
        return self.pattern.shape

    def directions(self) -> np.ndarray:
        """Indicator directions, shape (D, num_colours)."""
        out = np.zeros((self.shape[1], self.num_colours))
        out[np.arange(self.shape[1]), self.colours] = 1.0
        return out

    def __repr__(self) -> str:
        return (f"MomentJacobianColouring(shape={self.shape}, nnz="
                f"{self.pattern.nnz}, num_colours={self.num_colours})")


def colour_moment_jacobian(sparsity: Any, dim: Optional[int] = None
                           ) -> MomentJacobianColouring:
    r"""Colour the columns of a moment Jacobian's sparsity pattern.

    Parameters
    ----------
    sparsity : scipy.sparse matrix, bool array or int array
        Either the pattern of possible nonzeros of :math:`J` (a scipy.sparse
        matrix or a boolean array of shape ``(K, D)``), or an integer array
        of shape ``(K, r)`` whose row ``k`` lists the coordinates moment
        ``k`` depends on (``-1`` entries are padding and ignored).
    dim : int, optional
        ``D``; required for an integer index array, checked otherwise.

    Returns
    -------
    MomentJacobianColouring

    Examples
    --------
    Moments :math:`m_t^2 + e^{2 s_t}` of ``T`` groups with means at
    ``0..T-1`` and log-sds at ``T..2T-1`` need two colours:

    >>> import numpy as np
    >>> T = 1000
    >>> deps = np.stack([np.arange(T), T + np.arange(T)], axis=1)
    >>> colour_moment_jacobian(deps, dim=2 * T).num_colours
    2
    """
    if isinstance(sparsity, MomentJacobianColouring):
        pattern = sparsity.pattern
    elif sps.issparse(sparsity):
        if sparsity.ndim != 2:
            raise ValueError(f"sparsity must be 2-d (K, D); got {sparsity.shape}")
        pattern = sps.csr_array(sparsity != 0, dtype=bool)
    else:
        arr = np.asarray(sparsity)
        if arr.dtype == bool:
            if arr.ndim != 2:
                raise ValueError(f"sparsity must be a 2-d boolean pattern (K, D);"
                                 f" got shape {arr.shape}")
            pattern = sps.csr_array(arr)
        elif np.issubdtype(arr.dtype, np.integer):
            if dim is None:
                raise TypeError("an integer sparsity is read as an index array "
                                "(K, r) of the coordinates each moment depends "
                                "on; pass dim=D (or give a boolean pattern)")
            if arr.ndim == 1:
                arr = arr[:, None]
            if arr.ndim != 2:
                raise ValueError(f"sparsity as an index array must have shape "
                                 f"(K, r); got {arr.shape}")
            if arr.size and (arr.max() >= dim or arr.min() < -1):
                bad = arr.max() if arr.max() >= dim else arr.min()
                raise ValueError(f"sparsity indices must lie in [0, {dim}) (or "
                                 f"be -1 for padding); got {bad}")
            rows = np.broadcast_to(np.arange(arr.shape[0])[:, None], arr.shape)
            keep = arr >= 0
            pattern = sps.csr_array(
                (np.ones(int(keep.sum()), dtype=bool), (rows[keep], arr[keep])),
                shape=(arr.shape[0], dim))
        else:
            raise TypeError(f"sparsity must be a scipy.sparse matrix, a boolean "
                            f"pattern or an integer index array; got dtype "
                            f"{arr.dtype}")
    if dim is not None and pattern.shape[1] != dim:
        raise ValueError(f"sparsity must have {dim} columns (the length of "
                         f"opt_par_value); got shape {pattern.shape}")
    pattern = pattern.astype(bool)
    pattern.sum_duplicates()
    pattern.eliminate_zeros()
    pattern.sort_indices()
    if isinstance(sparsity, MomentJacobianColouring):
        return sparsity
    return MomentJacobianColouring(pattern, colour_columns(pattern))


def _jvp_or_raise(jvp: Callable, direction: np.ndarray, num: Optional[int]):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Output seems independent of input")
        try:
            value, tangent = jvp(direction)
        except NotImplementedError as err:
            raise ValueError(
                f"calculate_moments uses an operation without a forward-mode "
                f"derivative in autograd ({err}); pass colouring=None (reverse "
                f"mode) or supply the moment Jacobian yourself") from err
    value = np.asarray(value)
    if value.ndim > 1:
        raise ValueError(f"calculate_moments must return a 1-d array of moments;"
                         f" got shape {value.shape}")
    tangent = np.broadcast_to(np.asarray(tangent, dtype=float), value.shape)
    if num is not None and tangent.size != num:
        raise ValueError(f"calculate_moments returned {tangent.size} moments but "
                         f"the colouring (sparsity pattern) has {num} rows")
    return tangent.reshape(-1)


def _named(fun: Callable) -> Callable:
    """``fun`` with an exception inside it re-raised naming
    ``calculate_moments`` and the point (the cause chained)."""
    def named(par):
        return user_call(fun, "calculate_moments", "at opt_par_value", par)
    return named


def _coloured_jacobian(fun: Callable, par: np.ndarray,
                       colouring: MomentJacobianColouring,
                       verify: bool) -> sps.csr_array:
    """Sparse Jacobian from ``num_colours`` forward passes (+1 probe)."""
    fun = _named(fun)
    num, dim = colouring.shape
    jvp = autograd.make_jvp(fun)(par)
    dirs = colouring.directions()
    pattern = colouring.pattern
    products = np.empty((num, dirs.shape[1]))
    for c in range(dirs.shape[1]):      # one forward pass per colour
        products[:, c] = _jvp_or_raise(jvp, dirs[:, c], num)
    rows = np.repeat(np.arange(num), np.diff(pattern.indptr))
    values = products[rows, colouring.colours[pattern.indices]]
    jac = sps.csr_array((values, pattern.indices.copy(), pattern.indptr.copy()),
                        shape=(num, dim))
    if not np.isfinite(values).all():
        k = int(np.flatnonzero(~np.isfinite(values))[0])
        raise ValueError(f"the Jacobian of calculate_moments is not finite at "
                         f"opt_par_value: entry [{rows[k]}, "
                         f"{pattern.indices[k]}] = {values[k]}")
    if verify and num:
        probe = np.random.default_rng(0).standard_normal(dim)
        true = _jvp_or_raise(jvp, probe, num)
        approx = jac @ probe
        tol = np.sqrt(_EPS) * (abs(jac) @ np.abs(probe) + np.abs(true))
        tol += _EPS * max(float(np.max(tol, initial=0.0)), 1e-300)
        gap = np.abs(approx - true)
        if not (gap <= tol).all():
            i = int(np.argmax(gap - tol))
            raise ValueError(
                f"calculate_moments depends on coordinates outside the sparsity "
                f"pattern of colouring: moment {i} times a random probe differs "
                f"from the forward-mode derivative by {gap[i]:.3g} (tolerance "
                f"{tol[i]:.3g}); add the missing coordinates of row {i} to the "
                f"pattern (or pass verify=False)")
    return jac


def _dense_jacobian(fun: Callable, par: np.ndarray) -> np.ndarray:
    """Dense Jacobian by reverse mode (K <= D) or forward mode (K > D)."""
    fun = _named(fun)
    dim = par.size
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Output seems independent of input")
        vjp, ans = autograd.make_vjp(fun)(par)       # one trace of the moments
    ans = np.asarray(ans)
    if ans.ndim > 1:
        raise ValueError(f"calculate_moments must return a 1-d array of moments;"
                         f" got shape {ans.shape}")
    num = ans.size
    if num > dim:                    # fewer passes in forward mode
        try:
            jvp = autograd.make_jvp(fun)(par)
            eye = np.eye(dim)
            cols = [_jvp_or_raise(jvp, eye[j], num) for j in range(dim)]
            return np.stack(cols, axis=1)
        except ValueError as err:
            if not isinstance(err.__cause__, NotImplementedError):
                raise
    eye = np.eye(num)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Output seems independent of input")
        rows = [np.broadcast_to(np.asarray(vjp(eye[k].reshape(ans.shape)),
                                           dtype=float), (dim,))
                for k in range(num)]        # one backward sweep per moment
    return np.stack(rows, axis=0) if rows else np.zeros((0, dim))
