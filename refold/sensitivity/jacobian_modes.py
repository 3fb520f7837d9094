r"""Dense Jacobians in forward or reverse mode, chosen by the shapes.

A Jacobian :math:`J = \partial f / \partial x` of :math:`f: \mathbb{R}^n \to
\mathbb{R}^m` costs ``n`` forward-mode passes (one Jacobian-vector product
per input coordinate) or one recorded evaluation and ``m`` reverse sweeps
(one vector-Jacobian product per output coordinate). :func:`jacobian_matrix`
takes the cheaper: forward when :math:`n \le m`, reverse when :math:`n > m`.

This matters for cross Hessians :math:`\partial^2 f / \partial\theta\,
\partial\epsilon^\top` (``D x M``), the Jacobian of :math:`\nabla_\theta f`
in :math:`\epsilon`: with one hyperparameter per observation (data weights,
``M = N`` in the thousands) and few parameters ``D``, ``D`` reverse sweeps
replace ``N`` forward passes. refold forms cross Hessians with it in
:class:`~refold.sensitivity.linear_approx.HyperparameterSensitivityLinearApproximation`
and
:class:`~refold.sensitivity.linear_approx.EstimatingEquationLinearApproximation`,
the per-observation gradient matrix in
:meth:`~refold.sensitivity.data_weights.WeightSensitivity.approximate_loo`,
and the cross Jacobian of
:class:`~refold.sensitivity.taylor.ParametricSensitivityTaylorExpansion`'s
dense path (``forward_mode=False``; its higher derivative arrays, which are
differentiated again, stay forward mode).
(:class:`~refold.sensitivity.cross.CrossSensitivity` and the Taylor
expansion's ``forward_mode=True`` path contract derivatives with directions
and never form a Jacobian.)
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Optional, Sequence

import autograd
import autograd.numpy as anp
import numpy as np

from refold.sensitivity._checks import check_cross_column

__all__ = ["jacobian_matrix", "choose_mode"]

MODES = ("auto", "forward", "reverse")


def choose_mode(n_in: int, n_out: int, mode: str = "auto") -> str:
    """``'forward'`` if ``n_in <= n_out`` else ``'reverse'`` (for
    ``mode='auto'``); otherwise ``mode`` itself, checked.

    Parameters
    ----------
    n_in, n_out : int
        Sizes of the input and the output.
    mode : {'auto', 'forward', 'reverse'}

    Returns
    -------
    str
        ``'forward'`` or ``'reverse'``.

    Examples
    --------
    >>> choose_mode(2000, 5)
    'reverse'
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
    if mode != "auto":
        return mode
    return "forward" if n_in <= n_out else "reverse"


def jacobian_matrix(fun: Callable, args: Sequence[Any], argnum: int = 0,
                    out_size: Optional[int] = None,
                    mode: str = "auto") -> np.ndarray:
    r"""The ``(m, n)`` Jacobian of ``fun(*args)`` in ``args[argnum]``.

    Parameters
    ----------
    fun : callable
        Differentiable by autograd in argument ``argnum`` (in forward mode
        for ``'forward'``, reverse mode for ``'reverse'``); its output and
        that argument are flattened.
    args : sequence
        The point.
    argnum : int, optional
    out_size : int, optional
        The output's size ``m`` if known; otherwise ``fun`` is evaluated
        once to find it (only for ``mode='auto'``).
    mode : {'auto', 'forward', 'reverse'}, optional
        ``'auto'`` (default): ``n`` forward passes if ``n <= m``, else one
        recorded evaluation and ``m`` reverse sweeps.

    Returns
    -------
    numpy.ndarray, shape (m, n)
        Float; an output that does not depend on the argument gives zeros.

    Examples
    --------
    >>> import numpy as np, autograd.numpy as anp
    >>> jacobian_matrix(lambda x, w: anp.array([anp.dot(w, x ** 2)]),
    ...                 (np.array([1.0, 2.0]), np.ones(2)), argnum=0)
    array([[2., 4.]])
    """
    args = list(args)
    x = np.asarray(args[argnum], dtype=float)
    shape, n_in = x.shape, x.size

    def flat_fun(flat_x):
        call = list(args)
        call[argnum] = anp.reshape(flat_x, shape)
        return anp.ravel(fun(*call))

    if mode == "auto" and out_size is None:
        out_size = int(np.size(flat_fun(x.ravel())))
    if mode not in ("forward", "reverse"):
        mode = choose_mode(n_in, out_size, mode)
    flat = x.ravel()
    with warnings.catch_warnings():
        # autograd warns when the output does not depend on the input; a
        # zero Jacobian (block) is legitimate here.
        warnings.filterwarnings("ignore", "Output seems independent")
        if mode == "forward":
            push = autograd.make_jvp(flat_fun)(flat)
            cols = [np.ravel(np.asarray(push(e)[1], dtype=float))
                    for e in np.eye(n_in)]
            size = max((c.size for c in cols), default=out_size or 0)
            # autograd's scalar zero (no dependence) is a zero column; any
            # other size mismatch is an error, never a broadcast.
            cols = [c if c.size == size else
                    check_cross_column(c.reshape(()) if c.size == 1 else c,
                                       (size,), "the differentiated function")
                    for c in cols]
            return np.stack(cols, axis=1) if cols else np.zeros((size, 0))
        pull, value = autograd.make_vjp(flat_fun)(flat)
        m = int(np.size(value))
        rows = [np.asarray(pull(e), dtype=float).reshape(n_in)
                for e in np.eye(m)]
        return np.stack(rows, axis=0) if rows else np.zeros((0, n_in))
