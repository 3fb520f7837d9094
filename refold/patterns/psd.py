r"""Symmetric positive-definite matrices: ``PSDSymmetricMatrixPattern``.

Free parameterisation (exactly paragami's, so free vectors interchange): for
:math:`A` with :math:`A - \ell I = L L^\top` (:math:`\ell` = ``diag_lb``,
:math:`L` lower triangular with a positive diagonal), the free vector is
:math:`L` with its diagonal replaced by :math:`\log L_{ii}`, stacked row by
row: :math:`(\log L_{11}, L_{21}, \log L_{22}, L_{31}, \dots)`, of length
:math:`n(n+1)/2`. The flat (non-free) vector is :math:`A` row-major.

Numerical care:

- ``fold`` builds :math:`L` with one linear unpacking (a custom autograd
  primitive whose derivatives are the matching packing) and exponentiates
  only the diagonal, so no derivative meets ``inf * 0``.
- If a free value is so large that :math:`L L^\top` could overflow, each row
  :math:`i` of :math:`L` is scaled by an exact power of two :math:`2^{-k_i}`
  (the diagonal entry as :math:`\exp(\log L_{ii} - k_i \log 2)`) and
  :math:`A_{ij} = (L' L'^\top)_{ij}\, 2^{k_i + k_j}`. No finite free value
  folds to NaN, and the result is finite whenever :math:`A` is representable
  in float64. The common case only pays one ``max(abs(free))``.
- ``flatten`` symmetrises :math:`(A + A^\top)/2` before the Cholesky factor,
  so its derivative is symmetric, and validation needs only that one batched
  factorisation; when it fails, a batched ``eigvalsh`` finds which matrix of
  a stack failed and its smallest eigenvalue.
"""
from __future__ import annotations

import itertools
from typing import Optional

import autograd.numpy as np
import numpy as onp
import scipy.sparse as osp
from autograd.tracer import getval

import refold.patterns.autograd_rules  # noqa: F401  (jvp of cholesky)
from refold.patterns._array_pattern import ArrayPattern
from refold.patterns._checks import (
    check_free_flag, check_real_scalar, check_size, element_path,
    first_index, first_nonfinite, path_error)
from refold.patterns._matrix_checks import (
    asymmetry, first_not_positive_definite, transpose as _t)
from refold.patterns._psd_layout import (
    _Layout, _layout, _pack_tril, _unpack_tril)

__all__ = ["PSDSymmetricMatrixPattern"]

# Cody-Waite split of log(2): k * _LN2_HI is exact for |k| < 2**11.
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
# Row exponents stay where both 2**k and 2**-k are finite and nonzero.
_K_MIN, _K_MAX = -1000, 1023
# Relative tolerance for symmetry, in units of eps * size * max|A|.
_SYMMETRY_ULPS = 64


def _ldexp1(k):
    """2.0 ** k exactly, for an integer-valued float array."""
    return onp.ldexp(1.0, k.astype(onp.int64))


