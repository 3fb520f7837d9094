r"""Exception classes that vittles-era ``except`` clauses still catch.

=====================================  ==============================  ==============================
raised for                             class                           caught by
=====================================  ==============================  ==============================
a singular, indefinite or              :class:`HessianError`           ``ValueError``,
non-factorisable Hessian (Jacobian)                                    ``numpy.linalg.LinAlgError``
                                                                       (vittles' ``cho_factor``)
a second derivative through            :class:`SecondDerivativeError`  ``ValueError``,
``get_opt_par_function`` /                                             ``NotImplementedError``
``get_input_par_function``                                             (autograd, under vittles)
=====================================  ==============================  ==============================

``numpy.linalg.LinAlgError`` is itself a ``ValueError``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["HessianError", "SecondDerivativeError"]


class HessianError(np.linalg.LinAlgError):
    """A Hessian (or estimating-equation Jacobian) that cannot be solved as
    asked: singular, indefinite for a Cholesky solver, or not factorisable.
    A ``ValueError`` and a ``numpy.linalg.LinAlgError``."""


class SecondDerivativeError(ValueError, NotImplementedError):
    """A second derivative asked of a first-order approximation of the
    optimum. A ``ValueError`` and a ``NotImplementedError``."""
