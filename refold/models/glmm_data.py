r"""Logistic GLMM data: the validated data set and a simulator.

:func:`make_group_ops` gives the differentiable gather ``u -> u[group]``
and group sum of the groups.  :class:`GLMMData` holds a design ``x`` (no intercept column), binary
responses ``y`` and each row's group; :func:`simulate` draws a data set, by
default at the shape of the Criteo example of Giordano, Broderick & Jordan
(JMLR 2018): ``N = 61,895`` rows, ``T = 5,000`` groups, ``K = 5`` fixed
effects.  The model, its variational objective and the fit live in
:mod:`refold.models.logistic_glmm` (which re-exports both names).
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Tuple

import numpy as onp
import scipy.sparse as sp
import scipy.special
from autograd.extend import defjvp, defvjp, primitive

from refold.models._data import (check_design, check_finite,
                                 check_index_range, check_int, check_positive,
                                 group_index, real_array, resolve_rng)
from refold.sensitivity.sparsity import register_sparsity_rule

__all__ = ["GLMMData", "simulate", "make_group_ops"]


class GLMMData:
    r"""A validated logistic-GLMM data set (inputs are copied).

    Parameters
    ----------
    x : array_like, shape (N, K)
        Fixed-effect design (finite; no intercept column -- ``mu`` is the
        intercept).
    y : array_like, shape (N,)
        Responses in {0, 1} (bool, int or float).
    group : array_like of int, shape (N,)
        Group of each row, in ``[0, n_groups)``.
    n_groups : int, optional
        Number of groups ``T`` (default ``max(group) + 1``).  Groups without
        rows are allowed (their posterior is the prior).
    true_beta, true_mu, true_tau, true_u : optional
        The truth, when simulated (``None`` otherwise).

    Attributes
    ----------
    x, y, group, n_groups, n_obs, n_fixed, true_beta, true_mu, true_tau,
    true_u

    Raises
    ------
    TypeError, ValueError
        Naming the argument: wrong dtype or shape, lengths that disagree,
        NaN/inf, ``y`` outside {0, 1}, a group index out of range.
    """

    def __init__(self, x: Any, y: Any, group: Any,
                 n_groups: Optional[int] = None, *, true_beta: Any = None,
                 true_mu: Optional[float] = None,
                 true_tau: Optional[float] = None, true_u: Any = None):
        x, y = check_design(x, y)
        n_obs, n_fixed = x.shape
        bad = onp.flatnonzero((y != 0.0) & (y != 1.0))
        if len(bad):
            raise ValueError(f"y must hold only 0 and 1; y[{bad[0]}] is "
                             f"{y[bad[0]]}.")
        group_arr, n_groups = group_index(group, n_obs, n_groups)
        self.x, self.y, self.group = x, y, group_arr
        self.n_obs, self.n_fixed, self.n_groups = n_obs, n_fixed, n_groups
        self.true_beta = None if true_beta is None else onp.array(
            true_beta, dtype=float)
        self.true_mu = None if true_mu is None else float(true_mu)
        self.true_tau = None if true_tau is None else float(true_tau)
        self.true_u = None if true_u is None else onp.array(true_u,
                                                            dtype=float)

    def __repr__(self) -> str:
        return (f"GLMMData(n_obs={self.n_obs}, n_groups={self.n_groups}, "
                f"n_fixed={self.n_fixed})")


def simulate(n_obs: int = 61895, n_groups: int = 5000, n_fixed: int = 5,
             rng: Any = None, *, beta: Any = None, mu: float = -1.0,
             tau: float = 4.0) -> GLMMData:
    r"""Simulate a logistic GLMM data set (by default at the Criteo shape).

    Parameters
    ----------
    n_obs, n_groups, n_fixed : int
        ``N`` rows (at least ``n_groups``), ``T`` groups, ``K`` fixed effects.
    rng : None, int or numpy.random.Generator
        Source of randomness (an int is a seed).
    beta : array_like, shape (K,), optional
        True fixed effects (default ``linspace(-0.5, 0.5, K)``).
    mu, tau : float
        True random-effect mean and precision (``tau > 0``).

    Returns
    -------
    GLMMData
        ``x ~ N(0, 1)`` entries; every group has at least one row and the
        other rows are spread unevenly (Dirichlet(2) group weights);
        ``u_t ~ N(mu, 1/tau)``; the truth is stored on the result.
    """
    n_groups = check_int(n_groups, "n_groups", 1)
    n_obs = check_int(n_obs, "n_obs", n_groups)
    n_fixed = check_int(n_fixed, "n_fixed", 1)
    rng = resolve_rng(rng)
    beta = (onp.linspace(-0.5, 0.5, n_fixed) if beta is None
            else real_array(beta, "beta", 1))
    if beta.shape != (n_fixed,):
        raise ValueError(f"beta must have shape ({n_fixed},); got "
                         f"{beta.shape}.")
    mu = check_finite(mu, "mu")
    tau = check_positive(tau, "tau")
    x = rng.standard_normal((n_obs, n_fixed))
    weights = rng.dirichlet(onp.full(n_groups, 2.0))
    extra = rng.choice(n_groups, size=n_obs - n_groups, p=weights)
    group = onp.sort(onp.concatenate([onp.arange(n_groups), extra]))
    u = mu + rng.standard_normal(n_groups) / onp.sqrt(tau)
    logits = x @ beta + u[group]
    y = (rng.uniform(size=n_obs) < scipy.special.expit(logits)).astype(float)
    return GLMMData(x, y, group, n_groups, true_beta=beta, true_mu=mu,
                    true_tau=tau, true_u=u)


def make_group_ops(group: Any, n_groups: int) -> Tuple[Callable, Callable]:
    r"""Differentiable gather ``u -> u[group]`` and group sum ``r -> A^T r``.

    Parameters
    ----------
    group : array_like of int, shape (N,)
        Group of each row, in ``[0, n_groups)``.
    n_groups : int
        Number of groups ``T``.

    Raises
    ------
    ValueError
        When ``group`` is not a 1-d integer array in ``[0, n_groups)``.

    Returns
    -------
    gather : callable
        ``gather(u)`` with ``u`` of shape ``(T,)`` returns ``A u = u[group]``
        of shape ``(N,)``, where ``A[n, group[n]] = 1`` is a fixed CSR matrix.
    group_sum : callable
        ``group_sum(r)`` with ``r`` of shape ``(N,)`` returns ``A^T r``, the
        sum of ``r`` over the rows of each group, shape ``(T,)``.

    Notes
    -----
    Both maps are linear autograd primitives: each one's vector-Jacobian
    product is the other, and each is its own Jacobian-vector product, so
    they differentiate to any order in forward and reverse mode (no
    ``numpy.add.at``, no Python loop over groups).

    Examples
    --------
    >>> gather, group_sum = make_group_ops([0, 1, 1], 2)
    >>> gather(onp.array([10.0, 20.0])), group_sum(onp.array([1.0, 2.0, 3.0]))
    (array([10., 20., 20.]), array([1., 5.]))
    """
    n_groups = check_int(n_groups, "n_groups", 1)
    group = onp.asarray(group)
    if group.ndim != 1 or group.dtype.kind not in "iu":
        raise ValueError(f"group: expected a 1-d array of integer indices, "
                         f"got shape {group.shape} and dtype {group.dtype}")
    check_index_range(group, n_groups, "group", "n_groups")
    n_obs = group.shape[0]
    indicator = sp.csr_matrix((onp.ones(n_obs), (onp.arange(n_obs), group)),
                              shape=(n_obs, int(n_groups)))
    indicator_t = indicator.T.tocsr()

    @primitive
    def gather(u):
        return indicator @ u

    @primitive
    def group_sum(r):
        return indicator_t @ r

    defvjp(gather, lambda ans, u: lambda g: group_sum(g))
    defvjp(group_sum, lambda ans, r: lambda g: gather(g))
    defjvp(gather, lambda g, ans, u: gather(g))
    defjvp(group_sum, lambda g, ans, r: group_sum(g))
    register_sparsity_rule(gather, "linear_map", matrix=indicator)
    register_sparsity_rule(group_sum, "linear_map", matrix=indicator_t)
    return gather, group_sum
