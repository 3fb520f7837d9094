r"""A differentiable function with a prescribed value and Jacobian at a point.

:func:`get_linear_function` is vittles 0.173's helper of that name (also at
:mod:`refold.compat.vittles.sensitivity_lib`): the function that
``get_opt_par_function`` returns, for any value and Jacobian. It lets
autograd differentiate a function of an optimum through the optimum's
sensitivity, once.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from refold.sensitivity._checks import as_vector
from refold.sensitivity._opt_function import _linear_opt_function

__all__ = ["get_linear_function"]


def get_linear_function(return_val0, arg_val0, dreturn_darg) -> Callable:
    r"""An autograd primitive equal to ``return_val0`` at ``arg_val0`` with
    Jacobian ``dreturn_darg`` there.

    Parameters
    ----------
    return_val0 : array_like, shape (N,)
        The value returned.
    arg_val0 : array_like, shape (M,)
        The only argument at which the function may be evaluated (to
        ``1e-8 * max(1, max|arg_val0|)``).
    dreturn_darg : array_like, shape (N, M)
        The Jacobian.

    Returns
    -------
    callable
        ``f(arg)``, differentiable by autograd once, in forward or reverse
        mode. A second derivative raises
        :class:`~refold.sensitivity.errors.SecondDerivativeError` (a
        ``NotImplementedError``, as under vittles, and a ``ValueError``);
        evaluating away from ``arg_val0`` raises ``ValueError``.

    Raises
    ------
    ValueError
        If the shapes disagree or an entry is not finite.

    Examples
    --------
    >>> import autograd, numpy as np
    >>> f = get_linear_function(np.array([1.0]), np.array([0.0, 0.0]),
    ...                         np.array([[2.0, 3.0]]))
    >>> autograd.jacobian(f)(np.zeros(2))
    array([[2., 3.]])
    """
    value = as_vector(return_val0, "return_val0")
    arg = as_vector(arg_val0, "arg_val0")
    jac = np.array(dreturn_darg, dtype=float)
    if jac.shape != (value.size, arg.size):
        raise ValueError(f"dreturn_darg must have shape (len(return_val0), "
                         f"len(arg_val0)) = {(value.size, arg.size)}; got "
                         f"shape {jac.shape}")
    if not np.all(np.isfinite(jac)):
        raise ValueError("dreturn_darg must be finite")
    return _linear_opt_function(value, arg, jac, "arg_par")
