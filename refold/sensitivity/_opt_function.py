"""The optimum as an autograd function of the hyperparameter, to first order (private).

:meth:`~refold.sensitivity.linear_approx.EstimatingEquationLinearApproximation.get_input_par_function`
returns an autograd primitive that equals the optimum at the base
hyperparameter and has the sensitivity as its Jacobian there, so functions of
the optimum can be differentiated through it -- once: a second derivative
raises instead of silently dropping the curvature of the optimum.
"""
from __future__ import annotations

from typing import Callable

import autograd.numpy as anp
import numpy as np
from autograd.extend import defjvp, defvjp, primitive
from autograd.tracer import getval, isbox

from refold.sensitivity.errors import SecondDerivativeError


def _linear_opt_function(value0: np.ndarray, arg0: np.ndarray,
                         jac: np.ndarray, arg_name: str) -> Callable:
    """An autograd primitive equal to ``value0`` at ``arg0`` with Jacobian
    ``jac``, differentiable once in reverse and forward mode."""
    value0, arg0, jac = value0.copy(), arg0.copy(), jac.copy()
    atol = 1e-8 * max(1.0, float(np.max(np.abs(arg0))))

    def check(arg):
        arr = np.asarray(getval(arg), dtype=float)
        if arr.size != arg0.size or arr.ndim > 1:
            raise ValueError(
                f"{arg_name} must have shape ({arg0.size},); got shape "
                f"{arr.shape}")
        dist = float(np.max(np.abs(arr.ravel() - arg0)))
        if not dist <= atol:
            raise ValueError(
                f"the optimum function is exact only at the base "
                f"{arg_name}; it was evaluated {dist:.3g} away (tolerance "
                f"{atol:.3g}). Use the predict_* method for a linear "
                f"prediction at other values.")

    def refuse(*_args, **_kwargs):
        raise SecondDerivativeError(
            "second derivatives of the optimum are not available from a "
            "first-order approximation; use "
            "ParametricSensitivityTaylorExpansion")

    @primitive
    def apply_jac(direction):
        return jac @ np.ravel(direction)

    @primitive
    def apply_jac_t(cotangent):
        return jac.T @ cotangent

    defvjp(apply_jac, refuse)
    defjvp(apply_jac, refuse)
    defvjp(apply_jac_t, refuse)
    defjvp(apply_jac_t, refuse)

    @primitive
    def opt_par_function(arg):
        check(arg)
        return value0.copy()

    def vjp_maker(ans, arg):
        check(arg)
        if isbox(arg):  # differentiated again: needs d2 opt_par / d hyper2
            refuse()
        return lambda g: anp.reshape(apply_jac_t(g), np.shape(arg))

    def jvp_rule(g, ans, arg):
        check(arg)
        if isbox(arg):
            refuse()
        return apply_jac(g)

    defvjp(opt_par_function, vjp_maker)
    defjvp(opt_par_function, jvp_rule)
    return opt_par_function
