"""refold.testing: the checker passes good patterns and catches broken ones."""
import doctest

import autograd.numpy as anp
import numpy as np
import pytest
from autograd.extend import defjvp, defvjp, primitive
from autograd.tracer import getval

import refold.testing
from refold.patterns import json_io
from refold.patterns.base import Pattern
from refold.patterns.containers import PatternArray, PatternDict
from refold.patterns.json_io import register_pattern_json
from refold.patterns.numeric import (
    NumericArrayPattern, NumericScalarPattern, NumericVectorPattern)
from refold.testing import assert_folded_allclose, check_derivatives, \
    check_pattern


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch):
    monkeypatch.setattr(json_io, "_user_registry", {})


class PositiveDiagonalMatrixPattern(Pattern):
    """The docstring's example: flat = whole matrix, free = log diagonal."""

    def __init__(self, size, free_default=None):
        self._size = int(size)
        super().__init__(self._size ** 2, self._size, free_default)

    def as_dict(self):
        return {"pattern": self.json_typename(), "size": self._size,
                "free_default": self.free_default}

    def empty(self, valid):
        n = self._size
        return np.eye(n) if valid else np.empty((n, n))

    def validate_folded(self, folded_val, validate_value=None):
        n, value = self._size, getval(folded_val)
        if not isinstance(value, np.ndarray) or value.shape != (n, n) \
                or value.dtype.kind not in "biuf":
            return False, "expected a real {0}x{0} matrix".format(n)
        if validate_value is False:
            return True, ""
        diag = np.diag(value)
        if not np.all(value == np.diag(diag)):
            return False, "expected a diagonal matrix"
        if not np.all(diag > 0):
            return False, "expected a positive diagonal"
        return True, ""

    def fold(self, flat_val, free=None, validate_value=None):
        free = self._free_with_default(free)
        flat_val = anp.atleast_1d(flat_val)
        if anp.shape(flat_val) != (self.flat_length(free),):
            raise ValueError("flat_val: wrong length")
        if free:
            return self._unfree(flat_val)
        folded = anp.array(anp.reshape(flat_val, (self._size,) * 2))
        if validate_value is not False:
            ok, message = self.validate_folded(folded, validate_value)
            if not ok:
                raise ValueError("flat_val: " + message)
        return folded

    def _unfree(self, free_val):
        return anp.diag(anp.exp(free_val))

    def flatten(self, folded_val, free=None, validate_value=None):
        free = self._free_with_default(free)
        ok, message = self.validate_folded(
            folded_val, True if free else validate_value)
        if not ok:
            raise ValueError("folded_val: " + message)
        if free:
            return anp.log(anp.diag(folded_val))
        return anp.array(anp.reshape(folded_val, (-1,)))


GOOD_NUMERIC = [
    NumericArrayPattern((2, 3)),
    NumericArrayPattern((3,), lb=-1.0),
    NumericArrayPattern((2, 2), ub=0.5, free_default=True),
    NumericArrayPattern((4,), lb=-2.0, ub=3.0, free_default=False),
    NumericArrayPattern((2,), lb=-1e30, ub=1e30),
    NumericVectorPattern(3, lb=0.0),
    NumericScalarPattern(lb=1.0, ub=2.0),
    NumericArrayPattern((0,)),
    NumericArrayPattern((), lb=0.0, default_validate=False),
]


@pytest.mark.parametrize("pattern", GOOD_NUMERIC,
                         ids=lambda p: str(GOOD_NUMERIC.index(p)))
def test_check_pattern_passes_numeric_patterns(pattern):
    free_default = pattern.free_default
    check_pattern(pattern)
    assert pattern.free_default is free_default  # not mutated


