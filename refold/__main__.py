"""``python -m refold``: a tour that runs worked examples and prints tables.

Each section computes its numbers live. ``--plots DIR`` is accepted for the
figures of later sections and needs matplotlib (an optional extra).
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import refold


def _table(header, rows, formats):
    widths = [max(len(h), *(len(f.format(r[i])) for r in rows))
              for i, (h, f) in enumerate(zip(header, formats))]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(f.format(v).rjust(w)
                               for v, f, w in zip(row, formats, widths)))
    return "\n".join(lines)


def tour_patterns(out=print):
    """A dict with a mean, a PSD covariance and a simplex: fold, free, back."""
    out("== Patterns: one flat free vector for a structured parameter ==")
    pattern = refold.PatternDict(free_default=True)
    pattern["mean"] = refold.NumericVectorPattern(2)
    pattern["cov"] = refold.PSDSymmetricMatrixPattern(2)
    pattern["weights"] = refold.SimplexArrayPattern(3, (1,))
    params = {"mean": np.array([1.0, -2.0]),
              "cov": np.array([[2.0, 0.3], [0.3, 0.5]]),
              "weights": np.array([[0.2, 0.3, 0.5]])}
    free = pattern.flatten(params)
    back = pattern.fold(free)
    out("folded value:")
    for key, value in params.items():
        out("  {:8s} {}".format(key, np.array2string(
            value, precision=3, separator=", ").replace("\n", "")))
    out("flat length {} (as-is), {} (free)".format(
        pattern.flat_length(free=False), pattern.flat_length(free=True)))
    rows = [(name, value) for name, value in
            zip(pattern.flat_names(free=True), free)]
    out(_table(["free coordinate", "value"], rows, ["{}", "{:+.6f}"]))
    error = max(float(np.max(np.abs(back[k] - params[k]))) for k in params)
    out("round trip fold(flatten(params)): max abs error {:.1e}".format(error))
    # Every free vector folds to a valid value: try a random one.
    random_value = pattern.fold(np.random.default_rng(0).normal(size=free.size))
    ok, _ = pattern.validate_folded(random_value)
    out("a random free vector folds to a valid parameter: {}".format(ok))
    # Jacobian and log-determinant of the change of variables.
    jac = pattern.unfreeing_jacobian(params)
    out("unfreeing Jacobian: {}x{} sparse, {} nonzeros; log|det| of the "
        "free map: {:+.4f}".format(jac.shape[0], jac.shape[1], jac.nnz,
                                    pattern.log_abs_det_freeing_jacobian(
                                        params)))
    out("")
    return None


def tour_neyman_scott(out=print):
    """Joint MLE -> theta/2; the marginal MLE and EM are consistent."""
    from refold.models import neyman_scott
    out("== Neyman-Scott: maximising over the latent z is inconsistent ==")
    out("y_na, y_nb ~ N(z_n, theta), theta_0 = 2, z_n ~ N(0, 1)")
    theta0, rows = 2.0, []
    for n_pairs in (100, 1000, 10000):
        data = neyman_scott.simulate(n_pairs, theta0, rng=n_pairs)
        joint = neyman_scott.fit(data, method="joint")
        marginal = neyman_scott.fit(data, method="marginal")
        em = neyman_scott.fit(data, method="em")
        naive_se = float(np.sqrt(np.squeeze(
            em.em_covariance.naive_covariance(folded=True))))
        rows.append((n_pairs, joint.theta, marginal.theta, marginal.se,
                     em.theta, em.se, naive_se))
    out(_table(["N pairs", "joint MLE", "marginal MLE", "SE", "EM",
                "EM SE (fixed)", "EM SE (naive)"], rows,
               ["{}", "{:.4f}", "{:.4f}", "{:.4f}", "{:.4f}", "{:.4f}",
                "{:.4f}"]))
    out("joint MLE -> theta_0/2 = {:.1f}; marginal MLE and EM -> theta_0 = "
        "{:.1f}. The EM SE from the marginal-Hessian fix equals the marginal "
        "MLE's; the naive Q-Hessian SE is too small.".format(theta0 / 2,
                                                            theta0))
    out("")
    return {"theta0": theta0, "rows": rows}


def _finite_difference_hessian(fun, x, step=1e-5):
    """Central differences of autograd's gradient (a brute-force check)."""
    import autograd
    grad = autograd.grad(fun)
    columns = []
    for j in range(x.size):
        e = np.zeros(x.size)
        e[j] = step * max(1.0, abs(x[j]))
        columns.append((grad(x + e) - grad(x - e)) / (2 * e[j]))
    hess = np.array(columns).T
    return 0.5 * (hess + hess.T)


