"""Battery cases for ``refold.models``: LR covariances, the EM covariance
and the worked models (Neyman-Scott, Gaussian mixture, mixed model,
logistic GLMM) and importance sampling."""
from __future__ import annotations

import autograd.numpy as anp
import numpy as np

from refold.models import (EMCovariance, LinearResponseCovariances,
                           colour_moment_jacobian, infer_eta_blocks,
                           log_simplex)
from refold.models import gaussian_mixture as gm
from refold.models import logistic_glmm as lg
from refold.models import mixed_model as mm
from refold.models import neyman_scott as ns
from refold.models.importance_sampling import laplace_importance_sampling
from refold.patterns import NumericArrayPattern
from tests.battery._core import (
    BAD_BOOL, BAD_CALLABLE, BAD_FINITE, BAD_INT, BAD_POSITIVE, BAD_TOL,
    bad_arrays, one, sweep, without)


def kl(th):
    return 0.5 * anp.sum(th ** 2)


def cases():
    out = []
    # Linear response covariances.
    lr_cls = LinearResponseCovariances
    good = dict(objective_fun=kl, opt_par_value=np.zeros(2))
    out += sweep("LR", lr_cls, good, "objective_fun", BAD_CALLABLE)
    out += sweep("LR", lr_cls, good, "opt_par_value", bad_arrays((2,))[:9])
    out += sweep("LR", lr_cls, good, "validate_optimum", BAD_BOOL)
    out += sweep("LR", lr_cls, good, "factorize_hessian", BAD_BOOL)
    out += sweep("LR", lr_cls, good, "grad_tol", BAD_TOL)
    out += sweep("LR", lr_cls, good, "hessian_at_opt",
                 [("wrong shape", np.eye(3)),
                  ("NaN", np.full((2, 2), np.nan)), ("string", "eye")])
    out += sweep("LR", lr_cls, good, "solver", [("unknown", "qr"),
                                                ("number", 2)])
    lr = lr_cls(kl, np.zeros(2))
    out += sweep("LR.get_lr_covariance_from_jacobians",
                 lr.get_lr_covariance_from_jacobians,
                 dict(moment_jacobian2=np.eye(2)), "moment_jacobian1",
                 [("wrong columns", np.ones((1, 3))),
                  ("NaN", np.full((1, 2), np.nan)), ("string", "j"),
                  ("1-d", np.ones(2))])
    out += [
        one("LR: not an optimum", lambda: lr_cls(kl, np.ones(2)),
            "opt_par_value"),
        one("LR: saddle, CG", lambda: lr_cls(
            lambda t: t[0] ** 2 - t[1] ** 2, np.zeros(2),
            factorize_hessian=False), "Hessian"),
        one("LR.get_lr_covariance: moments not callable",
            lambda: lr.get_lr_covariance(3.0), "calculate_moments"),
        one("LR.get_lr_covariance: moments raise",
            lambda: lr.get_lr_covariance(lambda t: t["a"]),
            "calculate_moments"),
        one("colour_moment_jacobian: string",
            lambda: colour_moment_jacobian("abc"), "sparsity"),
        one("log_simplex: string", lambda: log_simplex("abc"),
            "log_ratios"),
        one("infer_eta_blocks: not a pattern",
            lambda: infer_eta_blocks(3.0), "eta_pattern"),
    ]

    # Neyman-Scott.
    data = ns.simulate(12, 2.0, rng=0)
    y = data.y
    out += sweep("ns.simulate", ns.simulate, dict(theta=2.0), "n_pairs",
                 BAD_INT + [("zero", 0)])
    out += sweep("ns.simulate", ns.simulate, dict(n_pairs=5), "theta",
                 BAD_POSITIVE)
    out += sweep("ns.simulate", ns.simulate, dict(n_pairs=5, theta=1.0),
                 "prior_scale", BAD_POSITIVE[:5])
    out += sweep("ns.simulate", ns.simulate, dict(n_pairs=5, theta=1.0),
                 "rng", [("string", "seed"), ("float", 1.5)])
    out += sweep("ns.fit", ns.fit, {}, "data",
                 without(bad_arrays((12, 2)), "extra dimension")
                 + [("scaled 1e-180", y * 1e-180), ("scaled 1e200",
                                                    y * 1e200)],
                 names=("data", "y"))
    out += sweep("ns.fit", ns.fit, dict(data=data), "method",
                 [("unknown", "mle"), ("number", 1)])
    out += sweep("ns.fit", ns.fit, dict(data=data), "theta_init",
                 BAD_POSITIVE[:5])
    out += sweep("ns.fit", ns.fit, dict(data=data, method="em"), "tol",
                 BAD_TOL + [("one", 1.0)])
    out += sweep("ns.fit", ns.fit, dict(data=data, method="em"), "max_iter",
                 BAD_INT + [("zero", 0)])
    out += sweep("ns.e_step", ns.e_step, dict(y=y), "theta",
                 [("negative", -1.0), ("zero", 0.0), ("NaN", np.nan),
                  ("string", "t")])
    out += sweep("ns.e_step", ns.e_step, dict(theta=1.0), "y",
                 bad_arrays((12, 2))[4:10])
    out += sweep("ns.marginal_log_likelihood", ns.marginal_log_likelihood,
                 dict(y=y), "theta", [("negative", -1.0), ("zero", 0.0),
                                      ("NaN", np.nan)])
    out += sweep("ns.marginal_log_likelihood", ns.marginal_log_likelihood,
                 dict(theta=1.0, y=y), "prior_scale",
                 [("negative", -1.0), ("NaN", np.nan)])
    eta = ns.e_step(1.0, y)
    out += sweep("ns.negative_em_objective", ns.negative_em_objective,
                 dict(eta=eta, y=y), "theta", [("negative", -1.0),
                                               ("NaN", np.nan)])
    out += sweep("ns.negative_em_objective", ns.negative_em_objective,
                 dict(theta=1.0, y=y), "eta",
                 [("negative var", {"mean": eta["mean"],
                                    "var": -eta["var"]}),
                  ("not a dict", np.ones(3))])
    out += sweep("ns.eta_pattern", ns.eta_pattern, {}, "n_pairs",
                 BAD_INT[:4])

    # Gaussian mixture.
    mix = gm.simulate(30, np.array([0.5, 0.5]),
                      np.array([[0.0, 0.0], [4.0, 4.0]]),
                      np.stack([np.eye(2)] * 2), rng=0)
    good = dict(n_obs=10, weights=np.array([0.5, 0.5]),
                means=np.zeros((2, 2)), covs=np.stack([np.eye(2)] * 2))
    out += sweep("gm.simulate", gm.simulate, good, "n_obs",
                 BAD_INT + [("zero", 0)])
    out += sweep("gm.simulate", gm.simulate, good, "weights",
                 [("not summing to 1", np.array([0.5, 0.6])),
                  ("negative", np.array([1.5, -0.5]))]
                 + bad_arrays((2,))[:8])
    out += sweep("gm.simulate", gm.simulate, good, "means",
                 [("wrong shape", np.zeros((3, 2)))] + bad_arrays((2, 2))[4:8])
    out += sweep("gm.simulate", gm.simulate, good, "covs",
                 [("not PD", np.stack([np.eye(2), -np.eye(2)])),
                  ("not symmetric", np.stack([np.eye(2),
                                              np.array([[1.0, 0.5],
                                                        [0.0, 1.0]])])),
                  ("NaN", np.full((2, 2, 2), np.nan))])
    out += sweep("gm.fit", gm.fit, dict(n_components=2), "data",
                 without(bad_arrays((30, 2)), "extra dimension",
                         "wrong length")
                 + [("scaled 1e-180", mix.y * 1e-180),
                    ("scaled 1e200", mix.y * 1e200),
                    ("one observation", mix.y[:1])],
                 names=("data", "y", "n_obs"))
    out += sweep("gm.fit", gm.fit, dict(data=mix), "n_components",
                 BAD_INT + [("one", 1)])
    out += sweep("gm.fit", gm.fit, dict(data=mix, n_components=2), "tol",
                 BAD_TOL)
    out += sweep("gm.fit", gm.fit, dict(data=mix, n_components=2),
                 "accelerate", BAD_BOOL)
    out += sweep("gm.fit", gm.fit, dict(data=mix, n_components=2), "init",
                 [("not a dict", np.ones(3)), ("missing keys",
                                               {"weights": np.ones(2) / 2})])
    theta = {"weights": np.array([0.5, 0.5]), "means": np.zeros((2, 2)),
             "covs": np.stack([np.eye(2)] * 2)}
    for label, fun in [("gm.log_joint", gm.log_joint),
                       ("gm.marginal_log_likelihood",
                        gm.marginal_log_likelihood),
                       ("gm.e_step", gm.e_step)]:
        out += sweep(label, fun, dict(y=mix.y), "theta",
                     [("non-PD cov", dict(theta, covs=np.stack(
                         [np.eye(2), -np.eye(2)]))),
                      ("means of the wrong dimension",
                       dict(theta, means=np.zeros((2, 3)))),
                      ("negative weight", dict(theta, weights=np.array(
                          [1.5, -0.5]))),
                      ("missing key", {"means": np.zeros((2, 2))}),
                      ("not a dict", np.ones(3))])
    out += sweep("gm.e_step", gm.e_step, dict(theta=theta, y=mix.y),
                 "pivot", [("out of range", np.full(30, 5)),
                           ("float", np.zeros(30) + 0.5)])
    out += sweep("gm.theta_pattern", gm.theta_pattern, dict(n_dim=2),
                 "n_components", [("one", 1), ("fraction", 2.5)])

    # Mixed model.
    mdata = mm.simulate(5, 3, np.array([1.0, 0.5]), 1.0, 1.0, rng=0)
    good = dict(x=mdata.x, y=mdata.y, group=mdata.group)
    out += sweep("MixedModelData", mm.MixedModelData, good, "x",
                 bad_arrays(mdata.x.shape)[:9])
    out += sweep("MixedModelData", mm.MixedModelData, good, "y",
                 bad_arrays(mdata.y.shape)[:9])
    out += sweep("MixedModelData", mm.MixedModelData, good, "group",
                 [("float", mdata.group + 0.5), ("negative",
                                                 -mdata.group - 1),
                  ("wrong length", mdata.group[:-1]), ("string", "g")])
    out += sweep("MixedModelData", mm.MixedModelData, good, "beta",
                 [("string", "abc"), ("wrong length", np.ones(5)),
                  ("NaN", np.full(2, np.nan))])
    out += sweep("MixedModelData", mm.MixedModelData, good, "sigma_u",
                 [("string", "abc"), ("negative", -1.0)])
    out += sweep("MixedModelData", mm.MixedModelData, good, "u",
                 [("string", "abc"), ("wrong length", np.ones(2))])
    out += sweep("mm.simulate", mm.simulate,
                 dict(n_groups=4, group_size=3, sigma_u=1.0, sigma=1.0),
                 "beta", [("string", "abc"), ("NaN", np.full(2, np.nan)),
                          ("2-d", np.ones((2, 2)))])
    out += sweep("mm.simulate", mm.simulate,
                 dict(n_groups=4, group_size=3, beta=np.ones(2), sigma=1.0),
                 "sigma_u", BAD_POSITIVE[:5])
    out += sweep("mm.fit", mm.fit, {}, "data",
                 [("array", np.ones((3, 3))), ("None", None)])
    out += sweep("mm.fit", mm.fit, dict(data=mdata), "tol", BAD_TOL)
    out += sweep("mm.fit", mm.fit, dict(data=mdata), "max_iter", BAD_INT)
    mtheta = {"beta": np.array([1.0, 0.5]), "sigma_u_sq": np.array([1.0]),
              "sigma_sq": np.array([1.0])}
    for label, fun in [("mm.marginal_log_likelihood",
                        mm.marginal_log_likelihood),
                       ("mm.e_step", mm.e_step)]:
        out += sweep(label, fun, dict(data=mdata), "theta",
                     [("negative sigma_u_sq",
                       dict(mtheta, sigma_u_sq=np.array([-1.0]))),
                      ("zero sigma_sq", dict(mtheta,
                                             sigma_sq=np.array([0.0]))),
                      ("NaN sigma_sq", dict(mtheta,
                                            sigma_sq=np.array([np.nan]))),
                      ("beta of the wrong length",
                       dict(mtheta, beta=np.ones(4))),
                      ("missing key", {"beta": np.ones(2)})])
    out += sweep("mm.marginal_log_likelihood", mm.marginal_log_likelihood,
                 dict(theta=mtheta), "data", [("array", np.ones(3))])
    meta = mm.e_step(mtheta, mdata)
    out += sweep("mm.negative_em_objective", mm.negative_em_objective,
                 dict(theta=mtheta, data=mdata), "eta",
                 [("negative var", dict(meta, var=-meta["var"])),
                  ("wrong length", {"mean": np.ones(2), "var": np.ones(2)}),
                  ("not a dict", np.ones(5))])

    # Logistic GLMM.
    gdata = lg.simulate(40, 5, 2, rng=0)
    good = dict(x=gdata.x, y=gdata.y, group=gdata.group)
    out += sweep("GLMMData", lg.GLMMData, good, "x",
                 without(bad_arrays(gdata.x.shape)[:9], "wrong length"))
    out += sweep("GLMMData", lg.GLMMData, good, "y",
                 [("not binary", gdata.y + 0.5)] + bad_arrays(
                     gdata.y.shape)[4:9])
    out += sweep("GLMMData", lg.GLMMData, good, "group",
                 [("negative", -gdata.group - 1), ("string", "g"),
                  ("wrong length", gdata.group[:-1])])
    out += sweep("glmm.simulate", lg.simulate, dict(n_obs=40, n_groups=5),
                 "mu", BAD_FINITE)
    out += sweep("glmm.simulate", lg.simulate, dict(n_obs=40, n_groups=5),
                 "tau", BAD_POSITIVE)
    out += sweep("glmm.simulate", lg.simulate, dict(n_obs=40, n_groups=5),
                 "beta", [("string", "abc"), ("wrong length", np.ones(9))])
    out += sweep("glmm.fit", lg.fit, dict(data=gdata), "prior",
                 [("list", [1.0, 2.0]), ("unknown key", {"beta_sd": 1.0}),
                  ("negative", {"tau_shape": -1.0})])
    out += sweep("glmm.fit", lg.fit, dict(data=gdata), "init_par",
                 [("wrong length", np.zeros(3)), ("NaN", np.full(18, np.nan)),
                  ("string", "init")])
    out += sweep("glmm.fit", lg.fit, dict(data=gdata), "num_quadrature",
                 BAD_INT + [("zero", 0)])
    out += sweep("GLMMObjective", lg.GLMMObjective, {}, "data",
                 [("array", np.ones(3)), ("None", None)])
    out += sweep("glmm.make_group_ops", lg.make_group_ops,
                 dict(n_groups=3), "group",
                 [("out of range", np.array([0, 1, 5])),
                  ("string", "g")])

    # Importance sampling.
    def log_post(t):
        return -0.5 * anp.sum(t ** 2, axis=1)
    good = dict(log_posterior=log_post, init=np.zeros(2), num_draws=200,
                batch_size=100, num_batches=2, min_ess=None)
    lis = laplace_importance_sampling
    out += sweep("laplace_importance_sampling", lis, good, "df",
                 BAD_POSITIVE)
    out += sweep("laplace_importance_sampling", lis, good, "init",
                 without(bad_arrays((2,))[:9], "wrong length"))
    out += sweep("laplace_importance_sampling", lis, good, "num_draws",
                 BAD_INT + [("one", 1)])
    out += sweep("laplace_importance_sampling", lis, good, "log_posterior",
                 BAD_CALLABLE)
    out += sweep("laplace_importance_sampling", lis, good, "min_ess",
                 [("negative", -1.0), ("string", "many"), ("NaN", np.nan)])
    out += sweep("laplace_importance_sampling", lis, good, "rng",
                 [("string", "seed"), ("float", 0.5)])

    # EM covariance.
    fit_em = ns.fit(data, "em")
    em_good = dict(objective_fun=lambda th, et: ns.negative_em_objective(
        th, et, y), theta_pattern=ns.theta_pattern(),
        eta_pattern=ns.eta_pattern(12), theta_opt=fit_em.theta,
        eta_opt=ns.e_step(fit_em.theta, y))
    out += sweep("EMCovariance", EMCovariance, em_good, "objective_fun",
                 BAD_CALLABLE + [("raises KeyError",
                                  lambda th, et: th["missing"])])
    out += sweep("EMCovariance", EMCovariance, em_good, "theta_pattern",
                 [("float", 1.0), ("None", None)])
    out += sweep("EMCovariance", EMCovariance, em_good, "theta_opt",
                 [("negative", -1.0), ("NaN", np.nan), ("string", "t")])
    out += sweep("EMCovariance", EMCovariance, em_good, "eta_opt",
                 [("off the E-step", ns.e_step(1.3 * fit_em.theta, y)),
                  ("missing key", {"mean": np.zeros(12)}),
                  ("NaN", {"mean": np.full(12, np.nan),
                           "var": np.ones(12)})])
    out += sweep("EMCovariance", EMCovariance, em_good, "validate_optimum",
                 BAD_BOOL)
    out += sweep("EMCovariance", EMCovariance, em_good, "on_failure",
                 [("unknown", "ignore")])
    out += sweep("EMCovariance", EMCovariance, em_good, "eta_blocks",
                 [("wrong shape", np.zeros((3, 3), dtype=int)),
                  ("float", np.zeros((12, 2)) + 0.5)])
    out += [
        one("EMCovariance: theta off its optimum",
            lambda: EMCovariance(**dict(
                em_good, theta_opt=1.3 * fit_em.theta,
                eta_opt=ns.e_step(1.3 * fit_em.theta, y))), "theta_opt"),
        one("EMCovariance.standard_errors: unknown kind",
            lambda: fit_em.em_covariance.standard_errors("sandwich"),
            "kind"),
        one("EMCovariance.covariance: folded not bool",
            lambda: fit_em.em_covariance.covariance(folded="yes"),
            "folded"),
        one("EMCovariance.comparison_table: wrong number of names",
            lambda: fit_em.em_covariance.comparison_table(names=["a", "b"]),
            "names"),
    ]
    return out
