r"""The static index layout of an ``n x n`` PSD matrix, and the linear
packing primitives of its lower triangle.

Everything here depends on the size ``n`` only, so it is computed once per
size (:func:`_layout` is cached) and shared by every
:class:`~refold.patterns.psd.PSDSymmetricMatrixPattern` of that size; the
index arrays are read-only. The lower triangle is stored in paragami's
row-by-row order (``L11, L21, L22, L31, ...``).
"""
from __future__ import annotations

import functools

import numpy as onp
from autograd.extend import defjvp, defvjp, primitive

_LOG_MAX = float(onp.log(onp.finfo(float).max))


class _Layout:
    """Indices of the lower triangle, in paragami's row-by-row order."""

    def __init__(self, n):
        self.n = n
        self.rows, self.cols = onp.tril_indices(n)
        self.pos = self.rows * n + self.cols          # flat position in n*n
        strict = self.rows > self.cols
        self.pos_lower = self.pos[strict]             # A[i, j], i > j
        self.pos_upper = self.cols[strict] * n + self.rows[strict]
        self.m = self.rows.size
        self.eye = onp.eye(n)
        self.offmask = onp.tril(onp.ones((n, n)), -1)
        # Weights of log L_ii in log|det d tril(A) / d free|.
        self.logdet_weights = (n + 1.0) - onp.arange(n)
        self.fast_limit = 0.5 * (_LOG_MAX - onp.log(n)) - 1.0

    @functools.cached_property
    def unfreeing(self):
        r"""COO structure of d flat / d free (exact nonzeros).

        For free coordinate :math:`(p, q)`: :math:`dA = E_{pq} L^\top + L
        E_{qp}` (times :math:`L_{pp}` on the diagonal), i.e.
        :math:`\partial A_{pj} = L_{jq}` for :math:`j \ge q` (doubled at
        :math:`j = p`) and :math:`\partial A_{ip} = L_{iq}` for
        :math:`i \ge q, i \ne p`.
        """
        n = self.n
        free_index = onp.full((n, n), -1)
        free_index[self.rows, self.cols] = onp.arange(self.m)
        p, q, j = (a.ravel() for a in onp.meshgrid(
            onp.arange(n), onp.arange(n), onp.arange(n), indexing="ij"))
        keep = (q <= p) & (j >= q)
        p, q, j = p[keep], q[keep], j[keep]
        # Term 1: entries (p, j), value L[j, q] (x2 at j == p).
        rows1, lidx1, mult1 = p * n + j, j * n + q, onp.where(j == p, 2., 1.)
        # Term 2: entries (j, p) for j != p, value L[j, q].
        other = j != p
        rows2, lidx2 = j[other] * n + p[other], j[other] * n + q[other]
        rows = onp.concatenate([rows1, rows2])
        cols = free_index[onp.concatenate([p, p[other]]),
                          onp.concatenate([q, q[other]])]
        lidx = onp.concatenate([lidx1, lidx2])
        mult = onp.concatenate([mult1, onp.ones(rows2.size)])
        pp = onp.concatenate([p, p[other]])
        qq = onp.concatenate([q, q[other]])
        # Diagonal free coordinates carry a factor L_pp (index n*n = "1").
        didx = onp.where(pp == qq, pp * n + pp, n * n)
        order = onp.lexsort((cols, rows))
        return _frozen(rows[order], cols[order], lidx[order], mult[order],
                       didx[order])

    @functools.cached_property
    def csr(self):
        """CSR ``(indices, indptr)`` of each Jacobian of one matrix."""
        return {"freeing": _csr_structure(*self.freeing[:2], self.m),
                "unfreeing": _csr_structure(*self.unfreeing[:2],
                                            self.n * self.n)}

    @functools.cached_property
    def freeing(self):
        r"""COO structure of d free / d flat (exact nonzeros).

        Free coordinate :math:`(i, j)` (:math:`L_{ij}` depends on row
        :math:`i` of :math:`A` up to column :math:`j` and on the leading
        :math:`(j+1) \times (j+1)` block) depends on :math:`A_{ab}` exactly
        when :math:`\min(a, b) \le j` and :math:`\max(a, b) \in
        \{i\} \cup [0, j]`.
        """
        n = self.n
        # Row f = (i, j), in column order: for a = 0..j the entries
        # (a, 0..j) then (a, i) when i > j; then (i, 0..j) when i > j.
        width = self.cols + 1
        beyond = (self.rows > self.cols).astype(int)
        row_len = width + beyond
        count = width * row_len + width * beyond
        f = onp.repeat(onp.arange(self.m), count)
        start = onp.repeat(onp.cumsum(count) - count, count)
        k = onp.arange(f.size) - start
        i, w, row_len = self.rows[f], width[f], row_len[f]
        in_block = k < w * row_len
        a = onp.where(in_block, k // row_len, i)
        c = onp.where(in_block, k % row_len, k - w * row_len)
        b = onp.where(in_block & (c == w), i, c)
        # Position of the entry (f, b, a) mirroring each entry (f, a, b).
        swap = start + onp.where(
            ~in_block, b * row_len + w,                 # (i, b) <- (b, i)
            onp.where(c == w, w * row_len + a,          # (a, i) <- (i, a)
                      b * row_len + a))                 # (a, b) <- (b, a)
        # c[f, l] = [l >= j] / (2 if l == j else 1).
        l_grid = onp.arange(n)[None, :]
        coef = (l_grid >= self.cols[:, None]) * onp.where(
            l_grid == self.cols[:, None], 0.5, 1.0)
        return _frozen(f, a * n + b, f * n + a, f * n + b, swap, coef)


def _csr_structure(rows, cols, n_rows):
    """``(indices, indptr)`` of a CSR matrix from canonical COO indices."""
    indptr = onp.zeros(n_rows + 1, dtype=onp.int32)
    onp.cumsum(onp.bincount(rows, minlength=n_rows), out=indptr[1:])
    return _frozen(cols.astype(onp.int32), indptr)


def _frozen(*arrays):
    """Cached index arrays, read-only so that no caller can corrupt them."""
    for array in arrays:
        array.flags.writeable = False
    return arrays


@functools.lru_cache(maxsize=None)
def _layout(n: int) -> _Layout:
    return _Layout(n)


# ----------------------------------------------------------------------
# Linear packing primitives (each one's derivative is the other).

@primitive
def _unpack_tril(vec, n):
    """(..., m) -> (..., n, n) lower-triangular, zeros above."""
    lay = _layout(n)
    # At least float64: the overflow analysis of ``fold`` assumes it.
    out = onp.zeros(vec.shape[:-1] + (n * n,),
                    dtype=onp.result_type(vec.dtype, onp.float64))
    out[..., lay.pos] = vec
    return out.reshape(vec.shape[:-1] + (n, n))


@primitive
def _pack_tril(mat, n):
    """(..., n, n) -> (..., m): the lower triangle, row by row."""
    flat = onp.reshape(mat, mat.shape[:-2] + (n * n,))
    return onp.take(flat, _layout(n).pos, axis=-1)


defvjp(_unpack_tril, lambda ans, vec, n: lambda g: _pack_tril(g, n))
defvjp(_pack_tril, lambda ans, mat, n: lambda g: _unpack_tril(g, n))
defjvp(_unpack_tril, lambda g, ans, vec, n: _unpack_tril(g, n))
defjvp(_pack_tril, lambda g, ans, mat, n: _pack_tril(g, n))
