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
``(p + N k)``-square matrix is formed or solved.

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
from refold.models.local_blocks import (_check_eta_blocks, _LocalFactor,
                                        infer_eta_blocks, log_simplex)
from refold.patterns.base import Pattern
from refold.sensitivity._checks import type_for
from refold.sensitivity.optimum import validate_optimum as _validate_optimum
from refold.sensitivity.solvers import get_dense_cholesky_solver
from refold.sensitivity.sparse_hessian import SparseBlockHessian

# infer_eta_blocks and log_simplex live in refold.models.local_blocks; they
# are re-exported here, their historical home.
__all__ = ["EMCovariance", "infer_eta_blocks", "log_simplex",
           "DEFAULT_LOCAL_RTOL"]

_EPS = float(onp.finfo(float).eps)

#: Eigen-directions of a (scaled) local block with eigenvalue at most this are
#: dropped from the Schur complement (see the module notes).
DEFAULT_LOCAL_RTOL: float = 1e3 * _EPS

_KINDS = ("corrected", "naive", "louis")

_LOG_SPACE_HINT = (
    " Second derivatives of an objective written in probabilities (e.g. "
    "r * log(r)) overflow when a posterior is nearly degenerate: write it "
    "in log space (log-ratio coordinates eta = log(r_k / r_0) and "
    "log_r = refold.models.em_covariance.log_simplex(eta) inside "
    "objective_fun).")


# ----------------------------------------------------------------------
# Argument checks.

def _flatten_value(pattern: Pattern, value: Any, free: bool,
                   name: str, pattern_name: str) -> onp.ndarray:
    try:
        vec = pattern.flatten(value, free=free)
    except (ValueError, TypeError) as err:
        raise type(err)("{} does not match {} ({}): {}".format(
            name, pattern_name, "free" if free else "flat", err)) from err
    vec = onp.array(vec, dtype=float).ravel()
    bad = onp.flatnonzero(~onp.isfinite(vec))
    if bad.size:
        names = pattern.flat_names(free)
        raise ValueError("{}: its {} coordinate {} ({}) is {}; it must be "
                         "finite".format(name, "free" if free else "flat",
                                         bad[0], names[bad[0]], vec[bad[0]]))
    return vec


def _check_tol(value: Any, name: str, default: float) -> float:
    if value is None:
        return default
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise TypeError("{}: expected a positive number, got {!r}".format(
            name, value)) from None
    if not (onp.isfinite(out) and 0 < out < 1):
        raise ValueError("{}: expected a number in (0, 1), got {!r}".format(
            name, value))
    return out


