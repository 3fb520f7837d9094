"""LRVB on a logistic GLMM: mean-field VB vs linear-response standard
deviations, against a reference posterior.

A logistic regression with K fixed effects beta and a random intercept
u_t ~ N(mu, 1/tau) for each of T groups, whose covariates have a group-level
component (so beta and u are correlated a posteriori), is fitted by
mean-field VB with refold.models.logistic_glmm. The posterior standard
deviations of beta, mu, tau and every u_t from

* mean-field VB itself (which under-states them), and
* linear response (LR), J H^-1 J^T from the same fit,

are compared with a reference: the exact posterior by self-normalised
importance sampling, with a multivariate-t proposal centred at the posterior
mode with the Laplace covariance (independent of the VB fit and of refold's
objective: the log posterior is written out below).

Run:  python docs/tutorials/lrvb_glmm.py [--fast] [--figures DIR]
"""
import sys

import autograd
import autograd.numpy as anp
import numpy as np
import scipy.special
import scipy.stats

from refold.models import logistic_glmm
from refold.sensitivity.refit import refit
from _tutorial import TutorialRun  # docs/tutorials/_tutorial.py

NAME = "lrvb_glmm"


def simulate(n_obs, n_groups, n_fixed, seed):
    """Covariates with a group-level component; beta, u correlated."""
    rng = np.random.default_rng(seed)
    group = np.arange(n_obs) % n_groups
    x = (0.8 * rng.standard_normal((n_groups, n_fixed))[group]
         + 0.6 * rng.standard_normal((n_obs, n_fixed)))
    beta = np.linspace(0.8, -0.5, n_fixed)
    u = -0.3 + 0.7 * rng.standard_normal(n_groups)
    y = rng.uniform(size=n_obs) < scipy.special.expit(x @ beta + u[group])
    return logistic_glmm.GLMMData(x, y, group, n_groups)


def log_posterior(theta, data, prior):
    """Unnormalised log p(beta, u, mu, log tau | y) for rows of ``theta``."""
    k, t = data.n_fixed, data.n_groups
    beta, u = theta[:, :k], theta[:, k:k + t]
    mu, log_tau = theta[:, k + t], theta[:, k + t + 1]
    tau = anp.exp(log_tau)
    z = anp.dot(beta, data.x.T) + u[:, data.group]
    return (anp.sum(data.y * z - anp.logaddexp(0.0, z), axis=1)
            + 0.5 * t * log_tau
            - 0.5 * tau * anp.sum((u - mu[:, None]) ** 2, axis=1)
            - 0.5 * anp.sum(beta ** 2, axis=1) / prior.beta_var
            - 0.5 * mu ** 2 / prior.mu_var
            + prior.tau_shape * log_tau - prior.tau_rate * tau)


def reference_sds(data, prior, start, num_draws, seed):
    """Posterior sds of (beta, u, mu, tau) by importance sampling."""
    dim = data.n_fixed + data.n_groups + 2

    def neg_log_post(theta):
        return -log_posterior(theta[None, :], data, prior)[0]

    mode = refit(neg_log_post, start, gtol=1e-9).x
    laplace = np.linalg.inv(autograd.hessian(neg_log_post)(mode))
    rng = np.random.default_rng(seed)
    df = 6
    chol = np.linalg.cholesky(laplace)
    draws = mode + (rng.standard_normal((num_draws, dim)) @ chol.T) / np.sqrt(
        rng.chisquare(df, num_draws) / df)[:, None]
    log_q = scipy.stats.multivariate_t(mode, laplace, df=df).logpdf(draws)
    log_p = np.concatenate([
        log_posterior(draws[i:i + 10_000], data, prior)
        for i in range(0, num_draws, 10_000)])
    log_w = log_p - log_q
    weights = np.exp(log_w - log_w.max())
    weights /= weights.sum()
    ess = 1.0 / np.sum(weights ** 2)
    draws[:, -1] = np.exp(draws[:, -1])          # log tau -> tau
    mean = weights @ draws
    sds = np.sqrt(weights @ (draws - mean) ** 2)
    return sds, ess


