r"""Correlation matrices: ``CorrelationMatrixPattern``.

The folded value is an :math:`n \times n` correlation matrix :math:`R`
(symmetric, unit diagonal, positive semidefinite); its non-free flat value is
the full matrix, row-major (:math:`n^2` entries).

Free parameterisation (:math:`n(n-1)/2` unconstrained coordinates): the
*canonical partial correlations* :math:`c_{ij} = \tanh(z_{ij})`, stacked row
by row over the strict lower triangle (:math:`z_{21}, z_{31}, z_{32}, z_{41},
\dots`), build the Cholesky factor :math:`L` of :math:`R = L L^\top` row by
row:

.. math::
    L_{ij} = c_{ij}\, w_{ij} \;(j < i), \qquad L_{ii} = w_{ii}, \qquad
    w_{ij} = \prod_{k<j} \sqrt{1 - c_{ik}^2},

so each row of :math:`L` has unit norm and :math:`R` has a unit diagonal.
Since :math:`\sqrt{1 - \tanh^2 z} = \operatorname{sech} z`, the products are
computed as :math:`\exp \sum_{k<j} \log\operatorname{sech} z_{ik}` with
:math:`\log\operatorname{sech} z = \log 2 - \operatorname{logaddexp}(z, -z)`:
no finite free value folds to NaN (an extreme one gives a singular
:math:`R`). The folded matrix is exactly symmetric with an exact unit
diagonal.

The inverse reads only the strict lower triangle of :math:`R` (its diagonal
is 1 and its upper triangle the mirror image), takes the Cholesky factor,
and uses :math:`w_{ij}^2 = \sum_{k \ge j} L_{ik}^2` (no cancellation) and
:math:`\operatorname{artanh}(L_{ij}/w_{ij}) = \operatorname{arsinh}(L_{ij} /
w_{i,j+1})`, which stays accurate when :math:`|c_{ij}|` is close to one.

Jacobians. Write :math:`a > b` for the free coordinate :math:`z_{ab}`. Only
row :math:`a` of :math:`L` depends on it: :math:`v = \partial L_{a\cdot} /
\partial z_{ab}` has :math:`v_b = (1 - c_{ab}^2) w_{ab}`, :math:`v_j =
-c_{ab} L_{aj}` for :math:`j > b` and zeros before :math:`b`; so
:math:`\partial R / \partial z_{ab}` is :math:`u = L v` placed in row and
column :math:`a` (:math:`u_a = 0`, :math:`u_i = 0` for :math:`i < b`). Hence
:math:`R_{ij}` (:math:`i > j`) depends exactly on :math:`z_{ib}` for
:math:`b \le j` and on every :math:`z_{jb}`. Restricted to the strict lower
triangle of :math:`R` (the non-free coordinates used for the
log-determinants, as for PSD matrices), the unfreeing Jacobian is square and
lower triangular in the row-by-row order, with diagonal
:math:`\partial R_{ij} / \partial z_{ij} = L_{jj} (1 - c_{ij}^2) w_{ij}`, so

.. math::
    \log\left|\det \frac{\partial R_{\mathrm{lower}}}{\partial z}\right|
    = \sum_{i > j} \left[\log L_{jj} + \log w_{i,j+1}^2 - \log w_{ij}\right],

and the freeing log-determinant is its negative. The freeing Jacobian has
non-zero columns only for the strict lower triangle, where it is the inverse
of that triangular matrix (computed batched); its structural non-zeros are
:math:`\partial z_{ab} / \partial R_{rs}` for :math:`r \le b`, or :math:`r =
a` and :math:`s \le b`.
"""
from __future__ import annotations

from typing import Optional

import autograd.numpy as np
import numpy as onp
import scipy.sparse as osp
from autograd.tracer import getval

from refold.patterns._array_pattern import ArrayPattern
from refold.patterns._checks import (
    check_free_flag, check_size, element_path, first_index, first_nonfinite,
    path_error)
