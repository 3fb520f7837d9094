"""Battery cases for ``refold.sensitivity``: the linear approximations, the
Taylor expansion, cross sensitivity, the optimum check, refit, Hessians and
solvers, and data weights."""
from __future__ import annotations

import autograd.numpy as anp
import numpy as np

import refold.sensitivity as S
from tests.battery._core import (
    BAD_BOOL, BAD_CALLABLE, BAD_COUNT, BAD_INT, BAD_OPTIONAL_BOOL,
    BAD_OPTIONAL_CALLABLE, BAD_TOL, bad_arrays, one, sweep, without)

TH0, H0 = np.zeros(2), np.zeros(1)


def objective(th, h):
    """Minimised at th = h[0] * (1, 1); Hessian I."""
    return 0.5 * anp.sum(th ** 2) - h[0] * anp.sum(th)


def equation(th, h):
    return th - h[0]


def saddle(th, h):
    return th[0] ** 2 - th[1] ** 2 + h[0] * th[0]


def cases():
    out = []
    hs = S.HyperparameterSensitivityLinearApproximation
    good = dict(objective_fun=objective, opt_par_value=TH0,
                hyper_par_value=H0)
    out += sweep("HSLA", hs, good, "objective_fun", BAD_CALLABLE)
    out += sweep("HSLA", hs, good, "opt_par_value", bad_arrays((2,)))
    out += sweep("HSLA", hs, good, "hyper_par_value",
                 without(bad_arrays((1,)), "wrong length"))
    out += sweep("HSLA", hs, good, "validate_optimum", BAD_BOOL)
    out += sweep("HSLA", hs, good, "factorize_hessian", BAD_BOOL)
    out += sweep("HSLA", hs, good, "grad_tol", BAD_TOL)
    out += sweep("HSLA", hs, good, "hyper_par_objective_fun",
                 BAD_OPTIONAL_CALLABLE)
    out += sweep("HSLA", hs, good, "solver",
                 [("unknown kind", "qr"), ("number", 3)])
    out += sweep("HSLA", hs, good, "hessian_at_opt",
                 [("wrong shape", np.eye(3)), ("NaN", np.full((2, 2), np.nan)),
                  ("string", "eye"), ("vector", np.ones(2))])
    out += sweep("HSLA", hs, good, "cross_hess_at_opt",
                 [("wrong shape", np.ones((2, 2))),
                  ("NaN", np.full((2, 1), np.nan)), ("string", "x"),
                  ("complex", np.ones((2, 1)) * 1j)])
    out += [
        one("HSLA: not an optimum", lambda: hs(objective, np.ones(2), H0),
            "opt_par_value"),
        one("HSLA: validate_optimum=None at a non-optimum",
            lambda: hs(objective, np.ones(2), H0, validate_optimum=None),
            "validate_optimum"),
        one("HSLA: saddle, dense", lambda: hs(saddle, TH0, H0), "Hessian"),
        one("HSLA: saddle, CG (curvature probe)",
            lambda: hs(saddle, TH0, H0, factorize_hessian=False), "Hessian"),
        one("HSLA: objective returns a vector",
            lambda: hs(lambda t, h: t * h[0], TH0, H0), "objective_fun"),
        one("HSLA: hyper objective returns a vector",
            lambda: hs(objective, TH0, H0,
                       hyper_par_objective_fun=lambda t, h: t * h[0]),
            "hyper_par_objective_fun"),
        one("HSLA: hyperparameter of the wrong length for the objective",
            lambda: hs(lambda t, h: 0.5 * anp.sum(t ** 2)
                       - anp.dot(h, np.ones(1)) * t[0], TH0, np.zeros(3)),
            "objective_fun", "hyper_par_value"),
        one("HSLA: objective raises KeyError",
            lambda: hs(lambda t, h: {}["k"], TH0, H0), "objective_fun"),
        one("HSLA: CG with a factorising kind",
            lambda: hs(objective, TH0, H0, factorize_hessian=False,
                       solver="cholesky"), "solver"),
        one("HSLA: predict with a wrong-length hyper",
            lambda: hs(objective, TH0, H0).predict_opt_par_from_hyper_par(
                np.ones(3)), "new_hyper_par_value"),
        one("HSLA: predict with a string",
            lambda: hs(objective, TH0, H0).predict_opt_par_from_hyper_par(
                "a"), "new_hyper_par_value"),
        one("HSLA: predict with NaN",
            lambda: hs(objective, TH0, H0).predict_opt_par_from_hyper_par(
                np.array([np.nan])), "new_hyper_par_value"),
    ]

    ee = S.EstimatingEquationLinearApproximation
    good = dict(estimating_equation=equation, input_val0=TH0, hyper_val0=H0)
    out += sweep("EELA", ee, good, "estimating_equation", BAD_CALLABLE)
    out += sweep("EELA", ee, good, "input_val0", bad_arrays((2,))[:8])
    out += sweep("EELA", ee, good, "hyper_val0", bad_arrays((1,))[:8])
    out += sweep("EELA", ee, good, "validate_solution", BAD_BOOL)
    out += sweep("EELA", ee, good, "solution_tol", BAD_TOL)
    out += sweep("EELA", ee, good, "symmetric", BAD_OPTIONAL_BOOL)
    out += sweep("EELA", ee, good, "hess_solver", [("unknown", "qr"),
                                                     ("number", 2.0)])
    out += [
        one("EELA: hyper equation returns a scalar (was broadcast)",
            lambda: ee(equation, TH0, H0,
                       hyper_par_estimating_equation=lambda t, h: -h[0]),
            "hyper_par_estimating_equation"),
        one("EELA: equation returns a scalar (was broadcast)",
            lambda: ee(lambda t, h: anp.sum(t) - h[0], TH0, H0),
            "estimating_equation"),
        one("EELA: not a root", lambda: ee(equation, np.ones(2), H0),
            "input_val0"),
        one("EELA: equation raises IndexError",
            lambda: ee(lambda t, h: t[5] - h, TH0, H0),
            "estimating_equation"),
    ]

    # Taylor expansion.
    taylor = S.ParametricSensitivityTaylorExpansion
    mk = taylor.optimization_objective
    good = dict(objective_function=objective, input_val0=TH0,
                hyper_val0=H0, order=2)
    out += sweep("Taylor.optimization_objective", mk, good,
                 "objective_function", BAD_CALLABLE)
    out += sweep("Taylor.optimization_objective", mk, good, "input_val0",
                 bad_arrays((2,))[:9])
    out += sweep("Taylor.optimization_objective", mk, good, "order",
                 BAD_INT + [("zero", 0)])
    out += sweep("Taylor.optimization_objective", mk, good, "forward_mode",
                 BAD_BOOL)
    t2 = mk(objective, TH0, H0, order=2)
    out += sweep("Taylor.evaluate_taylor_series", t2.evaluate_taylor_series,
                 dict(new_hyper_val=np.array([0.1])), "add_offset",
                 BAD_BOOL)
    out += sweep("Taylor.evaluate_taylor_series", t2.evaluate_taylor_series,
                 dict(new_hyper_val=np.array([0.1])), "sum_terms", BAD_BOOL)
    out += sweep("Taylor.evaluate_taylor_series", t2.evaluate_taylor_series,
                 dict(new_hyper_val=np.array([0.1])), "max_order",
                 BAD_COUNT + [("too high", 5), ("zero", 0)])
    out += sweep("Taylor.evaluate_taylor_series", t2.evaluate_taylor_series,
                 {}, "new_hyper_val", bad_arrays((1,))[:9])
    out += sweep("Taylor.evaluate_input_derivs", t2.evaluate_input_derivs,
                 {}, "dhyper", bad_arrays((1,))[:9])
    out += sweep("Taylor.diagnose", t2.diagnose,
                 dict(new_hyper_val=np.array([0.1])), "refit", BAD_BOOL)
    out += [
        one("Taylor: saddle", lambda: mk(saddle, TH0, H0, order=2),
            "Hessian"),
        one("Taylor: not an optimum", lambda: mk(objective, np.ones(2), H0,
                                                 order=2), "input_val0"),
        one("Taylor: optimum_tol negative",
            lambda: mk(objective, TH0, H0, order=2, optimum_tol=-1.0),
            "optimum_tol"),
        one("Taylor: evaluate_terms bad k",
            lambda: t2.evaluate_terms(np.array([0.1]), 7), "k"),
        one("Taylor: get_terms bad k", lambda: t2.get_terms("2"), "k"),
    ]

    # Cross sensitivity and the optimum checker.
    def ee2(th, h1, h2):
        return th - h1[0] - h2[0]
    cross = S.CrossSensitivity
    good = dict(estimating_equation=ee2, solver="lu", input_base=TH0,
                hyper1_base=H0, hyper2_base=H0)
    out += sweep("CrossSensitivity", cross, good, "estimating_equation",
                 BAD_CALLABLE)
    out += sweep("CrossSensitivity", cross, good, "input_base",
                 bad_arrays((2,))[:8])
    out += sweep("CrossSensitivity", cross, good, "hyper1_base",
                 bad_arrays((1,))[:6])
    out += sweep("CrossSensitivity", cross, good, "term_ii", BAD_BOOL[:3])
    checker = S.OptimumChecker
    good = dict(estimating_equation=equation, solver="lu", input_base=TH0,
                hyper_base=H0)
    out += sweep("OptimumChecker", checker, good, "input_base",
                 bad_arrays((2,))[:6])
    out += sweep("OptimumChecker", checker, good, "solver",
                 [("unknown", "qr"), ("number", 1.5)])

    # check_optimum / validate_optimum.
    good = dict(grad_at_opt=np.zeros(2), solver=lambda b: b,
                opt_par=np.zeros(2))
    out += sweep("check_optimum", S.check_optimum, good, "tol", BAD_TOL)
    out += sweep("check_optimum", S.check_optimum, good, "opt_par",
                 bad_arrays((2,))[:8])
    out += sweep("validate_optimum", S.validate_optimum, good, "grad_at_opt",
                 [("NaN", np.full(2, np.nan)), ("wrong length", np.zeros(3)),
                  ("string", "g"), ("complex", np.zeros(2) * 1j)],
                 names=("grad_at_opt", "gradient"))

    # refit.
    def quad(x):
        return anp.sum((x - 1.0) ** 2)
    good = dict(objective_fun=quad, init_par=np.zeros(2))
    out += sweep("refit", S.refit, good, "objective_fun", BAD_CALLABLE)
    out += sweep("refit", S.refit, good, "init_par",
                 without(bad_arrays((2,)), "wrong length"))
    out += sweep("refit", S.refit, good, "gtol", BAD_TOL)
    out += sweep("refit", S.refit, good, "maxiter", BAD_INT + [("zero", 0)])
    out += sweep("refit", S.refit, good, "hvp", BAD_BOOL)
    out += sweep("refit", S.refit, good, "solver",
                 [("unknown name", "newton"), ("number", 3), ("None", None)])
    out += sweep("refit", S.refit, good, "solver_options",
                 [("list", [1]), ("unknown key", {"on_failure": "pinv"}),
                  ("structure not a HessianStructure", {"structure": "dense"}),
                  ("structure of another dimension", {
                      "structure": S.HessianStructure("dense", 3)})])

    def boom(x):
        if x[0] < 0.5:
            raise RuntimeError("boom")
        return anp.sum((x - 0.2) ** 2)
    out += [
        one("refit: objective raises at a trial point",
            lambda: S.refit(boom, np.array([1.0])), "objective_fun"),
        one("refit: objective returns a vector",
            lambda: S.refit(lambda x: x, np.zeros(2)), "objective_fun"),
        one("refit: objective NaN at the start",
            lambda: S.refit(lambda x: anp.sum(x) * np.nan, np.zeros(2)),
            "objective_fun"),
    ]

    # Hessians and Hessian-vector products.
    def f1(x):
        return anp.sum(x ** 4)
    out += sweep("dense_hessian", S.dense_hessian, dict(fun=f1), "x",
                 without(bad_arrays((2,))[:9], "wrong length"))
    out += sweep("dense_hessian", S.dense_hessian, dict(x=np.ones(2)),
                 "fun", BAD_CALLABLE)
    out += sweep("get_hvp", S.get_hvp, dict(fun=f1), "argnum",
                 BAD_INT[:4])
    out += sweep("make_hvp_at", S.make_hvp_at, dict(fun=f1), "x",
                 bad_arrays((2,))[:8])
    out += sweep("sparse_hessian", S.sparse_hessian,
                 dict(fun=f1, x=np.ones(3)), "sparsity",
                 [("string", "diag"), ("wrong shape", np.eye(2)),
                  ("NaN", np.full((3, 3), np.nan))])   # None: detected
    out += sweep("sparse_hessian", S.sparse_hessian,
                 dict(fun=f1, sparsity=np.eye(3)), "x", bad_arrays((3,))[:8])
    out += sweep("SparseBlockHessian", S.SparseBlockHessian,
                 dict(objective_function=f1), "sparsity_array",
                 [("string", "x"), ("float", np.ones((2, 2)) * 0.5),
                  ("negative", -np.ones((2, 1), dtype=int)),
                  ("3-d", np.zeros((2, 2, 2), dtype=int))])
    arrow = S.ArrowheadHessian
    good = dict(global_block=np.eye(1), cross_blocks=np.zeros((2, 1, 1)),
                local_blocks=np.stack([np.eye(1)] * 2))
    out += sweep("ArrowheadHessian", arrow, good, "global_block",
                 [("NaN", np.full((1, 1), np.nan)), ("wrong shape",
                                                     np.eye(2)),
                  ("string", "x"), ("not symmetric", None)][:3])
    out += sweep("ArrowheadHessian", arrow, good, "local_blocks",
                 [("NaN", np.full((2, 1, 1), np.nan)),
                  ("wrong count", np.stack([np.eye(1)] * 3)),
                  ("2-d", np.eye(2))])
    out += sweep("ArrowheadHessian", arrow, good, "local_inds",
                 [("out of range", np.array([[5], [6]])),
                  ("float", np.array([[1.0], [2.0]])),
                  ("wrong shape", np.array([1, 2]))],
                 names=("local_inds",))

    # Solvers.
    for label, getter in [("get_cholesky_solver", S.get_cholesky_solver),
                          ("get_lu_solver", S.get_lu_solver),
                          ("get_dense_cholesky_solver",
                           S.get_dense_cholesky_solver),
                          ("get_sparse_cholesky_solver",
                           S.get_sparse_cholesky_solver)]:
        out += sweep(label, getter, {}, "h",
                     [("NaN", np.full((2, 2), np.nan)),
                      ("not square", np.ones((2, 3))),
                      ("string", "eye"), ("complex", np.eye(2) * 1j)])
        out += sweep(label, getter, dict(h=np.eye(2)), "on_failure",
                     [("unknown", "ignore"), ("number", 1)])
    out += [
        one("get_cholesky_solver: indefinite",
            lambda: S.get_cholesky_solver(np.diag([1.0, -1.0])), "h"),
        one("get_lu_solver: singular",
            lambda: S.get_lu_solver(np.zeros((2, 2))), "h"),
        one("solver applied to the wrong length",
            lambda: S.get_cholesky_solver(np.eye(2))(np.ones(3)), "b"),
        one("solver applied to a string",
            lambda: S.get_cholesky_solver(np.eye(2))("ab"), "b"),
    ]
    out += sweep("get_cg_solver", S.get_cg_solver,
                 dict(mat_times_vec=lambda v: v), "dim", BAD_INT[:4])
    out += sweep("get_cg_solver", S.get_cg_solver,
                 dict(mat_times_vec=lambda v: v, dim=2), "cg_opts",
                 [("unknown key", {"tolerance": 1.0}), ("list", [1]),
                  ("negative rtol", {"rtol": -1.0}),
                  ("probe", {"curvature_probe": "yes"})])
    # vittles' name for this argument is the kind: "kind must be one of".
    out += sweep("as_solver", S.as_solver, dict(hessian=np.eye(2)),
                 "solver_or_kind", [("unknown", "qr"), ("number", 3)],
                 names=("solver_or_kind", "kind", "solver"))
    out += sweep("get_solver", S.get_solver, dict(hessian=np.eye(2)),
                 "kind", [("unknown", "qr"), ("number", 3)])
    out += sweep("check_hessian", S.check_hessian, {}, "h",
                 [("NaN", np.full((2, 2), np.nan)),
                  ("not symmetric", np.array([[1.0, 2.0], [0.0, 1.0]])),
                  ("not square", np.ones((2, 3)))])

    # Data weights.
    y = np.array([1.0, 2.0, 6.0])

    def loss(t):
        return 0.5 * (y - t[0]) ** 2
    ws_cls = S.WeightSensitivity
    good = dict(loss_terms_fun=loss, opt_par=np.array([3.0]))
    out += sweep("WeightSensitivity", ws_cls, good, "loss_terms_fun",
                 BAD_CALLABLE)
    out += sweep("WeightSensitivity", ws_cls, good, "opt_par",
                 bad_arrays((1,))[:8])
    out += sweep("WeightSensitivity", ws_cls, good, "n_obs",
                 [("fraction", 2.5), ("wrong", 4), ("string", "3")])
    out += sweep("WeightSensitivity", ws_cls, good, "validate_optimum",
                 BAD_BOOL)
    out += sweep("WeightSensitivity", ws_cls, good, "prior_fun",
                 BAD_OPTIONAL_CALLABLE)
    ws = ws_cls(loss, np.array([3.0]))
    out += sweep("WeightSensitivity.refit", ws.refit, {}, "weights",
                 [("complex", np.ones(3) * (1 + 1j)),
                  ("strings", ["a", "b", "c"]), ("NaN", np.full(3, np.nan)),
                  ("wrong length", np.ones(4)), ("None", None)])
    out += sweep("WeightSensitivity.influence", ws.influence, {}, "qoi_fun",
                 [("index out of range", 5), ("string", "q"),
                  ("float", 0.5)])
    out += sweep("WeightSensitivity.drop_data", ws.drop_data,
                 dict(qoi_fun=0), "alpha",
                 [("negative", -0.1), ("above one", 1.5), ("string", "a"),
                  ("NaN", np.nan)])
    out += sweep("WeightSensitivity.drop_data", ws.drop_data,
                 dict(qoi_fun=0), "target", [("unknown", "flip"),
                                             ("number", 1)])
    return out
