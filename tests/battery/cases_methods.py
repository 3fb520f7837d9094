"""Battery cases for methods of refold's objects: what a user calls after
construction (cross sensitivity, sparse and arrowhead Hessians, LR and EM
covariance methods, the GLMM objective, Taylor diagnostics, data weights,
the worked models' patterns and fits)."""
from __future__ import annotations

import autograd.numpy as anp
import numpy as np

import refold.sensitivity as S
from refold.models import LinearResponseCovariances, colour_moment_jacobian
from refold.models import gaussian_mixture as gm
from refold.models import logistic_glmm as lg
from refold.models import neyman_scott as ns
from tests.battery._core import (BAD_BOOL, BAD_COUNT, BAD_INT, bad_arrays,
                                 one, sweep, without)

TH0, H0 = np.zeros(2), np.zeros(1)


def ee2(th, h1, h2):
    return th - h1[0] - h2[0]


def block_objective(t):
    """Global t[0], local pairs (1, 2), (3, 4)."""
    return 0.5 * anp.sum(t ** 2) + 0.1 * t[0] * anp.sum(t[1:])


def cases():
    out = []
    cross = S.CrossSensitivity(ee2, "lu", TH0, H0, H0)
    out += sweep("CrossSensitivity.get_di1", cross.get_di1, {}, "dh1",
                 without(bad_arrays((1,)), "wrong length")[:8],
                 names=("dh1",))
    out += sweep("CrossSensitivity.evaluate", cross.evaluate,
                 dict(dh2=np.ones(1)), "dh1", bad_arrays((1,))[4:9])
    checker = S.OptimumChecker(lambda t, h: t - h[0], "lu", TH0, H0)
    out += sweep("OptimumChecker.evaluate", checker.evaluate, {},
                 "hyper_new", bad_arrays((1,))[:9])
    out += sweep("OptimumChecker.get_dinput_dhyper",
                 checker.get_dinput_dhyper, {}, "dhyper",
                 bad_arrays((1,))[4:9])

    sbh = S.SparseBlockHessian(block_objective, np.array([[1, 2], [3, 4]]))
    # (a longer opt_par is legitimate: the extra coordinates are global)
    out += sweep("SparseBlockHessian.get_hessian", sbh.get_hessian, {},
                 "opt_par", without(bad_arrays((5,))[:9], "wrong length"))
    out += sweep("SparseBlockHessian.get_hessian", sbh.get_hessian,
                 dict(opt_par=np.zeros(5)), "print_every",
                 without(BAD_COUNT, "negative"))     # <= 0 means silent
    out += sweep("SparseBlockHessian.get_arrowhead_blocks",
                 sbh.get_arrowhead_blocks, dict(opt_par=np.zeros(5)),
                 "global_inds", [("out of range", np.array([9])),
                                 ("float", np.array([0.5])),
                                 ("string", "g")])
    out += [one("SparseBlockHessian: sparsity index out of range",
                lambda: S.SparseBlockHessian(
                    block_objective, np.array([[1, 2], [3, 9]])).get_hessian(
                        np.zeros(5)), "sparsity_array")]

    arrow = S.ArrowheadHessian(np.eye(1), np.zeros((2, 1, 1)),
                               np.stack([np.eye(1)] * 2))
    # (a (3, k) matrix of right-hand sides is legitimate)
    out += sweep("ArrowheadHessian.solve", arrow.solve, {}, "b",
                 without(bad_arrays((3,))[:10], "extra dimension"))
    out += sweep("ArrowheadHessian.dot", arrow.dot, {}, "v",
                 without(bad_arrays((3,))[:10], "extra dimension"))
    out += sweep("ArrowheadHessian.solver", arrow.solver, {}, "on_failure",
                 [("unknown", "ignore"), ("number", 1)])
    out += [one("ArrowheadHessian: indefinite, solve",
                lambda: S.ArrowheadHessian(
                    np.eye(1), np.zeros((2, 1, 1)),
                    np.stack([np.eye(1), -np.eye(1)])).solve(np.ones(3)),
                "local_blocks", "hessian")]

    lr = LinearResponseCovariances(block_objective, np.zeros(5))
    out += sweep("LR.get_moment_jacobian", lr.get_moment_jacobian,
                 dict(calculate_moments=lambda t: t[:2]), "sparse",
                 BAD_BOOL[:3])
    out += sweep("LR.get_lr_covariance_blocks", lr.get_lr_covariance_blocks,
                 dict(moment_jacobian=np.eye(5)), "local_inds",
                 [("out of range", np.array([[1, 2], [3, 9]])),
                  ("float", np.array([[1.0, 2.0], [3.0, 4.0]])),
                  ("1-d", np.array([1, 2]))])
    out += sweep("LR.set_base_values", lr.set_base_values, {},
                 "opt_par_value", bad_arrays((5,))[:9])
    out += [
        one("LR arrowhead solver: local_inds out of range",
            lambda: LinearResponseCovariances(
                block_objective, np.zeros(5), solver="arrowhead",
                solver_options={"local_inds": np.array([[1, 2], [3, 9]])}),
            "local_inds"),
        one("LR arrowhead solver: global_inds out of range",
            lambda: LinearResponseCovariances(
                block_objective, np.zeros(5), solver="arrowhead",
                solver_options={"local_inds": np.array([[1, 2], [3, 4]]),
                                "global_inds": np.array([7])}),
            "global_inds"),
        one("colour_moment_jacobian: dim mismatch",
            lambda: colour_moment_jacobian(np.eye(3), dim=5), "dim",
            "sparsity"),
    ]

    taylor = S.ParametricSensitivityTaylorExpansion.optimization_objective(
        lambda t, h: 0.5 * anp.sum(t ** 2) - h[0] * anp.sum(t), TH0, H0,
        order=2)
    out += sweep("Taylor.diagnose", taylor.diagnose,
                 dict(new_hyper_val=np.array([0.1]), refit=True),
                 "refit_options", [("list", [1]), ("unknown key",
                                                  {"tolerance": 1.0}),
                                   ("bad gtol", {"gtol": -1.0})],
                 names=("refit_options", "tolerance", "gtol"))
    out += sweep("Taylor.evaluate_taylor_series",
                 taylor.evaluate_taylor_series,
                 dict(new_hyper_val=np.array([0.1])), "return_report",
                 BAD_BOOL)

    y = np.array([1.0, 2.0, 6.0])
    ws = S.WeightSensitivity(lambda t: 0.5 * (y - t[0]) ** 2,
                             np.array([3.0]))
    out += sweep("WeightSensitivity.total_influence", ws.total_influence,
                 {}, "fun", [("float", 1.0), ("string", "f")])
    out += sweep("WeightSensitivity.approximate_loo", ws.approximate_loo,
                 {}, "qoi_fun", [("out of range", 4), ("string", "q")])
    out += [one("WeightSensitivity: loss_terms_fun raises",
                lambda: S.WeightSensitivity(lambda t: {}["k"],
                                            np.array([3.0])),
                "loss_terms_fun")]

    # Worked-model patterns and fits.
    out += sweep("gm.responsibility_pattern", gm.responsibility_pattern,
                 dict(n_components=2), "n_obs", BAD_INT[:4])
    out += sweep("gm.eta_pattern", gm.eta_pattern, dict(n_obs=3),
                 "n_components", [("one", 1), ("string", "2")])
    out += sweep("lg.vb_pattern", lg.vb_pattern, dict(n_groups=3), "n_fixed",
                 BAD_INT[:4] + [("zero", 0)])
    gdata = lg.simulate(40, 5, 2, rng=0)
    obj = lg.GLMMObjective(gdata)
    out += sweep("GLMMObjective.hessian", obj.hessian, {}, "free_par",
                 bad_arrays((obj.initial_free_par().size,))[:9])
    out += sweep("GLMMObjective", lg.GLMMObjective, dict(data=gdata),
                 "num_quadrature", BAD_INT + [("zero", 0)])
    out += sweep("glmm.fit", lg.fit, dict(data=gdata), "compute_lr",
                 BAD_BOOL[:3])
    out += sweep("glmm.log_posterior", lg.log_posterior, dict(data=gdata),
                 "theta", [("string", "t"), ("not a dict", np.ones(3)),
                           ("missing key", {"beta": np.ones(2)})])
    pairs = ns.simulate(10, 1.0, rng=1)
    out += [one("ns.fit: all pairs equal",
                lambda: ns.fit(np.ones((5, 2)), "em"), "data"),
            one("ns.fit: max_iter too small to converge",
                lambda: ns.fit(pairs, "em", max_iter=1), "max_iter")]
    return out
