r"""The terms of the Taylor series of an optimum, and their evaluation (private).

The ``k``-th derivative of :math:`g(\hat\theta(\epsilon), \epsilon)` along a
direction is a sum over the partitions of ``k`` (Faa di Bruno's formula; see
:mod:`refold.sensitivity.taylor`, whose public names :class:`TaylorTerm` and
:func:`taylor_terms` are defined here).  The terms are evaluated by nested
forward-mode directional derivatives -- along the whole path at once
(:func:`_path_derivative`) or one mixed partial at a time
(:func:`_mixed_partial`) -- or, for small problems, from dense partial
derivative arrays (:class:`_DensePartials`).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, Sequence, Tuple

import autograd.numpy as anp
import numpy as np

from refold.sensitivity._checks import check_int
from refold.sensitivity.hvp import directional_derivative
from refold.sensitivity.jacobian_modes import jacobian_matrix

#: Largest total number of entries of dense derivative arrays built without
#: ``force=True`` (``forward_mode=False`` only).
_MAX_DENSE_SIZE = 100_000


# ----------------------------------------------------------------------------
# The terms of the k-th derivative (Faa di Bruno).
# ----------------------------------------------------------------------------
@dataclass(frozen=True)
class TaylorTerm:
    r"""One term of the ``order``-th total derivative of
    :math:`g(\hat\theta(\epsilon), \epsilon)` along :math:`\Delta\epsilon`.

    The term is ``coefficient`` times the partial derivative of ``g`` with
    ``input_order`` derivatives in :math:`\theta` and ``hyper_order`` in
    :math:`\epsilon`, applied to ``input_counts[j-1]`` copies of the
    ``j``-th derivative of the optimum :math:`a_j` (for each ``j``) and
    ``hyper_order`` copies of :math:`\Delta\epsilon`.

    Attributes
    ----------
    order : int
        ``k``, the order of the total derivative.
    hyper_order : int
        ``n``, the number of :math:`\epsilon` partial derivatives.
    input_counts : tuple of int
        Length ``k``; entry ``j-1`` is the number of factors :math:`a_j`.
    coefficient : int
        :math:`k! / (n! \prod_j (j!)^{c_j} c_j!)`.
    """

    order: int
    hyper_order: int
    input_counts: Tuple[int, ...]
    coefficient: int

    @property
    def input_order(self) -> int:
        """``m``, the number of :math:`\\theta` partial derivatives."""
        return int(sum(self.input_counts))

    @property
    def input_derivative_orders(self) -> Tuple[int, ...]:
        """The orders ``j`` of the :math:`a_j` factors, e.g. ``(1, 1, 2)``."""
        return tuple(j for j, c in enumerate(self.input_counts, start=1)
                     for _ in range(c))

    @property
    def is_solved(self) -> bool:
        """Whether this is :math:`H a_k`, the term solved for."""
        return self.hyper_order == 0 and self.input_counts[-1] == 1

    def __str__(self) -> str:
        m, n = self.input_order, self.hyper_order
        parts = [f"d{j}theta" for j in self.input_derivative_orders]
        parts += ["deps"] * n
        deriv = "d^{} g / dtheta^{} deps^{}".format(m + n, m, n)
        text = "Order {}:  {} * {} [{}]".format(
            self.order, self.coefficient, deriv, ", ".join(parts))
        return text + ("   <- H . d{}theta, solved for".format(self.order)
                       if self.is_solved else "")


def _partitions(total: int, largest: int):
    """Partitions of ``total`` into parts <= ``largest``, as part -> count."""
    if total == 0:
        yield {}
        return
    for part in range(min(total, largest), 0, -1):
        for rest in _partitions(total - part, part):
            counts = dict(rest)
            counts[part] = counts.get(part, 0) + 1
            yield counts


@functools.lru_cache(maxsize=None)
def taylor_terms(order: int) -> Tuple[TaylorTerm, ...]:
    r"""The terms of the ``order``-th derivative of :math:`g(\hat\theta,
    \epsilon)` along a direction (Faa di Bruno's formula).

    Parameters
    ----------
    order : int
        ``k >= 1``.

    Returns
    -------
    terms : tuple of TaylorTerm
        The solved term :math:`H a_k` comes last.

    Examples
    --------
    >>> [str(t.coefficient) for t in taylor_terms(2)]
    ['1', '2', '1', '1']
    """
    order = check_int(order, "order", minimum=1, type_error=ValueError)
    terms = []
    for hyper_order in range(order, -1, -1):
        for counts in _partitions(order - hyper_order, order):
            vec = tuple(counts.get(j, 0) for j in range(1, order + 1))
            denom = math.factorial(hyper_order)
            for j, c in enumerate(vec, start=1):
                denom *= math.factorial(j) ** c * math.factorial(c)
            terms.append(TaylorTerm(order, hyper_order, vec,
                                    math.factorial(order) // denom))
    terms.sort(key=lambda t: (t.is_solved, t.input_order, -t.hyper_order,
                              t.input_counts))
    return tuple(terms)


# Documented (and imported by users) from refold.sensitivity.taylor.
TaylorTerm.__module__ = taylor_terms.__module__ = "refold.sensitivity.taylor"


# ----------------------------------------------------------------------------
# Nested forward-mode derivatives.
# ----------------------------------------------------------------------------
def _path_derivative(g: Callable, par0: np.ndarray, hyper0: np.ndarray,
                     direction: np.ndarray, coefficients: Sequence,
                     k: int) -> np.ndarray:
    r""":math:`d^k/dt^k\, g(\theta_0 + \sum_j c_j t^j, \epsilon_0 + t u)` at 0.

    ``coefficients`` are the Taylor coefficients :math:`c_j = a_j / j!`,
    ``j = 1..k-1``; the polynomial is evaluated by Horner's rule (no powers
    of ``t``, whose derivatives at zero are not finite in autograd).
    """
    def along(t):
        if coefficients:
            acc = coefficients[-1]
            for c in reversed(coefficients[:-1]):
                acc = c + t * acc
            par = par0 + t * acc
        else:
            par = par0
        return g(par, hyper0 + t * direction)

    fun = along
    for _ in range(k):
        fun = directional_derivative(fun, 0, 1.0)
    return fun(0.0)


def _mixed_partial(g: Callable, par0: np.ndarray, hyper0: np.ndarray,
                   par_dirs: Sequence, hyper_dir: np.ndarray,
                   hyper_order: int) -> np.ndarray:
    r""":math:`\partial^{m+n} g / \partial\theta^m\partial\epsilon^n` applied
    to ``par_dirs`` and ``hyper_order`` copies of ``hyper_dir``."""
    fun = g
    for d in par_dirs:
        fun = directional_derivative(fun, 0, d)
    for _ in range(hyper_order):
        fun = directional_derivative(fun, 1, hyper_dir)
    return fun(par0, hyper0)


def _forward_jacobian(fun: Callable, argnum: int) -> Callable:
    """The Jacobian of ``fun`` in argument ``argnum`` by one forward-mode
    product per coordinate; its axes are appended after the output's.
    (Nested reverse-mode Jacobians grow much faster with the nesting.)"""
    def jacobian(*args):
        shape = np.shape(args[argnum])
        basis = np.eye(int(np.prod(shape))).reshape((-1,) + shape)
        cols = [directional_derivative(fun, argnum, b)(*args) for b in basis]
        return anp.reshape(anp.stack(cols, axis=-1),
                           anp.shape(cols[0]) + shape)
    return jacobian


class _DensePartials:
    """Dense partial-derivative arrays of ``g`` at the base point
    (``forward_mode=False``), built lazily and contracted with directions.
    The array with ``m`` input and ``n`` hyperparameter derivatives costs
    ``D**m * M**n`` nested forward-mode evaluations (the cross Jacobian,
    ``m = 0, n = 1``, ``min(D, M)`` forward or reverse passes): for small
    problems evaluated along many directions only."""

    def __init__(self, g, par0, hyper0, needed, force):
        dim, hsize = par0.size, hyper0.size
        size = sum(dim ** (m + 1) * hsize ** n for m, n in needed)
        if size > _MAX_DENSE_SIZE and not force:
            raise ValueError(
                f"forward_mode=False would build dense derivative arrays with "
                f"{size} entries in total (more than {_MAX_DENSE_SIZE}) for "
                f"len(input_val0) = {dim}, hyperparameter size {hsize}; use "
                f"forward_mode=True or pass force=True")
        self._args = (par0, hyper0)
        self._funs = {(0, 0): g}
        self._values = {}

    def _fun(self, m, n):
        if (m, n) not in self._funs:
            if n > 0:
                self._funs[(m, n)] = _forward_jacobian(self._fun(m, n - 1), 1)
            else:
                self._funs[(m, n)] = _forward_jacobian(self._fun(m - 1, 0), 0)
        return self._funs[(m, n)]

    def partial(self, par_dirs, hyper_dir, hyper_order):
        key = (len(par_dirs), hyper_order)
        if key == (0, 1) and key not in self._values:
            # The cross Jacobian dg/d(hyper), (D,) + hyper.shape: D reverse
            # sweeps instead of M forward passes when M > D (e.g. one
            # weight per observation). Only its value is needed here; the
            # nested arrays keep differentiating self._fun(0, 1).
            par0, hyper0 = self._args
            jac = jacobian_matrix(self._funs[(0, 0)], self._args, argnum=1,
                                  out_size=par0.size)
            self._values[key] = jac.reshape(par0.shape + np.shape(hyper0))
        if key not in self._values:
            self._values[key] = np.asarray(self._fun(*key)(*self._args))
        arr = self._values[key]
        for _ in range(hyper_order):
            arr = np.tensordot(arr, hyper_dir, axes=hyper_dir.ndim)
        for d in par_dirs:
            arr = arr @ d
        return arr