def compare(fast):
    n_obs, n_groups, n_fixed = (300, 8, 2) if fast else (1500, 30, 3)
    num_draws = 20_000 if fast else 200_000
    data = simulate(n_obs, n_groups, n_fixed, seed=3)
    prior = logistic_glmm.GLMMPrior()
    result = logistic_glmm.fit(data, prior=prior)
    start = np.concatenate([result.beta_mean, result.u_mean,
                            [result.mu_mean, np.log(result.tau_mean)]])
    ref, ess = reference_sds(data, prior, start, num_draws, seed=11)
    k, t = n_fixed, n_groups
    mfvb = np.concatenate([result.beta_sd, result.u_sd,
                           [result.mu_sd, result.tau_sd]])
    lr = np.concatenate([result.lr_beta_sd, result.lr_u_sd,
                         [result.lr_mu_sd, result.lr_tau_sd]])
    names = (["beta[{}]".format(i) for i in range(k)]
             + ["u[{}]".format(i) for i in range(t)] + ["mu", "tau"])
    return {"data": data, "result": result, "names": names, "mfvb": mfvb,
            "lr": lr, "reference": ref, "ess": ess, "num_draws": num_draws}


def report(res, out):
    data, result = res["data"], res["result"]
    out("N = {} rows, T = {} groups, K = {} fixed effects; VB + LR in "
        "{:.2f} s (LR stage {:.3f} s)".format(
            data.n_obs, data.n_groups, data.n_fixed,
            result.timings["total"], result.timings["lr_total"]))
    out("reference: importance sampling, {} draws, effective sample size "
        "{:.0f}".format(res["num_draws"], res["ess"]))
    out("")
    out("{:>10} {:>12} {:>12} {:>12} {:>10} {:>10}".format(
        "parameter", "reference", "MFVB", "LR", "MFVB/ref", "LR/ref"))
    shown = [i for i, name in enumerate(res["names"])
             if not name.startswith("u[")] + [
        i for i, name in enumerate(res["names"]) if name.startswith("u[")][:3]
    for i in shown:
        out("{:>10} {:>12.4f} {:>12.4f} {:>12.4f} {:>10.2f} {:>10.2f}".format(
            res["names"][i], res["reference"][i], res["mfvb"][i],
            res["lr"][i], res["mfvb"][i] / res["reference"][i],
            res["lr"][i] / res["reference"][i]))
    for label, key in [("MFVB", "mfvb"), ("LR", "lr")]:
        ratio = res[key] / res["reference"]
        out("{:>4}: sd / reference sd over all {} parameters: min {:.2f}, "
            "median {:.2f}, max {:.2f}".format(
                label, len(ratio), ratio.min(), np.median(ratio),
                ratio.max()))


def plot(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = res["names"]
    is_u = np.array([name.startswith("u[") for name in names])
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    for key, marker, colour, label in [("mfvb", "o", "C0", "MFVB"),
                                       ("lr", "s", "C3", "LR")]:
        ax.scatter(res["reference"][is_u], res[key][is_u], marker=marker,
                   s=18, alpha=0.6, color=colour,
                   label=label + " (random effects)")
        ax.scatter(res["reference"][~is_u], res[key][~is_u], marker=marker,
                   s=44, color=colour, edgecolor="k",
                   label=label + r" ($\beta, \mu, \tau$)")
    top = 1.05 * max(res["reference"].max(), res["lr"].max())
    ax.plot([0, top], [0, top], "k--", linewidth=1)
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("reference posterior sd (importance sampling)")
    ax.set_ylabel("approximate posterior sd")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    run = TutorialRun(NAME, __doc__, argv)
    out = run.out
    res = compare(run.fast)
    report(res, out)
    run.finish(lambda png: plot(res, png))
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