def tour_em_standard_errors(out=print):
    """EM standard errors: naive Q-Hessian vs the fix vs brute force."""
    from refold.models import mixed_model
    out("== EM standard errors: random-intercept linear mixed model ==")
    data = mixed_model.simulate(200, 5, np.array([1.0, 0.5]), 0.8, 1.0,
                                rng=0)
    result = mixed_model.fit(data)
    em = result.em_covariance
    pattern = result.theta_pattern
    free = pattern.flatten(result.estimates, free=True)

    def negative_marginal(free_par):
        return -mixed_model.marginal_log_likelihood(
            pattern.fold(free_par, free=True), data)

    brute = np.linalg.inv(_finite_difference_hessian(negative_marginal, free))
    jac = pattern.unfreeing_jacobian(result.estimates, sparse=False)
    brute_se = np.sqrt(np.diag(jac @ brute @ jac.T))
    naive_se = np.sqrt(np.diag(em.naive_covariance(folded=True)))
    fixed_se = np.sqrt(np.diag(em.covariance(folded=True)))
    estimate = pattern.flatten(result.estimates, free=False)
    rows = [(name, est, naive, fixed, brute, fixed / naive)
            for name, est, naive, fixed, brute in zip(
                pattern.flat_names(free=False), estimate, naive_se, fixed_se,
                brute_se)]
    out("200 groups x 5 rows; EM estimates and standard errors")
    out(_table(["parameter", "estimate", "naive SE", "fixed SE",
                "brute-force SE", "fixed/naive"], rows,
               ["{}", "{:.4f}", "{:.4f}", "{:.4f}", "{:.4f}", "{:.2f}"]))
    out("fixed = inverse of the marginal Hessian as the Schur complement of "
        "the joint EM objective's Hessian; brute force = finite differences "
        "of the closed-form marginal likelihood; max relative difference "
        "{:.1e}".format(float(np.max(np.abs(fixed_se / brute_se - 1)))))
    out("")
    return {"rows": rows}


def _glmm_reference_data(seed=3, n_obs=500, n_groups=10, n_fixed=2):
    """A small GLMM whose covariates share a group-level component, so beta
    and u are correlated a posteriori."""
    import scipy.special
    from refold.models.logistic_glmm import GLMMData
    rng = np.random.default_rng(seed)
    group = np.arange(n_obs) % n_groups
    x = (0.8 * rng.standard_normal((n_groups, n_fixed))[group]
         + 0.6 * rng.standard_normal((n_obs, n_fixed)))
    beta = np.linspace(0.8, -0.5, n_fixed)
    u = -0.3 + 0.7 * rng.standard_normal(n_groups)
    y = rng.uniform(size=n_obs) < scipy.special.expit(x @ beta + u[group])
    return GLMMData(x, y, group, n_groups)


def tour_linear_response(out=print):
    """MFVB vs LR vs exact covariances."""
    import autograd.numpy as anp
    from refold.models import logistic_glmm
    from refold.models.importance_sampling import laplace_importance_sampling
    out("== Linear response: mean-field VB under-states variances; LR "
        "repairs them ==")
    # (a) A Gaussian target: LR is exact, MFVB variances are 1/diag(prec).
    cov = np.array([[1.0, 0.8, 0.3], [0.8, 1.0, 0.5], [0.3, 0.5, 2.0]])
    prec = np.linalg.inv(cov)
    mean = np.array([0.5, -1.0, 2.0])
    dim = mean.size

    def kl(par):  # KL(q || N(mean, cov)) up to a constant, q mean-field
        m, log_s = par[:dim], par[dim:]
        centred = m - mean
        return 0.5 * (anp.sum(anp.diag(prec) * anp.exp(2 * log_s))
                      + anp.dot(centred, anp.dot(prec, centred))) \
            - anp.sum(log_s)

    opt = np.concatenate([mean, -0.5 * np.log(np.diag(prec))])
    lr = refold.LinearResponseCovariances(kl, opt)
    lr_cov = lr.get_lr_covariance(lambda par: par[:dim])
    rows = [("x[{}]".format(i), np.exp(opt[dim + i]), np.sqrt(lr_cov[i, i]),
             np.sqrt(cov[i, i])) for i in range(dim)]
    out("(a) Gaussian target N(mean, cov), mean-field normal q:")
    out(_table(["coordinate", "MFVB sd", "LR sd", "exact sd"], rows,
               ["{}", "{:.4f}", "{:.4f}", "{:.4f}"]))
    out("    max |LR cov - cov| = {:.1e} (LR is exact here)".format(
        float(np.max(np.abs(lr_cov - cov)))))
    # (b) A logistic GLMM against its exact posterior by importance sampling.
    data = _glmm_reference_data()
    prior = logistic_glmm.GLMMPrior()
    fit = logistic_glmm.fit(data, prior=prior)
    k, t = data.n_fixed, data.n_groups
    start = np.concatenate([fit.beta_mean, fit.u_mean,
                            [fit.mu_mean, np.log(fit.tau_mean)]])
    reference = laplace_importance_sampling(
        lambda theta: logistic_glmm.log_posterior(theta, data, prior), start,
        num_draws=100_000, rng=11)
    ref_sd = reference.sd
    ref_se = 0.5 * np.diag(reference.cov_mc_se) / ref_sd
    rows = [("beta[{}]".format(i), fit.beta_sd[i], fit.lr_beta_sd[i],
             ref_sd[i], ref_se[i]) for i in range(k)]
    rows += [("u[{}]".format(i), fit.u_sd[i], fit.lr_u_sd[i],
              ref_sd[k + i], ref_se[k + i]) for i in range(3)]
    out("(b) logistic GLMM, {} rows, {} groups; reference = exact posterior "
        "by importance sampling ({:,} draws, ESS {:,.0f}):".format(
            data.n_obs, t, reference.draws.shape[0], reference.ess))
    out(_table(["coordinate", "MFVB sd", "LR sd", "posterior sd", "MC se"],
               rows, ["{}", "{:.4f}", "{:.4f}", "{:.4f}", "{:.4f}"]))
    out("    (first three of {} random effects shown)".format(t))
    out("")
    return {"mfvb": np.concatenate([fit.beta_sd, fit.u_sd]),
            "lr": np.concatenate([fit.lr_beta_sd, fit.lr_u_sd]),
            "reference": ref_sd[:k + t]}