from refold.patterns._matrix_checks import (
    asymmetry, eigenvalue_range, transpose, try_cholesky)

__all__ = ["CorrelationMatrixPattern"]

#: Symmetry, unit-diagonal and semidefiniteness tolerances are this many
#: ulps of the dtype, times the matrix size.
TOLERANCE_ULPS = 8

_LOG2 = float(onp.log(2.0))


def _eps(dtype) -> float:
    dtype = onp.dtype(dtype)
    return float(onp.finfo(dtype if dtype.kind == "f" else float).eps)


class CorrelationMatrixPattern(ArrayPattern):
    r"""A correlation matrix, freed through canonical partial correlations.

    Parameters
    ----------
    size : int
        Number of rows and columns n (at least 1).
    default_validate : bool, optional
        Whether values are checked by default: finite, symmetric and with a
        unit diagonal (both within ``8 * n * eps`` of the dtype), and
        positive semidefinite (smallest eigenvalue at least ``-8 * n * eps``
        times the largest). The free map additionally needs a positive
        definite matrix.
    free_default : bool or None, optional
        Default for ``free``.

    Raises
    ------
    ValueError
        If ``size < 1``.
    TypeError
        If an argument has the wrong type.

    Notes
    -----
    The free vector holds :math:`z_{ij} = \operatorname{artanh}(c_{ij})` for
    the canonical partial correlations :math:`c_{ij}`, row by row over the
    strict lower triangle; see the module notes for the maps, Jacobians and
    log-determinants (whose non-free coordinates are the strict lower
    triangle of the matrix).

    Examples
    --------
    >>> import numpy as np
    >>> from refold.patterns.correlation import CorrelationMatrixPattern
    >>> pattern = CorrelationMatrixPattern(2)
    >>> value = pattern.fold(np.array([np.arctanh(0.5)]), free=True)
    >>> value.round(12)
    array([[1. , 0.5],
           [0.5, 1. ]])
    """

    _json_name = "refold.CorrelationMatrixPattern"

    def __init__(self, size: int, default_validate: bool = True,
                 free_default: Optional[bool] = None):
        n = check_size(size, "size", 1)
        self.default_validate = check_free_flag(
            default_validate, "default_validate")
        self._n = n
        self._m = n * (n - 1) // 2
        self._lo_r, self._lo_c = onp.tril_indices(n, -1)
        self._lo_flat = self._lo_r * n + self._lo_c
        gather = onp.full(n * n, self._m)
        gather[self._lo_flat] = onp.arange(self._m)
        self._gather = gather
        self._strict_lower = onp.tril(onp.ones((n, n)), -1)
        self._eye = onp.eye(n)
        self._structure_cache = None
        super().__init__(n * n, self._m, free_default=free_default)

    # Accessors ------------------------------------------------------------

    def size(self) -> int:
        """Number of rows (and columns) of the matrix."""
        return self._n

    def shape(self) -> tuple:
        """Shape of the folded matrix, ``(size, size)``."""
        return (self._n, self._n)

    def _constructor_args(self) -> dict:
        return {"size": self._n}

    def __str__(self):
        return "CorrelationMatrixPattern {}x{}".format(self._n, self._n)

    def flat_names(self, free=None) -> list:
        """Names ``'[i,j]'``: every entry, or (free) the strict lower
        triangle, row by row, naming the partial correlation of ``(i, j)``."""
        free = self._free_with_default(free)
        if free:
            return ["[{},{}]".format(i, j)
                    for i, j in zip(self._lo_r, self._lo_c)]
        return ["[{},{}]".format(i, j) for i in range(self._n)
                for j in range(self._n)]

    # The batched protocol ----------------------------------------------

    def _full_shape(self, batch_shape):
        return tuple(batch_shape) + (self._n, self._n)

    def _valid_element(self):
        return self._eye

    def _fold_b(self, flat, batch_shape, free, validate, path):
        if not free:
            return self._fold_flat(flat, batch_shape, validate, path)
        z = np.reshape(flat, tuple(batch_shape) + (self._m,))
        if self._validate(validate):
            raw = onp.asarray(getval(z))
            idx = first_nonfinite(raw)
            if idx is not None:
                q = idx[-1]
                raise path_error(
                    element_path(path, idx[:-1]),
                    "the free value of entry ({}, {}) is {}; free values "
                    "must be finite".format(self._lo_r[q], self._lo_c[q],
                                            raw[idx]))
        return self._correlation_from_free(z)

    def _flatten_b(self, folded, batch_shape, free, validate, path):
        folded, raw = self._check_shape_of(folded, batch_shape, path)
        check = self._validate(validate)
        if not free:
            return self._flatten_flat(folded, raw, batch_shape, check, path)
        if check:
            chol = self._check_values(raw, batch_shape, path, True)
        else:
            chol = try_cholesky(self._lower_symmetric(_as_float(raw)))
            if chol is None:  # diagnose: raises for a non-PD matrix
                chol = self._check_values(raw, batch_shape, path, True)
        if folded is not raw:  # traced by autograd: differentiable factor
            chol = _traced_cholesky(self._lower_symmetric(folded), self._n)
        z = self._free_from_cholesky(chol)
        raw_z = onp.asarray(getval(z))
        idx = first_nonfinite(raw_z)
        if idx is not None:
            if not check:
                self._check_values(raw, batch_shape, path, True)
            q = idx[-1]
            raise path_error(
                element_path(path, idx[:-1]),
                "the partial correlation of entries ({}, {}) is +-1 in "
                "floating point (the matrix is numerically singular); the "
                "free parameterisation artanh(c) needs |c| < 1".format(
                    self._lo_r[q], self._lo_c[q]))
        return np.reshape(z, tuple(batch_shape) + (self._m,))

    # The maps -----------------------------------------------------------

    def _lower_symmetric(self, corr):
        """The symmetric unit-diagonal matrix of ``corr``'s strict lower
        triangle (autograd-safe)."""
        lower = corr * self._strict_lower
        return lower + transpose(lower) + self._eye

    def _correlation_from_free(self, z):
        n = self._n
        batch = tuple(onp.shape(getval(z))[:-1])
        padded = np.concatenate([z, onp.zeros(batch + (1,))], axis=-1)
        zmat = np.reshape(padded[..., self._gather], batch + (n, n))
        # log sech z, exactly 0 at z = 0 and on the unused entries.
        with onp.errstate(over="ignore"):  # |z| near the float maximum
            log_sech = _LOG2 - np.logaddexp(zmat, -zmat)
            log_w = np.concatenate(  # may sum to -inf: a weight of 0
                [onp.zeros(batch + (n, 1)),
                 np.cumsum(log_sech[..., :-1], axis=-1)], axis=-1)
        chol = (np.tanh(zmat) + self._eye) * np.exp(log_w)
        prod = np.matmul(chol, transpose(chol))
        return self._lower_symmetric(prod)

    def _tails(self, chol):
        """``tail[..., i, j] = sum_{k >= j} L_ik^2``."""
        sq = chol * chol
        return np.cumsum(sq[..., ::-1], axis=-1)[..., ::-1]

    def _free_from_cholesky(self, chol):
        n = self._n
        batch = tuple(onp.shape(getval(chol))[:-2])
        tail = np.reshape(self._tails(chol), batch + (n * n,))
        flat_l = np.reshape(chol, batch + (n * n,))
        with onp.errstate(divide="ignore", invalid="ignore"):
            return np.arcsinh(flat_l[..., self._lo_flat] /
                              np.sqrt(tail[..., self._lo_flat + 1]))

    # Jacobians ----------------------------------------------------------

    def _structure(self):
        """Index arrays of the exact Jacobian structure (computed once)."""
        if self._structure_cache is None:
            n, m = self._n, self._m
            lo_r, lo_c = self._lo_r, self._lo_c
            position = onp.full((n, n), -1)
            position[lo_r, lo_c] = onp.arange(m)
            p, i = onp.meshgrid(onp.arange(m), onp.arange(n), indexing="ij")
            keep = (i >= lo_c[p]) & (i != lo_r[p])
            p, i = p[keep], i[keep]
            a = lo_r[p]
            q = position[onp.maximum(a, i), onp.minimum(a, i)]
            fp, fq = onp.meshgrid(onp.arange(m), onp.arange(m), indexing="ij")
            fkeep = (lo_r[fq] <= lo_c[fp]) | (
                (lo_r[fq] == lo_r[fp]) & (lo_c[fq] <= lo_c[fp]))
            self._structure_cache = {
                "p": p, "i": i, "q": q,
                "rows": onp.concatenate([a * n + i, i * n + a]),
                "free_p": fp[fkeep], "free_q": fq[fkeep]}
        return self._structure_cache

    def _jac_coo_b(self, folded, batch_shape, kind):
        n, m = self._n, self._m
        if m == 0:
            return onp.zeros(0, int), onp.zeros(0, int), onp.zeros(0)
        st = self._structure()
        corr = _as_float(onp.asarray(getval(folded))).reshape(-1, n, n)
        count = corr.shape[0]
        chol = onp.linalg.cholesky(self._lower_symmetric(corr))
        tail = self._tails(chol)
        lo_r, lo_c = self._lo_r, self._lo_c
        w = onp.sqrt(tail[:, lo_r, lo_c])
        c = chol[:, lo_r, lo_c] / w
        later = onp.arange(n)[None, :] > lo_c[:, None]
        v = -c[..., None] * chol[:, lo_r, :] * later
        v[:, onp.arange(m), lo_c] = tail[:, lo_r, lo_c + 1] / w
        u = onp.matmul(v, onp.swapaxes(chol, -1, -2))
        vals = u[:, st["p"], st["i"]]
        elem = onp.arange(count)[:, None]
        if kind == "unfreeing":
            rows = st["rows"][None, :] + elem * (n * n)
            cols = onp.concatenate([st["p"], st["p"]])[None, :] + elem * m
            return rows.reshape(-1), cols.reshape(-1), \
                onp.concatenate([vals, vals], axis=1).reshape(-1)
        lower_jac = onp.zeros((count, m, m))
        lower_jac[:, st["q"], st["p"]] = vals
        inverse = onp.linalg.inv(lower_jac)
        rows = st["free_p"][None, :] + elem * m
        cols = self._lo_flat[st["free_q"]][None, :] + elem * (n * n)
        vals = inverse[:, st["free_p"], st["free_q"]]
        return rows.reshape(-1), cols.reshape(-1), vals.reshape(-1)

    def _log_abs_det_b(self, folded, batch_shape, kind):
        n = self._n
        batch = tuple(batch_shape)
        if self._m == 0:
            return np.zeros(batch)
        corr = np.reshape(folded, batch + (n, n))
        if isinstance(corr, onp.ndarray):
            chol = onp.linalg.cholesky(self._lower_symmetric(_as_float(corr)))
        else:
            chol = _traced_cholesky(self._lower_symmetric(corr), n)
        tail = np.reshape(self._tails(chol), batch + (n * n,))
        diag = np.reshape(chol, batch + (n * n,))[..., self._lo_c * (n + 1)]
        terms = (np.log(diag) + np.log(tail[..., self._lo_flat + 1])
                 - 0.5 * np.log(tail[..., self._lo_flat]))
        total = np.sum(terms, axis=-1)
        return -total if kind == "freeing" else total

    def _free_dependency(self):
        n, m = self._n, self._m
        if m == 0:
            return osp.csr_matrix((n * n, 0), dtype=bool)
        st = self._structure()
        cols = onp.concatenate([st["p"], st["p"]])
        return osp.csr_matrix(
            (onp.ones(cols.size, dtype=bool), (st["rows"], cols)),
            shape=(n * n, m))

    # Validation ---------------------------------------------------------

    def _shape_note(self, batch_shape):
        what = "a {} stack of ".format(tuple(batch_shape)) \
            if batch_shape else "one "
        return " ({}{}x{} correlation matri{})".format(
            what, self._n, self._n, "ces" if batch_shape else "x")

    def _check_values(self, raw, batch_shape, path, strict):
        """Raise for an invalid stack of matrices; return its Cholesky
        factor (``None`` for a singular matrix accepted when not strict)."""
        n = self._n
        values = _as_float(raw)
        if values.size == 0:
            return onp.zeros(values.shape)
        tol = TOLERANCE_ULPS * n * _eps(values.dtype)
        idx = first_nonfinite(values)
        if idx is not None:
            raise path_error(
                element_path(path, idx[:-2]), "entry ({}, {}) is {}; a "
                "correlation matrix must be finite".format(
                    idx[-2], idx[-1], values[idx]))
        transposed = onp.swapaxes(values, -1, -2)
        scale = onp.maximum(1.0, onp.maximum(onp.abs(values),
                                             onp.abs(transposed)))
        asym = asymmetry(values) > tol * scale
        if asym.any():
            idx = first_index(asym)
            i, j = idx[-2], idx[-1]
            raise path_error(
                element_path(path, idx[:-2]), "entry ({}, {}) is {!r} but entry "
                "({}, {}) is {!r}; a correlation matrix must be symmetric "
                "(tolerance {:.2g})".format(i, j, float(values[idx]), j, i,
                                            float(transposed[idx]), tol))
        deviation = onp.abs(onp.diagonal(values, axis1=-2, axis2=-1) - 1.0)
        bad_diag = (deviation > tol).any(axis=-1)
        if bad_diag.any():
            element = first_index(bad_diag)
            worst = int(onp.argmax(deviation[element]))
            raise path_error(
                element_path(path, element), "diagonal entry ({0}, {0}) is {1!r} "
                "(the worst of the diagonal); a correlation matrix has a unit "
                "diagonal (tolerance {2:.2g})".format(
                    worst, float(values[element + (worst, worst)]), tol))
        symmetric = self._lower_symmetric(values)
        chol = try_cholesky(symmetric)
        if chol is not None:
            return chol
        smallest, largest = eigenvalue_range(symmetric)
        psd_tol = tol * onp.maximum(1.0, largest)
        # (NaN, when the eigenvalues cannot be computed, counts as failed.)
        indefinite = ~(smallest >= -psd_tol)
        if not strict and not indefinite.any():
            return None  # singular but semidefinite: on the boundary
        bad = indefinite if indefinite.any() else smallest <= psd_tol
        element = first_index(bad) if bad.any() else \
            tuple(int(i) for i in onp.unravel_index(
                onp.argmin(smallest), smallest.shape))
        if indefinite[element]:
            problem = "is not positive {}definite: its smallest eigenvalue " \
                "is {:.3g}".format("" if strict else "semi",
                                   smallest[element])
        else:
            problem = "is singular (smallest eigenvalue {:.3g}); the free " \
                "parameterisation needs a positive definite matrix, since " \
                "a partial correlation of +-1 has no free value".format(
                    smallest[element])
        raise path_error(element_path(path, element),
                         "the correlation matrix " + problem)


def _as_float(raw):
    return raw.astype(float) if raw.dtype.kind in "biu" else raw


def _traced_cholesky(matrix, n):
    """Batched Cholesky factor built column by column from autograd
    primitives, so it differentiates to any order in both modes.

    One batched step per column (``n`` is small); only called on a matrix
    already known to be positive definite.
    """
    columns = []
    rows = onp.arange(n)
    for j in range(n):
        col = matrix[..., :, j]
        if j:
            previous = np.stack(columns, axis=-1)
            col = col - np.sum(previous * previous[..., j:j + 1, :], axis=-1)
        col = col / np.sqrt(col[..., j:j + 1]) * (rows >= j)
        columns.append(col)
    return np.stack(columns, axis=-1)
