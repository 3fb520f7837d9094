"""Battery cases for structure detection and the drop-data tools
(``hessian_sparsity``, ``hessian_structure``, ``check_nonsingular``,
covariances, ``predict_drop``, ``greedy_drop``, ``exhaustive_drop``,
``OLSDrop``)."""
from __future__ import annotations

import autograd.numpy as anp
import numpy as np

import refold.sensitivity as S
from tests.battery._core import (BAD_CALLABLE, BAD_INT, bad_arrays, one,
                                 sweep, without)


def f(x):
    return anp.sum(x ** 4) + x[0] * x[1]


def cases():
    out = []
    for label, fun in [("hessian_sparsity", S.hessian_sparsity),
                       ("jacobian_sparsity", S.jacobian_sparsity),
                       ("hessian_structure", S.hessian_structure)]:
        out += sweep(label, fun, dict(fun=f), "x",
                     without(bad_arrays((3,))[:9], "wrong length"))
        out += sweep(label, fun, dict(x=np.ones(3)), "fun", BAD_CALLABLE)
    out += sweep("check_nonsingular", S.check_nonsingular, {}, "matrix",
                 [("singular", np.zeros((2, 2))),
                  ("NaN", np.full((2, 2), np.nan)),
                  ("not square", np.ones((2, 3))), ("string", "m")],
                 names=("matrix", "the Hessian"))
    out += sweep("HessianStructure", S.HessianStructure, dict(dim=3),
                 "kind", [("unknown", "banded"), ("number", 3)])
    out += sweep("register_sparsity_rule", S.register_sparsity_rule,
                 dict(primitive=anp.sin), "kind", [("unknown", "weird")])

    y = np.array([1.0, 2.0, 6.0, 3.0, 5.0])

    def loss(t):
        return 0.5 * (y - t[0]) ** 2
    theta = np.array([y.mean()])
    for label, fun in [("sandwich_covariance", S.sandwich_covariance),
                       ("hessian_covariance", S.hessian_covariance)]:
        out += sweep(label, fun, dict(loss_terms_fun=loss), "theta",
                     without(bad_arrays((1,))[:9], "wrong length"))
        out += sweep(label, fun, dict(loss_terms_fun=loss, theta=theta),
                     "weights", [("wrong length", np.ones(3)),
                                 ("NaN", np.full(5, np.nan)),
                                 ("complex", np.ones(5) * 1j),
                                 ("string", "w")])
    out += sweep("sandwich_covariance", S.sandwich_covariance,
                 dict(loss_terms_fun=loss, theta=theta), "clusters",
                 [("wrong length", np.arange(3)), ("float", np.ones(5) * 0.5)])
    out += sweep("per_observation_gradients", S.per_observation_gradients,
                 dict(loss_terms_fun=loss), "theta",
                 without(bad_arrays((1,))[:9], "wrong length"))
    out += sweep("standard_error_fun", S.standard_error_fun,
                 dict(loss_terms_fun=loss, qoi_fun=0), "kind",
                 [("unknown", "robust"), ("number", 1)])

    ws = S.WeightSensitivity(loss, theta)
    out += sweep("predict_drop", S.predict_drop, dict(sensitivity=ws),
                 "drop", [("out of range", np.array([7])),
                          ("repeated", np.array([1, 1])),
                          ("string", "a"), ("NaN weights",
                                            np.full(5, np.nan))])
    out += sweep("predict_drop", S.predict_drop,
                 dict(sensitivity=ws, drop=np.array([0])), "order",
                 BAD_INT[:4] + [("zero", 0)])
    out += sweep("predict_drop", S.predict_drop,
                 dict(drop=np.array([0])), "sensitivity",
                 [("None", None), ("function", loss)])
    out += sweep("greedy_drop", S.greedy_drop,
                 dict(sensitivity=ws, qoi_fun=0), "alpha",
                 [("negative", -0.1), ("above one", 1.5), ("NaN", np.nan),
                  ("string", "a")])
    out += sweep("greedy_drop", S.greedy_drop,
                 dict(sensitivity=ws, qoi_fun=0), "target",
                 [("unknown", "flip")])
    out += sweep("exhaustive_drop", S.exhaustive_drop,
                 dict(sensitivity=ws, qoi_fun=0), "max_size",
                 BAD_INT[:4] + [("zero", 0)])

    x = np.column_stack([np.ones(5), np.arange(5.0)])
    out += sweep("OLSDrop", S.OLSDrop, dict(y=y), "x",
                 bad_arrays(x.shape)[:9] + [("collinear", np.ones((5, 2)))])
    out += sweep("OLSDrop", S.OLSDrop, dict(x=x), "y",
                 bad_arrays(y.shape)[:9])
    out += [one("OLSDrop: names of the wrong length",
                lambda: S.OLSDrop(x, y, names=["a"]), "names")]
    return out