def tour_taylor(out=print):
    """A Taylor-series prediction of a re-fitted optimum vs the re-fit."""
    import autograd.numpy as anp
    import scipy.special
    out("== Prior sensitivity: Taylor series of the optimum vs re-fitting ==")
    rng = np.random.default_rng(0)
    n_obs, dim = 200, 4
    x = rng.standard_normal((n_obs, dim))
    y = rng.uniform(size=n_obs) < scipy.special.expit(
        x @ np.array([1.0, -0.5, 0.25, 0.0]))

    def objective(beta, log_prior_sd):
        z = anp.dot(x, beta)
        log_lik = anp.sum(y * z - anp.logaddexp(0.0, z))
        prior_var = anp.exp(2.0 * log_prior_sd[0])
        return -log_lik + 0.5 * anp.sum(beta ** 2) / prior_var

    hyper0 = np.array([np.log(0.5)])
    opt0 = refold.refit(lambda b: objective(b, hyper0), np.zeros(dim)).x
    taylor = refold.ParametricSensitivityTaylorExpansion.optimization_objective(
        objective, opt0, hyper0, order=4)
    rows = []
    for delta in (0.1, 0.3, 0.6):
        hyper = hyper0 + delta
        truth = refold.refit(lambda b: objective(b, hyper), opt0).x
        errors = [float(np.max(np.abs(taylor.evaluate_taylor_series(
            hyper, max_order=k) - truth))) for k in (1, 2, 3, 4)]
        rows.append((delta, float(np.max(np.abs(truth - opt0))), *errors))
    out("logistic regression, prior sd on beta from 0.5 to 0.5*e^delta; "
        "max |prediction - re-fit| by order:")
    out(_table(["delta log sd", "|re-fit - base|", "order 1", "order 2",
                "order 3", "order 4"], rows,
               ["{:.1f}", "{:.2e}", "{:.1e}", "{:.1e}", "{:.1e}", "{:.1e}"]))
    out("one Hessian factorisation serves every order; higher orders track "
        "the re-fit further from the base point")
    out("")
    return {"rows": rows}


SECTIONS = [("patterns", tour_patterns),
            ("neyman_scott", tour_neyman_scott),
            ("em_standard_errors", tour_em_standard_errors),
            ("linear_response", tour_linear_response),
            ("taylor", tour_taylor)]


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m refold",
        description="Run refold's worked examples and print their tables.")
    parser.add_argument("--plots", metavar="DIR", default=None,
                        help="also write PNG figures to DIR (needs "
                             "matplotlib)")
    parser.add_argument("--only", choices=[name for name, _ in SECTIONS],
                        default=None, help="run one section")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    plotter = None
    if args.plots is not None:
        from refold import _tour_plots
        plotter = _tour_plots.Plotter(args.plots)
    print("refold {} tour\n".format(refold.__version__))
    for name, section in SECTIONS:
        if args.only and name != args.only:
            continue
        data = section()
        if plotter is not None and data is not None:
            path = plotter.plot(name, data)
            if path:
                print("wrote {}\n".format(path))
    print("tour finished in {:.1f} s".format(time.perf_counter() - start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
