"""The joint Hessian of :class:`~refold.models.em_covariance.EMCovariance`.

Where the per-observation blocks come from (given ``eta_blocks``, read off
``eta_pattern``, or -- with ``solver='auto'`` when neither works -- detected
from the objective's Hessian pattern), and how the Hessian is formed for
each ``solver``:

* ``'auto'`` / ``'arrowhead'``: ``p + k`` coloured Hessian-vector products
  (:class:`~refold.sensitivity.sparse_hessian.SparseBlockHessian`) and the
  stable per-observation Schur complement;
* ``'dense'``: the dense autograd Hessian, the marginal Hessian by a dense
  Cholesky solve of :math:`H_{\\eta\\eta}`;
* ``'sparse'``: the sparse Hessian of the detected pattern (one HVP per
  colour), the marginal Hessian by a sparse factorisation of
  :math:`H_{\\eta\\eta}`.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import autograd
import numpy as onp
import scipy.sparse as sps

from refold.models.local_blocks import _check_eta_blocks, infer_eta_blocks
from refold.sensitivity._checks import check_choice
from refold.sensitivity.blocks import local_blocks
from refold.sensitivity.solvers import (get_dense_cholesky_solver,
                                        get_sparse_cholesky_solver)
from refold.sensitivity.sparse_hessian import SparseBlockHessian, sparse_hessian
from refold.sensitivity.sparsity import hessian_sparsity
from refold.sensitivity.structure import HessianStructure

EM_SOLVERS = ("auto", "arrowhead", "dense", "sparse")

LOG_SPACE_HINT = (
    " Second derivatives of an objective written in probabilities (e.g. "
    "r * log(r)) overflow when a posterior is nearly degenerate: write it "
    "in log space (log-ratio coordinates eta = log(r_k / r_0) and "
    "log_r = refold.models.em_covariance.log_simplex(eta) inside "
    "objective_fun).")

_KIND = {"auto": "arrowhead", "arrowhead": "arrowhead", "dense": "dense",
         "sparse": "sparse"}
_METHOD = {"arrowhead": "stable per-observation Schur complement",
           "dense": "dense Cholesky of H_eta_eta",
           "sparse": "sparse factorisation of H_eta_eta"}


def check_solver(solver: Any) -> str:
    return check_choice(solver, "solver", EM_SOLVERS)


def resolve_blocks(joint: Callable, joint_par: onp.ndarray, p: int,
                   eta_pattern: Any, eta_free: bool, eta_blocks: Any,
                   solver: str):
    """``(blocks (N, k) in eta coordinates, how, pattern or None)``."""
    eta_dim = joint_par.size - p
    if eta_blocks is not None:
        return _check_eta_blocks(eta_blocks, eta_dim), "eta_blocks given", \
            None
    try:
        blocks = infer_eta_blocks(eta_pattern, eta_free)
        how = "eta_blocks read off eta_pattern"
        pattern = None
    except (TypeError, ValueError) as err:
        if solver != "auto":
            raise
        pattern = hessian_sparsity(joint, joint_par)
        try:
            blocks = local_blocks(pattern, onp.arange(p)) - p
        except ValueError as why:
            raise ValueError(
                f"eta_blocks: eta_pattern has no observation axis ({err}) "
                f"and the Hessian pattern detected from objective_fun does "
                f"not split eta into blocks of one size ({why}); pass "
                f"eta_blocks") from why
        how = "eta blocks detected from objective_fun"
    if blocks.size != eta_dim:   # only possible when inferred
        raise ValueError("eta_blocks: eta_pattern's observations hold {} "
                         "coordinates but eta has {}".format(
                             blocks.size, eta_dim))
    return blocks, how, pattern


class JointHessian:
    """Blocks of the joint Hessian, the marginal (``None``: Schur by
    observation), the HVP count and the :class:`HessianStructure`."""

    def __init__(self, theta_hessian, cross_blocks, local_blocks_, num_hvps,
                 marginal, structure):
        self.theta_hessian, self.cross_blocks = theta_hessian, cross_blocks
        self.local_blocks, self.num_hvps = local_blocks_, num_hvps
        self.marginal, self.structure = marginal, structure


def _in_em_terms(err: ValueError, p: int) -> ValueError:
    text = str(err).replace(" (pass verify=False to skip this check)", "")
    text = text.replace("sparsity_array", "eta_blocks")
    hint = LOG_SPACE_HINT if "not finite" in text else (
        " The objective must be a sum over observations whose eta "
        "blocks (eta_blocks) do not interact: an E-step family that "
        "does not factorise over observations does not match.")
    return ValueError(
        "objective_fun: computing its Hessian at (theta_opt, eta_opt) "
        "failed: {} (coordinates are numbered theta first (0..{}), "
        "then eta coordinate i at {} + i).{}".format(text, p - 1, p, hint))


def _split(hess, p: int, blocks: onp.ndarray):
    """Theta block, cross blocks (N, p, k) and local blocks (N, k, k)."""
    num, k = blocks.shape
    loc = blocks + p
    if sps.issparse(hess):
        hess = sps.csr_array(hess)
        theta = hess[:p][:, :p].toarray()
        cross_rows = hess[:p][:, loc.ravel()].toarray()
        rows = onp.broadcast_to(loc[:, :, None], (num, k, k)).ravel()
        cols = onp.broadcast_to(loc[:, None, :], (num, k, k)).ravel()
        local = onp.asarray(hess[rows, cols]).reshape(num, k, k)
    else:
        theta = hess[:p, :p]
        cross_rows = hess[:p][:, loc.ravel()]
        local = hess[loc[:, :, None], loc[:, None, :]]
    cross = cross_rows.reshape(p, num, k).transpose(1, 0, 2)
    return onp.array(theta), onp.ascontiguousarray(cross), onp.array(local)


def joint_hessian(joint: Callable, joint_par: onp.ndarray, p: int,
                  blocks: onp.ndarray, solver: str, how: str,
                  pattern: Optional[Any]) -> JointHessian:
    kind = _KIND[solver]
    dim = joint_par.size
    reason = (f"solver={solver!r} chosen by the caller" if solver != "auto"
              else "theta couples to all; eta in per-observation blocks")
    structure = HessianStructure(kind, dim, pattern, onp.arange(p),
                                 blocks + p, reason,
                                 "detected" if pattern is not None
                                 else "given")
    structure.blocks_from = how
    try:
        if kind == "arrowhead":
            builder = SparseBlockHessian(joint, blocks + p)
            parts = builder.get_arrowhead_blocks(joint_par,
                                                 global_inds=onp.arange(p))
            return JointHessian(parts.global_block, parts.cross_blocks,
                                parts.local_blocks, builder.num_hvps, None,
                                structure)
        if kind == "dense":
            hess = onp.asarray(autograd.hessian(joint)(joint_par),
                               dtype=float).reshape(dim, dim)
            num_hvps = dim
        else:
            if pattern is None:
                pattern = hessian_sparsity(joint, joint_par)
                structure.pattern = sps.csr_matrix(pattern)
            colouring = structure.colouring
            hess = sps.csr_array(sparse_hessian(joint, joint_par, None,
                                                colouring=colouring))
            num_hvps = colouring.num_colours + 1
        if not onp.all(onp.isfinite(hess.data if sps.issparse(hess)
                                    else hess)):
            raise ValueError("the Hessian is not finite")
    except ValueError as err:
        raise _in_em_terms(err, p) from err
    theta, cross, local = _split(hess, p, blocks)
    eta = onp.arange(p, dim)
    name = "the eta-eta block H_eta_eta of objective_fun's Hessian"
    if kind == "dense":
        h_ee = hess[onp.ix_(eta, eta)]
        solve = get_dense_cholesky_solver(h_ee, name=name)
        h_et = hess[p:, :p]
    else:
        h_ee = hess[eta][:, eta]
        solve = get_sparse_cholesky_solver(h_ee, name=name)
        h_et = hess[p:][:, :p].toarray()
    marginal = theta - h_et.T @ onp.asarray(solve(h_et)).reshape(h_et.shape)
    return JointHessian(theta, cross, local, num_hvps,
                        0.5 * (marginal + marginal.T), structure)


def describe(hessian: JointHessian, num_obs: int, num_local: int) -> str:
    """One line: structure, cost and method."""
    st = hessian.structure
    return (f"{st.kind}: {len(st.global_inds):,} globals (theta), "
            f"{num_obs:,} blocks of {num_local} ({st.blocks_from}); "
            f"{hessian.num_hvps:,} HVPs; {_METHOD[st.kind]} ({st.reason})")
