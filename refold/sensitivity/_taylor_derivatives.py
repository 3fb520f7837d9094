r"""The directional derivatives of an optimum, cached per direction (private).

:class:`_OptimumDerivatives` computes :math:`a_k = d^k\hat\theta[u]` along
unit directions ``u`` by solving :math:`H a_k = -r_k` order by order with one
solver for every order and direction (see :mod:`refold.sensitivity.taylor`),
and keeps them: the ``k``-th derivative along :math:`c u` is :math:`c^k`
times that along ``u``.  The right-hand sides :math:`r_k` are one nested
forward-mode derivative along the path, or a sum of the terms of
:func:`~refold.sensitivity.taylor.taylor_terms` when some are declared zero
or dense derivative arrays are asked for.
"""
from __future__ import annotations

import math
from typing import Callable, List, Optional, Sequence

import numpy as np

from refold.sensitivity._taylor_terms import (
    TaylorTerm, _DensePartials, _mixed_partial, _path_derivative, taylor_terms)


class _OptimumDerivatives:
    """The derivatives ``a_1 .. a_order`` of the root of ``ee`` along
    directions of the hyperparameter, cached for ``cache_size`` directions.

    ``solve`` maps a ``(D, k)`` right-hand side to :math:`H^{-1}` times it.
    """

    def __init__(self, ee: Callable, par0: np.ndarray, hyper0: np.ndarray,
                 solve: Callable, order: int, *,
                 max_input_order: Optional[int], max_hyper_order: Optional[int],
                 forward_mode: bool, force: bool, cache_size: int) -> None:
        self._ee, self._solve = ee, solve
        self._input_val0, self._hyper_val0 = par0, hyper0
        self._max_input_order = max_input_order
        self._max_hyper_order = max_hyper_order
        self._cache_size = cache_size
        #: ``terms[k - 1]``: the terms of the order-``k`` derivative.
        self.terms = [taylor_terms(k) for k in range(1, order + 1)]
        self._term_wise = (not forward_mode or max_input_order is not None
                           or max_hyper_order is not None)
        self._dense = None
        if not forward_mode:
            needed = {(t.input_order, t.hyper_order)
                      for terms in self.terms for t in terms
                      if self._term_used(t)}
            self._dense = _DensePartials(ee, par0, hyper0, needed, force)
        self.clear()

    def clear(self) -> None:
        """Forget every cached direction."""
        self._cache_units = np.zeros((0, self._hyper_val0.size))
        self._cache_derivs: List[List[np.ndarray]] = []

    def _term_used(self, term: TaylorTerm) -> bool:
        if term.is_solved:
            return False
        if (self._max_hyper_order is not None
                and term.hyper_order > self._max_hyper_order):
            return False
        return (self._max_input_order is None
                or term.input_order <= self._max_input_order)

    def _rhs(self, unit: np.ndarray, derivs: List[np.ndarray],
             k: int) -> np.ndarray:
        """``r_k`` along the unit direction, from ``a_1 .. a_{k-1}``."""
        par0, hyper0 = self._input_val0, self._hyper_val0
        if not self._term_wise:
            coefs = [d / math.factorial(j) for j, d in enumerate(derivs, 1)]
            return np.asarray(_path_derivative(self._ee, par0, hyper0, unit,
                                               coefs, k))
        total = np.zeros_like(par0)
        for term in self.terms[k - 1]:
            if not self._term_used(term):
                continue
            dirs = [derivs[j - 1] for j in term.input_derivative_orders]
            if self._dense is not None:
                value = self._dense.partial(dirs, unit, term.hyper_order)
            else:
                value = _mixed_partial(self._ee, par0, hyper0, dirs, unit,
                                       term.hyper_order)
            total = total + term.coefficient * np.asarray(value)
        return total

    def _entry_for(self, unit: np.ndarray) -> int:
        """Index of the cached direction ``unit`` (added when new)."""
        if self._cache_units.shape[0]:
            gap = np.max(np.abs(self._cache_units - unit), axis=1)
            best = int(np.argmin(gap))
            if gap[best] <= 64 * np.finfo(float).eps:
                return best
        self._cache_units = np.vstack([self._cache_units, unit])
        self._cache_derivs.append([])
        return self._cache_units.shape[0] - 1

    def _extend(self, entries: Sequence[int], max_order: int) -> None:
        """Compute the derivatives of the cached directions up to order."""
        shape = self._hyper_val0.shape
        for k in range(1, max_order + 1):
            todo = [e for e in entries if len(self._cache_derivs[e]) < k]
            if not todo:
                continue
            rhs = np.stack([self._rhs(self._cache_units[e].reshape(shape),
                                      self._cache_derivs[e], k)
                            for e in todo], axis=1)
            if not np.all(np.isfinite(rhs)):
                raise ValueError(
                    f"the order-{k} derivative of estimating_equation along "
                    f"the requested direction is not finite at "
                    f"(input_val0, hyper_val0)")
            sol = -self._solve(rhs)
            if not np.all(np.isfinite(sol)):
                raise ValueError(
                    f"hess_solver returned non-finite values for the order-{k}"
                    f" derivative; is the Hessian singular?")
            for col, e in enumerate(todo):
                self._cache_derivs[e].append(sol[:, col])

    def derivatives(self, dirs: np.ndarray, max_order: int) -> np.ndarray:
        """Array ``(max_order, n, D)`` of ``a_k`` along each direction."""
        n = dirs.shape[0]
        flat = dirs.reshape(n, -1)
        out = np.zeros((max_order, n, self._input_val0.size))
        norms = np.linalg.norm(flat, axis=1)
        nonzero = np.flatnonzero(norms > 0)
        if nonzero.size == 0:
            return out
        lead = flat[nonzero, np.argmax(np.abs(flat[nonzero]), axis=1)]
        scale = norms[nonzero] * np.sign(lead)
        units = flat[nonzero] / scale[:, None]
        entries = [self._entry_for(u) for u in units]
        self._extend(entries, max_order)
        stacked = np.stack([np.stack(self._cache_derivs[e][:max_order])
                            for e in entries], axis=1)   # (K, n_nz, D)
        powers = scale[None, :] ** np.arange(1, max_order + 1)[:, None]
        out[:, nonzero, :] = stacked * powers[:, :, None]
        self._trim_cache(entries)
        return out

    def _trim_cache(self, used: Sequence[int]) -> None:
        """Keep the most recently used directions, at most cache_size."""
        count = self._cache_units.shape[0]
        if count <= self._cache_size:
            return
        used_set = list(dict.fromkeys(used))
        others = [i for i in range(count) if i not in set(used_set)]
        keep = (others + used_set)[-self._cache_size:]
        self._cache_units = self._cache_units[keep]
        self._cache_derivs = [self._cache_derivs[i] for i in keep]
