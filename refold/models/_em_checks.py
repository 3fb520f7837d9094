"""Input checks, the optimum check and the table of
:class:`~refold.models.em_covariance.EMCovariance` (private).

Each check returns a validated copy or raises a ``TypeError`` /
``ValueError`` naming the argument (``theta_opt``, ``local_rtol``,
``louis_fun``, ...), what was expected and what came.
"""
from __future__ import annotations

from typing import Any, Callable, List, Sequence, Tuple

import numpy as onp

from refold.patterns.base import Pattern
from refold.sensitivity.optimum import validate_optimum

_EPS = float(onp.finfo(float).eps)


def flatten_value(pattern: Pattern, value: Any, free: bool,
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


def check_tol(value: Any, name: str, default: float) -> float:
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


def describe_joint(index: int, p: int, blocks: onp.ndarray) -> str:
    """Name joint coordinate ``index`` (theta first, then eta)."""
    if index < p:
        return "theta coordinate {}".format(index)
    obs, col = onp.argwhere(blocks == index - p)[0]
    return "eta coordinate {} (observation {}, eta_blocks[{}, {}])".format(
        index - p, obs, obs, col)


def louis_matrix(louis_fun: Callable, theta_opt: Any, eta_opt: Any, p: int,
                 theta_free: bool) -> onp.ndarray:
    """``louis_fun(theta_opt, eta_opt)``, checked and symmetrised."""
    if louis_fun is None:
        raise ValueError(
            "louis_covariance needs louis_fun: pass louis_fun(theta, "
            "eta) returning the conditional covariance of the "
            "complete-data score, sum_n Cov_q[grad_theta log p(y_n, z_n "
            "| theta)], a ({0}, {0}) array in theta's {1} "
            "coordinates".format(p, "free" if theta_free else "flat"))
    value = onp.asarray(louis_fun(theta_opt, eta_opt), dtype=float)
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
    return 0.5 * (value + value.T)


def check_em_optimum(grad: onp.ndarray, local: Any, marginal_solver: Callable,
                     theta_vec: onp.ndarray, eta_vec: onp.ndarray,
                     blocks: onp.ndarray, marginal: Any,
                     tol: Any) -> Tuple[float, float]:
    """The E-step first, then theta: ``eta_opt`` is checked against the
    optimum of eta at ``theta_opt`` (the Newton step of the eta blocks
    alone), so an ``eta_opt`` off its E-step is blamed on ``eta_opt``; then
    ``theta_opt`` by the reduced (marginal) gradient.  Returns the two
    steps (theta, eta)."""
    p = theta_vec.size
    grad_theta, grad_eta = grad[:p], grad[p:]

    def eta_solver(b):
        out = onp.empty_like(b)
        out[blocks] = local.apply_pinv(onp.asarray(b)[blocks])
        return out

    eta_step = validate_optimum(
        grad_eta, eta_solver, eta_vec, tol=tol, name="eta_opt",
        opt_out="validate_optimum=False", tol_name="optimum_tol")
    reduced = grad_theta - local.cross_times_pinv(grad_eta[blocks])
    theta_step = validate_optimum(
        reduced, marginal_solver, theta_vec, tol=tol, name="theta_opt",
        opt_out="validate_optimum=False", tol_name="optimum_tol",
        hvp=lambda v: marginal @ v)
    return theta_step, eta_step


def text_table(names: Sequence[str],
               columns: List[Tuple[str, onp.ndarray]]) -> str:
    """Rows ``names``, one ``%15.6g`` column per ``(title, values)``."""
    width = max([len("coordinate")] + [len(n) for n in names])
    head = "{:<{w}}".format("coordinate", w=width) + "".join(
        "  {:>15}".format(title) for title, _ in columns)
    lines = [head, "-" * len(head)]
    for i, name in enumerate(names):
        lines.append("{:<{w}}".format(name, w=width) + "".join(
            "  {:>15.6g}".format(col[i]) for _, col in columns))
    return "\n".join(lines)