def test_check_pattern_passes_containers_with_a_given_value():
    pattern = PatternDict(free_default=True)
    pattern["x"] = NumericVectorPattern(2, lb=0.0)
    pattern["y"] = PatternArray((2,), NumericScalarPattern(ub=1.0))
    value = {"x": np.array([0.5, 2.0]), "y": np.array([[0.0], [-3.0]])}
    check_pattern(pattern, value, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(value["x"], [0.5, 2.0])
    check_pattern(PatternArray((2,), pattern))


def test_check_pattern_passes_the_example_custom_pattern():
    register_pattern_json(PositiveDiagonalMatrixPattern)
    pattern = PositiveDiagonalMatrixPattern(3)
    check_pattern(pattern)
    check_pattern(pattern, np.diag([1.0, 2.0, 3.0]))
    check_pattern(PositiveDiagonalMatrixPattern(2, free_default=True))
    # unregistered: the JSON read-back is skipped, the rest still runs
    json_io._user_registry.clear()
    check_pattern(pattern)


def test_docstring_examples_run():
    for module in (refold.testing, json_io):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0 and result.attempted > 0


# ----------------------------------------------------------------------
# Deliberately broken patterns: each defect must be caught.

class FoldNotInverse(PositiveDiagonalMatrixPattern):
    def _unfree(self, free_val):
        return anp.diag(anp.exp(2.0 * free_val))


class WrongFlatIndices(PositiveDiagonalMatrixPattern):
    def flat_indices(self, folded_bool, free=None):
        return np.arange(self.flat_length(free))


class ValidateRaises(PositiveDiagonalMatrixPattern):
    def validate_folded(self, folded_val, validate_value=None):
        if folded_val is None:
            raise TypeError("None is not a matrix")
        return super().validate_folded(folded_val, validate_value)


class ValidateAcceptsNaN(PositiveDiagonalMatrixPattern):
    def validate_folded(self, folded_val, validate_value=None):
        value = getval(folded_val)
        if isinstance(value, np.ndarray) and np.isnan(value).any():
            return True, ""
        return super().validate_folded(folded_val, validate_value)


class WrongJacobian(PositiveDiagonalMatrixPattern):
    def freeing_jacobian(self, folded_val, sparse=True):
        return 2.0 * super().freeing_jacobian(folded_val, sparse)


class MatrixJacobian(PositiveDiagonalMatrixPattern):
    def unfreeing_jacobian(self, folded_val, sparse=True):
        jac = super().unfreeing_jacobian(folded_val, sparse)
        return jac if sparse else np.asmatrix(jac)


class DenseSparseJacobian(PositiveDiagonalMatrixPattern):
    def freeing_jacobian(self, folded_val, sparse=True):
        return super().freeing_jacobian(folded_val, sparse=False)


class WrongLogDet(NumericArrayPattern):
    def log_abs_det_unfreeing_jacobian(self, folded_val):
        return 0.0


class FoldMutatesInput(PositiveDiagonalMatrixPattern):
    def fold(self, flat_val, free=None, validate_value=None):
        if isinstance(flat_val, np.ndarray) and flat_val.dtype.kind == "f":
            flat_val += 0.0
            flat_val[...] = flat_val * 1.5
            return super().fold(flat_val / 1.5, free, validate_value)
        return super().fold(flat_val, free, validate_value)


class FoldReturnsView(PositiveDiagonalMatrixPattern):
    def fold(self, flat_val, free=None, validate_value=None):
        if self._free_with_default(free) or not isinstance(flat_val,
                                                           np.ndarray):
            return super().fold(flat_val, free, validate_value)
        return flat_val.reshape(self._size, self._size)


class RandomIgnoresSeed(PositiveDiagonalMatrixPattern):
    def random(self, rng=None):
        return np.diag(np.exp(np.random.default_rng().standard_normal(
            self._size)))


class BoolsBecomeFloats(PositiveDiagonalMatrixPattern):
    def empty_bool(self, value):
        return np.eye(self._size) * 0.0 + float(value)


class IgnoresFreeDefault(PositiveDiagonalMatrixPattern):
    def flatten(self, folded_val, free=None, validate_value=None):
        return super().flatten(folded_val, bool(free), validate_value)


@primitive
def exp_bad_jvp(x):
    return np.exp(x)


defvjp(exp_bad_jvp, lambda ans, x: lambda g: g * ans)
defjvp(exp_bad_jvp, lambda g, ans, x: 2.0 * g * ans)


class BadForwardDerivative(PositiveDiagonalMatrixPattern):
    def _unfree(self, free_val):
        return anp.diag(exp_bad_jvp(free_val))


class Unpicklable(PositiveDiagonalMatrixPattern):
    def __init__(self, size, free_default=None):
        super().__init__(size, free_default)
        self._hook = lambda x: x


class BadHash(PositiveDiagonalMatrixPattern):
    def __hash__(self):
        return id(self)


class DropsSizeInJson(PositiveDiagonalMatrixPattern):
    def as_dict(self):
        return {"pattern": self.json_typename(),
                "free_default": self.free_default}

    @classmethod
    def _from_dict(cls, spec):
        return cls(size=2, **spec)


class FlattenReturnsList(PositiveDiagonalMatrixPattern):
    def flatten(self, folded_val, free=None, validate_value=None):
        out = super().flatten(folded_val, free, validate_value)
        return list(out) if isinstance(out, np.ndarray) else out


BROKEN = [
    (FoldNotInverse(3), "round trip"),
    (WrongFlatIndices(3), "flat_indices"),
    (ValidateRaises(3), "validate_folded failed: validate_folded raised "
                        "TypeError on None"),
    (ValidateAcceptsNaN(3), "validate_folded failed.*NaN"),
    (WrongJacobian(3), "Jacobians at valid_value failed: freeing_jacobian vs "
                       "autograd"),
    (MatrixJacobian(3), "expected a numpy.ndarray"),
    (DenseSparseJacobian(3), "expected a scipy.sparse matrix"),
    (WrongLogDet((3,), lb=0.0), "log-determinants.*unfreeing"),
    (FoldMutatesInput(3), "fold changed its input"),
    (FoldReturnsView(3), "shares memory"),
    (RandomIgnoresSeed(3), "random.*failed"),
    (BoolsBecomeFloats(3), "empty_bool"),
    (IgnoresFreeDefault(3), "free_default=None failed"),
    (BadForwardDerivative(3), "derivatives"),
    (Unpicklable(3), "copy and pickle.*pickling failed"),
    (BadHash(3), "another hash"),
    (DropsSizeInJson(3), "JSON round trip"),
    (FlattenReturnsList(3), "returned a list"),
]


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
@pytest.mark.parametrize("pattern, match", BROKEN,
                         ids=[type(p).__name__ for p, _ in BROKEN])
def test_check_pattern_catches_broken_patterns(pattern, match):
    register_pattern_json(type(pattern))
    expected = "check_pattern\\({}\\): .*{}".format(type(pattern).__name__,
                                                   match)
    with pytest.raises(AssertionError, match=expected):
        check_pattern(pattern)


def test_derivative_check_can_be_turned_off():
    check_pattern(BadForwardDerivative(2), check_derivatives=False)


def test_check_pattern_rejects_bad_arguments():
    pattern = NumericVectorPattern(2, lb=0.0)
    with pytest.raises(TypeError, match="pattern: expected a refold Pattern"):
        check_pattern("not a pattern")
    with pytest.raises(ValueError, match="valid_value: not a valid value.*"
                       "below the lower bound"):
        check_pattern(pattern, np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="atol: expected a finite "
                       "non-negative"):
        check_pattern(pattern, atol=-1.0)
    with pytest.raises(TypeError, match="rtol"):
        check_pattern(pattern, rtol="tight")
    with pytest.raises(TypeError, match="check_derivatives"):
        check_pattern(pattern, check_derivatives="yes")
    with pytest.raises(TypeError, match="rng"):
        check_pattern(pattern, rng="seed")


# ----------------------------------------------------------------------
# check_derivatives.

@primitive
def sin_bad_vjp(x):
    return np.sin(x)


defvjp(sin_bad_vjp, lambda ans, x: lambda g: -g * np.cos(x))
defjvp(sin_bad_vjp, lambda g, ans, x: g * anp.cos(x))


@primitive
def cube_good_first_bad_second(x):
    return x ** 3


@primitive
def _cube_derivative(x):  # 3x^2, but its own derivative is wrong
    return 3.0 * x ** 2


defvjp(_cube_derivative, lambda ans, x: lambda g: g * 5.0 * x)
defjvp(_cube_derivative, lambda g, ans, x: g * 5.0 * x)
defvjp(cube_good_first_bad_second,
       lambda ans, x: lambda g: g * _cube_derivative(x))
defjvp(cube_good_first_bad_second, lambda g, ans, x: g * _cube_derivative(x))


def test_check_derivatives_passes_correct_functions():
    x = np.array([0.3, -1.2, 2.0])
    state = np.random.get_state()
    check_derivatives(lambda v: anp.sin(v) * anp.sum(v ** 2), x)
    check_derivatives(lambda v, a, b=1.0: a * anp.exp(b * v), x, 3,
                      ("rev",), 2.0, b=0.5)
    check_derivatives(lambda v: {"a": v[:2] * 2.0, "b": anp.tanh(v)}, x)
    check_derivatives(lambda v: anp.outer(v, v), x, 1, "fwd")
    check_derivatives(lambda v: anp.sum(v ** 3), np.array([1, 2]))  # ints
    # numpy's global generator is left as it was
    after = np.random.get_state()
    assert all(np.array_equal(a, b) for a, b in zip(state[1:2], after[1:2]))
    assert state[2:] == after[2:]


def test_check_derivatives_catches_wrong_derivatives():
    x = np.array([0.4, 1.1])
    with pytest.raises(AssertionError):
        check_derivatives(sin_bad_vjp, x, 1, ("rev",))
    check_derivatives(sin_bad_vjp, x, 1, ("fwd",))  # forward rule is right
    with pytest.raises(AssertionError):
        check_derivatives(exp_bad_jvp, x, 1, ("fwd",))
    check_derivatives(cube_good_first_bad_second, x, order=1)
    with pytest.raises(AssertionError):
        check_derivatives(cube_good_first_bad_second, x, order=2)


def test_check_derivatives_reports_missing_rules():
    @primitive
    def no_forward(x):
        return 2.0 * x
    defvjp(no_forward, lambda ans, x: lambda g: 2.0 * g)
    check_derivatives(no_forward, np.ones(2), 1, ("rev",))
    with pytest.raises(NotImplementedError, match="modes=\\('rev',\\)"):
        check_derivatives(no_forward, np.ones(2), 1, ("fwd",))


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(order=0), ValueError, "order: expected an integer >= 1, got 0"),
    (dict(order=1.5), TypeError, "order"),
    (dict(order=True), TypeError, "order"),
    (dict(modes=("sideways",)), ValueError, "modes: expected a non-empty"),
    (dict(modes=()), ValueError, "modes"),
    (dict(modes=3), TypeError, "modes"),
])
def test_check_derivatives_validates_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        check_derivatives(anp.sin, np.ones(2), **kwargs)


