r"""Jacobians of vector functions: dense, or coloured and sparse.

The Jacobian :math:`J = \partial f / \partial x` of a vector function
``f(x)`` (``K`` outputs, ``D`` inputs) -- e.g. the moment Jacobian
:math:`\partial \mathbb{E}_q[g(\theta)] / \partial\eta` of linear-response
covariances (:mod:`refold.models.lr_covariance`).

Reverse, forward and both
-------------------------
``autograd.jacobian`` (reverse mode) costs one backward sweep per output
(row of :math:`J`); forward mode costs one forward pass per input direction.
With ``K`` outputs and ``D`` inputs the dense path uses whichever is fewer.
When each output depends on few inputs (a block-local moment map, e.g.
:math:`\mathbb{E}_q[u_t^2]` depends only on group ``t``'s mean and scale)
the columns of :math:`J` can be *coloured*: columns that never share a row
get one colour, the forward derivative along the sum of their unit vectors
gives them all at once, and a handful of forward passes recover all ``K``
rows.  A few *dense* rows (an output of every coordinate -- the gradient's
global rows of an estimating equation, a moment of all groups) would force
one colour per column, so they come from reverse mode instead: the ``k``
densest rows from ``k`` backward sweeps of one recorded graph, the rest from
one forward pass per colour, with ``k`` minimising ``k`` plus the largest
remaining row degree (a lower bound on the colours the rest needs) --
:func:`colour_jacobian` chooses, :func:`sparse_jacobian` computes.  The
result is checked against one forward pass in a random direction, so a wrong
sparsity pattern raises instead of returning a wrong Jacobian.

This one routine serves the moment Jacobians of linear-response covariances
and the sparse Jacobians of estimating equations
(:class:`~refold.sensitivity.linear_approx.EstimatingEquationLinearApproximation`,
:class:`~refold.sensitivity.cross.CrossSensitivity` and the Taylor expansion
with ``hess_solver='auto'``).

Detected by default
-------------------
:func:`sparse_jacobian` without a pattern detects it from the code
(:func:`~refold.sensitivity.sparsity.jacobian_sparsity`, one traced call).
:func:`auto_jacobian` -- what
:meth:`~refold.models.lr_covariance.LinearResponseCovariances.get_moment_jacobian`
does by default -- keeps :math:`J` sparse when colouring needs fewer passes
than the dense route and at most :data:`DENSE_FRACTION` of the entries can
be nonzero, and otherwise returns the dense Jacobian (as does a function
the tracer or forward mode cannot follow).

The names ``MomentJacobianColouring`` and ``colour_moment_jacobian`` (their
home was ``refold.models.moment_jacobian``) are aliases of
:class:`JacobianColouring` and :func:`colour_jacobian`.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Optional

import autograd
import numpy as np
import scipy.sparse as sps

from refold.sensitivity._checks import finite_array
from refold.sensitivity.colouring import colour_columns

__all__ = ["JacobianColouring", "colour_jacobian", "sparse_jacobian",
           "auto_jacobian", "MomentJacobianColouring",
           "colour_moment_jacobian", "DENSE_FRACTION"]

_EPS = float(np.finfo(np.float64).eps)

#: :func:`auto_jacobian` keeps a pattern sparse only when at most this
#: fraction of its entries can be nonzero.
DENSE_FRACTION = 0.1


class JacobianColouring:
    r"""How a Jacobian's sparsity pattern is recovered: reverse-mode rows
    and a column colouring of the other rows.

    The rows ``dense_rows`` come from one backward sweep each (of one
    recorded graph); the columns of the other rows are coloured so that
    columns of one colour never share such a row, and one forward-mode pass
    along the sum of their unit vectors gives them all.  Build with
    :func:`colour_jacobian` and reuse across evaluations.

    Attributes
    ----------
    pattern : scipy.sparse.csr_array of bool, shape (K, D)
        The possible nonzeros of :math:`J`.
    colours : numpy.ndarray of int, shape (D,)
        The colour of each column (read only in the rows not in
        ``dense_rows``).
    dense_rows : numpy.ndarray of int
        The rows computed in reverse mode, ascending (often none).
    num_colours : int
        The number of forward passes.
    num_products : int
        Forward plus reverse passes (the verification probe not counted).
    """

    def __init__(self, pattern: sps.csr_array, colours: np.ndarray,
                 dense_rows: Optional[np.ndarray] = None):
        self.pattern = pattern
        self.colours = np.asarray(colours, dtype=np.intp)
        self.dense_rows = np.unique(np.asarray(
            [] if dense_rows is None else dense_rows, dtype=np.intp))
        forward_cols = pattern.indices[_forward_entries(pattern,
                                                        self.dense_rows)]
        self.num_colours = (int(self.colours[forward_cols].max()) + 1
                            if forward_cols.size else 0)

    @property
    def shape(self) -> tuple:
        """``(K, D)``."""
        return self.pattern.shape

    @property
    def num_products(self) -> int:
        """Forward passes plus reverse sweeps (without the probe)."""
        return self.num_colours + int(self.dense_rows.size)

    def directions(self) -> np.ndarray:
        """Indicator directions of the colours, shape (D, num_colours)."""
        out = np.zeros((self.shape[1], self.num_colours))
        cols = np.flatnonzero(self.colours < self.num_colours)
        out[cols, self.colours[cols]] = 1.0
        return out

    def describe(self) -> str:
        """The passes, e.g. ``'2 colours, 1 reverse pass'``."""
        k, r = self.num_colours, int(self.dense_rows.size)
        out = f"{k} colour{'s' if k != 1 else ''}"
        if r:
            out += f", {r} reverse pass{'es' if r != 1 else ''}"
        return out

    def __repr__(self) -> str:
        return (f"JacobianColouring(shape={self.shape}, nnz="
                f"{self.pattern.nnz}, num_colours={self.num_colours}, "
                f"dense_rows={self.dense_rows.size})")


def _forward_entries(pattern: sps.csr_array,
                     dense_rows: np.ndarray) -> np.ndarray:
    """Mask over the stored entries: those of rows not in ``dense_rows``."""
    reverse = np.zeros(pattern.shape[0], dtype=bool)
    reverse[dense_rows] = True
    return np.repeat(~reverse, np.diff(pattern.indptr))


def colour_jacobian(sparsity: Any, dim: Optional[int] = None
                    ) -> JacobianColouring:
    r"""Plan the recovery of a Jacobian from its sparsity pattern.

    The densest rows go to reverse mode when that saves passes (see the
    module docstring), and the columns of the other rows are coloured.

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
    JacobianColouring

    Examples
    --------
    Moments :math:`m_t^2 + e^{2 s_t}` of ``T`` groups with means at
    ``0..T-1`` and log-sds at ``T..2T-1`` need two colours:

    >>> import numpy as np
    >>> T = 1000
    >>> deps = np.stack([np.arange(T), T + np.arange(T)], axis=1)
    >>> colour_jacobian(deps, dim=2 * T).num_colours
    2
    """
    if isinstance(sparsity, JacobianColouring):
        if dim is not None and sparsity.shape[1] != dim:
            raise ValueError(f"sparsity must have {dim} columns (the length "
                             f"of opt_par_value); got shape "
                             f"{sparsity.shape}")
        return sparsity
    if sps.issparse(sparsity):
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
    dense_rows = _reverse_rows_to_use(pattern)
    per_row = np.diff(pattern.indptr)
    per_row[dense_rows] = 0
    keep = _forward_entries(pattern, dense_rows)
    rest = sps.csr_array((pattern.data[keep], pattern.indices[keep],
                          np.concatenate([[0], np.cumsum(per_row)])),
                         shape=pattern.shape)
    return JacobianColouring(pattern, _colour(rest), dense_rows)


def _reverse_rows_to_use(pattern: sps.csr_array) -> np.ndarray:
    """The ``k`` densest rows, ``k`` minimising ``k`` plus the largest
    degree of the other rows (a lower bound on their colours)."""
    degree = np.diff(pattern.indptr)
    order = np.argsort(-degree, kind="stable")
    cost = np.arange(degree.size + 1) + np.append(degree[order], 0)
    return np.sort(order[:int(np.argmin(cost))])


def _colour(pattern: sps.csr_array) -> np.ndarray:
    """Column colours; vectorised when no column is shared by two rows."""
    if pattern.nnz and np.bincount(pattern.indices,
                                   minlength=pattern.shape[1]).max() > 1:
        return colour_columns(pattern)        # greedy distance-2 colouring
    # Every column lies in at most one row: its position in that row is a
    # colour (columns of one row differ; columns of two rows never meet).
    colours = np.zeros(pattern.shape[1], dtype=np.intp)
    starts = np.repeat(pattern.indptr[:-1], np.diff(pattern.indptr))
    colours[pattern.indices] = np.arange(pattern.nnz) - starts
    return colours


def _check_outputs(value: Any, num: Optional[int], name: str) -> np.ndarray:
    """``fun``'s value: a 1-d array of ``num`` entries (when known)."""
    value = np.asarray(value)
    if value.ndim > 1:
        raise ValueError(f"{name} must return a 1-d array of moments;"
                         f" got shape {value.shape}")
    if num is not None and value.size != num:
        raise ValueError(f"{name} returned {value.size} moments but "
                         f"the colouring (sparsity pattern) has {num} rows")
    return value


