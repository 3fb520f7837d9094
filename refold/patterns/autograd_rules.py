r"""Forward-mode (and batch-correct reverse-mode) derivative rules for linalg.

autograd 1.9.1 has reverse-mode rules (vjps) for most of ``numpy.linalg`` but
no forward-mode rules (jvps), so ``autograd.make_jvp``, forward-over-reverse
Hessian-vector products and Taylor series through a Cholesky factor fail
with ``NotImplementedError``. Importing this module registers the missing
rules; it is imported by :mod:`refold.patterns`, so ``import refold`` is
enough. Registration is idempotent, and :func:`register` restores the rules
if another library (paragami's import does) has replaced some of them.

Every rule is written with differentiable autograd operations (``solve``,
``matmul``, ``tril``, ...), so derivatives of any order compose: forward over
forward, forward over reverse, reverse over forward. All rules work on
stacks of matrices with leading batch dimensions. Below, :math:`\dot X` is a
tangent, :math:`\bar X` a cotangent, :math:`\operatorname{sym}(X) = (X +
X^\top)/2`, :math:`\Phi(X)` the lower triangle of :math:`X` with its diagonal
halved, and traces act on the last two axes.

=============================  ==============================================
rule                           formula
=============================  ==============================================
``cholesky`` jvp               :math:`\dot L = L\,\Phi(L^{-1}\operatorname{sym}
                               (\dot A) L^{-\top})` (``upper=True``:
                               transposed). The tangent is symmetrised, as
                               autograd's vjp is.
``cholesky`` vjp               :math:`\bar A = \operatorname{sym}(L^{-\top}
                               \Phi(L^\top \bar L) L^{-1})`; replaces
                               autograd's to accept ``upper=True``.
``inv`` jvp                    :math:`\dot Y = -Y \dot A Y`, :math:`Y = A^{-1}`
``solve`` jvp                  :math:`\dot x = A^{-1}(\dot b - \dot A x)`
``solve`` vjp                  :math:`\bar b = A^{-\top}\bar x`,
                               :math:`\bar A = -\bar b x^\top`, summed over
                               broadcast dimensions; replaces autograd's,
                               which fails for a stack of matrices and a
                               vector ``b`` under numpy 2.
``det`` jvp                    :math:`\dot d = d\,\operatorname{tr}(A^{-1}
                               \dot A)`
``slogdet`` jvp                sign: 0; :math:`\dot\ell = \operatorname{tr}(
                               A^{-1}\dot A)`
``eigh`` jvp                   :math:`M = V^\top \dot S V`, :math:`\dot w =
                               \operatorname{diag} M`, :math:`\dot V = V (F
                               \circ M)`, :math:`F_{ij} = 1/(w_j - w_i)`
                               (:math:`i \ne j`), :math:`F_{ii} = 0`, with
                               :math:`\dot S` the symmetric matrix built from
                               the triangle ``UPLO`` of :math:`\dot A` (the
                               entries ``eigh`` reads, as autograd's vjp).
``eigvalsh`` jvp and vjp       :math:`\dot w = \operatorname{diag}(V^\top
                               \dot S V)`; :math:`\bar A` is
                               :math:`V \operatorname{diag}(\bar w) V^\top`
                               folded onto the triangle ``UPLO``.
``solve_triangular`` jvp       :math:`\dot x = \operatorname{op}(A)^{-1}(\dot b
                               - \operatorname{op}(\operatorname{tri}\dot A)x)`
                               where ``op`` applies ``trans`` and ``tri``
                               keeps the triangle read (without the diagonal
                               when ``unit_diagonal``).
``solve_triangular`` vjp       :math:`\bar b = \operatorname{op}(A)^{-\top}
                               \bar x`, :math:`\bar A = -\operatorname{tri}(
                               \bar b x^\top)` (``trans``: :math:`-
                               \operatorname{tri}(x \bar b^\top)`); replaces
                               autograd's, which handles one matrix only.
=============================  ==============================================

Derivatives of ``eigh`` and ``eigvalsh`` assume distinct eigenvalues, and
those of ``cholesky``, ``inv``, ``solve``, ``det`` and ``slogdet`` a
non-singular (positive-definite) matrix, as the reverse-mode rules do. Only
real matrices are supported.
"""
from __future__ import annotations

