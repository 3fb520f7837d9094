r"""Optimisation helpers: a logged objective and a preconditioned function.

:class:`OptimizationObjective` wraps an objective of one vector with an
evaluation counter, optional progress printing and logging, and its
autograd derivatives (gradient, Hessian, Hessian-vector product) in the
shapes ``scipy.optimize.minimize`` expects.

:class:`~refold.patterns.preconditioning.PreconditionedFunction` (defined in
:mod:`refold.patterns.preconditioning` and importable from here, as in
paragami's ``optimization_lib``) evaluates a function in preconditioned
coordinates :math:`x = A x_c`.

Names, signatures and semantics are paragami 0.42's
(``paragami.optimization_lib``); refold lets the printing go through a
replaceable ``print_fun``.
"""
from __future__ import annotations

from typing import Callable

import autograd
import numpy as onp
from autograd.tracer import getval

from refold.patterns._checks import check_callable, check_count
from refold.patterns.preconditioning import (  # noqa: F401  (re-exported)
    PreconditionedFunction, truncate_eigenvalues)

__all__ = ["OptimizationObjective", "PreconditionedFunction",
           "truncate_eigenvalues"]


# ----------------------------------------------------------------------
# Logged objectives.

class OptimizationObjective:
    r"""An objective with an evaluation counter, progress output, a log and
    autograd derivatives.

    Parameters
    ----------
    objective_fun : callable
        The function :math:`f(x, \ldots)` to minimise; ``x`` is its first
        argument.
    print_every : int, optional
        Print the value every ``print_every`` evaluations of :meth:`f`
        (evaluations ``0, k, 2k, ...``); ``0`` prints nothing.
    log_every : int, optional
        Append ``(evaluation, x, f(x))`` to ``optimization_log`` every
        ``log_every`` evaluations; ``0`` logs nothing.
    print_fun : callable, optional
        Receives each progress line (a ``str``); defaults to ``print``.

    Attributes
    ----------
    optimization_log : list of tuple
        ``(num_f_evals, x, f_val)`` with copies of ``x`` and ``f_val``.

    Notes
    -----
    Only :meth:`f` (and calling the object) counts, prints and logs;
    derivatives do not. :meth:`print_value` and :meth:`log_value` may be
    overridden for custom output, as in paragami.

    Examples
    --------
    >>> import numpy as np
    >>> from refold import OptimizationObjective
    >>> lines = []
    >>> obj = OptimizationObjective(lambda x: np.sum(x ** 2), print_every=2,
    ...                             print_fun=lines.append)
    >>> for _ in range(3):
    ...     _ = obj.f(np.ones(2))
    >>> obj.num_f_evals(), lines
    (3, ['Iter 0: f = 2.00000000', 'Iter 2: f = 2.00000000'])
    """

    def __init__(self, objective_fun: Callable, print_every: int = 1,
                 log_every: int = 0, print_fun: Callable = print):
        self._objective_fun = check_callable(objective_fun, "objective_fun")
        self.set_print_every(print_every)
        self.set_log_every(log_every)
        self.print_fun = print_fun
        self._grad = autograd.grad(objective_fun)
        self._hessian = autograd.hessian(objective_fun)
        self._hvp_rev = autograd.hessian_vector_product(objective_fun)
        self._hvp_forward = True
        self.reset()

    @property
    def print_fun(self) -> Callable:
        """Where progress lines go (a callable taking one ``str``)."""
        return self._print_fun

    @print_fun.setter
    def print_fun(self, fun: Callable):
        self._print_fun = check_callable(fun, "print_fun")

    def set_print_every(self, n: int) -> None:
        """Print every ``n`` evaluations (``0``: never)."""
        self._print_every = check_count(n, "print_every")

    def set_log_every(self, n: int) -> None:
        """Log every ``n`` evaluations (``0``: never)."""
        self._log_every = check_count(n, "log_every")

    def reset(self) -> None:
        """Reset the evaluation count and clear the log."""
        self.reset_iteration_count()
        self.reset_log()

    def reset_iteration_count(self) -> None:
        """Set the evaluation count to zero."""
        self._num_f_evals = 0

    def reset_log(self) -> None:
        """Clear ``optimization_log``."""
        self.optimization_log = []

    def num_iterations(self) -> int:
        """Number of evaluations of :meth:`f` since the last reset
        (paragami's name; derivatives are not counted)."""
        return self._num_f_evals

    num_f_evals = num_iterations

    def print_value(self, num_f_evals: int, x, f_val) -> None:
        """Send a progress line to ``print_fun``; override to customise."""
        f_raw = getval(f_val)
        try:
            text = "{:0.8f}".format(float(f_raw))
        except (TypeError, ValueError):
            text = repr(f_raw)
        self._print_fun("Iter {}: f = {}".format(num_f_evals, text))

    def log_value(self, num_f_evals: int, x, f_val) -> None:
        """Append ``(num_f_evals, x, f_val)`` to the log; override to
        customise. ``x`` and ``f_val`` are copied (optimisers may reuse
        their arrays)."""
        self.optimization_log.append(
            (num_f_evals, onp.array(getval(x), copy=True),
             onp.array(getval(f_val), copy=True)[()]))

    def f(self, x, *args, **kwargs):
        """The objective at ``x``, counted, printed and logged."""
        f_val = self._objective_fun(x, *args, **kwargs)
        count = self._num_f_evals
        if self._print_every > 0 and count % self._print_every == 0:
            self.print_value(count, x, f_val)
        if self._log_every > 0 and count % self._log_every == 0:
            self.log_value(count, x, f_val)
        self._num_f_evals = count + 1
        return f_val

    __call__ = f

    def grad(self, x, *args, **kwargs):
        """Gradient of the objective in ``x`` (not counted)."""
        return self._grad(x, *args, **kwargs)

    def hessian(self, x, *args, **kwargs):
        """Hessian of the objective in ``x`` (not counted)."""
        return self._hessian(x, *args, **kwargs)

    def hessian_vector_product(self, x, vector, *args, **kwargs):
        r"""The Hessian at ``x`` times ``vector`` (not counted).

        Forward-over-reverse differentiation, falling back to autograd's
        reverse-over-reverse product if the objective uses an operation
        with no forward-mode rule. The signature ``(x, vector, *args)``
        is that of ``scipy.optimize.minimize``'s ``hessp``.
        """
        shape_x = onp.shape(getval(x))
        if onp.shape(getval(vector)) != shape_x:
            raise ValueError("vector: expected shape {} (the shape of x), got "
                             "{}".format(shape_x, onp.shape(getval(vector))))
        if self._hvp_forward:
            try:
                grad_jvp = autograd.make_jvp(self._grad)(x, *args, **kwargs)
                return grad_jvp(vector)[1]
            except NotImplementedError:
                self._hvp_forward = False
        return self._hvp_rev(x, vector, *args, **kwargs)

    def __repr__(self):
        return ("OptimizationObjective(objective_fun={}, print_every={}, "
                "log_every={}, num_f_evals={})".format(
                    getattr(self._objective_fun, "__qualname__",
                            repr(self._objective_fun)),
                    self._print_every, self._log_every, self._num_f_evals))