# ----------------------------------------------------------------------

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
                 on_failure: str = "raise"):
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
        rtol = _check_tol(local_rtol, "local_rtol", DEFAULT_LOCAL_RTOL)
        self._objective = objective_fun
        self._louis_fun = louis_fun
        self.theta_pattern = theta_pattern
        self.eta_pattern = eta_pattern

        theta_vec = _flatten_value(theta_pattern, theta_opt, self._theta_free,
                                   "theta_opt", "theta_pattern")
        eta_vec = _flatten_value(eta_pattern, eta_opt, self._eta_free,
                                 "eta_opt", "eta_pattern")
        if theta_vec.size == 0:
            raise ValueError("theta_pattern: theta has no coordinates")
        if eta_blocks is None:
            blocks = infer_eta_blocks(eta_pattern, self._eta_free)
        else:
            blocks = _check_eta_blocks(eta_blocks, eta_vec.size)
        if blocks.size != eta_vec.size:   # only possible when inferred
            raise ValueError("eta_blocks: eta_pattern's observations hold {} "
                             "coordinates but eta has {}".format(
                                 blocks.size, eta_vec.size))
        self._theta_vec, self._eta_vec = theta_vec, eta_vec
        self.theta_opt = theta_pattern.fold(theta_vec, free=self._theta_free)
        self.eta_opt = eta_pattern.fold(eta_vec, free=self._eta_free)
        self.eta_blocks = blocks
        self.theta_dim = theta_vec.size
        self.num_obs, self.num_local = blocks.shape

        joint_par = onp.concatenate([theta_vec, eta_vec])
        grad = self._joint_gradient(joint_par)
        self._hessian_blocks(joint_par)
        self._local = _LocalFactor(self.theta_hessian, self.cross_blocks,
                                   self.local_blocks, rtol)
        marginal = self.theta_hessian - self._local.schur_term()
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
        try:
            value = self._objective(self.theta_opt, self.eta_opt)
        except (KeyboardInterrupt, SystemExit, MemoryError):
            raise
        except Exception as err:
            # A ValueError/TypeError naming objective_fun, whatever the user's
            # function raised (a KeyError for a key its pattern lacks, ...).
            raise type_for(err)(
                "objective_fun(theta_folded, eta_folded) raised {} at "
                "(theta_opt, eta_opt): {}. Check that theta_pattern and "
                "eta_pattern describe the arguments objective_fun "
                "expects.".format(type(err).__name__,
                                  "missing key {}".format(err)
                                  if isinstance(err, KeyError) else err)
            ) from err
        value = onp.asarray(value)
        if value.size != 1 or not onp.isfinite(value).all():
            raise ValueError("objective_fun must return a finite scalar at "
                             "(theta_opt, eta_opt); got {!r}".format(value))
        grad = onp.asarray(autograd.grad(self._joint)(joint_par), dtype=float)
        bad = onp.flatnonzero(~onp.isfinite(grad))
        if bad.size:
            raise ValueError(
                "objective_fun's gradient is not finite at (theta_opt, "
                "eta_opt): {}.{}".format(self._describe_joint(bad[0]),
                                         _LOG_SPACE_HINT))
        return grad

    def _describe_joint(self, index: int) -> str:
        p = self.theta_dim
        if index < p:
            return "theta coordinate {}".format(index)
        obs, col = onp.argwhere(self.eta_blocks == index - p)[0]
        return "eta coordinate {} (observation {}, eta_blocks[{}, {}])".format(
            index - p, obs, obs, col)

    def _hessian_blocks(self, joint_par) -> None:
        p = self.theta_dim
        builder = SparseBlockHessian(self._joint, self.eta_blocks + p)
        try:
            blocks = builder.get_arrowhead_blocks(
                joint_par, global_inds=onp.arange(p))
        except ValueError as err:
            # Say it in this class's vocabulary: its structure is eta_blocks.
            text = str(err).replace(" (pass verify=False to skip this "
                                    "check)", "")
            text = text.replace("sparsity_array", "eta_blocks")
            hint = _LOG_SPACE_HINT if "not finite" in text else (
                " The objective must be a sum over observations whose eta "
                "blocks (eta_blocks) do not interact: an E-step family that "
                "does not factorise over observations does not match.")
            raise ValueError(
                "objective_fun: computing its Hessian at (theta_opt, eta_opt) "
                "failed: {} (coordinates are numbered theta first (0..{}), "
                "then eta coordinate i at {} + i).{}".format(
                    text, p - 1, p, hint)) from err
        self._num_hvps = builder.num_hvps
        self.theta_hessian = blocks.global_block
        self.cross_blocks = blocks.cross_blocks
        self.local_blocks = blocks.local_blocks

    def _check_optimum(self, grad, tol) -> None:
        """The E-step first, then theta: ``eta_opt`` is checked against the
        optimum of eta at ``theta_opt`` (the Newton step of the eta blocks
        alone), so an ``eta_opt`` off its E-step is blamed on ``eta_opt``;
        then ``theta_opt`` by the reduced (marginal) gradient."""
        p = self.theta_dim
        local = self._local
        grad_theta, grad_eta = grad[:p], grad[p:]
        blocks = self.eta_blocks

        def eta_solver(b):
            out = onp.empty_like(b)
            out[blocks] = local.apply_pinv(onp.asarray(b)[blocks])
            return out

        self.info["eta_step"] = _validate_optimum(
            grad_eta, eta_solver, self._eta_vec, tol=tol,
            name="eta_opt",
            opt_out="validate_optimum=False", tol_name="optimum_tol")
        reduced = grad_theta - local.cross_times_pinv(grad_eta[blocks])
        self.info["theta_step"] = _validate_optimum(
            reduced, self._marginal_solver, self._theta_vec, tol=tol,
            name="theta_opt", opt_out="validate_optimum=False",
            tol_name="optimum_tol", hvp=lambda v: self._marginal @ v)

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
        if self._louis_fun is None:
            raise ValueError(
                "louis_covariance needs louis_fun: pass louis_fun(theta, "
                "eta) returning the conditional covariance of the "
                "complete-data score, sum_n Cov_q[grad_theta log p(y_n, z_n "
                "| theta)], a ({0}, {0}) array in theta's {1} "
                "coordinates".format(self.theta_dim,
                                     "free" if self._theta_free else "flat"))
        p = self.theta_dim
        value = onp.asarray(self._louis_fun(self.theta_opt, self.eta_opt),
                            dtype=float)
        if value.shape != (p, p):
            raise ValueError("louis_fun must return a ({0}, {0}) array (the "
                             "score covariance in theta's coordinates); got "
                             "shape {1}".format(p, value.shape))
        if not onp.all(onp.isfinite(value)):
            raise ValueError("louis_fun returned non-finite entries")
        gap = onp.max(onp.abs(value - value.T))
        if gap > onp.sqrt(_EPS) * max(onp.max(onp.abs(value)), 1e-300):
            raise ValueError("louis_fun must return a symmetric matrix (a "
                             "covariance); max |V - V^T| = {:.3g}".format(gap))
        return self.theta_hessian - 0.5 * (value + value.T)

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
        width = max([len("coordinate")] + [len(n) for n in names])
        head = "{:<{w}}".format("coordinate", w=width) + "".join(
            "  {:>15}".format(title) for title, _ in columns)
        lines = [head, "-" * len(head)]
        for i, name in enumerate(names):
            lines.append("{:<{w}}".format(name, w=width) + "".join(
                "  {:>15.6g}".format(col[i]) for _, col in columns))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return ("EMCovariance(theta_dim={}, num_obs={}, num_local={}, "
                "num_dropped={})".format(self.theta_dim, self.num_obs,
                                         self.num_local,
                                         self.info["num_dropped"]))
