"""Item 4: the exceptions old ``except`` clauses catch."""
import json

import autograd
import autograd.numpy as anp
import numpy as np
import pytest

import refold
from refold.patterns.errors import (
    PatternArgumentError, PatternJSONError, UnknownPatternError)
from refold.sensitivity.errors import HessianError, SecondDerivativeError


def test_wrapper_arguments_are_type_and_value_errors():
    vec = refold.NumericVectorPattern(2)
    for bad in [dict(patterns="not a pattern", free=True),
                dict(patterns=vec, free=True, argnums=[1.5]),
                dict(patterns=vec, free="yes")]:
        for kind in (TypeError, ValueError, PatternArgumentError):
            with pytest.raises(kind):
                refold.FoldFunctionInput(lambda x: x, **bad)
    with pytest.raises(ValueError):
        refold.FoldFunctionOutput(lambda x: x, patterns=[3], free=True)


def test_json_errors():
    for text in ['{"pattern": "mypackage.Mystery"}', '{"lb": 0}']:
        for kind in (KeyError, ValueError, UnknownPatternError):
            with pytest.raises(kind):
                refold.get_pattern_from_json(text)
    with pytest.raises(KeyError) as info:
        refold.get_pattern_from_json('{"pattern": "mypackage.Mystery"}')
    # printed plainly, not quoted as a bare KeyError would be
    assert str(info.value).startswith("pattern_json: unknown pattern type")
    for kind in (json.JSONDecodeError, ValueError, PatternJSONError):
        with pytest.raises(kind):
            refold.get_pattern_from_json('{"pattern": ')
    with pytest.raises(json.JSONDecodeError) as info:
        refold.get_pattern_from_json('{"pattern": ')
    assert info.value.pos == 12 and "not valid JSON" in str(info.value)


def test_indefinite_hessian_is_a_linalg_error():
    indefinite = np.array([[2.0, 1.0], [1.0, -1.0]])
    for kind in (np.linalg.LinAlgError, ValueError, HessianError):
        with pytest.raises(kind, match="not positive definite"):
            refold.get_cholesky_solver(indefinite)
    with pytest.raises(np.linalg.LinAlgError):
        refold.HyperparameterSensitivityLinearApproximation(
            lambda t, h: -anp.sum(t ** 2) + h[0] * t[0], np.zeros(2),
            np.zeros(1), validate_optimum=False)


def test_second_derivative_is_not_implemented():
    sens = refold.HyperparameterSensitivityLinearApproximation(
        lambda t, h: anp.sum((t - h) ** 2), np.zeros(2), np.zeros(2))
    opt_fun = sens.get_opt_par_function()
    np.testing.assert_allclose(autograd.jacobian(opt_fun)(np.zeros(2)),
                               np.eye(2))
    for kind in (NotImplementedError, ValueError, SecondDerivativeError):
        with pytest.raises(kind):
            autograd.hessian(lambda h: anp.sum(opt_fun(h) ** 2))(np.zeros(2))


def test_vittles_raises_what_old_clauses_catch(vittles):
    """The anchor's own types, which the classes above also are."""
    from autograd.test_util import check_grads  # noqa: F401
    sens = vittles.HyperparameterSensitivityLinearApproximation(
        lambda t, h: anp.sum((t - h) ** 2), np.zeros(2), np.zeros(2))
    opt_fun = sens.get_opt_par_function()
    with pytest.raises(NotImplementedError):
        autograd.hessian(lambda h: anp.sum(opt_fun(h) ** 2))(np.zeros(2))
    with pytest.raises(np.linalg.LinAlgError):
        vittles.solver_lib.get_dense_cholesky_solver(
            np.array([[2.0, 1.0], [1.0, -1.0]]))


def test_paragami_raises_what_old_clauses_catch(paragami):
    with pytest.raises(KeyError):
        paragami.get_pattern_from_json('{"pattern": "mypackage.Mystery"}')
    with pytest.raises(json.JSONDecodeError):
        paragami.get_pattern_from_json('{"pattern": ')
