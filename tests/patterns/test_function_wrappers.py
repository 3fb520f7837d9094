"""Function wrappers: folding / flattening a function's inputs and outputs."""
import inspect

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from autograd.test_util import check_grads

from refold.patterns.containers import PatternArray, PatternDict
from refold.patterns.function_wrappers import (
    FlattenFunctionInput, FlattenFunctionInputAndOutput,
    FlattenFunctionOutput, FoldFunctionInput, FoldFunctionInputAndOutput,
    FoldFunctionOutput, TransformFunctionInput, TransformFunctionOutput)
from refold.patterns.numeric import NumericArrayPattern, NumericVectorPattern
from refold.patterns.psd import PSDSymmetricMatrixPattern
from refold.patterns.simplex import SimplexArrayPattern


def make_dict_pattern():
    pattern = PatternDict()
    pattern["mu"] = NumericVectorPattern(3)
    pattern["scale"] = NumericArrayPattern((2,), lb=0.5, ub=4.0)
    pattern["cov"] = PSDSymmetricMatrixPattern(2)
    pattern["probs"] = SimplexArrayPattern(3, (2,))
    return pattern


DICT_PAT = make_dict_pattern()
MAT_PAT = PSDSymmetricMatrixPattern(3)
POS_PAT = NumericArrayPattern((2, 2), lb=0.0)


def dict_fun(params):
    return (anp.sum(params["mu"] ** 2) + anp.sum(anp.log(params["scale"]))
            + anp.linalg.slogdet(params["cov"])[1]
            + anp.sum(params["probs"][:, 0] * params["probs"][:, 2]))


def three_arg_fun(mat, offset, pos, power=2.0):
    return (anp.linalg.slogdet(mat + offset * anp.eye(3))[1]
            + anp.sum(pos ** power))


@pytest.fixture
def values():
    rng = np.random.default_rng(11)
    return {"dict": DICT_PAT.random(rng), "mat": MAT_PAT.random(rng),
            "pos": POS_PAT.random(rng)}


# ----------------------------------------------------------------------
# Input wrappers.

def test_flatten_input_matches_folding_by_hand(values):
    flat_fun = FlattenFunctionInput(three_arg_fun, [POS_PAT, MAT_PAT],
                                    free=[False, True], argnums=[2, 0])
    mat_free = MAT_PAT.flatten(values["mat"], free=True)
    pos_flat = POS_PAT.flatten(values["pos"], free=False)
    got = flat_fun(mat_free, 0.3, pos_flat, power=3.0)
    expected = three_arg_fun(MAT_PAT.fold(mat_free, free=True), 0.3,
                             POS_PAT.fold(pos_flat, free=False), power=3.0)
    assert got == pytest.approx(expected, rel=1e-13)
    # The keyword changes the answer: it was really passed through.
    assert got != pytest.approx(flat_fun(mat_free, 0.3, pos_flat), rel=1e-6)


def test_fold_of_flatten_is_the_original(values):
    flat_fun = FlattenFunctionInput(three_arg_fun, [MAT_PAT, POS_PAT],
                                    free=[True, False], argnums=[0, 2])
    back = FoldFunctionInput(flat_fun, [MAT_PAT, POS_PAT],
                             free=[True, False], argnums=[0, 2])
    expected = three_arg_fun(values["mat"], 1.5, values["pos"], power=1.0)
    assert back(values["mat"], 1.5, values["pos"], power=1.0) == \
        pytest.approx(expected, rel=1e-12)


def test_fold_input_flattens_by_hand(values):
    def flat_objective(x):
        return anp.sum(anp.sin(x) * anp.arange(x.size))
    for free in (True, False):
        folded_fun = FoldFunctionInput(flat_objective, DICT_PAT, free=free)
        expected = flat_objective(DICT_PAT.flatten(values["dict"], free=free))
        assert folded_fun(values["dict"]) == pytest.approx(expected, rel=1e-13)


def test_transform_input_is_the_conveniences(values):
    free_val = MAT_PAT.flatten(values["mat"], free=True)
    fun = lambda mat: anp.trace(mat)  # noqa: E731
    general = TransformFunctionInput(fun, MAT_PAT, True, False, argnums=0)
    assert general(free_val) == FlattenFunctionInput(fun, MAT_PAT, True)(free_val)
    flat_input = lambda v: anp.sum(v)  # noqa: E731
    general = TransformFunctionInput(flat_input, MAT_PAT, True, True)
    assert general(values["mat"]) == pytest.approx(np.sum(free_val))


