"""Battery cases for ``refold.patterns``: constructors, fold/flatten of bad
flat and folded values, containers, function wrappers, optimisation
helpers and JSON."""
from __future__ import annotations

import io

import autograd.numpy as anp
import numpy as np

import refold
from tests.battery._core import (
    BAD_BOOL, BAD_CALLABLE, BAD_COUNT, BAD_OPTIONAL_BOOL, bad_arrays, one,
    sweep, without)

# Patterns name the place in the folded value ("params[0]: the free flat
# value is nan") or the flat vector itself ("flat_val: expected length 3").
FLAT = ("flat_val", "params")
FOLDED = ("params", "folded_val")


def _patterns():
    """(label, pattern, a bad folded value) of every leaf pattern kind."""
    d = refold.PatternDict()
    d["a"] = refold.NumericArrayPattern((2,), lb=0.0)
    d["b"] = refold.PSDSymmetricMatrixPattern(2)
    return [
        ("NumericArrayPattern", refold.NumericArrayPattern((2, 2), lb=0.0),
         -np.ones((2, 2))),
        ("NumericVectorPattern", refold.NumericVectorPattern(3, ub=1.0),
         np.full(3, 2.0)),
        ("NumericScalarPattern", refold.NumericScalarPattern(lb=-1, ub=1),
         np.array([3.0])),
        ("PSDSymmetricMatrixPattern", refold.PSDSymmetricMatrixPattern(3),
         -np.eye(3)),
        ("PSD diag_lb=1e5", refold.PSDSymmetricMatrixPattern(
            3, diag_lb=1e5), np.eye(3)),
        ("SimplexArrayPattern", refold.SimplexArrayPattern(3, (2,)),
         np.full((2, 3), 0.5)),
        ("CorrelationMatrixPattern", refold.CorrelationMatrixPattern(3),
         2 * np.eye(3)),
        ("PatternDict", d, {"a": -np.ones(2), "b": np.eye(2)}),
        ("PatternArray", refold.PatternArray(
            (2,), refold.PSDSymmetricMatrixPattern(2)),
         np.stack([np.eye(2), -np.eye(2)])),
    ]