def test_check_derivatives_validates_fun_and_x():
    with pytest.raises(TypeError, match="fun: expected a callable"):
        check_derivatives("sin", np.ones(2))
    with pytest.raises(ValueError, match="x: expected finite"):
        check_derivatives(anp.sin, np.array([1.0, np.nan]))
    with pytest.raises(TypeError, match="x: expected real numbers"):
        check_derivatives(anp.sin, np.array(["a"]))


# ----------------------------------------------------------------------
# assert_folded_allclose.

def test_assert_folded_allclose_names_the_difference():
    a = {"x": np.ones(3), "y": {"z": np.zeros((2, 2))}}
    assert_folded_allclose(a, {"x": np.ones(3) + 1e-12,
                               "y": {"z": np.zeros((2, 2))}})
    b = {"x": np.ones(3), "y": {"z": np.eye(2)}}
    with pytest.raises(AssertionError, match=r"value\['y'\]\['z'\]: 2 of 4 "
                       r"entries differ.*index \(0, 0\)"):
        assert_folded_allclose(b, a)
    with pytest.raises(AssertionError, match="keys differ"):
        assert_folded_allclose({"x": np.ones(3)}, a)
    with pytest.raises(AssertionError, match=r"theta: expected shape \(3,\), "
                       r"got shape \(2,\)"):
        assert_folded_allclose(np.ones(2), np.ones(3), name="theta")
    with pytest.raises(AssertionError, match="expected a dict"):
        assert_folded_allclose(np.ones(3), a)
    with pytest.raises(AssertionError):
        assert_folded_allclose(np.array([np.nan]), np.array([np.nan]))
    assert_folded_allclose(np.array([np.nan]), np.array([np.nan]),
                           equal_nan=True)