def test_free_broadcasts_and_none_means_free_default(values):
    pos_a = NumericArrayPattern((2, 2), lb=0.0, free_default=True)
    pos_b = NumericArrayPattern((2, 2), lb=0.0, free_default=False)
    fun = lambda a, b: anp.sum(a * b)  # noqa: E731
    a_free = pos_a.flatten(values["pos"], free=True)
    b_flat = pos_b.flatten(values["pos"] + 1, free=False)
    wrapped = FlattenFunctionInput(fun, [pos_a, pos_b], free=None)
    assert wrapped(a_free, b_flat) == pytest.approx(
        np.sum(values["pos"] * (values["pos"] + 1)))
    both_free = FlattenFunctionInput(fun, [pos_a, pos_b], free=[True])
    assert both_free.free == (True, True)
    b_free = pos_b.flatten(values["pos"] + 1, free=True)
    assert both_free(a_free, b_free) == pytest.approx(
        np.sum(values["pos"] * (values["pos"] + 1)))


def test_argnums_accept_numpy_ints_and_arrays(values):
    fun = lambda a, b: anp.sum(a) - anp.sum(b)  # noqa: E731
    flat = POS_PAT.flatten(values["pos"], free=True)
    w1 = FlattenFunctionInput(fun, POS_PAT, True, argnums=np.int64(1))
    w2 = FlattenFunctionInput(fun, [POS_PAT], True, argnums=np.array([1]))
    assert w1(values["pos"], flat) == w2(values["pos"], flat) == \
        pytest.approx(0.0, abs=1e-14)


def test_signature_is_the_originals():
    wrapped = FlattenFunctionInput(three_arg_fun, MAT_PAT, True)
    assert inspect.signature(wrapped) == inspect.signature(three_arg_fun)
    nested = FlattenFunctionInputAndOutput(
        three_arg_fun, MAT_PAT, True, 0, NumericArrayPattern((1,)), False)
    assert inspect.signature(nested) == inspect.signature(three_arg_fun)


def test_inputs_not_mutated(values):
    flat = DICT_PAT.flatten(values["dict"], free=True)
    copy = flat.copy()
    FlattenFunctionInput(dict_fun, DICT_PAT, True)(flat)
    np.testing.assert_array_equal(flat, copy)


# ----------------------------------------------------------------------
# Output wrappers.

def test_flatten_output_single_value(values):
    fun = lambda scale: values["mat"] * scale  # noqa: E731
    wrapped = FlattenFunctionOutput(fun, MAT_PAT, free=True)
    np.testing.assert_allclose(
        wrapped(2.0), MAT_PAT.flatten(values["mat"] * 2.0, free=True),
        rtol=1e-13)
    assert isinstance(wrapped(2.0), np.ndarray)


def test_output_tuple_with_unordered_retnums(values):
    def fun(scale):
        return values["pos"] * scale, "label", values["mat"] * scale
    wrapped = FlattenFunctionOutput(fun, [MAT_PAT, POS_PAT], [True, False],
                                    retnums=[2, 0])
    pos_flat, label, mat_free = wrapped(3.0)
    assert label == "label"
    np.testing.assert_allclose(pos_flat, (values["pos"] * 3.0).ravel())
    np.testing.assert_allclose(
        mat_free, MAT_PAT.flatten(values["mat"] * 3.0, free=True), rtol=1e-13)
    back = FoldFunctionOutput(wrapped, [MAT_PAT, POS_PAT], [True, False],
                              retnums=[2, 0])
    pos, label, mat = back(3.0)
    np.testing.assert_allclose(pos, values["pos"] * 3.0, rtol=1e-13)
    np.testing.assert_allclose(mat, values["mat"] * 3.0, rtol=1e-12)


def test_fold_output_folds_by_hand(values):
    free_val = DICT_PAT.flatten(values["dict"], free=True)
    folded = FoldFunctionOutput(lambda: free_val, DICT_PAT, True)()
    for key in DICT_PAT:
        np.testing.assert_allclose(folded[key], values["dict"][key],
                                   rtol=1e-12)


def test_transform_output_general_form(values):
    fun = lambda: (values["pos"],)  # noqa: E731
    out = TransformFunctionOutput(fun, POS_PAT, False, False, retnums=0)()
    assert isinstance(out, tuple) and len(out) == 1
    np.testing.assert_array_equal(out[0], values["pos"].ravel())


