"""``vittles.sensitivity_lib``: :mod:`refold.sensitivity.linear_approx`,
:mod:`refold.sensitivity.taylor` and
:func:`~refold.sensitivity.linear_function.get_linear_function`.

vittles' internal ``DerivativeTerm``, ``ForwardModeDerivativeArray``,
``ReverseModeDerivativeArray`` and ``ReorderedReverseModeDerivativeArray``
are not provided (see :doc:`/porting`).
"""
from refold.sensitivity.linear_approx import (  # noqa: F401
    EstimatingEquationLinearApproximation,
    HyperparameterSensitivityLinearApproximation)
from refold.sensitivity.linear_function import get_linear_function  # noqa
from refold.sensitivity.taylor import (  # noqa: F401
    ParametricSensitivityTaylorExpansion)

__all__ = ["get_linear_function", "EstimatingEquationLinearApproximation",
           "HyperparameterSensitivityLinearApproximation",
           "ParametricSensitivityTaylorExpansion"]
