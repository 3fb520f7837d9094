"""Every built-in pattern passes refold.testing.check_pattern.

check_pattern compares each property with an independent truth (autograd
Jacobians, finite differences, slogdet, exact round trips); see its
docstring for the list.
"""
import numpy as np
import pytest

from refold.patterns import json_io
from refold.patterns.containers import PatternArray, PatternDict
from refold.patterns.correlation import CorrelationMatrixPattern
from refold.patterns.numeric import (
    NumericArrayPattern, NumericScalarPattern, NumericVectorPattern)
from refold.patterns.psd import PSDSymmetricMatrixPattern
from refold.patterns.simplex import SimplexArrayPattern
from refold.testing import check_pattern
from tests.test_testing import PositiveDiagonalMatrixPattern


def _dict_with_psd_array():
    inner = PatternDict()
    inner["corr"] = CorrelationMatrixPattern(3)
    inner["rate"] = NumericScalarPattern(lb=0.0)
    pattern = PatternDict(free_default=True)
    pattern["mean"] = NumericVectorPattern(2, ub=3.0)
    pattern["covs"] = PatternArray((2,), PSDSymmetricMatrixPattern(
        2, diag_lb=0.1))
    pattern["weights"] = SimplexArrayPattern(3, (2,))
    pattern["inner"] = inner
    return pattern


def _array_of_dicts():
    element = PatternDict()
    element["loc"] = NumericArrayPattern((2,), lb=-1.0, ub=1.0)
    element["cov"] = PSDSymmetricMatrixPattern(2)
    element["p"] = SimplexArrayPattern(2, ())
    return PatternArray((2, 1), element, free_default=False)


PATTERNS = {
    "numeric": NumericArrayPattern((2, 3)),
    "numeric_lb": NumericArrayPattern((3,), lb=-2.0, free_default=True),
    "numeric_ub": NumericArrayPattern((2, 2), ub=1.5),
    "numeric_lb_ub": NumericArrayPattern((4,), lb=0.0, ub=1.0,
                                         free_default=False),
    "numeric_scalar_shape": NumericArrayPattern((), lb=1.0),
    "vector": NumericVectorPattern(3, lb=-1.0, ub=5.0),
    "scalar": NumericScalarPattern(),
    "scalar_ub": NumericScalarPattern(ub=-1.0),
    "psd": PSDSymmetricMatrixPattern(3),
    "psd_diag_lb": PSDSymmetricMatrixPattern(3, diag_lb=0.5,
                                             free_default=True),
    "psd_1x1": PSDSymmetricMatrixPattern(1, diag_lb=2.0),
    "simplex": SimplexArrayPattern(3, (2,)),
    "simplex_2": SimplexArrayPattern(2, ()),
    "simplex_grid": SimplexArrayPattern(4, (2, 1), free_default=True),
    "correlation": CorrelationMatrixPattern(3),
    "correlation_4": CorrelationMatrixPattern(4, free_default=False),
    "correlation_1": CorrelationMatrixPattern(1),
    "array_of_numeric": PatternArray((2, 2), NumericVectorPattern(2, lb=0.0)),
    "array_of_psd": PatternArray((3,), PSDSymmetricMatrixPattern(2)),
    "array_of_simplex": PatternArray((2,), SimplexArrayPattern(3, (2,))),
    "array_of_correlation": PatternArray((2,), CorrelationMatrixPattern(3)),
    "array_of_array": PatternArray((2,), PatternArray(
        (3,), NumericScalarPattern(lb=0.0))),
    "dict_with_psd_array": _dict_with_psd_array(),
    "array_of_dicts": _array_of_dicts(),
}


@pytest.mark.parametrize("name", list(PATTERNS))
def test_builtin_pattern_conforms(name):
    check_pattern(PATTERNS[name],
                  rng=np.random.default_rng(sum(map(ord, name))))


def test_empty_pattern_dict_conforms():
    check_pattern(PatternDict())


def test_builtin_patterns_conform_at_given_values():
    check_pattern(PSDSymmetricMatrixPattern(2, diag_lb=1.0),
                  np.array([[3.0, 0.5], [0.5, 1.5]]))
    check_pattern(SimplexArrayPattern(3, (1,)), np.array([[0.2, 0.5, 0.3]]))
    check_pattern(CorrelationMatrixPattern(2), np.array([[1.0, -0.9],
                                                         [-0.9, 1.0]]))
    check_pattern(NumericVectorPattern(2, lb=0.0, ub=1.0),
                  np.array([1e-3, 0.999]))


def test_containers_of_a_custom_pattern_conform(monkeypatch):
    monkeypatch.setattr(json_io, "_user_registry", {})
    json_io.register_pattern_json(PositiveDiagonalMatrixPattern)
    check_pattern(PatternArray((2,), PositiveDiagonalMatrixPattern(2)))
    pattern = PatternDict()
    pattern["diag"] = PositiveDiagonalMatrixPattern(2)
    pattern["x"] = NumericVectorPattern(2)
    check_pattern(pattern)