def _jvp_or_raise(jvp: Callable, direction: np.ndarray, num: Optional[int],
                  name: str = "calculate_moments"):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Output seems independent of input")
        try:
            value, tangent = jvp(direction)
        except NotImplementedError as err:
            raise ValueError(
                f"{name} uses an operation without a forward-mode "
                f"derivative in autograd ({err}); pass colouring=None (reverse "
                f"mode) or supply the moment Jacobian yourself") from err
    value = _check_outputs(value, num, name)
    tangent = np.broadcast_to(np.asarray(tangent, dtype=float), value.shape)
    return tangent.reshape(-1)


def _backward_sweeps(vjp: Callable, shape: tuple, rows: Any, dim: int):
    """Row ``k`` of the Jacobian for each ``k`` of ``rows``, one backward
    sweep of the recorded graph ``vjp`` (output shape ``shape``) each."""
    size = int(np.prod(shape))
    for k in rows:
        unit = np.zeros(size)           # fresh: vjp may return it as is
        unit[k] = 1.0
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore",
                                    "Output seems independent of input")
            row = vjp(unit.reshape(shape))
        yield np.broadcast_to(np.asarray(row, dtype=float), (dim,))


def _reverse_rows(fun: Callable, par: np.ndarray, pattern: sps.csr_array,
                  rows: np.ndarray, name: str) -> np.ndarray:
    """The stored entries of ``rows`` (ascending) in CSR order, from one
    recorded evaluation of ``fun`` and one backward sweep per row."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Output seems independent of input")
        vjp, value = autograd.make_vjp(fun)(par)
    shape = _check_outputs(value, pattern.shape[0], name).shape
    sweeps = _backward_sweeps(vjp, shape, rows, par.size)
    return np.concatenate([
        full[pattern.indices[pattern.indptr[k]:pattern.indptr[k + 1]]]
        for k, full in zip(rows, sweeps)])


def _coloured_jacobian(fun: Callable, par: np.ndarray,
                       colouring: JacobianColouring,
                       verify: bool, name: str = "calculate_moments",
                       at: str = "opt_par_value") -> sps.csr_array:
    """Sparse Jacobian on ``colouring.pattern``: one forward pass per
    colour, one backward sweep per dense row (+1 forward probe)."""
    num, dim = colouring.shape
    jvp = autograd.make_jvp(fun)(par)
    pattern = colouring.pattern
    rows = np.repeat(np.arange(num), np.diff(pattern.indptr))
    forward = _forward_entries(pattern, colouring.dense_rows)
    values = np.empty(pattern.nnz)
    if colouring.num_colours:
        dirs = colouring.directions()
        products = np.empty((num, dirs.shape[1]))
        for c in range(dirs.shape[1]):      # one forward pass per colour
            products[:, c] = _jvp_or_raise(jvp, dirs[:, c], num, name)
        values[forward] = products[
            rows[forward], colouring.colours[pattern.indices[forward]]]
    if colouring.dense_rows.size:
        values[~forward] = _reverse_rows(fun, par, pattern,
                                         colouring.dense_rows, name)
    jac = sps.csr_array((values, pattern.indices.copy(), pattern.indptr.copy()),
                        shape=(num, dim))
    if not np.isfinite(values).all():
        k = int(np.flatnonzero(~np.isfinite(values))[0])
        raise ValueError(f"the Jacobian of {name} is not finite at "
                         f"{at}: entry [{rows[k]}, "
                         f"{pattern.indices[k]}] = {values[k]}")
    if verify and num:
        probe = np.random.default_rng(0).standard_normal(dim)
        true = _jvp_or_raise(jvp, probe, num, name)
        approx = jac @ probe
        tol = np.sqrt(_EPS) * (abs(jac) @ np.abs(probe) + np.abs(true))
        tol += _EPS * max(float(np.max(tol, initial=0.0)), 1e-300)
        gap = np.abs(approx - true)
        if not (gap <= tol).all():
            i = int(np.argmax(gap - tol))
            raise ValueError(
                f"{name} depends on coordinates outside the sparsity "
                f"pattern of colouring: moment {i} times a random probe differs "
                f"from the forward-mode derivative by {gap[i]:.3g} (tolerance "
                f"{tol[i]:.3g}); add the missing coordinates of row {i} to the "
                f"pattern (or pass verify=False)")
    return jac


def _dense_jacobian(fun: Callable, par: np.ndarray,
                    name: str = "calculate_moments") -> np.ndarray:
    """Dense Jacobian by reverse mode (K <= D) or forward mode (K > D)."""
    dim = par.size
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Output seems independent of input")
        vjp, ans = autograd.make_vjp(fun)(par)       # one trace of the moments
    ans = _check_outputs(ans, None, name)
    num = ans.size
    if num > dim:                    # fewer passes in forward mode
        try:
            jvp = autograd.make_jvp(fun)(par)
            eye = np.eye(dim)
            cols = [_jvp_or_raise(jvp, eye[j], num, name) for j in range(dim)]
            return np.stack(cols, axis=1)
        except ValueError as err:
            if not isinstance(err.__cause__, NotImplementedError):
                raise
    rows = list(_backward_sweeps(vjp, ans.shape, range(num), dim))
    return np.stack(rows, axis=0) if rows else np.zeros((0, dim))


def _bound(fun: Callable, args: tuple) -> Callable:
    if not callable(fun):
        raise TypeError(f"fun must be callable; got {type(fun).__name__}")
    return fun if not args else (lambda x: fun(x, *args))


def sparse_jacobian(fun: Callable, x: Any, *args: Any, sparsity: Any = None,
                    verify: bool = True, name: str = "fun",
                    at: str = "x") -> sps.csr_array:
    r"""The Jacobian of ``fun`` at ``x`` on a sparsity pattern, sparse.

    Dense rows of the pattern come from reverse mode, the other rows from
    coloured forward mode (see the module docstring and
    :func:`colour_jacobian`).

    Parameters
    ----------
    fun : callable
        ``fun(x, *args)`` returning a 1-d array (``K`` entries), written
        with ``autograd.numpy`` (forward and reverse mode).
    x : array_like, shape (D,)
    *args
        Further (constant) arguments of ``fun``.
    sparsity : optional, keyword-only
        The pattern (anything :func:`colour_jacobian` takes, or a
        :class:`JacobianColouring` to reuse).  Default: detected by
        :func:`~refold.sensitivity.sparsity.jacobian_sparsity`.
    verify : bool, keyword-only
        Check the result against one forward pass in a random direction
        (default ``True``): a wrong pattern raises ``ValueError`` naming the
        row.
    name, at : str, keyword-only
        How ``fun`` and ``x`` are named in error messages.

    Returns
    -------
    scipy.sparse.csr_array, shape (K, D)
        From ``num_colours`` forward passes and one backward sweep per dense
        row (plus the probe).

    Examples
    --------
    >>> import autograd.numpy as anp, numpy as np
    >>> jac = sparse_jacobian(lambda x: x[1:] * x[:-1], np.arange(1.0, 5.0))
    >>> jac.toarray()
    array([[2., 1., 0., 0.],
           [0., 3., 2., 0.],
           [0., 0., 4., 3.]])

    A row of every coordinate costs one backward sweep, not ``D`` colours:

    >>> from refold.sensitivity import jacobian_sparsity
    >>> f = lambda x: anp.concatenate([x[1:] * x[:-1], anp.sum(x ** 2)[None]])
    >>> colour_jacobian(jacobian_sparsity(f, np.ones(100))).describe()
    '2 colours, 1 reverse pass'
    """
    par = finite_array(x, at, vector=True, non_empty=True)
    f = _bound(fun, args)
    if sparsity is None:
        from refold.sensitivity.sparsity import jacobian_sparsity
        sparsity = jacobian_sparsity(f, par)
    colouring = colour_jacobian(sparsity, dim=par.size)
    return _coloured_jacobian(f, par, colouring, verify, name, at)


def auto_jacobian(fun: Callable, x: Any, *args: Any,
                  name: str = "fun", at: str = "x") -> tuple:
    r"""The Jacobian of ``fun`` at ``x``, sparse when its pattern is.

    The pattern is detected (one traced call); when it is recovered in
    fewer passes than the dense route needs (``min(K, D)``) and at most
    :data:`DENSE_FRACTION` of its entries can be nonzero, :math:`J` comes
    sparse from :func:`sparse_jacobian`'s passes (verified by a random
    probe); otherwise -- or when the trace fails, or ``fun`` has an operation
    without a forward-mode rule -- it is dense (reverse mode, one sweep per
    output, or forward mode when ``K > D``).

    Parameters
    ----------
    fun : callable
        ``fun(x, *args)`` returning a 1-d array.
    x : array_like, shape (D,)
    *args
        Further arguments of ``fun``.
    name, at : str, keyword-only
        How ``fun`` and ``x`` are named in error messages.

    Returns
    -------
    jacobian : scipy.sparse.csr_array or ndarray, shape (K, D)
    how : str
        What was done, e.g. ``'sparse Jacobian: 1,505 x 3,014, 1 colour'``.
    """
    par = finite_array(x, at, vector=True, non_empty=True)
    f = _bound(fun, args)
    colouring = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from refold.sensitivity.sparsity import jacobian_sparsity
            pattern = jacobian_sparsity(f, par)
        num, dim = pattern.shape
        if pattern.nnz <= DENSE_FRACTION * num * dim:
            colouring = colour_jacobian(pattern, dim=dim)
            if colouring.num_products + 1 >= min(num, dim):
                colouring = None
    except Exception:           # noqa: BLE001 - any trace failure:
        colouring = None        # the dense route below is always correct
    if colouring is not None:
        try:
            jac = _coloured_jacobian(f, par, colouring, True, name, at)
        except ValueError as err:
            if not isinstance(err.__cause__, NotImplementedError):
                raise
        else:
            num, dim = jac.shape
            return jac, (f"sparse Jacobian: {num:,} x {dim:,}, "
                         f"{colouring.describe()}")
    jac = _dense_jacobian(f, par, name)
    if not np.isfinite(jac).all():
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(jac))[0])
        raise ValueError(f"the Jacobian of {name} is not finite at {at}; "
                         f"entry {list(where)} = {jac[where]}")
    return jac, f"dense Jacobian: {jac.shape[0]:,} x {jac.shape[1]:,}"


#: The name of :class:`JacobianColouring` in refold.models (kept).
MomentJacobianColouring = JacobianColouring
#: The name of :func:`colour_jacobian` in refold.models (kept).
colour_moment_jacobian = colour_jacobian