class PSDSymmetricMatrixPattern(ArrayPattern):
    r"""A symmetric positive-definite matrix :math:`A` with
    :math:`A - \ell I` positive definite, :math:`\ell` = ``diag_lb``.

    Parameters
    ----------
    size : int
        The matrix is ``size x size``.
    diag_lb : float, optional
        A finite :math:`\ell \ge 0`; the free parameterisation is the
        Cholesky factor of :math:`A - \ell I` (see the module notes), so the
        eigenvalues of :math:`A` exceed :math:`\ell`.
    default_validate : bool, optional
        Whether values are checked by default: finite; symmetric, with
        :math:`|A_{ij} - A_{ji}| \le 64\, n\, \epsilon \max|A|` per matrix
        (:math:`\epsilon` of the value's dtype); :math:`A - \ell I`
        positive definite (its Cholesky factorisation succeeds). With
        validation off only the shape is checked, but ``flatten(free=True)``
        still raises a ``ValueError`` when the factorisation fails.
    free_default : bool or None, optional
        Default for ``free``.

    Raises
    ------
    TypeError
        If ``size`` is not an integer or a flag is not a bool.
    ValueError
        If ``size < 1`` or ``diag_lb`` is negative, NaN or infinite.

    Examples
    --------
    >>> import numpy as np
    >>> from refold.patterns.psd import PSDSymmetricMatrixPattern
    >>> pattern = PSDSymmetricMatrixPattern(2)
    >>> pattern.flatten(np.array([[1.0, 0.5], [0.5, 2.0]]), free=True)
    array([0.        , 0.5       , 0.27980789])
    """

    _json_name = "refold.PSDSymmetricMatrixPattern"
    # A non-free flat vector keeps a float dtype (float32 stays float32).
    _kept_flat_kinds = "bf"

    def __init__(self, size: int, diag_lb: float = 0.0,
                 default_validate: bool = True,
                 free_default: Optional[bool] = None):
        self._size = check_size(size, "size", 1)
        lb = check_real_scalar(diag_lb, "diag_lb", allow_inf=False)
        if lb < 0:
            raise ValueError(
                "diag_lb: expected a finite number >= 0, got {}".format(lb))
        self._diag_lb = lb
        self.default_validate = check_free_flag(
            default_validate, "default_validate")
        super().__init__(self._size ** 2, self._lay.m,
                         free_default=free_default)

    @property
    def _lay(self) -> _Layout:
        # Shared by size and not pickled with the pattern.
        return _layout(self._size)

    # paragami's accessors ------------------------------------------------

    def size(self) -> int:
        """The number of rows (and columns) of the matrix."""
        return self._size

    def shape(self) -> tuple:
        """``(size, size)``."""
        return (self._size, self._size)

    def diag_lb(self) -> float:
        """The lower bound ``diag_lb`` of the eigenvalues."""
        return self._diag_lb

    def _constructor_args(self) -> dict:
        return {"size": self._size, "diag_lb": self._diag_lb}

    def __str__(self):
        return "PSDSymmetricMatrixPattern {0}x{0} (diag_lb={1})".format(
            self._size, self._diag_lb)

    def flat_names(self, free=None) -> list:
        """Names ``'[i,j]'``: of every entry (``free=False``), or of the
        Cholesky entries stacked in the free vector (``free=True``)."""
        if self._free_with_default(free):
            pairs = zip(self._lay.rows, self._lay.cols)
        else:
            pairs = itertools.product(range(self._size), repeat=2)
        return ["[{},{}]".format(i, j) for i, j in pairs]

    # The batched protocol ----------------------------------------------

    def _full_shape(self, batch_shape):
        return tuple(batch_shape) + (self._size, self._size)

    def _valid_element(self):
        return (self._diag_lb + 1.0) * self._lay.eye

    def _fold_b(self, flat, batch_shape, free, validate, path):
        if not free:
            return self._fold_flat(flat, batch_shape, validate, path)
        if self._validate(validate):
            self._check_free_finite(getval(flat), batch_shape, path)
        return self._fold_free(flat)

    def _flatten_b(self, folded, batch_shape, free, validate, path):
        folded, raw = self._check_shape_of(folded, batch_shape, path)
        check = self._validate(validate)
        if not free:
            return self._flatten_flat(folded, raw, batch_shape, check, path)
        if check:
            self._check_values(raw, batch_shape, path, factor=False)
        if folded is raw and raw.dtype.kind != "f":
            folded = raw = raw.astype(float)
        return self._flatten_free(folded, batch_shape, path)

    # Jacobians and log-determinants --------------------------------------

    def _raw_cholesky(self, folded, batch_shape):
        raw = onp.asarray(getval(folded), dtype=float)
        shifted = self._shifted(raw)
        try:
            return onp.linalg.cholesky(shifted)
        except onp.linalg.LinAlgError:
            self._raise_not_pd(shifted, batch_shape, ())

    def _jac_coo_b(self, folded, batch_shape, kind):
        """Analytic Jacobians of a stack, COO in canonical order.

        Only the exact structural nonzeros are returned, element-major, with
        rows ascending and, within a row, columns ascending and unique (so a
        CSR matrix can be assembled without sorting).
        """
        n, m = self._size, self._lay.m
        count = int(onp.prod(batch_shape, dtype=int))
        chol = self._raw_cholesky(folded, batch_shape).reshape(count, n, n)
        if kind == "freeing":
            # d free_(i,j) / d A_ab = (t_a w_b + t_b w_a) / 2 with
            # t = sum_l L_il c_lj W_l. (over 2 on the diagonal), w = W_j.,
            # W = L^-1; diagonal rows are divided by L_ii (log scale).
            rows, col, idx_a, idx_b, swap, coef = self._lay.freeing
            inv = onp.linalg.inv(chol)
            t = onp.matmul(chol[:, self._lay.rows, :] * coef, inv)
            on_diag = self._lay.rows == self._lay.cols
            t[:, on_diag, :] /= onp.diagonal(
                chol, axis1=-2, axis2=-1)[..., None]
            t *= 0.5
            vals = onp.take(t.reshape(count, m * n), idx_a, axis=1)
            vals *= onp.take(inv[:, self._lay.cols, :].reshape(count, m * n),
                             idx_b, axis=1)          # t_a w_b / 2
            vals += onp.take(vals, swap, axis=1)     # + t_b w_a / 2
            out_len, in_len = m, n * n
        else:
            rows, col, lidx, mult, didx = self._lay.unfreeing
            flat_l = onp.concatenate(
                [chol.reshape(count, n * n), onp.ones((count, 1))], axis=1)
            vals = onp.take(flat_l, lidx, axis=1) * mult * \
                onp.take(flat_l, didx, axis=1)
            out_len, in_len = n * n, m
        if count == 1:
            return rows, col, vals.ravel()
        # Element-major: element e's block starts at (e * out_len, e * in_len).
        offsets = onp.arange(count, dtype=onp.int64)
        rows = (offsets[:, None] * out_len + rows).ravel()
        cols = (offsets[:, None] * in_len + col).ravel()
        return rows, cols, vals.ravel()

    def _sparse_jacobian(self, folded_val, kind, sparse):
        # One matrix: the structure is static, so the CSR index arrays are
        # cached and only the values are computed.
        folded_val = self._checked_raw(folded_val)
        vals = self._jac_coo_b(folded_val, (), kind)[2]
        indices, indptr = self._lay.csr[kind]
        shape = (self._free_flat_length, self._flat_length) \
            if kind == "freeing" else \
            (self._flat_length, self._free_flat_length)
        jac = osp.csr_matrix((vals, indices.copy(), indptr.copy()),
                             shape=shape)
        jac.has_canonical_format = True
        return jac if sparse else jac.toarray()

    def _log_abs_det_b(self, folded, batch_shape, kind):
        r""":math:`\log|\det \partial\,\mathrm{tril}(A)/\partial\,
        \mathrm{free}| = n \log 2 + \sum_i (n + 1 - i) \log L_{ii}`
        (0-based :math:`i`): the map :math:`L \mapsto \mathrm{tril}(LL^\top)`
        has determinant :math:`2^n \prod_i L_{ii}^{n - i}` and the logged
        diagonal adds :math:`\prod_i L_{ii}`. Freeing is its negative."""
        shifted = self._shifted(folded)
        try:
            chol = np.linalg.cholesky(shifted)
        except onp.linalg.LinAlgError:
            self._raise_not_pd(getval(shifted), batch_shape, ())
        log_diag = np.log(np.diagonal(chol, axis1=-1, axis2=-2))
        total = self._size * onp.log(2.0) + np.sum(
            log_diag * self._lay.logdet_weights, axis=-1)
        return -total if kind == "freeing" else total

    def _free_dependency(self):
        rows, cols = self._lay.unfreeing[:2]
        return osp.csr_matrix(
            (onp.ones(rows.size, dtype=bool), (rows, cols)),
            shape=(self._flat_length, self._free_flat_length))

    # Internals ----------------------------------------------------------

    def _shifted(self, value):
        """(A + A^T) / 2 - diag_lb * I (autograd-differentiable)."""
        sym = 0.5 * value + 0.5 * _t(value)      # no overflow near the max
        return sym - self._diag_lb * self._lay.eye if self._diag_lb else sym

    def _fold_free(self, free):
        n, lay = self._size, self._lay
        tri = _unpack_tril(free, n)
        log_diag = np.diagonal(tri, axis1=-1, axis2=-2)
        exponents = self._row_exponents(getval(free))
        if exponents is None:
            chol = tri * lay.offmask + np.exp(log_diag)[..., None] * lay.eye
            folded = np.matmul(chol, _t(chol))
        else:
            # Rows scaled by 2**-k (exactly); the diagonal in log space.
            row_scale = _ldexp1(-exponents)[..., :, None] * lay.offmask
            shifted = (log_diag - exponents * _LN2_HI) - exponents * _LN2_LO
            diag = np.exp(np.minimum(shifted, 1.0))
            chol = tri * row_scale + diag[..., None] * lay.eye
            total = exponents[..., :, None] + exponents[..., None, :]
            half = onp.floor(total / 2.0)
            with onp.errstate(over="ignore"):   # entries beyond float64
                folded = (np.matmul(chol, _t(chol)) * _ldexp1(half)) * \
                    _ldexp1(total - half)
        if self._diag_lb:
            folded = folded + self._diag_lb * lay.eye
        return folded

    def _row_exponents(self, raw):
        """None when L L^T cannot overflow; else per-row exponents k_i
        (batch + (n,)) with max_j |L_ij| 2**-k_i close to one."""
        if raw.size == 0:
            return None
        biggest = onp.max(onp.abs(raw))
        if not (biggest > self._lay.fast_limit) or not onp.isfinite(biggest):
            return None
        tri = _unpack_tril(raw, self._size)
        log_diag = onp.diagonal(tri, axis1=-1, axis2=-2)
        off_max = onp.max(onp.abs(tri * self._lay.offmask), axis=-1)
        with onp.errstate(divide="ignore"):
            row_log = onp.maximum(log_diag, onp.log(off_max))
        if onp.max(row_log) <= self._lay.fast_limit:
            return None
        return onp.clip(onp.ceil(row_log / onp.log(2.0)), _K_MIN, _K_MAX)

    def _rounding_jitter(self, raw):
        """What adding and subtracting ``diag_lb`` costs in rounding: the
        diagonal of ``A - diag_lb I`` is known only to ``eps |A_ii|``, so a
        matrix folded from a free value whose ``L L^T`` has eigenvalues
        below that can come out of the subtraction slightly indefinite.
        Returns ``4 eps max_i |A_ii|`` per matrix (shape batch + (1, 1)),
        or ``None`` when ``diag_lb`` is 0 (no rounding to forgive)."""
        if not self._diag_lb:
            return None
        diag = onp.abs(onp.diagonal(onp.asarray(raw, dtype=float),
                                    axis1=-1, axis2=-2))
        return (4.0 * onp.finfo(float).eps
                * onp.max(diag, axis=-1))[..., None, None]

    def _cholesky(self, shifted, raw, batch_shape, path, lib=np):
        """Cholesky of ``A - diag_lb I``; when it fails, once more with the
        rounding jitter of :meth:`_rounding_jitter` on the diagonal, so
        every value ``fold`` returns validates and flattens back."""
        try:
            return lib.linalg.cholesky(shifted)
        except onp.linalg.LinAlgError:
            jitter = self._rounding_jitter(raw)
            if jitter is not None:
                try:
                    return lib.linalg.cholesky(shifted + jitter * self._lay.eye)
                except onp.linalg.LinAlgError:
                    pass
            self._raise_not_pd(getval(shifted), batch_shape, path)

    def _flatten_free(self, folded, batch_shape, path):
        shifted = self._shifted(folded)
        chol = self._cholesky(shifted, getval(folded), batch_shape, path)
        log_diag = np.log(np.diagonal(chol, axis1=-1, axis2=-2))
        tri = chol * self._lay.offmask + log_diag[..., None] * self._lay.eye
        return _pack_tril(tri, self._size)

    def _check_free_finite(self, raw, batch_shape, path):
        idx = first_nonfinite(raw)
        if idx is None:
            return
        raise path_error(
            element_path(path, idx[:len(batch_shape)]),
            "the free flat value is {} at free coordinate {}; free values "
            "must be finite".format(raw[idx], idx[-1]))

    def _describe(self):
        return "{0}x{0} matrix".format(self._size)

    def _check_values(self, raw, batch_shape, path, strict=False,
                      factor=True):
        """Raise unless every matrix of the stack is finite, symmetric and
        (with ``factor``) has ``A - diag_lb I`` positive definite.

        Positive definiteness is required whether or not ``strict``: the
        free parameterisation needs it and so does the constraint.
        """
        if raw.size == 0:
            return
        if raw.dtype.kind != "f":
            raw = raw.astype(float)
        idx = first_nonfinite(raw)
        if idx is not None:
            raise path_error(
                element_path(path, idx[:-2]),
                "expected a finite {}, got {} at entry {}".format(
                    self._describe(), raw[idx], idx[-2:]))
        flat = raw.reshape(raw.shape[:-2] + (self._flat_length,))
        if onp.any(onp.take(flat, self._lay.pos_lower, axis=-1) !=
                   onp.take(flat, self._lay.pos_upper, axis=-1)):
            self._check_symmetry(raw, batch_shape, path)
        if factor:
            self._cholesky(self._shifted(raw), raw, batch_shape, path, onp)

    def _check_symmetry(self, raw, batch_shape, path):
        """Raise if an asymmetry exceeds the tolerance (per matrix)."""
        asym = asymmetry(raw)
        worst = onp.max(asym, axis=(-2, -1))
        tol = (_SYMMETRY_ULPS * self._size * onp.finfo(raw.dtype).eps *
               onp.max(onp.abs(raw), axis=(-2, -1)))
        bad = worst > tol
        if bad.any():
            element = first_index(bad)
            entry = onp.unravel_index(
                int(onp.argmax(asym[element])), asym.shape[-2:])
            i, j = sorted(int(e) for e in entry)
            raise path_error(
                element_path(path, element),
                "expected a symmetric {}; the largest asymmetry |A[{}, {}] - "
                "A[{}, {}]| = {:.3g} exceeds the tolerance {:.3g}".format(
                    self._describe(), i, j, j, i, worst[element],
                    tol[element]))

    def _raise_not_pd(self, shifted, batch_shape, path):
        """Find which matrix of a stack is not positive definite; raise."""
        element, smallest = first_not_positive_definite(
            onp.asarray(shifted, dtype=float))
        after = "" if not self._diag_lb else \
            " (after subtracting diag_lb={} from the diagonal)".format(
                self._diag_lb)
        value = smallest[element]
        detail = "its smallest eigenvalue is {:.3g}".format(value) \
            if onp.isfinite(value) else "its eigenvalues could not be computed"
        raise path_error(
            element_path(path, element),
            "expected a symmetric positive-definite {}{}; {}".format(
                self._describe(), after, detail))