def cases():
    out = []
    # Constructors.
    nap = refold.NumericArrayPattern
    out += sweep("NumericArrayPattern", nap, {}, "shape",
                 [("huge", (10 ** 20,)), ("negative", (-1,)),
                  ("fraction", (2.5,)), ("string", "ab"), ("None", None),
                  ("bool", (True,)), ("product overflows",
                                      (10 ** 10, 10 ** 10))])
    out += sweep("NumericArrayPattern", nap, dict(shape=(2,)), "lb",
                 [("NaN", np.nan), ("string", "0"), ("vector",
                                                     np.zeros(2))])
    out += sweep("NumericArrayPattern", nap, dict(shape=(2,), lb=1.0),
                 "ub", [("below lb", 0.0), ("equal lb", 1.0),
                        ("NaN", np.nan)])
    out += sweep("NumericArrayPattern", nap, dict(shape=(2,)),
                 "default_validate", BAD_BOOL[:3])
    out += sweep("NumericArrayPattern", nap, dict(shape=(2,)),
                 "free_default", BAD_OPTIONAL_BOOL)
    out += sweep("NumericVectorPattern", refold.NumericVectorPattern, {},
                 "length", [("fraction", 2.5), ("negative", -1),
                            ("string", "3")])
    psd = refold.PSDSymmetricMatrixPattern
    out += sweep("PSDSymmetricMatrixPattern", psd, {}, "size",
                 [("zero", 0), ("fraction", 2.5), ("string", "3"),
                  ("bool", True)])
    out += sweep("PSDSymmetricMatrixPattern", psd, dict(size=2), "diag_lb",
                 [("negative", -1.0), ("NaN", np.nan), ("inf", np.inf),
                  ("string", "0")])
    out += sweep("SimplexArrayPattern", refold.SimplexArrayPattern,
                 dict(array_shape=(2,)), "simplex_size",
                 [("one", 1), ("fraction", 2.5), ("string", "3")])
    out += sweep("SimplexArrayPattern", refold.SimplexArrayPattern,
                 dict(simplex_size=3), "array_shape",
                 [("negative", (-1,)), ("string", "ab"),
                  ("fraction", (1.5,))])
    out += sweep("CorrelationMatrixPattern",
                 refold.CorrelationMatrixPattern, {}, "size",
                 [("zero", 0), ("fraction", 2.5), ("string", "3")])
    out += sweep("PatternArray", refold.PatternArray,
                 dict(base_pattern=refold.NumericScalarPattern()),
                 "array_shape", [("negative", (-1,)), ("string", "ab")])
    out += sweep("PatternArray", refold.PatternArray,
                 dict(array_shape=(2,)), "base_pattern",
                 [("None", None), ("float", 1.0), ("class",
                                                   refold.NumericArrayPattern)])

    # fold / flatten of every leaf kind.
    for label, pat, bad_folded in _patterns():
        n_free = pat.flat_length(free=True)
        out += sweep(f"{label}.fold", pat.fold, dict(free=True), "flat_val",
                     [("NaN", np.full(n_free, np.nan)),
                      ("inf", np.full(n_free, np.inf)),
                      ("too long", np.zeros(n_free + 1)),
                      ("2-d", np.zeros((n_free, 1))),
                      ("complex", np.zeros(n_free) * 1j),
                      ("string", "abc")], names=FLAT)
        out += sweep(f"{label}.fold", pat.fold,
                     dict(flat_val=np.zeros(n_free)), "free",
                     [("string", "yes"), ("int", 1)])
        out += [one(f"{label}.flatten: invalid folded value",
                    lambda p=pat, v=bad_folded: p.flatten(v, free=True),
                    *FOLDED),
                one(f"{label}.flatten: string",
                    lambda p=pat: p.flatten("abc", free=True), *FOLDED)]
    # Extreme values that must fold to something that validates.
    out += [
        one("PSD diag_lb=1e5 fold of a moderate free vector flattens back "
            "(and a NaN free vector is refused)",
            lambda: refold.PSDSymmetricMatrixPattern(3, diag_lb=1e5).fold(
                np.array([-2.78125, 3., -3., 0., np.nan, -5.]), free=True),
            *FLAT),
        one("PatternDict: fold a missing-key dict",
            lambda: _patterns()[7][1].flatten({"a": np.ones(2)}, free=False),
            *FOLDED),
        one("PatternDict: set a non-pattern",
            lambda: _patterns()[7][1].__setitem__("c", 3.0), "c"),
        one("Pattern.random: bad rng",
            lambda: refold.NumericArrayPattern((2,)).random(rng="seed"),
            "rng"),
        one("flat_indices: wrong shape",
            lambda: refold.NumericArrayPattern((2,)).flat_indices(
                np.ones(3, dtype=bool), free=False), "folded_bool",
            "params"),
    ]

    # Function wrappers.
    pat = refold.NumericArrayPattern((2,))

    def f(x):
        return anp.sum(x ** 2)
    ffi = refold.FlattenFunctionInput
    good = dict(original_fun=f, patterns=pat, free=False)
    out += sweep("FlattenFunctionInput", ffi, good, "original_fun",
                 BAD_CALLABLE)
    out += sweep("FlattenFunctionInput", ffi, good, "patterns",
                 [("float", 1.0), ("None", None), ("string", "p")])
    out += sweep("FlattenFunctionInput", ffi, good, "free",
                 [("string", "no"), ("None", None)])
    out += sweep("FlattenFunctionInput", ffi, good, "argnums",
                 [("string", "0"), ("fraction", 0.5), ("negative", -5)])
    wrapped = ffi(f, pat, False)
    out += [
        one("FlattenFunctionInput(...)(wrong length)",
            lambda: wrapped(np.ones(3)), "flat_val"),
        one("FlattenFunctionInput(...)(NaN)",
            lambda: wrapped(np.full(2, np.nan)), "flat_val", "argument 0"),
        one("FoldFunctionOutput: output not valid",
            lambda: refold.FoldFunctionOutput(
                lambda x: np.ones(5), pat, False)(1.0), "flat_val"),
        one("FlattenFunctionOutput: output of the wrong shape",
            lambda: refold.FlattenFunctionOutput(
                lambda x: np.ones(5), pat, False)(1.0), "params"),
        one("TransformFunctionInput: original_is_flat not a bool",
            lambda: refold.TransformFunctionInput(f, pat, False, "yes"),
            "original_is_flat"),
    ]
    out += sweep("OptimizationObjective", refold.OptimizationObjective,
                 dict(objective_fun=f), "print_every", BAD_COUNT)
    out += sweep("OptimizationObjective", refold.OptimizationObjective,
                 dict(objective_fun=f), "objective_fun", BAD_CALLABLE)
    out += sweep("PreconditionedFunction", refold.PreconditionedFunction,
                 {}, "original_fun", BAD_CALLABLE)
    pre = refold.PreconditionedFunction(f)
    out += [
        one("PreconditionedFunction.set_preconditioner_matrix: not square",
            lambda: pre.set_preconditioner_matrix(np.ones((2, 3))), "a"),
        one("PreconditionedFunction.set_preconditioner_matrix: NaN",
            lambda: pre.set_preconditioner_matrix(np.full((2, 2), np.nan)),
            "a"),
    ]

    # JSON.
    out += sweep("get_pattern_from_json", refold.get_pattern_from_json, {},
                 "pattern_json", [("garbage", "{not json"), ("number", 3),
                                  ("unknown pattern",
                                   '{"pattern": "NoSuchPattern"}'),
                                  ("empty object", "{}")])
    out += [
        one("load_folded: a file that is not an npz",
            lambda: refold.load_folded(io.BytesIO(b"garbage")), "file"),
        one("save_folded: invalid folded value",
            lambda: refold.save_folded(io.BytesIO(), -np.ones(2),
                                       refold.NumericArrayPattern(
                                           (2,), lb=0.0)),
            *FOLDED),
        one("save_folded: not a pattern",
            lambda: refold.save_folded(io.BytesIO(), np.ones(2), "pattern"),
            "pattern"),
        one("register_pattern_json: not a Pattern class",
            lambda: refold.register_pattern_json(dict), "pattern"),
    ]
    return out
