"""The Hessian solver of :class:`~refold.models.lr_covariance.LinearResponseCovariances`.

``solver='auto'`` (the default) hands the objective, or the user's
``hessian_at_opt``, to :func:`refold.sensitivity._equation_solver.hessian_solver_auto`
(detection, classification, structured Hessian).  An explicit kind builds the
Hessian in the structure its ``solver_options`` describe (``local_inds`` for
``'arrowhead'``, ``sparsity`` for ``'sparse'``/``'cholesky'``) or densely.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np
import scipy.sparse as sps

from refold.models._lr_checks import arrowhead_inds, given_hessian, in_context
from refold.sensitivity._arrowhead_blocks import _layout
from refold.sensitivity._equation_solver import hessian_solver_auto
from refold.sensitivity.arrowhead import ArrowheadHessian
from refold.sensitivity.colouring import HessianColouring
from refold.sensitivity.hvp import dense_hessian, make_hvp_at
from refold.sensitivity.solvers import as_solver
from refold.sensitivity.sparse_hessian import SparseBlockHessian, sparse_hessian
from refold.sensitivity.structure import split_structure, structured_hessian

COMPUTED = "the Hessian of objective_fun at opt_par_value"


class SolverChoice:
    """What :func:`make_solver` built: solver, Hessian, arrowhead, structure.

    ``layout`` is the explicit path's memory of the structure (a tuple
    ``('arrowhead', gi, li)`` or ``('sparse', pattern)``), used to recompute
    the Hessian in the same structure at a new point.
    """

    def __init__(self, solver, hessian, arrowhead, structure, layout):
        self.solver, self.hessian, self.arrowhead = solver, hessian, arrowhead
        self.structure, self.layout = structure, layout


def arrowhead_hessian(obj: Callable, par: np.ndarray, gi: np.ndarray,
                      li: Any) -> ArrowheadHessian:
    """The Hessian at ``par`` as an arrowhead of the split ``(gi, li)``:
    ``m + g`` HVPs (``SparseBlockHessian`` for blocks of one size; for
    unequal blocks, ``li`` a tuple, the split's ``g + max m`` colouring)."""
    if isinstance(li, tuple):
        return structured_hessian(obj, par,
                                  structure=split_structure(par.size, gi, li))
    blocks = SparseBlockHessian(obj, li).get_arrowhead_blocks(par, gi)
    return ArrowheadHessian(*blocks, name="hessian")


def compute_hessian(obj: Callable, par: np.ndarray, kind: str, options: dict,
                    layout: Any):
    """The Hessian at ``par`` in the structure an explicit kind will use."""
    if kind == "arrowhead" and "local_inds" in options:
        layout = ("arrowhead",) + arrowhead_inds(
            options.get("global_inds"), options["local_inds"], par.size)
    elif "sparsity" in options:
        layout = ("sparse", options["sparsity"])
    if layout is not None and layout[0] == "arrowhead":
        return arrowhead_hessian(obj, par, layout[1], layout[2])
    if kind == "arrowhead":
        raise TypeError("solver='arrowhead' without hessian_at_opt needs "
                        "solver_options={'local_inds': (T, m) array, or a "
                        "list of index arrays for blocks of unequal sizes} "
                        "(and optionally 'global_inds')")
    if layout is not None and layout[0] == "sparse":
        pattern = layout[1]
        if isinstance(pattern, HessianColouring):
            return sps.csr_array(sparse_hessian(obj, par, None,
                                                colouring=pattern))
        if sps.issparse(pattern) and pattern.dtype != bool:  # a Hessian
            pattern = (pattern != 0) + (pattern != 0).T
        return sps.csr_array(sparse_hessian(obj, par, pattern))
    # The sensitivity layer's dense Hessian (the Jacobian of the gradient).
    return dense_hessian(obj, par).reshape(par.size, par.size)


def _layout_of(hess: Any) -> Any:
    if isinstance(hess, ArrowheadHessian):
        return ("arrowhead", hess.global_inds, _layout(hess.local_inds_by_size))
    if sps.issparse(hess):
        return ("sparse", hess)      # its pattern, when needed
    return None


def _auto(obj, par, hessian, options, previous) -> SolverChoice:
    given = None if hessian is None else given_hessian(hessian,
                                                       par.size, True)
    opts = dict(options)
    if given is None and previous is not None and "structure" not in opts \
            and (previous.pattern is not None or previous.kind != "arrowhead"):
        opts["structure"] = previous      # recompute in the same structure
    what = "hessian_at_opt" if given is not None else COMPUTED
    try:
        solver, matrix, structure = hessian_solver_auto(
            obj, par, (), hessian=given, options=opts, name="hessian_at_opt",
            what=what)
    except ValueError as err:       # the factorisation calls it 'hessian'
        text = str(err).replace("hessian_at_opt: hessian ", "hessian_at_opt ")
        raise in_context(ValueError(text), what) from err
    arrow = matrix if (isinstance(matrix, ArrowheadHessian)
                       and solver.kind == "arrowhead") else None
    hess = given if given is not None else matrix
    return SolverChoice(solver, hess, arrow, structure, _layout_of(hess))


def make_solver(obj: Callable, par: np.ndarray, hessian: Any, spec: Any,
                options: dict, factorize: bool, layout: Any = None,
                previous: Optional[Any] = None) -> SolverChoice:
    """Build the solver of ``H`` at ``par`` (see the module notes)."""
    dim = par.size
    options = dict(options)
    if callable(spec):
        hess = None if hessian is None else given_hessian(hessian, dim, True)
        arrow = hess if isinstance(hess, ArrowheadHessian) else None
        return SolverChoice(as_solver(spec, dim=dim, **options), hess, arrow,
                            None, _layout_of(hess) or layout)
    kind = spec if spec is not None else ("auto" if factorize else "cg")
    if spec is None and factorize and "sparsity" in options:
        kind = "cholesky"           # a pattern given: the explicit route
    if kind == "auto":
        return _auto(obj, par, hessian, options, previous)
    given = hessian is not None
    name, what = ("hessian_at_opt", "hessian_at_opt") if given else \
        ("hessian", COMPUTED)
    own = {"sparsity"} if kind in ("cholesky", "sparse") else set()
    if kind == "arrowhead":
        own = {"global_inds", "local_inds", "on_failure"}
        extra = sorted(set(options) - own)
        if extra:
            raise TypeError(f"solver kind 'arrowhead' does not take "
                            f"option(s) {extra}; it takes {sorted(own)}")
    if given:
        hess = given_hessian(hessian, dim, full_check=kind == "cg")
    elif kind == "cg":
        hess = None
    else:
        try:
            hess = compute_hessian(obj, par, kind, options, layout)
        except ValueError as err:
            raise in_context(err, COMPUTED) from err
    new_layout = _layout_of(hess) if hess is not None else layout
    try:
        if kind == "cg":
            if hess is None:
                matvec = make_hvp_at(obj, par)
            else:
                matvec = hess.dot if isinstance(hess, ArrowheadHessian) else \
                    (lambda v, h=hess: h @ v)
            arrow = hess if isinstance(hess, ArrowheadHessian) else None
            return SolverChoice(as_solver("cg", hvp=matvec, dim=dim, **options),
                                hess, arrow, None, new_layout)
        if kind == "arrowhead":
            arrow = hess
            if not isinstance(hess, ArrowheadHessian):
                if "local_inds" not in options:
                    raise TypeError("solver='arrowhead' with a matrix "
                                    "hessian_at_opt needs solver_options="
                                    "{'local_inds': (T, m) array}")
                gi, li = arrowhead_inds(options.get("global_inds"),
                                        options["local_inds"], dim)
                arrow = ArrowheadHessian.from_sparse(hess, gi, li, name=name)
            solver = arrow.solver(on_failure=options.get("on_failure", "raise"))
            return SolverChoice(solver, hess, arrow if solver.kind ==
                                "arrowhead" else None, None, new_layout)
        opts = {k: v for k, v in options.items() if k not in own}
        matrix = hess
        if isinstance(hess, ArrowheadHessian) and kind != "cholesky":
            matrix = hess.to_sparse()
        if not isinstance(matrix, ArrowheadHessian):
            opts.setdefault("name", name)
        solver = as_solver(kind, hessian=matrix, **opts)
        arrow = hess if (isinstance(hess, ArrowheadHessian)
                         and solver.kind == "arrowhead") else None
        return SolverChoice(solver, hess, arrow, None, new_layout)
    except ValueError as err:
        raise in_context(err, what) from err


def describe_structure(structure: Any) -> str:
    """``structure.describe()`` (kept for the models' callers)."""
    return structure.describe()
