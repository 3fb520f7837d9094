r"""Linear-response (LR) covariances of variational and MAP approximations.

Let :math:`q(\theta \mid \eta)` approximate a posterior :math:`p(\theta \mid y)`
with :math:`\hat\eta = \mathrm{argmin}_\eta f(\eta)` (e.g. the KL divergence in
free coordinates).  Tilting the posterior by :math:`\exp(t^\top g(\theta))`
moves :math:`\hat\eta` and the variational moments :math:`m(\eta) =
\mathbb{E}_q[g(\theta)]`; the derivative of those moments at :math:`t = 0` is
the LR covariance

.. math::

    \mathrm{Cov}_{LR}(g) = J H^{-1} J^\top, \qquad
    J = \frac{\partial m}{\partial \eta}\Big|_{\hat\eta}, \quad
    H = \frac{\partial^2 f}{\partial\eta\,\partial\eta^\top}\Big|_{\hat\eta}.

It is exact for Gaussian targets with a mean-field Gaussian :math:`q` (where
the mean-field variances are not), and equals the Laplace covariance
:math:`H^{-1}` for a point mass (MAP) with :math:`g(\theta) = \theta`.
Sensitivity is covariance: the same :math:`H^{-1}` gives the prior
sensitivity computed in :mod:`refold.sensitivity`.

:math:`H^{-1}` is never formed.  This class is a short use of the
sensitivity layer:

* the Hessian's structure and solver come from ``solver='auto'`` (the
  default): the sparsity pattern is detected from ``objective_fun``
  (:mod:`refold.sensitivity.structure`) -- or read off a scipy.sparse
  ``hessian_at_opt``, e.g. from ``SparseBlockHessian(...).get_hessian(opt)``
  as vittles users write -- and a global/local (arrowhead) pattern is solved
  by Schur complement, a small or dense one by dense Cholesky, another sparse
  one by a sparse factorisation, a huge one matrix-free;
  :attr:`LinearResponseCovariances.structure` and
  :meth:`~LinearResponseCovariances.describe` say what was chosen and why;
* moment Jacobians are detected sparse and computed by coloured forward mode,
  with reverse mode for a few dense rows
  (:func:`refold.sensitivity.jacobians.auto_jacobian`), dense only when
  dense;
* :math:`J H^{-1} J^\top` goes through the structure
  (:func:`refold.sensitivity.inverse_blocks.inverse_sandwich`): for an
  arrowhead Hessian from its inverse blocks with no right-hand-side solves,
  otherwise one solve with the columns of :math:`J^\top` (``K``
  conjugate-gradient runs on the matrix-free path); and
  :meth:`LinearResponseCovariances.get_lr_covariance_blocks` returns the
  global block and every group's diagonal block in :math:`O(T m^2 (m + g) +
  T m g^2 + g^3)`.

:class:`~refold.sensitivity.jacobians.MomentJacobianColouring`,
:func:`~refold.sensitivity.jacobians.colour_moment_jacobian` and
:class:`~refold.sensitivity.inverse_blocks.LRCovarianceBlocks` are also
importable from here.

Differences from vittles 0.173
------------------------------
* the optimum is validated by default, by the scale-aware Newton step
  :math:`\|H^{-1}\nabla f\|_\infty \le` ``grad_tol`` :math:`\max(1,
  \|\hat\eta\|_\infty)` of :mod:`refold.sensitivity.optimum` (vittles:
  :math:`\|H^{-1}\nabla f\|_2 \le` ``grad_tol``, off by default), so with the
  same ``grad_tol = 1e-8`` every point vittles accepts passes; a NaN gradient
  fails;
* moment Jacobians may be sparse and computed by coloured forward mode;
  covariances of many moments come in arrowhead blocks
  (:meth:`LinearResponseCovariances.get_lr_covariance_blocks`);
* ``factorize_hessian=False`` is matrix-free (Hessian-vector products and
  conjugate gradients), never a dense Hessian (vittles ignored it and always
  formed and Cholesky-factorised the dense Hessian);
* ``set_base_values`` takes ``hessian_at_opt`` as optional and recomputes
  the Hessian in the structure last used (dense, sparse pattern, arrowhead),
  then re-factorises it; the previous state is kept when it fails;
* ``hessian_at_opt`` may be dense, scipy.sparse or an arrowhead Hessian and is
  validated (shape, finite, symmetric, positive definite);
* any solver of :mod:`refold.sensitivity.solvers` via ``solver=`` and
  ``solver_options=``; the default ``'auto'`` chooses from the detected
  structure (vittles always formed the dense Hessian and the dense moment
  Jacobian, one reverse pass per moment).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Union

import autograd
import numpy as np
import scipy.sparse as sps

from refold.models._lr_checks import (arrowhead_inds, as_moment_jacobian,
                                      as_opt_par, check_factorize,
                                      check_options, check_spec, check_tol,
                                      hessian_product, in_context)
from refold.models._lr_solver import (COMPUTED, arrowhead_hessian,
                                      compute_hessian, describe_structure,
                                      make_solver)
from refold.sensitivity._checks import user_call
from refold.sensitivity.arrowhead import ArrowheadHessian
from refold.sensitivity.inverse_blocks import (LRCovarianceBlocks,
                                               inverse_sandwich,
                                               inverse_sandwich_blocks)
from refold.sensitivity.jacobians import (MomentJacobianColouring,
                                          auto_jacobian,
                                          colour_moment_jacobian,
                                          sparse_jacobian)
from refold.sensitivity.optimum import validate_optimum as _validate_optimum
from refold.sensitivity.solvers import SOLVER_KINDS, LinearSolver
from refold.sensitivity.structure import HessianStructure

# MomentJacobianColouring, colour_moment_jacobian and LRCovarianceBlocks live
# in refold.sensitivity; they are re-exported here, their historical home.
__all__ = ["LinearResponseCovariances", "LRCovarianceBlocks",
           "MomentJacobianColouring", "colour_moment_jacobian"]

SolverSpec = Union[None, str, Callable[[np.ndarray], np.ndarray]]


# ----------------------------------------------------------------------------
# The class
# ----------------------------------------------------------------------------
class LinearResponseCovariances:
    r"""Linear-response covariances at the optimum of a variational objective.

    Parameters
    ----------
    objective_fun : callable
        ``objective_fun(opt_par)``: the scalar objective (e.g. KL divergence)
        of the flat free variational parameter, differentiable by autograd.
    opt_par_value : array_like, shape (D,)
        The optimum :math:`\hat\eta` (refold calls it ``opt_par``).
    validate_optimum : bool, optional
        Check that ``opt_par_value`` is an optimum (default ``True``; vittles:
        ``False``): :math:`\|H^{-1}\nabla f\|_\infty \le` ``grad_tol``
        :math:`\cdot \max(1, \|\hat\eta\|_\infty)`.
    hessian_at_opt : ndarray, scipy.sparse matrix or ArrowheadHessian, optional
        The Hessian at the optimum (also ``ArrowheadBlocks`` from
        :class:`~refold.sensitivity.sparse_hessian.SparseBlockHessian`).
        Validated: shape ``(D, D)``, finite, symmetric, positive definite.
        Computed when omitted (see ``solver``).
    factorize_hessian : bool, optional
        ``True`` (default) factorises the Hessian; ``False`` solves with
        conjugate gradients on Hessian-vector products (or on products with
        ``hessian_at_opt``), never forming a dense Hessian.
    grad_tol : float or None, optional
        Tolerance of the optimum check (default ``1e-8``, vittles' value: every
        point vittles' check accepts passes; ``None`` means
        :data:`refold.sensitivity.optimum.DEFAULT_OPTIMUM_TOL`).
    solver : str or callable, keyword-only
        ``'auto'`` (the default when ``factorize_hessian``): the structure is
        detected from ``objective_fun`` (or read off ``hessian_at_opt``: a
        scipy.sparse arrowhead pattern, such as ``SparseBlockHessian``'s, is
        solved by Schur complement) and the solver chosen from it -- see
        :mod:`refold.sensitivity.structure`; :attr:`structure` and
        :meth:`describe` record the choice.  Or a solver kind of
        :func:`refold.sensitivity.solvers.get_solver` (``'cholesky'``,
        ``'dense'``, ``'sparse'``, ``'cg'``, ``'lu'``, ``'arrowhead'``), which
        wins over ``'auto'``, or a function ``b -> H^{-1} b`` for ``b`` of
        shape ``(D,)`` or ``(D, k)``.  Without ``hessian_at_opt``,
        ``'arrowhead'`` computes the blocks from ``m + g`` Hessian-vector
        products (``solver_options`` ``local_inds`` (T, m) -- or, for
        local blocks of unequal sizes, a list of index arrays, one per block
        or one ``(T_k, m_k)`` array per size, then ``g + max m`` products --
        optional ``global_inds``, default all other coordinates) and
        ``'sparse'``/``'cholesky'`` with a ``solver_options['sparsity']``
        pattern recovers a sparse Hessian by colouring; other factorising
        kinds form the dense autograd Hessian.
    solver_options : dict, keyword-only
        Options of the kind (``on_failure``, ``cg_opts``, ``preconditioner``,
        ``global_inds``, ``local_inds``, ``sparsity``, ...); ``'auto'`` takes
        ``on_failure``, ``cg_opts``, ``preconditioner`` and ``structure`` (a
        :class:`~refold.sensitivity.structure.HessianStructure` to reuse).
        Without ``solver=``, a ``sparsity`` option keeps its old meaning
        (the sparse Hessian of that pattern, solved by ``'cholesky'``).

    Attributes
    ----------
    structure : HessianStructure or None
        With ``solver='auto'``: the structure found (pattern, kind, arrowhead
        split, reason); ``None`` for a solver chosen by the caller.

    Raises
    ------
    ValueError
        A non-optimum (the message gives the Newton-step size and how to opt
        out), a NaN gradient, a wrong-shaped, non-finite, non-symmetric or
        indefinite Hessian (the message names ``hessian_at_opt`` or the
        computed Hessian), an unknown solver kind.
    TypeError
        A non-callable objective, options a solver kind does not take.

    Examples
    --------
    A Gaussian target :math:`N(\mu, \Sigma)` and a mean-field Gaussian
    :math:`q`, free parameter ``(means, log sds)``: LR recovers :math:`\Sigma`.

    >>> import autograd.numpy as anp, numpy as np
    >>> sigma = np.array([[1.0, 0.8], [0.8, 1.0]]); lam = np.linalg.inv(sigma)
    >>> def kl(eta):
    ...     m, s = eta[:2], anp.exp(eta[2:])
    ...     return 0.5 * (anp.sum(anp.diag(lam) * s ** 2) + m @ lam @ m) \
    ...         - anp.sum(eta[2:])
    >>> opt = np.concatenate([np.zeros(2), -0.5 * np.log(np.diag(lam))])
    >>> lr = LinearResponseCovariances(kl, opt)
    >>> np.allclose(lr.get_lr_covariance(lambda eta: eta[:2]), sigma)
    True
    """

    def __init__(self, objective_fun: Callable, opt_par_value: Any,
                 validate_optimum: bool = True, hessian_at_opt: Any = None,
                 factorize_hessian: bool = True, grad_tol: Optional[float] = 1e-8,
                 *, solver: SolverSpec = None,
                 solver_options: Optional[Mapping] = None) -> None:
        if not callable(objective_fun):
            raise TypeError(f"objective_fun must be callable; got "
                            f"{type(objective_fun).__name__}")
        self._obj = objective_fun
        self._grad_tol = check_tol(grad_tol)
        self._factorize = check_factorize(factorize_hessian)
        self._spec = check_spec(solver, SOLVER_KINDS)
        self._options = check_options(solver_options)
        self._par = None
        self._layout = None
        self.structure: Optional[HessianStructure] = None
        self._jacobian_how = ""
        self._set_base(opt_par_value, hessian_at_opt, None, validate_optimum,
                       self._grad_tol, None, None, "validate_optimum=False")

    # ------------------------------------------------------------- building
    def _value_and_grad(self, par: np.ndarray) -> np.ndarray:
        vjp, value = autograd.make_vjp(self._obj)(par)
        value = np.asarray(value)
        if value.size != 1 or not np.issubdtype(value.dtype, np.number) or \
                np.iscomplexobj(value):
            raise ValueError(f"objective_fun must return a real scalar; at "
                             f"opt_par_value it returned {value.dtype} of shape "
                             f"{value.shape}")
        grad = vjp(np.ones_like(value, dtype=float))
        return np.asarray(grad, dtype=float).reshape(par.shape)

    def _set_base(self, opt_par_value, hessian, factorize, validate, tol,
                  solver, solver_options, opt_out) -> None:
        par = as_opt_par(opt_par_value)
        if self._par is not None and par.size != self._par.size:
            raise ValueError(f"opt_par_value must have length {self._par.size} "
                             f"(as at construction); got {par.size}")
        if not isinstance(validate, (bool, np.bool_)):
            raise TypeError(f"{opt_out.split('=')[0]} must be True or False; got "
                            f"{validate!r}")
        factorize = self._factorize if factorize is None else \
            check_factorize(factorize)
        spec = self._spec if solver is None else check_spec(solver, SOLVER_KINDS)
        options = self._options if solver_options is None else \
            check_options(solver_options)
        if (solver is None and callable(spec) and self._par is not None
                and hessian is None):
            raise ValueError("the solver was given as a function, valid only at "
                             "the old opt_par_value; pass solver= (a function "
                             "valid at the new point, or a kind such as "
                             "'cholesky') to set_base_values")
        if not factorize and isinstance(spec, str) and spec != "cg":
            raise ValueError(f"factorize_hessian=False asks for the matrix-free "
                             f"conjugate-gradient solver, but solver={spec!r} "
                             f"factorises the Hessian; use solver='cg' or "
                             f"factorize_hessian=True")
        grad = None
        needs_objective = validate or (hessian is None and not callable(spec))
        if needs_objective:
            grad = self._value_and_grad(par)
            if validate and not np.isfinite(grad).all():
                _validate_optimum(grad, None, par, tol=tol, name="opt_par_value",
                                  opt_out=opt_out)
        choice = make_solver(self._obj, par, hessian, spec, options, factorize,
                             self._layout, self.structure)
        if validate:
            def solve(b):
                try:
                    return choice.solver(b)
                except ValueError as err:
                    raise in_context(err, "the Hessian at opt_par_value") from err
            _validate_optimum(grad, solve, par, tol=tol, name="opt_par_value",
                              opt_out=opt_out, tol_name="grad_tol",
                              hvp=hessian_product(
                                  self._obj, par, choice.arrowhead
                                  if choice.arrowhead is not None
                                  else choice.hessian))
        # Commit only after everything succeeded.
        self._par, self._hessian = par, choice.hessian
        self._arrowhead, self._solver = choice.arrowhead, choice.solver
        self._layout, self.structure = choice.layout, choice.structure
        self._factorize, self._spec, self._options = factorize, spec, options

    def set_base_values(self, opt_par_value: Any, hessian_at_opt: Any = None,
                        factorize_hessian: Optional[bool] = None,
                        validate: bool = True, grad_tol: Optional[float] = None,
                        *, solver: SolverSpec = None,
                        solver_options: Optional[Mapping] = None) -> None:
        r"""Move the optimum; the Hessian is re-formed and re-factorised.

        Parameters
        ----------
        opt_par_value : array_like, shape (D,)
            The new optimum.
        hessian_at_opt : optional
            The Hessian there.  When omitted it is recomputed in the structure
            last used (dense, the sparsity pattern of a sparse
            ``hessian_at_opt``, or the arrowhead blocks), never reused.
        factorize_hessian : bool, optional
            ``None`` (default) keeps the constructor's choice.
        validate : bool, optional
            Check the optimum (default ``True``; vittles' name).
        grad_tol : float, optional
            Tolerance of the check; defaults to the constructor's.
        solver, solver_options : keyword-only
            As in the constructor; default: keep.  A solver *function* is
            valid only at one point, so a new one is required then (unless
            ``hessian_at_opt`` is given, when the function is assumed to be
            the user's solver for it).

        Raises
        ------
        ValueError
            As the constructor; the previous base values are kept on error.
        """
        tol = self._grad_tol if grad_tol is None else check_tol(grad_tol)
        self._set_base(opt_par_value, hessian_at_opt, factorize_hessian, validate,
                       tol, solver, solver_options, "validate=False")

    # -------------------------------------------------------------- results
    @property
    def hess_solver(self) -> LinearSolver:
        r"""The solver :math:`b \mapsto H^{-1} b` at the optimum (vittles' name)."""
        return self._solver

    def get_hessian_at_opt(self):
        """The Hessian at the optimum (as given or computed; a copy is held).

        On the matrix-free path, or with a user solver function, the Hessian
        was never formed; it is then computed here (dense, by autograd,
        costing ``D`` Hessian-vector products) and cached.
        """
        if self._hessian is None:
            self._hessian = compute_hessian(self._obj, self._par, "dense", {},
                                            None)
        return self._hessian

    def _solve(self, rhs: np.ndarray) -> np.ndarray:
        try:
            return np.asarray(self._solver(rhs), dtype=float).reshape(rhs.shape)
        except ValueError as err:
            raise in_context(err, "the Hessian at opt_par_value") from err

    def describe(self) -> str:
        """One line: how the Hessian was formed and solved (and why), and how
        the last moment Jacobian was computed."""
        out = (describe_structure(self.structure) if self.structure else
               f"solver {self._solver.kind!r} (chosen by the caller)")
        return out + (f"; moments: {self._jacobian_how}"
                      if self._jacobian_how else "")

    def _jacobian(self, calculate_moments: Callable, colouring: Any,
                  verify: bool):
        if not callable(calculate_moments):
            raise TypeError(f"calculate_moments must be callable; got "
                            f"{type(calculate_moments).__name__}")
        par = self._par.copy()
        user_fun = calculate_moments

        def calculate_moments(p):
            # A user's exception names calculate_moments and the point.
            return user_call(user_fun, "calculate_moments",
                             "at opt_par_value", p)
        if colouring is not None:
            col = colour_moment_jacobian(colouring, dim=par.size)
            self._jacobian_how = (f"sparse Jacobian, given pattern, "
                                  f"{col.describe()}")
            return sparse_jacobian(calculate_moments, par, sparsity=col,
                                   verify=verify, name="calculate_moments",
                                   at="opt_par_value")
        jac, self._jacobian_how = auto_jacobian(
            calculate_moments, par, name="calculate_moments",
            at="opt_par_value")
        return jac

    def get_moment_jacobian(self, calculate_moments: Callable, sparse: bool = False,
                            colouring: Any = None, *, verify: bool = True):
        r"""The Jacobian of the moments with respect to ``opt_par`` at the optimum.

        Parameters
        ----------
        calculate_moments : callable
            ``calculate_moments(opt_par)`` returns the 1-d array
            :math:`\mathbb{E}_q[g(\theta)]` (length ``K``).
        sparse : bool, optional
            Return a ``scipy.sparse.csr_array`` instead of an ndarray.
        colouring : MomentJacobianColouring or sparsity, optional
            The pattern of :math:`J` (anything :func:`colour_moment_jacobian`
            accepts, with ``dim = D``).  Then :math:`J` comes from
            ``num_colours`` forward-mode passes, one reverse-mode sweep per
            dense row of the pattern (often none) and one verification
            probe, however many moments there are.  Default: the pattern is
            detected from ``calculate_moments``
            (:func:`~refold.sensitivity.jacobians.auto_jacobian`) and used
            the same way when it is sparse; a dense pattern (or a function
            the tracer or forward mode cannot follow) gives the dense
            Jacobian from ``min(K, D)`` passes (reverse mode: one per moment;
            forward mode when ``K > D``).
        verify : bool, keyword-only
            With ``colouring``, check :math:`J` against one forward pass in a
            random direction (default ``True``; a detected pattern is always
            checked).

        Returns
        -------
        ndarray or scipy.sparse.csr_array, shape (K, D)

        Raises
        ------
        ValueError
            If the moments are not a 1-d array, their number does not match
            ``colouring``, the Jacobian is not finite, or (``verify``) a moment
            depends on coordinates outside the pattern.
        """
        if not isinstance(sparse, (bool, np.bool_)):
            raise TypeError(f"sparse must be True or False; got {sparse!r}")
        jac = self._jacobian(calculate_moments, colouring, verify)
        if sparse:
            return sps.csr_array(jac)
        return jac.toarray() if sps.issparse(jac) else jac

    def get_lr_covariance_from_jacobians(self, moment_jacobian1: Any,
                                         moment_jacobian2: Any) -> np.ndarray:
        r"""LR covariance :math:`J_1 H^{-1} J_2^\top` of two sets of moments.

        :math:`H^{-1}` is never formed: for an arrowhead Hessian the product
        comes from its inverse blocks (no right-hand-side solves, sparse
        Jacobians kept sparse); otherwise one solve with the columns of
        :math:`J^\top` of whichever Jacobian has fewer rows
        (:func:`~refold.sensitivity.inverse_blocks.inverse_sandwich`).

        Parameters
        ----------
        moment_jacobian1, moment_jacobian2 : ndarray or scipy.sparse, (K_i, D)
            Moment Jacobians (rows: moments; columns: coordinates of
            ``opt_par``).

        Returns
        -------
        ndarray, shape (K_1, K_2)
            Exactly symmetric when both arguments are the same object.
        """
        dim = self._par.size
        j1 = as_moment_jacobian(moment_jacobian1, "moment_jacobian1", dim)
        same = moment_jacobian2 is moment_jacobian1
        j2 = j1 if same else as_moment_jacobian(moment_jacobian2,
                                                "moment_jacobian2", dim)
        if self._arrowhead is not None:
            try:
                return inverse_sandwich(j1, j2, arrowhead=self._arrowhead)
            except ValueError as err:
                raise in_context(err, "the Hessian at opt_par_value") from err
        return inverse_sandwich(j1, j2, solver=self._solve)

    def get_lr_covariance(self, calculate_moments: Callable, *,
                          colouring: Any = None) -> np.ndarray:
        r"""LR covariance of ``calculate_moments(opt_par)``, shape (K, K).

        Parameters
        ----------
        calculate_moments : callable
            As in :meth:`get_moment_jacobian`.
        colouring : optional, keyword-only
            As in :meth:`get_moment_jacobian` (default: detected).
        """
        jac = self._jacobian(calculate_moments, colouring, True)
        return self.get_lr_covariance_from_jacobians(jac, jac)

    def _arrowhead_for(self, global_inds: Any, local_inds: Any) -> ArrowheadHessian:
        if local_inds is None:
            if global_inds is not None:
                raise TypeError("global_inds needs local_inds")
            if self._arrowhead is None:
                raise ValueError(
                    "get_lr_covariance_blocks needs an arrowhead (global/local) "
                    "Hessian: construct with solver='arrowhead' and "
                    "solver_options={'local_inds': ...}, or hessian_at_opt as "
                    "an ArrowheadHessian, or pass local_inds= (and global_inds=) "
                    "here")
            return self._arrowhead
        gi, li = arrowhead_inds(global_inds, local_inds, self._par.size)
        arrow = self._arrowhead
        if arrow is not None and np.array_equal(arrow.global_inds, gi):
            have = arrow.local_inds_by_size
            want = li if isinstance(li, tuple) else (li,)
            if len(have) == len(want) and all(
                    np.array_equal(a, b) for a, b in zip(have, want)):
                return arrow
        hess = self._hessian
        try:
            if hess is None:
                arrow = arrowhead_hessian(self._obj, self._par, gi, li)
            else:
                if isinstance(hess, ArrowheadHessian):
                    hess = hess.to_sparse()
                arrow = ArrowheadHessian.from_sparse(hess, gi, li,
                                                     name="hessian_at_opt")
        except ValueError as err:
            raise in_context(err, COMPUTED) from err
        self._arrowhead = arrow
        return arrow

    def get_lr_covariance_blocks(self, moment_jacobian: Any = None, *,
                                 global_inds: Any = None,
                                 local_inds: Any = None) -> LRCovarianceBlocks:
        r"""Global and per-group blocks of the LR covariance, by Schur complement.

        For an arrowhead Hessian (``g`` globals; ``T`` groups of ``m`` locals
        that interact only with themselves and the globals), the blocks of
        :math:`J H^{-1} J^\top` that pair moments of the globals, or of one
        group, come from the blocks :math:`(H^{-1})_{gg}`, :math:`(H^{-1})_{gt}`
        and :math:`(H^{-1})_{tt}` of
        :class:`~refold.sensitivity.arrowhead.ArrowheadHessian`, without any
        other part of :math:`H^{-1}`.

        Parameters
        ----------
        moment_jacobian : ndarray or scipy.sparse, shape (K, D), optional
            A linear moment map (e.g. from :meth:`get_moment_jacobian` with a
            ``colouring``).  A row whose nonzeros are all global is a *global
            moment*; a row touching group ``t``'s locals (and possibly the
            globals) is a moment of group ``t``; every group must have the
            same number ``r`` of moments (with local blocks of unequal sizes:
            every group of one block size).  Default: the identity, i.e. the
            LR covariance of the coordinates themselves (``p = g``, ``r = m``).
        global_inds, local_inds : array_like of int, keyword-only
            The structure, when the Hessian was not given or built as
            arrowhead (``local_inds`` (T, m), or for blocks of unequal sizes
            a list of index arrays -- one per block, or one ``(T_k, m_k)``
            array per size; ``global_inds`` defaults to all other
            coordinates).  A dense or sparse Hessian is split into blocks; a
            matrix-free one is computed from ``m + g`` Hessian-vector
            products (``m`` the largest block).

        Returns
        -------
        LRCovarianceBlocks
            ``global_cov`` (p, p), ``local_covs`` (T, r, r), ``cross_covs``
            (T, p, r), and the moment rows ``global_moments`` (p,) and
            ``local_moments`` (T, r).  When the arrowhead's local blocks have
            unequal sizes (e.g. found by ``solver='auto'``), the last three
            are tuples with one such stack per size class.

        Raises
        ------
        ValueError
            No arrowhead structure is known, a moment depends on the locals of
            two groups, groups have different numbers of moments, or the
            Hessian is not an arrowhead or not positive definite.
        """
        arrow = self._arrowhead_for(global_inds, local_inds)
        jac = None
        if moment_jacobian is not None:
            jac = as_moment_jacobian(moment_jacobian, "moment_jacobian",
                                     self._par.size)
            jac = sps.csr_array(jac)
        try:
            return inverse_sandwich_blocks(arrow, jac, "moment_jacobian")
        except ValueError as err:
            if str(err).startswith("moment_jacobian"):
                raise
            raise in_context(err, "the Hessian at opt_par_value") from err