# ----------------------------------------------------------------------
# Input and output.

def test_flatten_input_and_output_round_trip(values):
    def scale_dict(params, factor):
        return {"mu": params["mu"] * factor, "scale": params["scale"],
                "cov": params["cov"] * factor, "probs": params["probs"]}
    flat_fun = FlattenFunctionInputAndOutput(
        scale_dict, DICT_PAT, True, 0, DICT_PAT, False)
    free_in = DICT_PAT.flatten(values["dict"], free=True)
    expected = DICT_PAT.flatten(scale_dict(values["dict"], 2.0), free=False)
    np.testing.assert_allclose(flat_fun(free_in, 2.0), expected, rtol=1e-12)
    folded_fun = FoldFunctionInputAndOutput(
        flat_fun, DICT_PAT, True, [0], DICT_PAT, False, [0])
    result = folded_fun(values["dict"], 2.0)
    for key in DICT_PAT:
        np.testing.assert_allclose(result[key],
                                   scale_dict(values["dict"], 2.0)[key],
                                   rtol=1e-12)


# ----------------------------------------------------------------------
# Derivatives through the wrappers.

def test_check_grads_through_flatten_input(values):
    wrapped = FlattenFunctionInput(dict_fun, DICT_PAT, free=True)
    free_val = DICT_PAT.flatten(values["dict"], free=True)
    check_grads(wrapped, modes=["fwd", "rev"], order=2)(free_val)


def test_check_grads_mixed_free_flags(values):
    wrapped = FlattenFunctionInput(three_arg_fun, [MAT_PAT, POS_PAT],
                                   free=[True, False], argnums=[0, 2])
    mat_free = MAT_PAT.flatten(values["mat"], free=True)
    pos_flat = POS_PAT.flatten(values["pos"], free=False)
    check_grads(lambda v: wrapped(v, 0.2, pos_flat),
                modes=["fwd", "rev"], order=2)(mat_free)
    check_grads(lambda v: wrapped(mat_free, 0.2, v, power=3.0),
                modes=["fwd", "rev"], order=2)(pos_flat)


def test_check_grads_through_input_and_output(values):
    array_pat = PatternArray((2,), PSDSymmetricMatrixPattern(2))
    def square(mats):
        return anp.einsum("aij,ajk->aik", mats, mats)
    wrapped = FlattenFunctionInputAndOutput(square, array_pat, True, 0,
                                            array_pat, True)
    free_val = array_pat.flatten(array_pat.random(3), free=True)
    check_grads(wrapped, modes=["fwd", "rev"], order=2)(free_val)


def test_gradient_matches_finite_differences(values):
    wrapped = FlattenFunctionInput(dict_fun, DICT_PAT, free=True)
    free_val = DICT_PAT.flatten(values["dict"], free=True)
    grad = autograd.grad(wrapped)(free_val)
    step = 1e-6
    eye = np.eye(free_val.size)
    fd = np.array([(wrapped(free_val + step * e) - wrapped(free_val - step * e))
                   / (2 * step) for e in eye])
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------
# Bad input.

@pytest.mark.parametrize("kwargs, match", [
    (dict(patterns=[MAT_PAT, POS_PAT], free=True, argnums=[0]), "argnums"),
    (dict(patterns=[MAT_PAT, POS_PAT], free=[True, False, True],
          argnums=[0, 1]), "free"),
    (dict(patterns=[MAT_PAT, POS_PAT], free=True, argnums=[1, 1]),
     "argnums.*distinct"),
    (dict(patterns=MAT_PAT, free=True, argnums=-1), "argnums.*non-negative"),
    (dict(patterns=[], free=True), "patterns"),
    (dict(patterns=MAT_PAT, free=True, argnums=np.zeros((1, 1), int)),
     "argnums"),
])
def test_bad_constructor_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FlattenFunctionInput(three_arg_fun, **kwargs)


@pytest.mark.parametrize("kwargs, match", [
    (dict(patterns=MAT_PAT, free=True, argnums=1.0), "argnums"),
    (dict(patterns=MAT_PAT, free=True, argnums=True), "argnums"),
    (dict(patterns=[MAT_PAT, "not a pattern"], free=True), r"patterns\[1\]"),
    (dict(patterns=MAT_PAT, free="yes"), r"free\[0\]"),
])
def test_bad_constructor_types(kwargs, match):
    with pytest.raises(TypeError, match=match):
        FlattenFunctionInput(three_arg_fun, **kwargs)