import importlib.abc
import sys

import autograd.numpy as np
import autograd.numpy.linalg as alinalg
from autograd.core import primitive_jvps, primitive_vjps
from autograd.extend import defjvp, defvjp

__all__ = ["register"]


# ----------------------------------------------------------------------
# Small batched helpers (all differentiable).

def _t(x):
    """Transpose the last two axes."""
    return np.swapaxes(x, -1, -2)


def _sym(x):
    return 0.5 * (x + _t(x))


def _eye_like(x):
    return np.eye(np.shape(x)[-1])


def _phi(x):
    """Lower triangle with the diagonal halved."""
    return np.tril(x) - 0.5 * x * _eye_like(x)


def _trace(x):
    return np.sum(np.diagonal(x, axis1=-1, axis2=-2), axis=-1)


def _sum_to_shape(x, shape):
    """Sum the broadcast dimensions of ``x`` away to get ``shape``."""
    shape = tuple(shape)
    while np.ndim(x) > len(shape):
        x = np.sum(x, axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and np.shape(x)[axis] != 1:
            x = np.sum(x, axis=axis, keepdims=True)
    return x


def _is_vector_rhs(b):
    """numpy 2 and scipy: a 1-d right-hand side is a vector, else matrices."""
    return np.ndim(b) == 1


def _triangle_symmetric(x, uplo):
    """The symmetric matrix made of the triangle ``uplo`` of ``x``."""
    if str(uplo).upper() == "U":
        tri = np.triu(x)
        return tri + _t(np.triu(x, 1))
    tri = np.tril(x)
    return tri + _t(np.tril(x, -1))


def _fold_onto_triangle(x, uplo):
    """Adjoint of :func:`_triangle_symmetric`."""
    if str(uplo).upper() == "U":
        return np.triu(x + _t(x), 1) + x * _eye_like(x)
    return np.tril(x + _t(x), -1) + x * _eye_like(x)


# ----------------------------------------------------------------------
# Cholesky.

def _cholesky_lower_tangent(dA, L):
    solve = alinalg.solve
    x = solve(L, _t(solve(L, _sym(dA))))       # L^-1 S L^-T, S symmetric
    return np.matmul(L, _phi(x))


def _cholesky_jvp(g, ans, a, upper=False):
    if upper:
        return _t(_cholesky_lower_tangent(g, _t(ans)))
    return _cholesky_lower_tangent(g, ans)


def _cholesky_vjp(ans, a, upper=False):
    L = _t(ans) if upper else ans

    def vjp(g):
        gL = _t(g) if upper else g
        solve = alinalg.solve
        inner = _phi(np.matmul(_t(L), gL))
        s = solve(_t(L), _t(solve(_t(L), _t(inner))))   # L^-T inner L^-1
        return _sym(s)

    return vjp


# ----------------------------------------------------------------------
# inv, solve, det, slogdet.

def _inv_jvp(g, ans, a):
    return -np.matmul(np.matmul(ans, g), ans)


def _solve_jvp_a(g, ans, a, b):
    solve = alinalg.solve
    if _is_vector_rhs(b):
        return -solve(a, np.matmul(g, ans[..., None]))[..., 0]
    return -solve(a, np.matmul(g, ans))


def _solve_jvp_b(g, ans, a, b):
    return alinalg.solve(a, g)


def _solve_rhs_cotangent(a, g, vector):
    if vector:
        return alinalg.solve(_t(a), g[..., None])[..., 0]
    return alinalg.solve(_t(a), g)


def _solve_vjp_a(ans, a, b):
    vector = _is_vector_rhs(b)
    shape = np.shape(a)

    def vjp(g):
        gb = _solve_rhs_cotangent(a, g, vector)
        if vector:
            ga = -gb[..., :, None] * ans[..., None, :]
        else:
            ga = -np.matmul(gb, _t(ans))
        return _sum_to_shape(ga, shape)

    return vjp


def _solve_vjp_b(ans, a, b):
    vector = _is_vector_rhs(b)
    shape = np.shape(b)
    return lambda g: _sum_to_shape(_solve_rhs_cotangent(a, g, vector), shape)


def _trace_of_solve(a, g):
    return _trace(alinalg.solve(a, g))


def _det_jvp(g, ans, a):
    return ans * _trace_of_solve(a, g)


def _slogdet_jvp(g, ans, a):
    sign = ans[0]
    return np.zeros(np.shape(sign)), _trace_of_solve(a, g)


# ----------------------------------------------------------------------
# Symmetric eigenproblems.

def _eigen_gaps_inverse(w):
    """F[..., i, j] = 1 / (w_j - w_i) off the diagonal, 0 on it."""
    n = np.shape(w)[-1]
    eye = np.eye(n)
    gaps = w[..., None, :] - w[..., :, None]
    return (1.0 - eye) / (gaps + eye)


def _eigh_jvp(g, ans, a, UPLO="L"):
    w, v = ans[0], ans[1]
    m = np.matmul(_t(v), np.matmul(_triangle_symmetric(g, UPLO), v))
    dw = np.diagonal(m, axis1=-1, axis2=-2)
    dv = np.matmul(v, _eigen_gaps_inverse(w) * m)
    return dw, dv


def _eigvalsh_jvp(g, ans, a, UPLO="L"):
    v = alinalg.eigh(a, UPLO=UPLO)[1]
    m = np.matmul(_t(v), np.matmul(_triangle_symmetric(g, UPLO), v))
    return np.diagonal(m, axis1=-1, axis2=-2)


def _eigvalsh_vjp(ans, a, UPLO="L"):
    v = alinalg.eigh(a, UPLO=UPLO)[1]

    def vjp(g):
        full = np.matmul(v * g[..., None, :], _t(v))
        return _fold_onto_triangle(full, UPLO)

    return vjp


# ----------------------------------------------------------------------
# scipy.linalg.solve_triangular.

def _transposed(trans):
    if trans in (0, "N", "n"):
        return False
    if trans in (1, 2, "T", "C", "t", "c"):
        return True
    raise ValueError("trans: expected 0, 1, 2, 'N', 'T' or 'C', got "
                     "{!r}".format(trans))


def _read_triangle(x, lower, unit_diagonal):
    if lower:
        return np.tril(x, -1 if unit_diagonal else 0)
    return np.triu(x, 1 if unit_diagonal else 0)


def _as_matrix_rhs(x, vector):
    return x[..., None] if vector else x


def _st_jvp_a(g, ans, a, b, trans=0, lower=False, unit_diagonal=False,
              **kwargs):
    vector = _is_vector_rhs(b)
    da = _read_triangle(g, lower, unit_diagonal)
    if _transposed(trans):
        da = _t(da)
    rhs = np.matmul(da, _as_matrix_rhs(ans, vector))
    out = -_asla().solve_triangular(a, rhs, trans=trans, lower=lower,
                                 unit_diagonal=unit_diagonal)
    return out[..., 0] if vector else out


def _st_jvp_b(g, ans, a, b, trans=0, lower=False, unit_diagonal=False,
              **kwargs):
    return _asla().solve_triangular(a, g, trans=trans, lower=lower,
                                 unit_diagonal=unit_diagonal)


def _st_rhs_cotangent(a, g, trans, lower, unit_diagonal, vector):
    flipped = 0 if _transposed(trans) else 1
    out = _asla().solve_triangular(a, _as_matrix_rhs(g, vector), trans=flipped,
                                lower=lower, unit_diagonal=unit_diagonal)
    return out[..., 0] if vector else out


def _st_vjp_a(ans, a, b, trans=0, lower=False, unit_diagonal=False,
              **kwargs):
    vector = _is_vector_rhs(b)
    shape = np.shape(a)

    def vjp(g):
        gb = _as_matrix_rhs(
            _st_rhs_cotangent(a, g, trans, lower, unit_diagonal, vector),
            vector)
        x = _as_matrix_rhs(ans, vector)
        outer = np.matmul(x, _t(gb)) if _transposed(trans) else \
            np.matmul(gb, _t(x))
        return _sum_to_shape(-_read_triangle(outer, lower, unit_diagonal),
                             shape)

    return vjp


def _st_vjp_b(ans, a, b, trans=0, lower=False, unit_diagonal=False,
              **kwargs):
    vector = _is_vector_rhs(b)
    shape = np.shape(b)
    return lambda g: _sum_to_shape(
        _st_rhs_cotangent(a, g, trans, lower, unit_diagonal, vector), shape)


# ----------------------------------------------------------------------

_RULES = [
    # (primitive, jvps, vjps or None)
    (alinalg.cholesky, (_cholesky_jvp,), (_cholesky_vjp,)),
    (alinalg.inv, (_inv_jvp,), None),
    (alinalg.solve, (_solve_jvp_a, _solve_jvp_b),
     (_solve_vjp_a, _solve_vjp_b)),
    (alinalg.det, (_det_jvp,), None),
    (alinalg.slogdet, (_slogdet_jvp,), None),
    (alinalg.eigh, (_eigh_jvp,), None),
    (alinalg.eigvalsh, (_eigvalsh_jvp,), (_eigvalsh_vjp,)),
]

# ``autograd.scipy.linalg`` is registered when it is first imported (by the
# user or a library): importing it here would pull in all of
# ``autograd.scipy`` (scipy.stats, scipy.integrate: about 0.6 s) for a rule
# that only code using ``solve_triangular`` needs.
_SCIPY_LINALG = "autograd.scipy.linalg"


def _asla():
    return sys.modules[_SCIPY_LINALG]


def _scipy_linalg_rules() -> list:
    asla = sys.modules.get(_SCIPY_LINALG)
    if asla is None or not hasattr(asla, "solve_triangular"):
        return []
    return [(asla.solve_triangular, (_st_jvp_a, _st_jvp_b),
             (_st_vjp_a, _st_vjp_b))]


class _RegisterAfterImport(importlib.abc.MetaPathFinder,
                           importlib.abc.Loader):
    """Registers the rules once ``autograd.scipy.linalg`` has loaded."""

    def find_spec(self, name, path, target=None):
        if name != _SCIPY_LINALG:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                self._loader = spec.loader
                spec.loader = self
                return spec
        return None

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        register()

# What this module installed, to notice when another library replaces it.
_installed = {}


_TABLES = {"jvp": primitive_jvps, "vjp": primitive_vjps}


def _is_installed() -> bool:
    return bool(_installed) and all(
        _TABLES[kind].get(fun) is rule
        for (kind, fun), rule in _installed.items())


def register() -> None:
    """Register the rules with autograd (done at import).

    Idempotent: when the rules are in place it does nothing. Importing
    another library that registers its own linalg rules (paragami's
    ``autograd_supplement_lib`` installs 2-d-only jvps for ``inv``,
    ``solve`` and ``slogdet``) replaces them; calling ``register()`` again
    restores refold's. The rules are listed in the module docstring.
    """
    rules = _RULES + _scipy_linalg_rules()
    if _is_installed() and len(_installed) == sum(
            1 + (vjps is not None) for _, _, vjps in rules):
        return
    _installed.clear()
    for fun, jvps, vjps in rules:
        defjvp(fun, *jvps)
        _installed[("jvp", fun)] = primitive_jvps[fun]
        if vjps is not None:
            defvjp(fun, *vjps)
            _installed[("vjp", fun)] = primitive_vjps[fun]


register()
if _SCIPY_LINALG not in sys.modules and not any(
        isinstance(f, _RegisterAfterImport) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterImport())
