r"""Covariances of EM estimates: the marginal-Hessian fix.

EM maximises the marginal log likelihood :math:`\log p(y \mid \theta)` by
coordinate ascent on

.. math::

    f(\theta, \eta) = E_q[\log p(y, z \mid \theta)] - E_q[\log q(z \mid \eta)]
                    = \log p(y \mid \theta) - KL(q(z \mid \eta) \,\|\,
                      p(z \mid y, \theta)),

where the E-step family :math:`q(z \mid \eta)` contains the exact posterior.
With :math:`H` the Hessian of :math:`-f` at the optimum,

.. math::

    H = \begin{pmatrix} H_{\theta\theta} & H_{\theta\eta} \\
                        H_{\eta\theta} & H_{\eta\eta} \end{pmatrix},
    \qquad
    -\frac{\partial^2 \log p(y \mid \theta)}{\partial\theta^2}
        = H_{\theta\theta} - H_{\theta\eta} H_{\eta\eta}^{-1} H_{\eta\theta},

so the covariance of :math:`\hat\theta` is the inverse of that Schur
complement, the *marginal Hessian*. :math:`H_{\theta\theta}` alone is the
Hessian of the Q-function (the expected complete-data log likelihood); its
inverse, the *naive* covariance, ignores how the E-step moves with
:math:`\theta` and under-states the variance (in the Loewner order, because
the Schur term is positive semi-definite).

Structure
---------
The latent variables are local: :math:`q(z \mid \eta) = \prod_n q(z_n \mid
\eta_n)`, so :math:`H_{\eta\eta}` is block-diagonal with one ``k x k`` block
:math:`L_n` per observation, and :math:`H_{\theta\eta}` splits into ``p x k``
blocks :math:`C_n`. :class:`EMCovariance` gets all :math:`L_n` from ``k``
Hessian-vector products (direction: local coordinate ``j`` of every block at
once) and all :math:`C_n` and :math:`H_{\theta\theta}` from ``p`` more,
sweeping one recorded gradient graph
(:class:`refold.sensitivity.sparse_hessian.SparseBlockHessian`), and forms

.. math::

    M = H_{\theta\theta} - \sum_n C_n L_n^{-1} C_n^\top

with per-observation eigen-decompositions batched over observations: no dense
``(p + N k)``-square matrix is formed or solved.  This is ``solver='auto'``;
:meth:`EMCovariance.describe` says what was used and why.

Nearly degenerate posteriors
----------------------------
Well-separated mixture components give responsibilities of ``1e-300`` or
exactly zero. The local block and the cross terms of such an observation are
then tiny or exactly zero; a dense solve of the joint Hessian fails (it is
singular to working precision), while the observation's Schur term is simply
negligible. Each block is therefore solved as follows.

1. *Units.* Local coordinate ``j`` (column ``j`` of ``eta_blocks``) is
   measured relative to :math:`S_j = \max_n (L_n)_{jj}`, the largest curvature
   of that coordinate over observations, and each block is Jacobi-scaled by
   :math:`d_{nj} = \sqrt{\max((L_n)_{jj},\ \tau S_j)}`, ``tau = local_rtol``
   (default :data:`DEFAULT_LOCAL_RTOL` :math:`= 1000\,\varepsilon`). The Schur
   term is invariant to any such rescaling of :math:`\eta`.
2. *Eigen-directions.* :math:`\tilde L_n = D_n^{-1} L_n D_n^{-1} =
   \sum_j \lambda_{nj} u_{nj} u_{nj}^\top` (one batched ``eigh``), and with
   :math:`w_{nj} = C_n D_n^{-1} u_{nj}`,

   .. math::

       C_n L_n^{-1} C_n^\top = \sum_j w_{nj} w_{nj}^\top / \lambda_{nj}.

3. *Dropping.* Directions with :math:`\lambda_{nj} \le \tau` are left out.

Why dropping is exact to rounding. The term of direction ``u`` is
:math:`w w^\top / \lambda`. If :math:`q` is an exponential family whose
natural parameter is a smooth invertible function of :math:`\eta_n` (as for
every E-step family containing an exponential-family posterior), then at the
optimum :math:`L_n = J^\top \mathrm{Cov}_q(T) J` and
:math:`C_n = -\mathrm{Cov}_q(s, T) J` (``T`` the sufficient statistic,
``s`` the complete-data score, ``J`` the Jacobian of the natural parameter;
the gradient vanishes, so no second-derivative term of the reparameterisation
appears). The term is then :math:`\mathrm{Cov}_q(s, v^\top T)^2 /
\mathrm{Var}_q(v^\top T)` (``v = J D^{-1} u``): the part of the conditional
variance of the score explained by :math:`v^\top T`. As the posterior
concentrates (a responsibility :math:`\delta \to 0`, or a Gaussian variance
:math:`\delta \to 0`), both :math:`\mathrm{Var}_q(v^\top T) = \lambda` and
:math:`\mathrm{Cov}_q(s, v^\top T)` are :math:`O(\delta)`, so the term is
:math:`O(\lambda)`: a direction with :math:`\lambda \le \tau` changes
:math:`M` by :math:`O(\tau)` relative to the per-observation curvature, below
the rounding of :math:`H_{\theta\theta}` (a sum over ``N`` observations).
An exactly zero direction contributes exactly nothing.

Log-space coordinates (see below) keep every second derivative finite, but
they do not by themselves make every computed block accurate. With
log-ratios against a FIXED reference component, an observation whose
reference-component probability is negligible has :math:`L_n =
\mathrm{diag}(\rho) - \rho\rho^\top` with some :math:`\rho_k` rounding
to 1, so its curvature :math:`\rho_k (1 - \rho_k)` cancels: a
``logsumexp`` log-softmax computes it as 0, and with ``K >= 3`` components
the computed block is then indefinite (e.g. ``[[a, -a], [-a, 0]]``,
``a = 1e-178``) although the true block is positive definite, so
:class:`EMCovariance` raises "not at a minimum in eta" (:func:`log_simplex`
keeps such a block positive semi-definite, but its near-null direction is
still only accurate to rounding). The remedy is to *pivot*: measure each
observation's log-ratios against its own most likely component, as
:func:`refold.models.gaussian_mixture.fit` does. Then every
:math:`\rho_k \le 1/2`, nothing cancels, and every computed block is
accurate or exactly zero (where the responsibilities underflow).

Safeguards. Positive semi-definiteness of the joint Hessian bounds every
cross term, :math:`w_i^2 \le \lambda\,(H_{\theta\theta})_{ii}`; a dropped
direction whose cross term breaks :math:`w_i^2 \le \tau
(H_{\theta\theta})_{ii}` is a flat direction of the objective in
:math:`\eta_n` that still moves the :math:`\theta`-gradient, i.e. not a
minimum (or an over-parameterised E-step family), and raises. A local block
with an eigenvalue below :math:`-\sqrt{\varepsilon}` (in the units of step 1)
raises too. The number of dropped directions is reported in ``info``.

Write the objective in log space. With responsibilities near ``1e-300``, an
objective written in the probabilities themselves (``r * log(r)``) has second
derivatives such as :math:`-g/r^2` that overflow: use the log-ratios
:math:`\eta_{nk} = \log(r_{nk} / r_{n0})` (the free coordinates of
``SimplexArrayPattern``) as the parameters, e.g. with a
``NumericArrayPattern((N, K - 1))``, and compute :math:`\log r` inside the
objective with :func:`log_simplex`, which pivots on the dominant component
so that every derivative keeps full relative precision (a ``logsumexp``
log-softmax computes the curvature :math:`r(1 - r)` of a dominant
responsibility as ``1 - 1 = 0``). See the example of :class:`EMCovariance`.
A non-finite Hessian raises with this advice.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import autograd
import numpy as onp

from refold.models._data import check_bool
from refold.models._em_checks import (check_em_optimum, check_tol,
                                      describe_joint, flatten_value,
                                      louis_matrix, text_table)
from refold.models._em_hessian import (LOG_SPACE_HINT, check_solver,
                                       describe, joint_hessian,
                                       resolve_blocks)
from refold.models.local_blocks import (_LocalFactor, infer_eta_blocks,
                                        log_simplex)
from refold.patterns.base import Pattern
from refold.sensitivity._checks import user_call
from refold.sensitivity.solvers import get_dense_cholesky_solver

# infer_eta_blocks and log_simplex live in refold.models.local_blocks; they
# are re-exported here, their historical home.
__all__ = ["EMCovariance", "infer_eta_blocks", "log_simplex",
           "DEFAULT_LOCAL_RTOL"]

_EPS = float(onp.finfo(float).eps)

#: Eigen-directions of a (scaled) local block with eigenvalue at most this are
#: dropped from the Schur complement (see the module notes).
DEFAULT_LOCAL_RTOL: float = 1e3 * _EPS

_KINDS = ("corrected", "naive", "louis")


class EMCovariance:
    r"""Covariance of EM estimates from the joint EM objective's Hessian.

    Given the negative EM objective at its optimum :math:`(\hat\theta,
    \hat\eta)`, computes the marginal Hessian :math:`M = H_{\theta\theta} -
    H_{\theta\eta} H_{\eta\eta}^{-1} H_{\eta\theta}` (which equals
    :math:`-\partial^2 \log p(y \mid \theta) / \partial\theta^2` when the
    E-step family contains the exact posterior) from ``p + k``
    Hessian-vector products and batched per-observation solves, and from it
    the corrected covariance :math:`M^{-1}`, the naive covariance
    :math:`H_{\theta\theta}^{-1}` and, when ``louis_fun`` is given, Louis'.
    See the module notes for the maths and for the treatment of nearly
    degenerate posteriors.

    Parameters
    ----------
    objective_fun : callable
        ``objective_fun(theta_folded, eta_folded) -> float``: the NEGATIVE EM
        objective :math:`-f(\theta, \eta) = -E_q[\log p(y, z \mid \theta)] +
        E_q[\log q(z \mid \eta)]`, to be minimised; twice differentiable by
        autograd (forward and reverse mode). It must be a sum over
        observations in ``eta``: observation ``n``'s coordinates
        (``eta_blocks[n]``) may interact with ``theta`` but not with another
        observation's.
    theta_pattern, eta_pattern : Pattern
        Patterns of the global parameter :math:`\theta` and of the E-step
        parameters :math:`\eta`.
    theta_opt, eta_opt : folded values
        The optimum, as folded values of the patterns. Not mutated.
    theta_free : bool, optional
        Differentiate through :math:`\theta`'s free vector (default) or its
        flat vector. Covariances with ``folded=False`` are in these
        coordinates.
    eta_free : bool, optional
        Differentiate through :math:`\eta`'s free vector (default) or its
        flat vector. The result does not depend on this choice (the Schur
        complement is invariant to reparameterising :math:`\eta`), but the
        numerics do: choose log-space coordinates for posteriors that may be
        nearly degenerate.
    eta_blocks : array_like of int, shape (N, k), optional
        Row ``n`` lists observation ``n``'s coordinates in :math:`\eta`'s
        free (or flat, as ``eta_free``) vector; together they must cover
        every coordinate exactly once, and column ``j`` should hold the same
        kind of coordinate for every observation. By default read off
        ``eta_pattern`` with :func:`infer_eta_blocks`.
    validate_optimum : bool, optional
        Check (default) that :math:`(\hat\theta, \hat\eta)` is an optimum:
        the Newton step of the joint problem, split into its :math:`\theta`
        part (the Newton step of the marginal problem, :math:`M^{-1}(g_\theta
        - \sum_n C_n L_n^{+} g_n)`) and its per-observation :math:`\eta`
        part, must each be at most ``optimum_tol * max(1, max|value|)`` (see
        :func:`refold.sensitivity.optimum.validate_optimum`).
    optimum_tol : float, optional
        Tolerance of that check (default ``1e-6``).
    louis_fun : callable, optional
        ``louis_fun(theta_folded, eta_folded) -> (p, p) array``: the
        conditional covariance of the complete-data score,
        :math:`\sum_n \mathrm{Cov}_q[\nabla_\theta \log p(y_n, z_n \mid
        \theta)]`, with the gradient taken in the same :math:`\theta`
        coordinates as the Hessians (the free vector when ``theta_free``).
        Louis' observed information is then :math:`H_{\theta\theta} -`
        ``louis_fun(...)`` (:math:`H_{\theta\theta}` is the expected
        complete-data information).
    local_rtol : float, optional
        Scaled eigenvalues of a local block at most this are treated as zero
        (default :data:`DEFAULT_LOCAL_RTOL`, ``1000 * eps``).
    on_failure : {'raise', 'pinv', 'regularize'}, optional
        What to do when the marginal Hessian is not positive definite or is
        near-singular (see :mod:`refold.sensitivity.solvers`); default raise.
    solver : {'auto', 'arrowhead', 'dense', 'sparse'}, optional
        How the joint Hessian is formed and :math:`H_{\eta\eta}` solved.
        ``'auto'`` (default): the arrowhead structure of ``eta_blocks``
        (given, read off ``eta_pattern``, or -- when the pattern has no
        observation axis -- detected from ``objective_fun``'s Hessian
        pattern by :func:`refold.sensitivity.blocks.local_blocks`), ``p + k``
        Hessian-vector products and the stable per-observation Schur
        complement of the notes.  ``'arrowhead'``: the same, without the
        detection.  ``'dense'``: the dense autograd Hessian and a dense
        Cholesky solve of :math:`H_{\eta\eta}`; ``'sparse'``: the sparse
        Hessian of the detected pattern and a sparse factorisation of
        :math:`H_{\eta\eta}` (both need every local block positive
        definite: no dropping of degenerate directions).

    Attributes
    ----------
    theta_pattern, eta_pattern : Pattern
        The patterns given.
    theta_opt, eta_opt : folded values
        Copies of the optimum (folded from their flat vectors).
    eta_blocks : numpy.ndarray of int, shape (N, k)
        Each observation's :math:`\eta` coordinates (given or inferred).
    theta_dim : int
        ``p``, the length of :math:`\theta`'s (free or flat) vector.
    num_obs, num_local : int
        ``N`` and ``k``, the shape of ``eta_blocks``.
    theta_hessian : numpy.ndarray, shape (p, p)
        :math:`H_{\theta\theta}`, the Q-function Hessian.
    cross_blocks : numpy.ndarray, shape (N, p, k)
        :math:`C_n = H_{\theta, \eta_n}`.
    local_blocks : numpy.ndarray, shape (N, k, k)
        :math:`L_n = H_{\eta_n \eta_n}`.
    structure : HessianStructure
        The structure used (``kind``, ``global_inds`` = the :math:`\theta`
        coordinates, ``local_inds`` = ``eta_blocks + p``, the detected
        ``pattern`` when there was one, ``reason``); see :meth:`describe`.
    info : dict
        ``num_hvps`` (Hessian-vector products used, verification probe
        included), ``num_dropped`` (local directions treated as zero),
        ``local_rtol``, ``theta_step`` and ``eta_step`` (Newton-step sizes of
        the optimum check, ``None`` when not checked).

    Raises
    ------
    TypeError
        A pattern that is not a Pattern, a non-callable function, a flag that
        is not a bool, ``eta_blocks`` that are not integers.
    ValueError
        ``theta_opt``/``eta_opt`` that do not match their patterns or are not
        finite; ``eta_blocks`` that do not cover the :math:`\eta`
        coordinates exactly once; an objective that is not a finite scalar,
        has non-finite second derivatives, or couples the :math:`\eta` blocks
        of different observations; a point that is not an optimum; a
        Hessian that is not positive (semi-)definite where it must be. Each
        message names the argument.

    Examples
    --------
    A two-component mixture of unit-variance normals, with the E-step
    written in log space: :math:`\eta_n = \log(r_{n1}/r_{n0})`.

    >>> import autograd.numpy as np
    >>> import numpy as onp
    >>> from autograd.scipy.special import logsumexp
    >>> from refold import PatternDict, NumericArrayPattern
    >>> from refold.patterns.simplex import SimplexArrayPattern
    >>> rng = onp.random.default_rng(0)
    >>> y = onp.concatenate([rng.normal(-2, 1, 60), rng.normal(2, 1, 40)])
    >>> theta_pattern = PatternDict()
    >>> theta_pattern['weights'] = SimplexArrayPattern(2, (1,))
    >>> theta_pattern['means'] = NumericArrayPattern((2,))
    >>> eta_pattern = NumericArrayPattern((len(y), 1))  # log-ratios
    >>> def log_joint(theta):  # log p(y_n, z_n = k | theta), shape (N, 2)
    ...     return (np.log(theta['weights'][0])
    ...             - 0.5 * (y[:, None] - theta['means']) ** 2
    ...             - 0.5 * onp.log(2 * onp.pi))
    >>> def neg_em_objective(theta, eta):  # -E_q log p(y, z) + E_q log q
    ...     log_r = log_simplex(eta)
    ...     return np.sum(np.exp(log_r) * (log_r - log_joint(theta)))
    >>> theta = {'weights': onp.array([[0.5, 0.5]]),
    ...          'means': onp.array([-1.0, 1.0])}
    >>> for _ in range(1000):  # EM, vectorised over observations
    ...     a = log_joint(theta)
    ...     r = onp.exp(a - logsumexp(a, axis=1, keepdims=True))
    ...     theta = {'weights': r.mean(axis=0, keepdims=True),
    ...              'means': (r * y[:, None]).sum(0) / r.sum(0)}
    >>> a = log_joint(theta)
    >>> eta = (a[:, 1:] - a[:, :1])  # the exact E-step, in log space
    >>> em_cov = EMCovariance(neg_em_objective, theta_pattern, eta_pattern,
    ...                       theta, eta)
    >>> em_cov.covariance().shape, em_cov.info['num_hvps']
    ((3, 3), 5)
    >>> bool(onp.all(em_cov.standard_errors() >=
    ...              em_cov.standard_errors('naive')))
    True
    >>> print(em_cov.comparison_table())  # doctest: +SKIP
    """

    def __init__(self, objective_fun: Callable, theta_pattern: Pattern,
                 eta_pattern: Pattern, theta_opt: Any, eta_opt: Any, *,
                 theta_free: bool = True, eta_free: bool = True,
                 eta_blocks: Any = None, validate_optimum: bool = True,
                 optimum_tol: Optional[float] = None,
                 louis_fun: Optional[Callable] = None,
                 local_rtol: Optional[float] = None,
                 on_failure: str = "raise", solver: str = "auto"):
        if not callable(objective_fun):
            raise TypeError("objective_fun: expected a callable, got "
                            "{}".format(type(objective_fun).__name__))
        if louis_fun is not None and not callable(louis_fun):
            raise TypeError("louis_fun: expected a callable or None, got "
                            "{}".format(type(louis_fun).__name__))
        for name, pattern in (("theta_pattern", theta_pattern),
                              ("eta_pattern", eta_pattern)):
            if not isinstance(pattern, Pattern):
                raise TypeError("{}: expected a refold Pattern, got "
                                "{}".format(name, type(pattern).__name__))
        self._theta_free = check_bool(theta_free, "theta_free")
        self._eta_free = check_bool(eta_free, "eta_free")
        check = check_bool(validate_optimum, "validate_optimum")
        rtol = check_tol(local_rtol, "local_rtol", DEFAULT_LOCAL_RTOL)
        solver = check_solver(solver)
        self._objective = objective_fun
        self._louis_fun = louis_fun
        self.theta_pattern = theta_pattern
        self.eta_pattern = eta_pattern

        theta_vec = flatten_value(theta_pattern, theta_opt, self._theta_free,
                                   "theta_opt", "theta_pattern")
        eta_vec = flatten_value(eta_pattern, eta_opt, self._eta_free,
                                 "eta_opt", "eta_pattern")
        if theta_vec.size == 0:
            raise ValueError("theta_pattern: theta has no coordinates")
        self._theta_vec, self._eta_vec = theta_vec, eta_vec
        self.theta_opt = theta_pattern.fold(theta_vec, free=self._theta_free)
        self.eta_opt = eta_pattern.fold(eta_vec, free=self._eta_free)

        joint_par = onp.concatenate([theta_vec, eta_vec])
        self.theta_dim = theta_vec.size
        blocks, how, pattern = resolve_blocks(
            self._joint, joint_par, self.theta_dim, eta_pattern,
            self._eta_free, eta_blocks, solver)
        self.eta_blocks = blocks
        self.num_obs, self.num_local = blocks.shape
        grad = self._joint_gradient(joint_par)
        hess = joint_hessian(self._joint, joint_par, self.theta_dim, blocks,
                             solver, how, pattern)
        self._num_hvps, self.structure = hess.num_hvps, hess.structure
        self.theta_hessian = hess.theta_hessian
        self.cross_blocks = hess.cross_blocks
        self.local_blocks = hess.local_blocks
        self._description = describe(hess, self.num_obs, self.num_local)
        self._local = _LocalFactor(self.theta_hessian, self.cross_blocks,
                                   self.local_blocks, rtol)
        marginal = hess.marginal if hess.marginal is not None else \
            self.theta_hessian - self._local.schur_term()
        self._marginal = 0.5 * (marginal + marginal.T)
        self._marginal_solver = get_dense_cholesky_solver(
            self._marginal, on_failure=on_failure,
            name="the marginal Hessian H_theta_theta - H_theta_eta "
                 "H_eta_eta^-1 H_eta_theta")
        self.info = {"num_hvps": self._num_hvps,
                     "num_dropped": self._local.num_dropped,
                     "local_rtol": rtol, "theta_step": None,
                     "eta_step": None}
        if check:
            self._check_optimum(grad, optimum_tol)
        self._cache = {}

    # ------------------------------------------------------------------
    # Construction helpers.

    def _joint(self, joint_par):
        p = self.theta_dim
        theta = self.theta_pattern.fold(joint_par[:p], free=self._theta_free)
        eta = self.eta_pattern.fold(joint_par[p:], free=self._eta_free)
        return self._objective(theta, eta)

    def _joint_gradient(self, joint_par) -> onp.ndarray:
        # A ValueError/TypeError naming objective_fun, whatever the user's
        # function raised (a KeyError for a key its pattern lacks, ...).
        value = user_call(self._objective, "objective_fun",
                          "at (theta_opt, eta_opt)", self.theta_opt,
                          self.eta_opt)
        value = onp.asarray(value)
        if value.size != 1 or not onp.isfinite(value).all():
            raise ValueError("objective_fun must return a finite scalar at "
                             "(theta_opt, eta_opt); got {!r}".format(value))
        grad = onp.asarray(autograd.grad(self._joint)(joint_par), dtype=float)
        bad = onp.flatnonzero(~onp.isfinite(grad))
        if bad.size:
            raise ValueError(
                "objective_fun's gradient is not finite at (theta_opt, "
                "eta_opt): {}.{}".format(
                    describe_joint(bad[0], self.theta_dim, self.eta_blocks),
                    LOG_SPACE_HINT))
        return grad

    def _check_optimum(self, grad, tol) -> None:
        self.info["theta_step"], self.info["eta_step"] = check_em_optimum(
            grad, self._local, self._marginal_solver, self._theta_vec,
            self._eta_vec, self.eta_blocks, self._marginal, tol)

    # ------------------------------------------------------------------
    # Results.

    def _jacobian(self, folded: bool) -> Optional[onp.ndarray]:
        folded = check_bool(folded, "folded")
        if not folded or not self._theta_free:
            return None
        if "jac" not in self._cache:
            self._cache["jac"] = onp.asarray(
                self.theta_pattern.unfreeing_jacobian(self.theta_opt,
                                                      sparse=False))
        return self._cache["jac"]

    def _fold_cov(self, cov: onp.ndarray, folded: bool) -> onp.ndarray:
        jac = self._jacobian(folded)
        if jac is None:
            return cov.copy()
        out = jac @ cov @ jac.T
        return 0.5 * (out + out.T)

    def _inverse(self, key: str) -> onp.ndarray:
        if key not in self._cache:
            if key == "corrected":
                solver = self._marginal_solver
            elif key == "naive":
                solver = get_dense_cholesky_solver(
                    self.theta_hessian,
                    name="the Q-function Hessian H_theta_theta")
            else:
                solver = get_dense_cholesky_solver(
                    self._louis_information(),
                    name="Louis' observed information H_theta_theta - "
                         "louis_fun(theta_opt, eta_opt)")
            inv = solver(onp.eye(self.theta_dim))
            self._cache[key] = 0.5 * (inv + inv.T)
        return self._cache[key]

    def _louis_information(self) -> onp.ndarray:
        value = louis_matrix(self._louis_fun, self.theta_opt, self.eta_opt,
                             self.theta_dim, self._theta_free)
        return self.theta_hessian - value

    def describe(self) -> str:
        """One line: the structure, the Hessian's cost, the method and why."""
        return self._description

    def marginal_hessian(self) -> onp.ndarray:
        r"""The marginal Hessian :math:`M = H_{\theta\theta} - H_{\theta\eta}
        H_{\eta\eta}^{-1} H_{\eta\theta}`, shape (p, p), in :math:`\theta`'s
        free (or flat, as ``theta_free``) coordinates.

        Equal to :math:`-\partial^2 \log p(y \mid \theta) / \partial\theta^2`
        at :math:`\hat\theta` when the E-step family contains the posterior.
        """
        return self._marginal.copy()

    def covariance(self, folded: bool = False) -> onp.ndarray:
        r"""The corrected covariance :math:`M^{-1}` of :math:`\hat\theta`.

        Parameters
        ----------
        folded : bool, optional
            ``False`` (default): in :math:`\theta`'s free (or flat)
            coordinates. ``True``: the covariance of the flat (non-free)
            :math:`\hat\theta` by the delta method, :math:`J M^{-1} J^\top`
            with :math:`J` the pattern's unfreeing Jacobian (no change when
            ``theta_free=False``).

        Returns
        -------
        numpy.ndarray, shape (p, p) or (flat length, flat length)
        """
        return self._fold_cov(self._inverse("corrected"), folded)

    def naive_covariance(self, folded: bool = False) -> onp.ndarray:
        r"""The naive covariance :math:`H_{\theta\theta}^{-1}` (inverse of
        the Q-function Hessian), which under-states the variance.

        ``folded`` as in :meth:`covariance`.
        """
        return self._fold_cov(self._inverse("naive"), folded)

    def louis_covariance(self, folded: bool = False) -> onp.ndarray:
        r"""Louis' covariance :math:`(H_{\theta\theta} - V)^{-1}`, with
        :math:`V` = ``louis_fun(theta_opt, eta_opt)``.

        ``folded`` as in :meth:`covariance`.

        Raises
        ------
        ValueError
            When no ``louis_fun`` was given, or it returns something that is
            not a finite symmetric ``(p, p)`` matrix.
        """
        return self._fold_cov(self._inverse("louis"), folded)

    def standard_errors(self, kind: str = "corrected",
                        folded: bool = False) -> onp.ndarray:
        """Square roots of a covariance's diagonal.

        Parameters
        ----------
        kind : {'corrected', 'naive', 'louis'}
            Which covariance.
        folded : bool, optional
            As in :meth:`covariance`.
        """
        if kind not in _KINDS:
            raise ValueError("kind: expected one of {}, got {!r}".format(
                _KINDS, kind))
        cov = {"corrected": self.covariance, "naive": self.naive_covariance,
               "louis": self.louis_covariance}[kind](folded=folded)
        return onp.sqrt(onp.maximum(onp.diag(cov), 0.0))

    def comparison_table(self, names: Optional[Sequence[str]] = None,
                         folded: bool = True) -> str:
        """A plain-text table of naive, corrected (and Louis) standard errors.

        Parameters
        ----------
        names : sequence of str, optional
            Row names; by default ``theta_pattern.flat_names``.
        folded : bool, optional
            Standard errors of the flat :math:`\\hat\\theta` (default, by the
            delta method) or of its free coordinates.

        Returns
        -------
        str
            One row per coordinate: its value, the naive, corrected and (when
            ``louis_fun`` was given) Louis standard errors, and the ratio
            corrected / naive.
        """
        folded = check_bool(folded, "folded")
        use_flat = folded or not self._theta_free
        value = onp.asarray(self.theta_pattern.flatten(
            self.theta_opt, free=not use_flat), dtype=float)
        if names is None:
            names = self.theta_pattern.flat_names(not use_flat)
        names = [str(n) for n in names]
        if len(names) != value.size:
            raise ValueError("names: expected {} names (one per coordinate), "
                             "got {}".format(value.size, len(names)))
        naive = self.standard_errors("naive", folded)
        corrected = self.standard_errors("corrected", folded)
        columns = [("estimate", value), ("naive SE", naive),
                   ("corrected SE", corrected)]
        if self._louis_fun is not None:
            columns.append(("Louis SE", self.standard_errors("louis",
                                                             folded)))
        with onp.errstate(divide="ignore", invalid="ignore"):
            ratio = onp.where(naive > 0, corrected / onp.where(
                naive > 0, naive, 1.0), onp.nan)
        columns.append(("corrected/naive", ratio))
        return text_table(names, columns)

    def __repr__(self) -> str:
        return ("EMCovariance(theta_dim={}, num_obs={}, num_local={}, "
                "num_dropped={})".format(self.theta_dim, self.num_obs,
                                         self.num_local,
                                         self.info["num_dropped"]))