def test_bad_function_and_direction():
    with pytest.raises(TypeError, match="original_fun"):
        FlattenFunctionInput("f", MAT_PAT, True)
    with pytest.raises(TypeError, match="original_is_flat"):
        TransformFunctionInput(three_arg_fun, MAT_PAT, True, "no")
    with pytest.raises(TypeError, match="original_is_flat"):
        TransformFunctionOutput(three_arg_fun, MAT_PAT, True, None)


def test_free_none_without_free_default():
    with pytest.raises(ValueError, match=r"free\[0\].*free_default"):
        FlattenFunctionInput(three_arg_fun, MAT_PAT, None)


def test_input_and_output_names_their_arguments():
    with pytest.raises(ValueError, match="input_argnums"):
        FlattenFunctionInputAndOutput(three_arg_fun, MAT_PAT, True, [0, 1],
                                      MAT_PAT, True)
    with pytest.raises(ValueError, match="output_retnums"):
        FoldFunctionInputAndOutput(three_arg_fun, MAT_PAT, True, 0,
                                   MAT_PAT, True, [3, 3])
    with pytest.raises(TypeError, match="output_patterns"):
        FoldFunctionInputAndOutput(three_arg_fun, MAT_PAT, True, 0, 5, True)


def test_missing_positional_argument(values):
    wrapped = FlattenFunctionInput(three_arg_fun, POS_PAT, False, argnums=2)
    with pytest.raises(TypeError, match=r"argnums\[0\] = 2.*3 positional.*got 2"):
        wrapped(values["mat"], 0.1)


def test_converted_argument_by_keyword(values):
    wrapped = FlattenFunctionInput(three_arg_fun, POS_PAT, False, argnums=2)
    flat = POS_PAT.flatten(values["pos"], free=False)
    with pytest.raises(TypeError, match="'pos'.*keyword.*positional"):
        wrapped(values["mat"], 0.1, pos=flat)
    # Through two layers of wrapping, the name is still found.
    nested = FoldFunctionInput(wrapped, POS_PAT, False, argnums=2)
    with pytest.raises(TypeError, match="'pos'.*positional"):
        nested(values["mat"], 0.1, pos=values["pos"])


def test_fold_errors_say_which_argument(values):
    wrapped = FlattenFunctionInput(three_arg_fun, [MAT_PAT, POS_PAT],
                                   free=True, argnums=[0, 2])
    with pytest.raises(ValueError, match=r"argument 2 \(argnums\[1\]\).*length"):
        wrapped(MAT_PAT.flatten(values["mat"], free=True), 0.1, np.zeros(3))


def test_retnums_beyond_the_returned_tuple():
    wrapped = FlattenFunctionOutput(lambda: (np.ones((2, 2)), 1.0),
                                    [POS_PAT, POS_PAT], False, retnums=[0, 4])
    with pytest.raises(ValueError, match=r"retnums.*4.*returned 2 values"):
        wrapped()


def test_single_return_value_needs_retnums_zero():
    ok = FlattenFunctionOutput(lambda: np.ones((2, 2)), POS_PAT, False,
                               retnums=[0])
    np.testing.assert_array_equal(ok(), np.ones(4))
    bad = FlattenFunctionOutput(lambda: np.ones((2, 2)), POS_PAT, False,
                                retnums=1)
    with pytest.raises(ValueError, match=r"retnums.*single value"):
        bad()


def test_output_errors_say_which_value():
    wrapped = FlattenFunctionOutput(lambda: (1.0, -np.ones((2, 2))), POS_PAT,
                                    True, retnums=1)
    with pytest.raises(ValueError, match=r"return value 1 \(retnums\[0\]\)"):
        wrapped()


def test_reprs_say_what_they_wrap():
    r = repr(FlattenFunctionInput(three_arg_fun, MAT_PAT, True, argnums=0))
    assert r.startswith("FlattenFunctionInput(")
    assert "three_arg_fun" in r and "argnums=[0]" in r and "free=[True]" in r
    assert "PSDSymmetricMatrixPattern" in r
    r = repr(TransformFunctionOutput(three_arg_fun, MAT_PAT, False, True))
    assert "retnums=[0]" in r and "original_is_flat=True" in r
    r = repr(FoldFunctionInputAndOutput(three_arg_fun, MAT_PAT, True, 0,
                                        POS_PAT, False))
    assert "input_argnums=[0]" in r and "output_free=[False]" in r
